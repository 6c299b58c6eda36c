#include "stun.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "bytes.h"

namespace pb {

namespace {

constexpr uint16_t kAttrUsername = 0x0006;
constexpr uint16_t kAttrMessageIntegrity = 0x0008;
constexpr uint16_t kAttrErrorCode = 0x0009;
constexpr uint16_t kAttrXorMappedAddress = 0x0020;
constexpr uint16_t kAttrPriority = 0x0024;
constexpr uint16_t kAttrUseCandidate = 0x0025;
constexpr uint16_t kAttrFingerprint = 0x8028;
constexpr uint16_t kAttrIceControlled = 0x8029;
constexpr uint16_t kAttrIceControlling = 0x802A;
constexpr uint32_t kFingerprintXor = 0x5354554Eu;
constexpr size_t kHeader = 20;
/** Longest USERNAME RFC 8489 allows (513 bytes); ICE's is "ufrag:ufrag", far shorter. */
constexpr size_t kMaxUsername = 513;

struct Crc32Table {
  uint32_t t[256];
  Crc32Table() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
  }
};

void header(uint8_t* out, uint16_t type, size_t bodyLen, const uint8_t* txid) {
  wr16(out, type);
  wr16(out + 2, static_cast<uint16_t>(bodyLen));
  wr32(out + 4, kStunMagicCookie);
  std::memcpy(out + 8, txid, 12);
}

/** Appends FINGERPRINT to a message of `len` bytes (header length is updated first); returns the new length. */
size_t appendFingerprint(uint8_t* out, size_t len) {
  wr16(out + 2, static_cast<uint16_t>(len + 8 - kHeader));
  const uint32_t crc = crc32(out, len) ^ kFingerprintXor;
  wr16(out + len, kAttrFingerprint);
  wr16(out + len + 2, 4);
  wr32(out + len + 4, crc);
  return len + 8;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len) {
  static const Crc32Table table;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) c = table.t[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

bool looksLikeStun(const uint8_t* buf, size_t len) {
  if (len < kHeader || buf[0] > 3) return false;
  const size_t body = rd16(buf + 2);
  return (body & 3) == 0 && kHeader + body == len && rd32(buf + 4) == kStunMagicCookie;
}

bool parseStun(const uint8_t* buf, size_t len, StunMessage& out) {
  out = StunMessage{};
  if (!looksLikeStun(buf, len)) return false;
  out.type = rd16(buf);
  out.transactionId = buf + 8;
  size_t at = kHeader;
  while (at < len) {
    if (len - at < 4) return false;
    const uint16_t type = rd16(buf + at);
    const size_t alen = rd16(buf + at + 2);
    const size_t padded = (alen + 3) & ~size_t{3};
    if (len - at - 4 < padded) return false;
    const uint8_t* v = buf + at + 4;
    if (out.fingerprintAt) return false;  // nothing may follow FINGERPRINT
    if (out.integrityAt && type != kAttrFingerprint) return false;
    switch (type) {
      case kAttrUsername:
        if (alen > kMaxUsername) return false;
        out.username = std::string_view(reinterpret_cast<const char*>(v), alen);
        break;
      case kAttrMessageIntegrity:
        if (alen != 20) return false;
        out.integrityAt = at;
        break;
      case kAttrFingerprint:
        if (alen != 4) return false;
        out.fingerprintAt = at;
        break;
      case kAttrPriority:
        if (alen != 4) return false;
        out.priority = rd32(v);
        break;
      case kAttrUseCandidate:
        if (alen != 0) return false;
        out.useCandidate = true;
        break;
      case kAttrIceControlling:
      case kAttrIceControlled:
        if (alen != 8) return false;
        (type == kAttrIceControlling ? out.iceControlling : out.iceControlled) = true;
        out.tieBreaker = rd64(v);
        break;
      default:
        break;  // comprehension-optional or unknown: skipped (an ICE-lite responder needs no other)
    }
    at += 4 + padded;
  }
  return true;
}

bool stunIntegrityValid(const uint8_t* buf, size_t len, const StunMessage& msg, std::string_view key) {
  if (msg.integrityAt == 0 || msg.integrityAt + 24 > len) return false;
  // The length field as if MESSAGE-INTEGRITY ended the message (RFC 8489 §14.5).
  uint8_t head[kHeader];
  std::memcpy(head, buf, kHeader);
  wr16(head + 2, static_cast<uint16_t>(msg.integrityAt + 24 - kHeader));
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int macLen = 0;
  HMAC_CTX* ctx = HMAC_CTX_new();
  bool ok = ctx && HMAC_Init_ex(ctx, key.data(), static_cast<int>(key.size()), EVP_sha1(), nullptr) == 1 &&
            HMAC_Update(ctx, head, kHeader) == 1 &&
            HMAC_Update(ctx, buf + kHeader, msg.integrityAt - kHeader) == 1 && HMAC_Final(ctx, mac, &macLen) == 1;
  HMAC_CTX_free(ctx);
  return ok && macLen == 20 && CRYPTO_memcmp(mac, buf + msg.integrityAt + 4, 20) == 0;
}

bool stunFingerprintValid(const uint8_t* buf, size_t len, const StunMessage& msg) {
  if (msg.fingerprintAt == 0 || msg.fingerprintAt + 8 != len) return false;
  return (crc32(buf, msg.fingerprintAt) ^ kFingerprintXor) == rd32(buf + msg.fingerprintAt + 4);
}

size_t buildStunBindingSuccess(uint8_t* out, size_t cap, const uint8_t* transactionId, int family,
                               const uint8_t* addr, uint16_t port, std::string_view key) {
  const size_t addrLen = family == 6 ? 16 : 4;
  const size_t xma = 4 + 4 + addrLen;
  const size_t total = kHeader + xma + 24 + 8;
  if (cap < total || (family != 4 && family != 6)) return 0;
  header(out, kStunBindingSuccess, 0, transactionId);
  uint8_t* a = out + kHeader;
  wr16(a, kAttrXorMappedAddress);
  wr16(a + 2, static_cast<uint16_t>(4 + addrLen));
  a[4] = 0;
  a[5] = family == 6 ? 0x02 : 0x01;
  wr16(a + 6, static_cast<uint16_t>(port ^ (kStunMagicCookie >> 16)));
  uint8_t mask[16];
  wr32(mask, kStunMagicCookie);
  std::memcpy(mask + 4, transactionId, 12);
  for (size_t i = 0; i < addrLen; i++) a[8 + i] = addr[i] ^ mask[i];
  size_t len = kHeader + xma;
  // MESSAGE-INTEGRITY over everything before it, with the length counting it.
  wr16(out + 2, static_cast<uint16_t>(len + 24 - kHeader));
  unsigned int macLen = 0;
  uint8_t mac[EVP_MAX_MD_SIZE];
  if (!HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), out, len, mac, &macLen) || macLen != 20) return 0;
  wr16(out + len, kAttrMessageIntegrity);
  wr16(out + len + 2, 20);
  std::memcpy(out + len + 4, mac, 20);
  len += 24;
  return appendFingerprint(out, len);
}

size_t buildStunBindingRequest(uint8_t* out, size_t cap, const uint8_t* transactionId, std::string_view username,
                               std::string_view key, uint32_t priority, bool useCandidate, bool controlling,
                               uint64_t tieBreaker) {
  const size_t ulen = username.size();
  const size_t upadded = (ulen + 3) & ~size_t{3};
  const size_t body = 4 + upadded + 8 + (useCandidate ? 4 : 0) + 12;
  if (ulen == 0 || ulen > kMaxUsername || cap < kHeader + body + 24 + 8) return 0;
  header(out, kStunBindingRequest, 0, transactionId);
  uint8_t* a = out + kHeader;
  wr16(a, kAttrUsername);
  wr16(a + 2, static_cast<uint16_t>(ulen));
  std::memcpy(a + 4, username.data(), ulen);
  std::memset(a + 4 + ulen, 0, upadded - ulen);
  a += 4 + upadded;
  wr16(a, kAttrPriority);
  wr16(a + 2, 4);
  wr32(a + 4, priority);
  a += 8;
  if (useCandidate) {
    wr16(a, kAttrUseCandidate);
    wr16(a + 2, 0);
    a += 4;
  }
  wr16(a, controlling ? kAttrIceControlling : kAttrIceControlled);
  wr16(a + 2, 8);
  wr32(a + 4, static_cast<uint32_t>(tieBreaker >> 32));
  wr32(a + 8, static_cast<uint32_t>(tieBreaker));
  size_t len = kHeader + body;
  wr16(out + 2, static_cast<uint16_t>(len + 24 - kHeader));
  unsigned int macLen = 0;
  uint8_t mac[EVP_MAX_MD_SIZE];
  if (!HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), out, len, mac, &macLen) || macLen != 20) return 0;
  wr16(out + len, kAttrMessageIntegrity);
  wr16(out + len + 2, 20);
  std::memcpy(out + len + 4, mac, 20);
  return appendFingerprint(out, len + 24);
}

size_t buildStunBindingError(uint8_t* out, size_t cap, const uint8_t* transactionId, int code,
                             std::string_view reason) {
  const size_t rlen = reason.size() > 128 ? 128 : reason.size();
  const size_t padded = (rlen + 3) & ~size_t{3};
  const size_t total = kHeader + 4 + 4 + padded + 8;
  if (cap < total || code < 300 || code > 699) return 0;
  header(out, kStunBindingError, 0, transactionId);
  uint8_t* a = out + kHeader;
  wr16(a, kAttrErrorCode);
  wr16(a + 2, static_cast<uint16_t>(4 + rlen));
  a[4] = 0;
  a[5] = 0;
  a[6] = static_cast<uint8_t>(code / 100);
  a[7] = static_cast<uint8_t>(code % 100);
  std::memcpy(a + 8, reason.data(), rlen);
  std::memset(a + 8 + rlen, 0, padded - rlen);
  return appendFingerprint(out, kHeader + 8 + padded);
}

}  // namespace pb
