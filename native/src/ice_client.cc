#include "ice_client.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include "ice_lite.h"
#include "stun.h"

namespace pb {

namespace {
void randomBytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) == 1) return;
  // RAND_bytes does not fail on a seeded system; a counter keeps transaction ids distinct if it ever does.
  static uint64_t counter = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < n; i++) out[i] = static_cast<uint8_t>((++counter * 0x2545F4914F6CDD1Dull) >> 56);
}
}  // namespace

IceControllingAgent::IceControllingAgent(std::string localUfrag, std::string remoteUfrag, std::string remotePwd,
                                         const SockAddr& remote)
    : username_(std::move(remoteUfrag) + ":" + localUfrag),
      remotePwd_(std::move(remotePwd)),
      remote_(remote),
      // A host candidate's priority (RFC 8445 §5.1.2.1): type preference 126, local preference 65535,
      // component 1. A lite peer learns a peer-reflexive candidate from it only in theory.
      priority_((126u << 24) | (65535u << 8) | 255u) {
  randomBytes(reinterpret_cast<uint8_t*>(&tieBreaker_), sizeof tieBreaker_);
}

bool IceControllingAgent::consentFresh(uint64_t nowMs) const {
  return validated_ && nowMs - lastSuccessMs_ < kConsentTimeoutMs;
}

size_t IceControllingAgent::poll(uint64_t nowMs, uint8_t* out, size_t cap) {
  if (nowMs < nextAtMs_ || timedOut(nowMs)) return 0;
  Pending& p = pending_[nextSlot_];
  randomBytes(p.id, sizeof p.id);
  const size_t n = buildStunBindingRequest(out, cap, p.id, username_, remotePwd_, priority_, true, true, tieBreaker_);
  if (n == 0) return 0;
  p.sentMs = nowMs;
  p.used = true;
  nextSlot_ = (nextSlot_ + 1) % kIceClientPending;
  if (startedMs_ == kNever) startedMs_ = nowMs;
  stats_.checksSent++;
  if (!validated_) {
    nextAtMs_ = nowMs + backoffMs_;
    backoffMs_ = backoffMs_ * 2 > kIceClientMaxRetransmitMs ? kIceClientMaxRetransmitMs : backoffMs_ * 2;
  } else {
    uint8_t r[2];
    randomBytes(r, sizeof r);
    nextAtMs_ = nowMs + kIceClientConsentMs + ((r[0] << 8 | r[1]) % 1000);
  }
  return n;
}

IceControllingAgent::Result IceControllingAgent::onStun(const uint8_t* buf, size_t len, const SockAddr& from,
                                                        uint64_t nowMs) {
  StunMessage msg;
  if (!parseStun(buf, len, msg)) return Result::NotOurs;  // the lite agent counts it as malformed
  if (msg.type != kStunBindingSuccess && msg.type != kStunBindingError) return Result::NotOurs;
  Pending* match = nullptr;
  for (auto& p : pending_)
    if (p.used && CRYPTO_memcmp(p.id, msg.transactionId, sizeof p.id) == 0) match = &p;
  // RFC 8445 §7.2.5.2.1: the response must come from where the check went (symmetric transport addresses).
  if (!match || from != remote_) {
    stats_.badResponses++;
    return Result::Refused;
  }
  if (msg.type == kStunBindingError) {
    // Unauthenticated by design (a 401 carries no integrity): counted, the checks go on until the timeout.
    if (msg.fingerprintAt == 0 || !stunFingerprintValid(buf, len, msg)) {
      stats_.badResponses++;
      return Result::Refused;
    }
    stats_.errorResponses++;
    return Result::Error;
  }
  if (msg.integrityAt == 0 || !stunIntegrityValid(buf, len, msg, remotePwd_) ||
      (msg.fingerprintAt != 0 && !stunFingerprintValid(buf, len, msg))) {
    stats_.badResponses++;
    return Result::Refused;
  }
  match->used = false;
  stats_.successes++;
  stats_.lastRttMs = nowMs >= match->sentMs ? nowMs - match->sentMs : 0;
  lastSuccessMs_ = nowMs;
  if (!validated_) {
    validated_ = true;
    // The next check is a consent check.
    uint8_t r[2];
    randomBytes(r, sizeof r);
    nextAtMs_ = nowMs + kIceClientConsentMs + ((r[0] << 8 | r[1]) % 1000);
  }
  return Result::Success;
}

}  // namespace pb
