// STUN (RFC 8489) as an ICE-lite agent needs it (RFC 8445 §2.5, RFC 7675): parse a Binding request, check
// its short-term MESSAGE-INTEGRITY and FINGERPRINT, and build the success response. Sans-IO: bytes in,
// bytes out. Every length is checked against the datagram before it is read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pb {

constexpr uint32_t kStunMagicCookie = 0x2112A442u;
constexpr uint16_t kStunBindingRequest = 0x0001;
constexpr uint16_t kStunBindingSuccess = 0x0101;
constexpr uint16_t kStunBindingError = 0x0111;
constexpr uint16_t kStunBindingIndication = 0x0011;

struct StunMessage {
  uint16_t type = 0;
  const uint8_t* transactionId = nullptr;  // 12 bytes inside the parsed buffer
  std::string_view username;
  /** Offset of the MESSAGE-INTEGRITY attribute's header, or 0 when absent. */
  size_t integrityAt = 0;
  /** Offset of the FINGERPRINT attribute's header, or 0 when absent. */
  size_t fingerprintAt = 0;
  bool useCandidate = false;
  bool iceControlling = false;
  bool iceControlled = false;
  uint64_t tieBreaker = 0;
  uint32_t priority = 0;
};

/** RFC 7983 demultiplexing: first byte 0–3, length a multiple of 4 that fits, the magic cookie. */
bool looksLikeStun(const uint8_t* buf, size_t len);

/**
 * Structural parse: header, attribute TLVs with padding, nothing after FINGERPRINT, only FINGERPRINT after
 * MESSAGE-INTEGRITY. False for anything malformed. `out` points into `buf`.
 */
bool parseStun(const uint8_t* buf, size_t len, StunMessage& out);

/** HMAC-SHA1 MESSAGE-INTEGRITY with the short-term key (the ICE password), RFC 8489 §14.5. */
bool stunIntegrityValid(const uint8_t* buf, size_t len, const StunMessage& msg, std::string_view key);
/** CRC-32 of the message before FINGERPRINT, XOR 0x5354554E (RFC 8489 §14.7). */
bool stunFingerprintValid(const uint8_t* buf, size_t len, const StunMessage& msg);

uint32_t crc32(const uint8_t* data, size_t len);

/**
 * A Binding success response to `request`: XOR-MAPPED-ADDRESS of the sender (`family` 4 or 6, `addr` 4 or
 * 16 bytes in network order, `port` in host order), MESSAGE-INTEGRITY with `key`, FINGERPRINT. Returns the
 * length written, 0 when `cap` is too small.
 */
size_t buildStunBindingSuccess(uint8_t* out, size_t cap, const uint8_t* transactionId, int family,
                               const uint8_t* addr, uint16_t port, std::string_view key);

/**
 * A Binding request with USERNAME, PRIORITY, optional USE-CANDIDATE, ICE-CONTROLLING/CONTROLLED, then
 * MESSAGE-INTEGRITY with `key` (the peer's password) and FINGERPRINT: what a full ICE agent sends (tests
 * drive the ICE-lite agent with it). Returns the length written, 0 when `cap` is too small.
 */
size_t buildStunBindingRequest(uint8_t* out, size_t cap, const uint8_t* transactionId, std::string_view username,
                               std::string_view key, uint32_t priority, bool useCandidate, bool controlling,
                               uint64_t tieBreaker);

/** A Binding error response (e.g. 400 Bad Request, 401 Unauthorized, 487 Role Conflict), with FINGERPRINT. */
size_t buildStunBindingError(uint8_t* out, size_t cap, const uint8_t* transactionId, int code,
                             std::string_view reason);

}  // namespace pb
