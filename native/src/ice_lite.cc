#include "ice_lite.h"

#include <algorithm>

#include "stun.h"

namespace pb {

IceLiteAgent::IceLiteAgent(std::string localUfrag, std::string localPwd)
    : localUfrag_(std::move(localUfrag)), localPwd_(std::move(localPwd)) {}

bool IceLiteAgent::validated(const SockAddr& from) const {
  if (hasSelected_ && from == selected_) return true;
  return std::find(validated_.begin(), validated_.end(), from) != validated_.end();
}

size_t IceLiteAgent::onStun(const uint8_t* buf, size_t len, const SockAddr& from, uint64_t nowMs, uint8_t* out,
                            size_t cap) {
  StunMessage msg;
  if (!parseStun(buf, len, msg)) {
    stats_.malformed++;
    return 0;
  }
  // Responses and indications (a peer's keepalive) need no answer.
  if (msg.type != kStunBindingRequest) return 0;
  if (msg.integrityAt == 0 || msg.username.empty()) {
    stats_.malformed++;
    return buildStunBindingError(out, cap, msg.transactionId, 400, "Bad Request");
  }
  const size_t colon = msg.username.find(':');
  const std::string_view ours = msg.username.substr(0, colon);
  const std::string_view theirs = colon == std::string_view::npos ? std::string_view{} : msg.username.substr(colon + 1);
  if (ours != localUfrag_ || (!remoteUfrag_.empty() && theirs != remoteUfrag_)) {
    stats_.wrongUsername++;
    return buildStunBindingError(out, cap, msg.transactionId, 401, "Unauthorized");
  }
  if (!stunIntegrityValid(buf, len, msg, localPwd_) || (msg.fingerprintAt != 0 && !stunFingerprintValid(buf, len, msg))) {
    stats_.badIntegrity++;
    return buildStunBindingError(out, cap, msg.transactionId, 401, "Unauthorized");
  }
  stats_.checks++;
  lastValidCheckMs_ = nowMs;
  if (!validated(from)) {
    // Oldest first out: a peer that wanders through addresses keeps the recent ones.
    if (validated_.size() >= kMaxValidatedAddresses) validated_.erase(validated_.begin());
    validated_.push_back(from);
  }
  // A lite agent's selected pair is the one the controlling peer nominates; before that, the latest valid
  // check's (a full agent may send DTLS on a pair as soon as its check succeeds).
  const bool select = msg.useCandidate || !nominated_;
  if (select && (!hasSelected_ || selected_ != from)) {
    selected_ = from;
    hasSelected_ = true;
    selectionChanged_ = true;
  }
  if (msg.useCandidate) nominated_ = true;
  return buildStunBindingSuccess(out, cap, msg.transactionId, from.family(), from.addr(), from.port(), localPwd_);
}

void IceLiteAgent::validateLocally(const SockAddr& to, uint64_t nowMs) {
  lastValidCheckMs_ = nowMs;
  if (!validated(to)) {
    if (validated_.size() >= kMaxValidatedAddresses) validated_.erase(validated_.begin());
    validated_.push_back(to);
  }
  if (!hasSelected_ || selected_ != to) {
    selected_ = to;
    hasSelected_ = true;
    selectionChanged_ = true;
  }
  nominated_ = true;
}

std::string_view stunLocalUfrag(const uint8_t* buf, size_t len) {
  StunMessage msg;
  if (!parseStun(buf, len, msg) || msg.type != kStunBindingRequest) return {};
  return msg.username.substr(0, msg.username.find(':'));
}

}  // namespace pb
