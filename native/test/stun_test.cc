// STUN against RFC 5769's sample messages, then what an ICE-lite responder must refuse.
#include "../src/stun.h"

#include <cstring>

#include "check.h"

using check::hex;

static const char* kPassword = "VOkJxbRl1RmTxUk/WvJxBt";
static const auto kRequest = hex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff"
    "80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249"
    "c1b571a280280004e57a3bcf");
static const auto kResponse = hex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96");

TEST(crc32_check_value) {
  const char* s = "123456789";
  EXPECT(pb::crc32(reinterpret_cast<const uint8_t*>(s), 9) == 0xCBF43926u);
}

TEST(rfc5769_sample_request_parses_and_verifies) {
  pb::StunMessage m;
  EXPECT(pb::looksLikeStun(kRequest.data(), kRequest.size()));
  EXPECT(pb::parseStun(kRequest.data(), kRequest.size(), m));
  EXPECT(m.type == pb::kStunBindingRequest);
  EXPECT(m.username == "evtj:h6vY");
  EXPECT(m.priority == 0x6e0001ffu);
  EXPECT(m.iceControlled && !m.iceControlling);
  EXPECT(m.tieBreaker == 0x932ff9b151263b36ull);
  EXPECT(pb::stunIntegrityValid(kRequest.data(), kRequest.size(), m, kPassword));
  EXPECT(!pb::stunIntegrityValid(kRequest.data(), kRequest.size(), m, "wrong password"));
  EXPECT(pb::stunFingerprintValid(kRequest.data(), kRequest.size(), m));
}

TEST(rfc5769_sample_response_verifies) {
  pb::StunMessage m;
  EXPECT(pb::parseStun(kResponse.data(), kResponse.size(), m));
  EXPECT(m.type == pb::kStunBindingSuccess);
  EXPECT(pb::stunIntegrityValid(kResponse.data(), kResponse.size(), m, kPassword));
  EXPECT(pb::stunFingerprintValid(kResponse.data(), kResponse.size(), m));
}

TEST(built_success_response_carries_the_mapped_address_and_verifies) {
  // RFC 5769 §2.2's mapped address: 192.0.2.1:32853 → its XOR-MAPPED-ADDRESS bytes e112a643 / a147.
  uint8_t out[128];
  const uint8_t addr[4] = {192, 0, 2, 1};
  size_t n = pb::buildStunBindingSuccess(out, sizeof out, kRequest.data() + 8, 4, addr, 32853, kPassword);
  EXPECT(n == 20 + 12 + 24 + 8);
  EXPECT_HEX(out + 20, 12, "002000080001a147e112a643");
  pb::StunMessage m;
  EXPECT(pb::parseStun(out, n, m));
  EXPECT(std::memcmp(m.transactionId, kRequest.data() + 8, 12) == 0);
  EXPECT(pb::stunIntegrityValid(out, n, m, kPassword));
  EXPECT(pb::stunFingerprintValid(out, n, m));
  EXPECT(pb::buildStunBindingSuccess(out, n - 1, kRequest.data() + 8, 4, addr, 1, kPassword) == 0);
  const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
  n = pb::buildStunBindingSuccess(out, sizeof out, kRequest.data() + 8, 6, v6, 32853, kPassword);
  EXPECT(n == 20 + 24 + 24 + 8);
  EXPECT(pb::parseStun(out, n, m) && pb::stunIntegrityValid(out, n, m, kPassword));
}

TEST(error_response_parses) {
  uint8_t out[256];
  size_t n = pb::buildStunBindingError(out, sizeof out, kRequest.data() + 8, 401, "Unauthorized");
  pb::StunMessage m;
  EXPECT(n > 0 && pb::parseStun(out, n, m) && m.type == pb::kStunBindingError);
  EXPECT(pb::stunFingerprintValid(out, n, m));
}

TEST(malformed_messages_are_refused) {
  pb::StunMessage m;
  // Every truncation of a valid request.
  for (size_t n = 0; n < kRequest.size(); n++) EXPECT(!pb::parseStun(kRequest.data(), n, m));
  // An attribute length that runs past the end.
  auto bad = kRequest;
  bad[22] = 0x7f;
  EXPECT(!pb::parseStun(bad.data(), bad.size(), m));
  // An attribute after MESSAGE-INTEGRITY other than FINGERPRINT (swap FINGERPRINT's type for USERNAME).
  bad = kRequest;
  bad[bad.size() - 8] = 0x00;
  bad[bad.size() - 7] = 0x06;
  EXPECT(!pb::parseStun(bad.data(), bad.size(), m));
  // Wrong magic cookie, RTP-looking first byte.
  bad = kRequest;
  bad[4] ^= 1;
  EXPECT(!pb::looksLikeStun(bad.data(), bad.size()));
  bad = kRequest;
  bad[0] = 0x80;
  EXPECT(!pb::looksLikeStun(bad.data(), bad.size()));
  // A flipped bit in the body fails integrity or fingerprint.
  for (size_t i = 20; i < kRequest.size(); i += 3) {
    bad = kRequest;
    bad[i] ^= 0x10;
    if (!pb::parseStun(bad.data(), bad.size(), m)) continue;
    EXPECT(!(pb::stunIntegrityValid(bad.data(), bad.size(), m, kPassword) &&
             pb::stunFingerprintValid(bad.data(), bad.size(), m)));
  }
}

TEST_MAIN
