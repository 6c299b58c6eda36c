// SRTP/SRTCP against the published vectors (RFC 3711 B.3 key derivation and libsrtp's reference packet,
// RFC 7714 §16), then the receive-side rules: replay, tampering, rollover.
#include "../src/srtp.h"

#include <cstring>

#include "check.h"

using check::hex;
using pb::SrtpContext;
using pb::SrtpProfile;

static const auto kCmKey = hex("e1f97a0d3e018be0d64fa32c06de4139");
static const auto kCmSalt = hex("0ec675ad498afeebb6960b3aabe6");

TEST(aes_cm_rtp_matches_libsrtp_reference_packet) {
  SrtpContext tx(SrtpProfile::Aes128CmSha1_80, kCmKey.data(), kCmSalt.data());
  auto pkt = hex("800f1234decafbadcafebabe abababababababababababababababab");
  pkt.resize(pkt.size() + pb::kSrtpMaxOverhead);
  size_t len = 28;
  EXPECT(tx.protectRtp(pkt.data(), len, pkt.size()));
  EXPECT(len == 38);
  EXPECT_HEX(pkt.data(), len, "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
  SrtpContext rx(SrtpProfile::Aes128CmSha1_80, kCmKey.data(), kCmSalt.data());
  EXPECT(rx.unprotectRtp(pkt.data(), len));
  EXPECT_HEX(pkt.data(), len, "800f1234decafbadcafebabeabababababababababababababababab");
}

TEST(aes_cm_rtcp_matches_libsrtp_reference_packet) {
  // libsrtp's reference packet is the second SRTCP packet of its sender (index 1).
  SrtpContext tx(SrtpProfile::Aes128CmSha1_80, kCmKey.data(), kCmSalt.data());
  std::vector<unsigned char> pkt;
  size_t len = 0;
  for (int i = 0; i < 2; i++) {
    pkt = hex("81c8000bcafebabe abababababababababababababababab");
    pkt.resize(pkt.size() + pb::kSrtpMaxOverhead);
    len = 24;
    EXPECT(tx.protectRtcp(pkt.data(), len, pkt.size()));
  }
  EXPECT_HEX(pkt.data(), len,
             "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798");
}

TEST(aes_cm_rtcp_unprotects_libsrtp_reference_packet) {
  // libsrtp's reference SRTCP packet carries index 1 (its sender had sent one before).
  SrtpContext rx(SrtpProfile::Aes128CmSha1_80, kCmKey.data(), kCmSalt.data());
  auto pkt = hex("81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798");
  size_t len = pkt.size();
  EXPECT(rx.unprotectRtcp(pkt.data(), len));
  EXPECT_HEX(pkt.data(), len, "81c8000bcafebabeabababababababababababababababab");
}

TEST(aead_gcm_rtp_matches_rfc7714_section_16) {
  auto key = hex("000102030405060708090a0b0c0d0e0f");
  auto salt = hex("517569642070726f2071756f");
  SrtpContext tx(SrtpProfile::AeadAes128Gcm, key.data(), salt.data(), nullptr, SrtpContext::SessionKeysTag{});
  auto pkt = hex(
      "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e6973 2064697669736120696e207061727465"
      "732074726573");
  const size_t plainLen = pkt.size();
  pkt.resize(plainLen + pb::kSrtpMaxOverhead);
  size_t len = plainLen;
  EXPECT(tx.protectRtp(pkt.data(), len, pkt.size()));
  EXPECT_HEX(pkt.data(), len,
             "8040f17b8041f8d35501a0b2"
             "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833"
             "899d7f27beb16a9152cf765ee4390cce");
  SrtpContext rx(SrtpProfile::AeadAes128Gcm, key.data(), salt.data(), nullptr, SrtpContext::SessionKeysTag{});
  EXPECT(rx.unprotectRtp(pkt.data(), len));
  EXPECT(len == plainLen);
}

static std::vector<unsigned char> rtp(uint16_t seq, uint32_t ssrc, unsigned char fill) {
  std::vector<unsigned char> p(12 + 40 + pb::kSrtpMaxOverhead, fill);
  p[0] = 0x80;
  p[1] = 111;
  p[2] = seq >> 8;
  p[3] = seq & 0xff;
  std::memset(p.data() + 4, 0, 4);
  p[8] = ssrc >> 24;
  p[9] = ssrc >> 16;
  p[10] = ssrc >> 8;
  p[11] = ssrc;
  return p;
}

static void roundTripRules(SrtpProfile profile) {
  auto key = hex("00112233445566778899aabbccddeeff");
  auto salt = hex("0102030405060708090a0b0c0d0e");
  SrtpContext tx(profile, key.data(), salt.data());
  SrtpContext rx(profile, key.data(), salt.data());
  // Across a sequence wrap (rollover counter 0 → 1), with one packet reordered.
  std::vector<std::vector<unsigned char>> sent;
  std::vector<size_t> lens;
  for (uint32_t i = 0; i < 40; i++) {
    auto p = rtp(static_cast<uint16_t>(65520 + i), 0x1234, static_cast<unsigned char>(i));
    size_t len = 52;
    EXPECT(tx.protectRtp(p.data(), len, p.size()));
    sent.push_back(p);
    lens.push_back(len);
  }
  std::swap(sent[20], sent[21]);
  std::swap(lens[20], lens[21]);
  for (size_t i = 0; i < sent.size(); i++) {
    auto p = sent[i];
    size_t len = lens[i];
    EXPECT(rx.unprotectRtp(p.data(), len));
    EXPECT(len == 52);
    EXPECT(p[20] == p[12]);  // payload decrypted to its fill byte
  }
  // A replay is refused.
  {
    auto p = sent[30];
    size_t len = lens[30];
    EXPECT(!rx.unprotectRtp(p.data(), len));
    EXPECT(rx.stats().replays == 1);
  }
  // A flipped bit anywhere is refused and moves nothing.
  auto fresh = rtp(30, 0x1234, 7);
  size_t flen = 52;
  EXPECT(tx.protectRtp(fresh.data(), flen, fresh.size()));
  for (size_t bit = 0; bit < flen * 8; bit += 37) {
    auto p = fresh;
    p[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    size_t len = flen;
    EXPECT(!rx.unprotectRtp(p.data(), len));
  }
  size_t len = flen;
  EXPECT(rx.unprotectRtp(fresh.data(), len));
  // Truncated and garbage input never reads out of bounds (ASan watches).
  for (size_t n = 0; n < 40; n++) {
    std::vector<unsigned char> g(n, 0x90);
    size_t glen = n;
    EXPECT(!rx.unprotectRtp(g.data(), glen));
    glen = n;
    EXPECT(!rx.unprotectRtcp(g.data(), glen));
  }
  // SRTCP round trip and replay.
  auto r = hex("80c90001 00001234");
  r.resize(r.size() + pb::kSrtpMaxOverhead);
  size_t rlen = 8;
  EXPECT(tx.protectRtcp(r.data(), rlen, r.size()));
  auto copy = r;
  size_t clen = rlen;
  EXPECT(rx.unprotectRtcp(r.data(), rlen));
  EXPECT(rlen == 8);
  EXPECT_HEX(r.data(), rlen, "80c9000100001234");
  EXPECT(!rx.unprotectRtcp(copy.data(), clen));
}

TEST(aes_cm_round_trip_rollover_reorder_replay_tamper) { roundTripRules(SrtpProfile::Aes128CmSha1_80); }
TEST(aead_gcm_round_trip_rollover_reorder_replay_tamper) { roundTripRules(SrtpProfile::AeadAes128Gcm); }

TEST_MAIN
