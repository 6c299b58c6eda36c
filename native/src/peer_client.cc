// PeerCore in client mode (peer.h, startControlling): the controlling ICE agent of ice_client.h drives the
// pair, the IceLiteAgent inside PeerCore is told of each validation (validateLocally), so validated(),
// selected() and consent freshness work for the client exactly as they do for the server, and the DTLS client
// starts once the pair is validated.
#include "peer_client.h"

#include <arpa/inet.h>

#include <string>

#include "bytes.h"

namespace pb {

namespace {
std::string addrText(const SockAddr& a) {
  char ip[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family() == 6 ? AF_INET6 : AF_INET, a.addr(), ip, sizeof ip);
  return (a.family() == 6 ? "[" + std::string(ip) + "]" : std::string(ip)) + ":" + std::to_string(a.port());
}
}  // namespace

void PeerCore::startControlling(const std::string& remoteUfrag, const std::string& remotePwd, const SockAddr& remote) {
  if (client_ || state_ == PeerState::Closed || state_ == PeerState::Failed || !remote.valid()) return;
  client_ = std::make_unique<IceControllingAgent>(ice_.localUfrag(), remoteUfrag, remotePwd, remote);
  // The peer's responses carry no USERNAME: the mux routes them here by their 5-tuple from now on.
  listener_.onSelected(remote);
  clientTick(nowMs_);
}

void PeerCore::clientTick(uint64_t nowMs) {
  if (state_ == PeerState::Closed || state_ == PeerState::Failed) return;
  if (client_->timedOut(nowMs)) {
    setState(PeerState::Failed, "ICE: no answer to connectivity checks sent to " + addrText(client_->remote()));
    return;
  }
  uint8_t out[256];
  const size_t n = client_->poll(nowMs, out, sizeof out);
  if (n > 0) listener_.sendTo(client_->remote(), out, n);
}

bool PeerCore::onClientStun(const SockAddr& from, const uint8_t* data, size_t len, uint64_t nowMs) {
  switch (client_->onStun(data, len, from, nowMs)) {
    case IceControllingAgent::Result::NotOurs:
      return false;  // a request or indication: the lite agent answers (or drops) it
    case IceControllingAgent::Result::Refused:
    case IceControllingAgent::Result::Error:
      return true;
    case IceControllingAgent::Result::Success:
      break;
  }
  stats_.lastInboundMs = nowMs;
  ice_.validateLocally(from, nowMs);
  if (ice_.takeSelectionChanged()) {
    listener_.onSelected(*ice_.selected());
    if (dtls_ && dtlsClient_ && remoteSet_ && dtls_->state() == DtlsState::New) {
      dtls_->start();
      flushDtls();
    }
  }
  return true;
}

uint32_t sendMediaBatch(PeerCore& peer, const uint8_t* data, size_t len) {
  uint32_t sent = 0;
  size_t at = 0;
  while (at + 4 <= len) {
    const size_t n = rd16(data + at);
    const bool rtcp = data[at + 2] == 1;
    if (n > len - at - 4) break;
    if (rtcp ? peer.sendRtcp(data + at + 4, n) : peer.sendRtp(data + at + 4, n)) sent++;
    at += 4 + n;
  }
  return sent;
}

}  // namespace pb
