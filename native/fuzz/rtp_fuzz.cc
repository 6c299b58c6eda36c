// libFuzzer target: any datagram as RTP (every extension id looked up, then rewritten for a subscriber as the
// forwarding path does, the output re-parsed) and as an RTCP compound.
#include <cstdlib>
#include <vector>

#include "../src/forward.h"
#include "../src/rtp.h"

static pb::ForwardRoute fuzzRoute() {
  pb::ForwardRoute r;
  r.ssrc = 0x11223344;
  r.payloadType = 111;
  r.midId = 3;
  r.mid = "0123456789abcdef";
  for (int id = 1; id < 256; id++) r.extMap[id] = static_cast<uint8_t>(id % 15);
  return r;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pb::RtpView v;
  if (pb::parseRtp(data, size, v)) {
    const uint8_t* d = nullptr;
    size_t n = 0;
    for (int id = 0; id < 256; id++) pb::findRtpExtension(data, v, static_cast<uint8_t>(id), &d, &n);
    static const pb::ForwardRoute route = fuzzRoute();
    uint8_t out[1600];
    const size_t w = pb::rewriteRtp(data, size, route, 1, 2, out, sizeof out);
    pb::RtpView o;
    if (w > 0 && (!pb::parseRtp(out, w, o) || o.payloadLength != v.payloadLength)) abort();
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
