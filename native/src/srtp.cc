#include "srtp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "bytes.h"
#include "rtp.h"

namespace pb {

namespace {

constexpr size_t kAuthKeyLen = 20;
constexpr size_t kCmTagLen = 10;
constexpr size_t kGcmTagLen = 16;
constexpr uint32_t kSrtcpEFlag = 0x80000000u;

/** Per-SSRC receive state: rollover counter, highest sequence number and a 64-packet replay window. */
struct SsrcState {
  bool started = false;
  uint32_t roc = 0;
  uint16_t highest = 0;
  uint64_t window = 0;
  /** SRTCP: next index to send, or highest received and its window. */
  uint32_t rtcpIndex = 0;
  uint64_t rtcpWindow = 0;
  bool rtcpStarted = false;
};

struct SessionKeys {
  uint8_t key[16];
  uint8_t salt[14];
  uint8_t auth[kAuthKeyLen];
};

/** RFC 3711 §4.3.1 key derivation (AES-CM PRF, key derivation rate 0). */
void derive(const uint8_t* masterKey, const uint8_t* salt14, uint8_t label, uint8_t* out, size_t len) {
  uint8_t iv[16] = {0};
  std::memcpy(iv, salt14, 14);
  iv[7] ^= label;
  std::vector<uint8_t> zeros(len, 0);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int outl = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nullptr, masterKey, iv) != 1 ||
      EVP_EncryptUpdate(ctx, out, &outl, zeros.data(), static_cast<int>(len)) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    throw std::runtime_error("SRTP key derivation failed");
  }
  EVP_CIPHER_CTX_free(ctx);
}

}  // namespace

size_t srtpMasterSaltLen(SrtpProfile profile) { return profile == SrtpProfile::AeadAes128Gcm ? 12 : 14; }

struct SrtpContext::Impl {
  SrtpProfile profile;
  bool gcm;
  SessionKeys rtp{};
  SessionKeys rtcp{};
  /** Created once; each packet only sets a new IV (the key schedule is kept). */
  EVP_CIPHER_CTX* rtpCipher = nullptr;
  EVP_CIPHER_CTX* rtcpCipher = nullptr;
  HMAC_CTX* rtpMac = nullptr;
  HMAC_CTX* rtcpMac = nullptr;
  std::unordered_map<uint32_t, SsrcState> ssrcs;
  SrtpStats stats;

  Impl(SrtpProfile p, const uint8_t* masterKey, const uint8_t* masterSalt) : profile(p) {
    gcm = p == SrtpProfile::AeadAes128Gcm;
    if (p != SrtpProfile::AeadAes128Gcm && p != SrtpProfile::Aes128CmSha1_80)
      throw std::invalid_argument("unsupported SRTP profile");
    // A 12-byte (GCM) master salt is used left-aligned in the 14-byte PRF input, as libsrtp does.
    uint8_t salt[14] = {0};
    std::memcpy(salt, masterSalt, srtpMasterSaltLen(p));
    const size_t saltLen = gcm ? 12 : 14;
    derive(masterKey, salt, 0, rtp.key, 16);
    derive(masterKey, salt, 1, rtp.auth, kAuthKeyLen);
    derive(masterKey, salt, 2, rtp.salt, saltLen);
    derive(masterKey, salt, 3, rtcp.key, 16);
    derive(masterKey, salt, 4, rtcp.auth, kAuthKeyLen);
    derive(masterKey, salt, 5, rtcp.salt, saltLen);
    setup();
  }

  Impl(SrtpProfile p, const uint8_t* sessionKey, const uint8_t* sessionSalt, const uint8_t* sessionAuth)
      : profile(p) {
    gcm = p == SrtpProfile::AeadAes128Gcm;
    for (SessionKeys* k : {&rtp, &rtcp}) {
      std::memcpy(k->key, sessionKey, 16);
      std::memcpy(k->salt, sessionSalt, gcm ? 12 : 14);
      if (sessionAuth) std::memcpy(k->auth, sessionAuth, kAuthKeyLen);
    }
    setup();
  }

  void setup() {
    const EVP_CIPHER* cipher = gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr();
    rtpCipher = EVP_CIPHER_CTX_new();
    rtcpCipher = EVP_CIPHER_CTX_new();
    if (!rtpCipher || !rtcpCipher || EVP_CipherInit_ex(rtpCipher, cipher, nullptr, rtp.key, nullptr, 1) != 1 ||
        EVP_CipherInit_ex(rtcpCipher, cipher, nullptr, rtcp.key, nullptr, 1) != 1)
      throw std::runtime_error("SRTP cipher setup failed");
    if (!gcm) {
      rtpMac = HMAC_CTX_new();
      rtcpMac = HMAC_CTX_new();
      if (!rtpMac || !rtcpMac || HMAC_Init_ex(rtpMac, rtp.auth, kAuthKeyLen, EVP_sha1(), nullptr) != 1 ||
          HMAC_Init_ex(rtcpMac, rtcp.auth, kAuthKeyLen, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("SRTP MAC setup failed");
    }
  }

  ~Impl() {
    EVP_CIPHER_CTX_free(rtpCipher);
    EVP_CIPHER_CTX_free(rtcpCipher);
    HMAC_CTX_free(rtpMac);
    HMAC_CTX_free(rtcpMac);
  }

  /** AES-CM keystream XOR with IV = salt·2^16 ⊕ ssrc·2^64 ⊕ index·2^16 (RFC 3711 §4.1.1). */
  bool ctr(EVP_CIPHER_CTX* c, const uint8_t* salt, uint32_t ssrc, uint64_t index, uint8_t* data, size_t len) {
    uint8_t iv[16] = {0};
    std::memcpy(iv, salt, 14);
    uint8_t s[4];
    wr32(s, ssrc);
    for (int i = 0; i < 4; i++) iv[4 + i] ^= s[i];
    for (int i = 0; i < 6; i++) iv[8 + i] ^= static_cast<uint8_t>(index >> (8 * (5 - i)));
    int outl = 0;
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, 1) != 1) return false;
    return len == 0 || EVP_CipherUpdate(c, data, &outl, data, static_cast<int>(len)) == 1;
  }

  /** HMAC-SHA1 over data ‖ tail, truncated to 10 bytes. */
  bool mac(HMAC_CTX* m, const uint8_t* data, size_t len, const uint8_t* tail, size_t tailLen, uint8_t* out) {
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int fullLen = 0;
    if (HMAC_Init_ex(m, nullptr, 0, nullptr, nullptr) != 1 || HMAC_Update(m, data, len) != 1 ||
        (tailLen > 0 && HMAC_Update(m, tail, tailLen) != 1) || HMAC_Final(m, full, &fullLen) != 1)
      return false;
    std::memcpy(out, full, kCmTagLen);
    return true;
  }

  /** AES-GCM in place over data (len) with aad; encrypt appends the tag, decrypt checks it. */
  bool gcmRun(EVP_CIPHER_CTX* c, bool encrypt, const uint8_t* iv, const uint8_t* aad, size_t aadLen,
              const uint8_t* aad2, size_t aad2Len, uint8_t* data, size_t len, uint8_t* tag) {
    int outl = 0;
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, encrypt ? 1 : 0) != 1) return false;
    if (EVP_CipherUpdate(c, nullptr, &outl, aad, static_cast<int>(aadLen)) != 1) return false;
    if (aad2Len > 0 && EVP_CipherUpdate(c, nullptr, &outl, aad2, static_cast<int>(aad2Len)) != 1) return false;
    if (len > 0 && EVP_CipherUpdate(c, data, &outl, data, static_cast<int>(len)) != 1) return false;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kGcmTagLen, tag) != 1) return false;
    uint8_t scratch[16];
    if (EVP_CipherFinal_ex(c, scratch, &outl) != 1) return false;
    if (encrypt && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kGcmTagLen, tag) != 1) return false;
    return true;
  }

  void gcmIv(const uint8_t* salt, uint32_t ssrc, uint32_t hi, uint16_t lo16, uint32_t lo32, bool rtcp,
             uint8_t* iv) {
    std::memset(iv, 0, 12);
    wr32(iv + 2, ssrc);
    if (rtcp) {
      wr32(iv + 8, lo32);
    } else {
      wr32(iv + 6, hi);
      wr16(iv + 10, lo16);
    }
    for (int i = 0; i < 12; i++) iv[i] ^= salt[i];
  }
};

/** RFC 3711 Appendix A: the rollover counter the sender most likely used for `seq`. */
static uint32_t guessRoc(const SsrcState& s, uint16_t seq) {
  if (!s.started) return 0;
  if (s.highest < 32768) {
    if (seq > s.highest && seq - s.highest > 32768) return s.roc - 1;
    return s.roc;
  }
  if (s.highest - 32768 > seq) return s.roc + 1;
  return s.roc;
}

SrtpContext::SrtpContext(SrtpProfile profile, const uint8_t* masterKey, const uint8_t* masterSalt)
    : impl_(std::make_unique<Impl>(profile, masterKey, masterSalt)) {}

SrtpContext::SrtpContext(SrtpProfile profile, const uint8_t* sessionKey, const uint8_t* sessionSalt,
                         const uint8_t* sessionAuth, SessionKeysTag)
    : impl_(std::make_unique<Impl>(profile, sessionKey, sessionSalt, sessionAuth)) {}

SrtpContext::~SrtpContext() = default;

SrtpProfile SrtpContext::profile() const { return impl_->profile; }
const SrtpStats& SrtpContext::stats() const { return impl_->stats; }

bool SrtpContext::protectRtp(uint8_t* buf, size_t& len, size_t cap) {
  Impl& m = *impl_;
  const size_t h = rtpHeaderLength(buf, len);
  const size_t tagLen = m.gcm ? kGcmTagLen : kCmTagLen;
  if (h == 0 || len + tagLen > cap) return false;
  const uint32_t ssrc = rd32(buf + 8);
  const uint16_t seq = rd16(buf + 2);
  SsrcState& s = m.ssrcs[ssrc];
  // The sender's own counter: a sequence number that wrapped forward bumps it.
  uint32_t roc = guessRoc(s, seq);
  if (!s.started || static_cast<int64_t>((static_cast<uint64_t>(roc) << 16) | seq) >
                        static_cast<int64_t>((static_cast<uint64_t>(s.roc) << 16) | s.highest)) {
    s.started = true;
    s.roc = roc;
    s.highest = seq;
  }
  if (m.gcm) {
    uint8_t iv[12];
    m.gcmIv(m.rtp.salt, ssrc, roc, seq, 0, false, iv);
    if (!m.gcmRun(m.rtpCipher, true, iv, buf, h, nullptr, 0, buf + h, len - h, buf + len)) return false;
  } else {
    const uint64_t index = (static_cast<uint64_t>(roc) << 16) | seq;
    if (!m.ctr(m.rtpCipher, m.rtp.salt, ssrc, index, buf + h, len - h)) return false;
    uint8_t r[4];
    wr32(r, roc);
    if (!m.mac(m.rtpMac, buf, len, r, 4, buf + len)) return false;
  }
  len += tagLen;
  return true;
}

bool SrtpContext::unprotectRtp(uint8_t* buf, size_t& len) {
  Impl& m = *impl_;
  const size_t tagLen = m.gcm ? kGcmTagLen : kCmTagLen;
  const size_t h = len >= tagLen ? rtpHeaderLength(buf, len - tagLen) : 0;
  if (h == 0) {
    m.stats.malformed++;
    return false;
  }
  const uint32_t ssrc = rd32(buf + 8);
  const uint16_t seq = rd16(buf + 2);
  SsrcState& s = m.ssrcs[ssrc];
  const uint32_t roc = guessRoc(s, seq);
  const uint64_t index = (static_cast<uint64_t>(roc) << 16) | seq;
  const uint64_t highestIndex = (static_cast<uint64_t>(s.roc) << 16) | s.highest;
  if (s.started && index <= highestIndex) {
    const uint64_t back = highestIndex - index;
    if (back >= 64 || (s.window >> back) & 1) {
      m.stats.replays++;
      return false;
    }
  }
  const size_t bodyLen = len - tagLen - h;
  if (m.gcm) {
    uint8_t iv[12];
    m.gcmIv(m.rtp.salt, ssrc, roc, seq, 0, false, iv);
    if (!m.gcmRun(m.rtpCipher, false, iv, buf, h, nullptr, 0, buf + h, bodyLen, buf + len - tagLen)) {
      m.stats.authFailures++;
      return false;
    }
  } else {
    uint8_t r[4];
    wr32(r, roc);
    uint8_t tag[kCmTagLen];
    if (!m.mac(m.rtpMac, buf, len - tagLen, r, 4, tag) || CRYPTO_memcmp(tag, buf + len - tagLen, kCmTagLen) != 0) {
      m.stats.authFailures++;
      return false;
    }
    if (!m.ctr(m.rtpCipher, m.rtp.salt, ssrc, index, buf + h, bodyLen)) return false;
  }
  // Authentic: only now does it move the replay window and the rollover counter.
  if (!s.started || index > highestIndex) {
    const uint64_t shift = s.started ? index - highestIndex : 64;
    s.window = shift >= 64 ? 1 : (s.window << shift) | 1;
    s.started = true;
    s.roc = roc;
    s.highest = seq;
  } else {
    s.window |= uint64_t{1} << (highestIndex - index);
  }
  len -= tagLen;
  return true;
}

bool SrtpContext::protectRtcp(uint8_t* buf, size_t& len, size_t cap) {
  Impl& m = *impl_;
  const size_t tagLen = m.gcm ? kGcmTagLen : kCmTagLen;
  if (len < 8 || (buf[0] >> 6) != 2 || len + tagLen + 4 > cap) return false;
  const uint32_t ssrc = rd32(buf + 4);
  SsrcState& s = m.ssrcs[ssrc];
  const uint32_t index = s.rtcpIndex & 0x7fffffffu;
  s.rtcpIndex = (index + 1) & 0x7fffffffu;
  uint8_t trailer[4];
  wr32(trailer, kSrtcpEFlag | index);
  if (m.gcm) {
    uint8_t iv[12];
    m.gcmIv(m.rtcp.salt, ssrc, 0, 0, index, true, iv);
    if (!m.gcmRun(m.rtcpCipher, true, iv, buf, 8, trailer, 4, buf + 8, len - 8, buf + len)) return false;
    std::memcpy(buf + len + tagLen, trailer, 4);
  } else {
    if (!m.ctr(m.rtcpCipher, m.rtcp.salt, ssrc, index, buf + 8, len - 8)) return false;
    std::memcpy(buf + len, trailer, 4);
    if (!m.mac(m.rtcpMac, buf, len + 4, nullptr, 0, buf + len + 4)) return false;
  }
  len += tagLen + 4;
  return true;
}

bool SrtpContext::unprotectRtcp(uint8_t* buf, size_t& len) {
  Impl& m = *impl_;
  const size_t tagLen = m.gcm ? kGcmTagLen : kCmTagLen;
  if (len < 8 + tagLen + 4 || (buf[0] >> 6) != 2) {
    m.stats.malformed++;
    return false;
  }
  const uint32_t ssrc = rd32(buf + 4);
  // CM: … ‖ E|index ‖ tag. GCM: … ‖ tag ‖ E|index.
  const uint8_t* trailerAt = m.gcm ? buf + len - 4 : buf + len - tagLen - 4;
  const uint32_t word = rd32(trailerAt);
  const uint32_t index = word & 0x7fffffffu;
  const bool encrypted = (word & kSrtcpEFlag) != 0;
  SsrcState& s = m.ssrcs[ssrc];
  if (s.rtcpStarted && index <= s.rtcpIndex) {
    const uint32_t back = s.rtcpIndex - index;
    if (back >= 64 || (s.rtcpWindow >> back) & 1) {
      m.stats.replays++;
      return false;
    }
  }
  const size_t bodyLen = len - tagLen - 4 - 8;
  if (m.gcm) {
    uint8_t trailer[4];
    std::memcpy(trailer, trailerAt, 4);
    uint8_t iv[12];
    m.gcmIv(m.rtcp.salt, ssrc, 0, 0, index, true, iv);
    bool ok;
    if (encrypted) {
      ok = m.gcmRun(m.rtcpCipher, false, iv, buf, 8, trailer, 4, buf + 8, bodyLen, buf + 8 + bodyLen);
    } else {
      // Unencrypted SRTCP: everything before the tag is authenticated data.
      ok = m.gcmRun(m.rtcpCipher, false, iv, buf, 8 + bodyLen, trailer, 4, nullptr, 0, buf + 8 + bodyLen);
    }
    if (!ok) {
      m.stats.authFailures++;
      return false;
    }
  } else {
    uint8_t tag[kCmTagLen];
    if (!m.mac(m.rtcpMac, buf, len - tagLen, nullptr, 0, tag) ||
        CRYPTO_memcmp(tag, buf + len - tagLen, kCmTagLen) != 0) {
      m.stats.authFailures++;
      return false;
    }
    if (encrypted && !m.ctr(m.rtcpCipher, m.rtcp.salt, ssrc, index, buf + 8, bodyLen)) return false;
  }
  if (!s.rtcpStarted || index > s.rtcpIndex) {
    const uint32_t shift = s.rtcpStarted ? index - s.rtcpIndex : 64;
    s.rtcpWindow = shift >= 64 ? 1 : (s.rtcpWindow << shift) | 1;
    s.rtcpStarted = true;
    s.rtcpIndex = index;
  } else {
    s.rtcpWindow |= uint64_t{1} << (s.rtcpIndex - index);
  }
  len = 8 + bodyLen;
  return true;
}

}  // namespace pb
