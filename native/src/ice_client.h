// The controlling side of ICE for a client whose peer is ICE-lite (RFC 8445 §2.5, §7.2.4–7.2.5, RFC 7675):
// one candidate pair (our socket → the peer's host candidate from its SDP), checks with USE-CANDIDATE
// (aggressive nomination is all a lite peer needs: it selects the pair its controlling peer nominates), then
// consent checks every 2–3 s so the peer keeps sending. An authenticated Binding success response from the
// checked address with a transaction id we sent validates the pair; anything else is ignored and counted.
// Sans-IO: time and datagrams in, checks out. PeerCore uses it in client mode (peer_client.cc); the
// benchmark's native load generator is its user, the server never is.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "net.h"

namespace pb {

/** Without a validating response for this long from the first check, the client gives up. */
constexpr uint64_t kIceClientConnectTimeoutMs = 15000;
/** Check cadence before the pair is validated: 50 ms doubling up to this. */
constexpr uint64_t kIceClientMaxRetransmitMs = 500;
/** Consent checks once validated: every kIceClientConsentMs plus 0–1000 ms of jitter (RFC 7675 §5.1). */
constexpr uint64_t kIceClientConsentMs = 2000;
/** Transactions still answerable (a late response to a retransmitted or earlier consent check counts). */
constexpr size_t kIceClientPending = 8;

struct IceClientStats {
  uint64_t checksSent = 0;
  uint64_t successes = 0;
  /** Binding error responses to our checks (401 for wrong credentials, 487 role conflict). */
  uint64_t errorResponses = 0;
  /** Responses refused: unknown transaction, bad MESSAGE-INTEGRITY or FINGERPRINT, wrong source address. */
  uint64_t badResponses = 0;
  /** Round trip of the latest successful check, ms. */
  uint64_t lastRttMs = 0;
};

class IceControllingAgent {
 public:
  /** `remotePwd` keys our checks' MESSAGE-INTEGRITY and checks the responses' (RFC 8445 §7.2.2). */
  IceControllingAgent(std::string localUfrag, std::string remoteUfrag, std::string remotePwd, const SockAddr& remote);

  enum class Result {
    /** Not a response (a request or indication): someone else's business. */
    NotOurs,
    /** A response that validates nothing (counted in stats). */
    Refused,
    /** A Binding error response to one of our checks. */
    Error,
    /** An authenticated Binding success response to one of our checks, from the checked address. */
    Success,
  };
  Result onStun(const uint8_t* buf, size_t len, const SockAddr& from, uint64_t nowMs);

  /** Writes the check due at `nowMs` (first check, retransmission or consent) into `out`; 0 when none is due. */
  size_t poll(uint64_t nowMs, uint8_t* out, size_t cap);
  /** Milliseconds until poll() has a check to send. */
  uint64_t msUntilDue(uint64_t nowMs) const { return nowMs >= nextAtMs_ ? 0 : nextAtMs_ - nowMs; }

  bool validated() const { return validated_; }
  /** No validating response within kIceClientConnectTimeoutMs of the first check. */
  bool timedOut(uint64_t nowMs) const {
    return !validated_ && startedMs_ != kNever && nowMs - startedMs_ >= kIceClientConnectTimeoutMs;
  }
  /** Consent as the peer grants it: a success within the last 30 s. */
  bool consentFresh(uint64_t nowMs) const;
  const SockAddr& remote() const { return remote_; }
  const IceClientStats& stats() const { return stats_; }

 private:
  static constexpr uint64_t kNever = ~uint64_t{0};
  struct Pending {
    uint8_t id[12];
    uint64_t sentMs;
    bool used;
  };

  std::string username_, remotePwd_;
  SockAddr remote_;
  uint64_t tieBreaker_ = 0;
  uint32_t priority_;
  Pending pending_[kIceClientPending]{};
  size_t nextSlot_ = 0;
  uint64_t startedMs_ = kNever;
  uint64_t nextAtMs_ = 0;
  uint64_t backoffMs_ = 50;
  uint64_t lastSuccessMs_ = 0;
  bool validated_ = false;
  IceClientStats stats_;
};

}  // namespace pb
