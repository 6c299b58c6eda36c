// The ICE-lite agent (RFC 8445 §2.5): it answers the peer's connectivity checks and learns from them where
// the peer is; it sends no checks. Consent freshness (RFC 7675) is the peer's checks arriving: without a
// valid one for 30 s, nothing may be sent. Sans-IO: datagrams and time in, responses out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net.h"

namespace pb {

constexpr uint64_t kConsentTimeoutMs = 30000;
/** Validated remote addresses kept per agent (a peer checks from each of its candidates; more is hostile). */
constexpr size_t kMaxValidatedAddresses = 8;

struct IceStats {
  uint64_t checks = 0;
  uint64_t badIntegrity = 0;
  uint64_t wrongUsername = 0;
  uint64_t malformed = 0;
};

class IceLiteAgent {
 public:
  IceLiteAgent(std::string localUfrag, std::string localPwd);
  /** The peer's ufrag from its SDP; until it is known a check's USERNAME is matched on our half only. */
  void setRemoteUfrag(std::string ufrag) { remoteUfrag_ = std::move(ufrag); }
  const std::string& localUfrag() const { return localUfrag_; }

  /**
   * One STUN datagram from `from`. A valid Binding request is answered (written to `out`, length returned)
   * and validates `from`; USE-CANDIDATE nominates it. 401/400 errors for bad credentials or malformed
   * requests that still parse; 0 (nothing to send) for the rest.
   */
  size_t onStun(const uint8_t* buf, size_t len, const SockAddr& from, uint64_t nowMs, uint8_t* out, size_t cap);

  /**
   * Client mode (ice_client.h): our own check to `to` was answered, authenticated. The address is validated,
   * nominated and selected as if the peer had checked and nominated it, and consent runs from `nowMs`.
   */
  void validateLocally(const SockAddr& to, uint64_t nowMs);

  /** Whether non-STUN traffic from `from` is accepted: it passed a check. */
  bool validated(const SockAddr& from) const;
  /** Where to send: the nominated address, else the latest validated one; nullptr before any check. */
  const SockAddr* selected() const { return hasSelected_ ? &selected_ : nullptr; }
  bool nominated() const { return nominated_; }
  bool consentFresh(uint64_t nowMs) const { return hasSelected_ && nowMs - lastValidCheckMs_ < kConsentTimeoutMs; }
  /** True once after the selected address changed (the mux re-routes the 5-tuple). */
  bool takeSelectionChanged() {
    const bool c = selectionChanged_;
    selectionChanged_ = false;
    return c;
  }
  const IceStats& stats() const { return stats_; }

 private:
  std::string localUfrag_, localPwd_, remoteUfrag_;
  std::vector<SockAddr> validated_;
  SockAddr selected_;
  bool hasSelected_ = false;
  bool nominated_ = false;
  bool selectionChanged_ = false;
  uint64_t lastValidCheckMs_ = 0;
  IceStats stats_;
};

/** The local ufrag of a check's USERNAME ("ours:theirs"), for the shared-port mux; empty when absent. */
std::string_view stunLocalUfrag(const uint8_t* buf, size_t len);

}  // namespace pb
