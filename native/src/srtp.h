// SRTP and SRTCP (RFC 3711, RFC 7714) on OpenSSL EVP. One context per direction of one DTLS association;
// session keys are derived once, and the cipher and MAC contexts are created once and re-keyed with a new
// IV per packet (werift built a new AES object per packet: a quarter of its CPU).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace pb {

/** use_srtp protection profile ids (RFC 5764, RFC 7714). */
enum class SrtpProfile : uint16_t { Aes128CmSha1_80 = 0x0001, AeadAes128Gcm = 0x0007 };

constexpr size_t kSrtpMasterKeyLen = 16;
/** 14 bytes for AES-CM, 12 for AES-GCM. */
size_t srtpMasterSaltLen(SrtpProfile profile);
/** Bytes appended by protect: the tag (10 for HMAC-SHA1-80, 16 for GCM) plus, for SRTCP, the 4-byte index. */
constexpr size_t kSrtpMaxOverhead = 20;

struct SrtpStats {
  uint64_t authFailures = 0;
  uint64_t replays = 0;
  uint64_t malformed = 0;
};

class SrtpContext {
 public:
  /** `masterKey` is 16 bytes, `masterSalt` srtpMasterSaltLen(profile) bytes. */
  SrtpContext(SrtpProfile profile, const uint8_t* masterKey, const uint8_t* masterSalt);
  /** Session keys given directly (RFC 7714's test vectors skip the key derivation); `sessionAuth` may be null for GCM. */
  struct SessionKeysTag {};
  SrtpContext(SrtpProfile profile, const uint8_t* sessionKey, const uint8_t* sessionSalt,
              const uint8_t* sessionAuth, SessionKeysTag);
  ~SrtpContext();
  SrtpContext(const SrtpContext&) = delete;
  SrtpContext& operator=(const SrtpContext&) = delete;

  /**
   * Encrypts and authenticates one RTP packet in place; `cap` is the buffer's capacity (at least
   * len + kSrtpMaxOverhead). Returns false (buffer unspecified) when the packet is not RTP or cannot grow.
   */
  bool protectRtp(uint8_t* buf, size_t& len, size_t cap);
  /** Verifies, checks replay and decrypts in place; `len` shrinks to the plain packet. False: drop it. */
  bool unprotectRtp(uint8_t* buf, size_t& len);
  bool protectRtcp(uint8_t* buf, size_t& len, size_t cap);
  bool unprotectRtcp(uint8_t* buf, size_t& len);

  SrtpProfile profile() const;
  const SrtpStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb
