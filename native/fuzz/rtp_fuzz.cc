// libFuzzer target: any datagram as RTP (every extension id looked up) and as an RTCP compound.
#include <vector>

#include "../src/rtp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pb::RtpView v;
  if (pb::parseRtp(data, size, v)) {
    const uint8_t* d = nullptr;
    size_t n = 0;
    for (int id = 0; id < 256; id++) pb::findRtpExtension(data, v, static_cast<uint8_t>(id), &d, &n);
  }
  size_t off = 0;
  pb::RtcpView r;
  std::vector<uint16_t> lost;
  std::vector<uint32_t> ssrcs;
  uint32_t ssrc = 0;
  while (pb::nextRtcp(data, size, off, r)) {
    pb::parseNack(r, ssrc, lost);
    pb::parsePli(r, ssrc);
    pb::parseFir(r, ssrcs);
  }
  if (!lost.empty()) {
    uint8_t out[2048];
    pb::buildNack(out, sizeof out, 1, ssrc, lost.data(), lost.size() > 400 ? 400 : lost.size());
  }
  return 0;
}
