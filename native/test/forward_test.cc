// The per-subscriber rewrite of the native forwarding path: fields, CSRCs, extension ids in both source
// forms, the subscriber's mid, padding dropped, short buffers and non-RTP refused.
#include "../src/forward.h"

#include <cstring>

#include "../src/rtp.h"
#include "check.h"

using check::hex;

// V=2 X=1 CC=1 M=1, PT 111, seq 0x1234, ts 0x01020304, ssrc 0xdecafbad, one CSRC, one-byte extensions:
// id 1 (audio level 0x9f), a padding byte, id 4 (the publisher's mid "0"), then payload "abcd".
static const auto kOneByte = hex("91ef 1234 01020304 decafbad 11111111 bede0002 109f0040 30000000 61626364");

static pb::ForwardRoute route() {
  pb::ForwardRoute r;
  r.ssrc = 0x01020304;
  r.payloadType = 109;
  r.midId = 9;
  r.mid = "a1";
  r.extMap[1] = 3;  // audio level 1 → 3; the publisher's mid (4) is not forwarded
  return r;
}

TEST(rewrites_fields_keeps_csrc_and_marker_maps_extensions) {
  const auto r = route();
  EXPECT(pb::validRoute(r));
  uint8_t out[1500];
  const size_t n = pb::rewriteRtp(kOneByte.data(), kOneByte.size(), r, 0xfffe, 0xabcdef01, out, sizeof out);
  EXPECT(n > 0);
  pb::RtpView v;
  EXPECT(pb::parseRtp(out, n, v));
  EXPECT(v.marker && v.payloadType == 109 && v.sequenceNumber == 0xfffe && v.timestamp == 0xabcdef01);
  EXPECT(v.ssrc == 0x01020304 && v.csrcCount == 1 && std::memcmp(out + 12, "\x11\x11\x11\x11", 4) == 0);
  EXPECT(v.extensionProfile == 0xBEDE && v.extensionLength % 4 == 0);
  const uint8_t* d = nullptr;
  size_t len = 0;
  EXPECT(pb::findRtpExtension(out, v, 9, &d, &len) && len == 2 && std::memcmp(d, "a1", 2) == 0);
  EXPECT(pb::findRtpExtension(out, v, 3, &d, &len) && len == 1 && d[0] == 0x9f);
  EXPECT(!pb::findRtpExtension(out, v, 1, &d, &len));
  EXPECT(!pb::findRtpExtension(out, v, 4, &d, &len));
  EXPECT(v.payloadLength == 4 && std::memcmp(out + v.payloadOffset, "abcd", 4) == 0);
  // The source is shared with other subscribers: untouched.
  EXPECT(kOneByte == hex("91ef 1234 01020304 decafbad 11111111 bede0002 109f0040 30000000 61626364"));
}

TEST(no_extensions_left_means_no_extension_block) {
  pb::ForwardRoute r;
  r.ssrc = 7;
  r.payloadType = 111;
  uint8_t out[1500];
  const size_t n = pb::rewriteRtp(kOneByte.data(), kOneByte.size(), r, 1, 2, out, sizeof out);
  EXPECT(n == 12 + 4 + 4);
  EXPECT((out[0] & 0x10) == 0 && (out[0] & 0x0f) == 1);
  EXPECT(std::memcmp(out + 16, "abcd", 4) == 0);
}

TEST(two_byte_source_form_and_padding) {
  // Two-byte form: id 12 "l" (1 byte), id 20 (0 bytes: not expressible in the one-byte form, dropped);
  // payload aaaa + 2 bytes of padding.
  const auto p = hex("b060 0001 00000000 00000001 10000002 0c016c14 00000000 aaaa 0002");
  pb::ForwardRoute r;
  r.ssrc = 5;
  r.payloadType = 96;
  r.extMap[12] = 10;
  r.extMap[20] = 11;
  uint8_t out[1500];
  const size_t n = pb::rewriteRtp(p.data(), p.size(), r, 3, 4, out, sizeof out);
  pb::RtpView v;
  EXPECT(n > 0 && pb::parseRtp(out, n, v));
  EXPECT(v.paddingLength == 0 && v.payloadLength == 2 && (out[0] & 0x20) == 0);
  const uint8_t* d = nullptr;
  size_t len = 0;
  EXPECT(pb::findRtpExtension(out, v, 10, &d, &len) && len == 1 && d[0] == 'l');
  EXPECT(!pb::findRtpExtension(out, v, 11, &d, &len));
}

TEST(short_output_and_non_rtp_are_refused) {
  const auto r = route();
  uint8_t out[1500];
  EXPECT(pb::rewriteRtp(kOneByte.data(), kOneByte.size(), r, 1, 2, out, 20) == 0);
  for (size_t cut = 0; cut < kOneByte.size(); cut++) {
    // Every truncation either parses as a shorter valid packet or is refused; never a read past `cut`.
    const std::vector<uint8_t> t(kOneByte.begin(), kOneByte.begin() + cut);
    (void)pb::rewriteRtp(t.data(), t.size(), r, 1, 2, out, sizeof out);
  }
  const auto v1 = hex("51ef 1234 01020304 decafbad");
  EXPECT(pb::rewriteRtp(v1.data(), v1.size(), r, 1, 2, out, sizeof out) == 0);
}

TEST(routes_the_one_byte_form_cannot_express_are_invalid) {
  auto r = route();
  r.extMap[2] = 15;
  EXPECT(!pb::validRoute(r));
  r = route();
  r.mid = std::string(17, 'x');
  EXPECT(!pb::validRoute(r));
  r = route();
  r.payloadType = 128;
  EXPECT(!pb::validRoute(r));
}

TEST_MAIN
