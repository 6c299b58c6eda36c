// RTP header extensions in both forms, padding, CSRCs, RTCP compounds with NACK/PLI/FIR, and every
// truncation refused.
#include "../src/rtp.h"

#include "check.h"

using check::hex;

// V=2 X=1 CC=1, PT 111, seq 0x1234, ts 0x01020304, ssrc 0xdecafbad, one CSRC, one-byte extensions:
// id 1 (audio level, 1 byte 0x9f), padding byte, id 4 (mid "0", 1 byte), then payload "abcd".
static const auto kOneByte = hex(
    "9170 1234 01020304 decafbad 11111111 bede0002 109f0040 30000000 61626364");

TEST(one_byte_extensions_csrc_payload) {
  pb::RtpView v;
  EXPECT(pb::parseRtp(kOneByte.data(), kOneByte.size(), v));
  EXPECT(v.payloadType == 0x70);
  EXPECT(v.sequenceNumber == 0x1234 && v.timestamp == 0x01020304 && v.ssrc == 0xdecafbad);
  EXPECT(v.csrcCount == 1 && v.extensionProfile == 0xBEDE && v.extensionLength == 8);
  EXPECT(v.payloadLength == 4 && kOneByte[v.payloadOffset] == 'a');
  const uint8_t* d = nullptr;
  size_t n = 0;
  EXPECT(pb::findRtpExtension(kOneByte.data(), v, 1, &d, &n) && n == 1 && d[0] == 0x9f);
  EXPECT(pb::findRtpExtension(kOneByte.data(), v, 4, &d, &n) && n == 1 && d[0] == '0');
  EXPECT(!pb::findRtpExtension(kOneByte.data(), v, 3, &d, &n));
}

TEST(two_byte_extensions_and_padding) {
  // Two-byte form (0x1000): id 12 with 3 bytes "rid" → "l", id 20 with 0 bytes; payload 2 bytes + 2 padding.
  auto p = hex("b060 0001 00000000 00000001 10000002 0c016c14 00000000 aaaa 0002");
  pb::RtpView v;
  EXPECT(pb::parseRtp(p.data(), p.size(), v));
  EXPECT(v.paddingLength == 2 && v.payloadLength == 2);
  const uint8_t* d = nullptr;
  size_t n = 0;
  EXPECT(pb::findRtpExtension(p.data(), v, 12, &d, &n) && n == 1 && d[0] == 'l');
  EXPECT(pb::findRtpExtension(p.data(), v, 20, &d, &n) && n == 0);
  // Padding longer than the payload is refused.
  p[p.size() - 1] = 9;
  EXPECT(!pb::parseRtp(p.data(), p.size(), v));
}

TEST(every_truncation_is_refused_or_bounded) {
  pb::RtpView v;
  // Cut anywhere inside the header, CSRC list or extension block (28 bytes); a shorter payload is fine.
  for (size_t n = 0; n < 28; n++) EXPECT(!pb::parseRtp(kOneByte.data(), n, v));
  EXPECT(pb::parseRtp(kOneByte.data(), 28, v) && v.payloadLength == 0);
  // The extension block claims more words than the packet has.
  auto p = kOneByte;
  p[19] = 0x09;
  EXPECT(!pb::parseRtp(p.data(), p.size(), v));
  // An element claiming more bytes than its block: not found, no overread (ASan watches).
  p = kOneByte;
  p[20] = 0x1f;
  EXPECT(pb::parseRtp(p.data(), p.size(), v));
  const uint8_t* d = nullptr;
  size_t n = 0;
  EXPECT(!pb::findRtpExtension(p.data(), v, 4, &d, &n));
}

TEST(rtcp_compound_nack_pli_fir) {
  uint8_t buf[256];
  const uint16_t lost[] = {100, 101, 103, 116, 117, 200};
  size_t n = pb::buildNack(buf, sizeof buf, 1, 0xabcdef01, lost, 6);
  EXPECT(n == 12 + 4 * 3);  // (100: 101,103,116), (117), (200)
  n += pb::buildPli(buf + n, sizeof buf - n, 1, 0x55);
  auto fir = hex("84ce0004 00000001 00000000 00000077 05000000");
  for (auto b : fir) buf[n++] = b;
  size_t off = 0;
  pb::RtcpView v;
  std::vector<uint16_t> got;
  uint32_t ssrc = 0;
  EXPECT(pb::nextRtcp(buf, n, off, v) && pb::parseNack(v, ssrc, got));
  EXPECT(ssrc == 0xabcdef01 && got == std::vector<uint16_t>(lost, lost + 6));
  EXPECT(pb::nextRtcp(buf, n, off, v) && pb::parsePli(v, ssrc) && ssrc == 0x55);
  std::vector<uint32_t> firs;
  EXPECT(pb::nextRtcp(buf, n, off, v) && pb::parseFir(v, firs) && firs.size() == 1 && firs[0] == 0x77);
  EXPECT(!pb::nextRtcp(buf, n, off, v));
  // A length past the datagram stops the walk.
  buf[3] = 0xff;
  off = 0;
  EXPECT(!pb::nextRtcp(buf, n, off, v));
  // A NACK across the sequence wrap.
  const uint16_t wrap[] = {65535, 0, 1};
  n = pb::buildNack(buf, sizeof buf, 1, 2, wrap, 3);
  off = 0;
  got.clear();
  EXPECT(n == 16 && pb::nextRtcp(buf, n, off, v) && pb::parseNack(v, ssrc, got) && got.size() == 3 && got[2] == 1);
}

TEST_MAIN
