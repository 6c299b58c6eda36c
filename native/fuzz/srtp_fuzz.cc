// libFuzzer target: arbitrary datagrams through SRTP/SRTCP unprotect (both profiles) must never read or write
// out of bounds, and an accepted packet must re-protect.
#include <cstring>
#include <vector>

#include "../src/srtp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  static const uint8_t salt[14] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  static pb::SrtpContext cm(pb::SrtpProfile::Aes128CmSha1_80, key, salt);
  static pb::SrtpContext gcm(pb::SrtpProfile::AeadAes128Gcm, key, salt);
  static pb::SrtpContext tx(pb::SrtpProfile::Aes128CmSha1_80, key, salt);
  for (pb::SrtpContext* c : {&cm, &gcm}) {
    std::vector<uint8_t> a(data, data + size);
    size_t len = size;
    c->unprotectRtp(a.data(), len);
    std::vector<uint8_t> b(data, data + size);
    len = size;
    c->unprotectRtcp(b.data(), len);
  }
  std::vector<uint8_t> p(data, data + size);
  p.resize(size + pb::kSrtpMaxOverhead);
  size_t len = size;
  tx.protectRtp(p.data(), len, p.size());
  len = size;
  std::memcpy(p.data(), data, size);
  tx.protectRtcp(p.data(), len, p.size());
  return 0;
}
