#include "peer.h"

#include <cstring>

namespace pb {

namespace {
constexpr size_t kMaxEarlyDtls = 16;
constexpr size_t kMaxDatagram = 1500;

/** RFC 7983: 0–3 STUN, 20–63 DTLS, 128–191 RTP/RTCP. */
enum class Kind { Stun, Dtls, Media, Other };
Kind classify(const uint8_t* d, size_t len) {
  if (len == 0) return Kind::Other;
  const uint8_t b = d[0];
  if (b < 4) return Kind::Stun;
  if (b >= 20 && b < 64) return Kind::Dtls;
  if (b >= 128 && b < 192) return Kind::Media;
  return Kind::Other;
}
/** RFC 5761 §4: RTCP packet types 192–223 share the second byte's range with RTP payload types 64–95. */
bool isRtcp(const uint8_t* d, size_t len) { return len >= 2 && d[1] >= 192 && d[1] <= 223; }
}  // namespace

const char* peerStateName(PeerState s) {
  switch (s) {
    case PeerState::New: return "new";
    case PeerState::Connecting: return "connecting";
    case PeerState::Connected: return "connected";
    case PeerState::Failed: return "failed";
    case PeerState::Closed: return "closed";
  }
  return "new";
}

PeerCore::PeerCore(std::shared_ptr<DtlsCertificate> cert, std::string localUfrag, std::string localPwd,
                   PeerListener& listener)
    : cert_(std::move(cert)), listener_(listener), ice_(std::move(localUfrag), std::move(localPwd)) {
  scratch_.resize(kMaxDatagram + kSrtpMaxOverhead + 64);
}

PeerCore::~PeerCore() = default;

void PeerCore::setState(PeerState s, const std::string& detail) {
  if (state_ == s || state_ == PeerState::Closed) return;
  if (state_ == PeerState::Failed && s != PeerState::Closed) return;
  state_ = s;
  listener_.onState(s, detail);
}

void PeerCore::setRemote(const std::string& ufrag, const std::vector<std::pair<std::string, std::string>>& fingerprints,
                         bool dtlsClient) {
  if (state_ == PeerState::Closed || state_ == PeerState::Failed) return;
  if (!dtls_) {
    ice_.setRemoteUfrag(ufrag);
    dtlsClient_ = dtlsClient;
    try {
      dtls_ = std::make_unique<DtlsEndpoint>(cert_, dtlsClient);
    } catch (const std::exception& e) {
      setState(PeerState::Failed, e.what());
      return;
    }
  }
  for (const auto& [alg, value] : fingerprints) dtls_->addRemoteFingerprint(alg, value);
  if (remoteSet_) return;
  remoteSet_ = true;
  setState(PeerState::Connecting);
  // A server waits for the ClientHello; a client starts once ICE has a pair (see onDatagram).
  if (!dtlsClient_) dtls_->start();
  else if (ice_.selected()) {
    dtls_->start();
    flushDtls();
  }
  for (auto& [from, bytes] : early_) onDatagram(from, bytes.data(), bytes.size(), nowMs_);
  early_.clear();
}

void PeerCore::onDatagram(const SockAddr& from, uint8_t* data, size_t len, uint64_t nowMs) {
  nowMs_ = nowMs;
  if (state_ == PeerState::Closed || state_ == PeerState::Failed) return;
  switch (classify(data, len)) {
    case Kind::Stun: {
      if (client_ && onClientStun(from, data, len, nowMs)) return;
      uint8_t out[256];
      const size_t n = ice_.onStun(data, len, from, nowMs, out, sizeof out);
      if (n == 0) return;
      stats_.lastInboundMs = nowMs;
      listener_.sendTo(from, out, n);
      if (ice_.takeSelectionChanged()) {
        listener_.onSelected(*ice_.selected());
        if (dtls_ && dtlsClient_ && remoteSet_ && dtls_->state() == DtlsState::New) {
          dtls_->start();
          flushDtls();
        }
      }
      return;
    }
    case Kind::Dtls:
      if (!ice_.validated(from)) break;
      stats_.lastInboundMs = nowMs;
      if (!remoteSet_) {
        if (early_.size() < kMaxEarlyDtls) early_.emplace_back(from, std::vector<uint8_t>(data, data + len));
        return;
      }
      dtls_->onDatagram(data, len);
      flushDtls();
      onDtlsProgress();
      return;
    case Kind::Media: {
      if (!srtpIn_ || !ice_.validated(from)) break;
      const bool rtcp = isRtcp(data, len);
      size_t n = len;
      if (!(rtcp ? srtpIn_->unprotectRtcp(data, n) : srtpIn_->unprotectRtp(data, n))) {
        stats_.srtpFailures++;
        return;
      }
      stats_.lastInboundMs = nowMs;
      stats_.packetsIn++;
      stats_.bytesIn += len;
      listener_.onMedia(rtcp, data, n);
      return;
    }
    case Kind::Other:
      break;
  }
  stats_.dropped++;
}

void PeerCore::flushDtls() {
  if (!dtls_) return;
  const SockAddr* to = ice_.selected();
  std::vector<uint8_t> d;
  while (dtls_->takeOutgoing(d))
    if (to) listener_.sendTo(*to, d.data(), d.size());
}

void PeerCore::onDtlsProgress() {
  switch (dtls_->state()) {
    case DtlsState::Connected:
      if (!srtpOut_) {
        const DtlsSrtpKeys& k = dtls_->keys();
        const auto profile = static_cast<SrtpProfile>(k.profile);
        if ((k.profile != 1 && k.profile != 7) || k.localKey.size() != kSrtpMasterKeyLen ||
            k.localSalt.size() != srtpMasterSaltLen(profile)) {
          setState(PeerState::Failed, "DTLS negotiated no usable SRTP profile");
          return;
        }
        srtpOut_ = std::make_unique<SrtpContext>(profile, k.localKey.data(), k.localSalt.data());
        srtpIn_ = std::make_unique<SrtpContext>(profile, k.remoteKey.data(), k.remoteSalt.data());
        srtpProfile_ = k.profile;
        setState(PeerState::Connected);
      }
      // Application data (SCTP for data channels) goes to the listener, record by record.
      {
        std::vector<uint8_t> app;
        while (dtls_->takeApplicationData(app) && state_ == PeerState::Connected)
          listener_.onApplicationData(app.data(), app.size());
      }
      break;
    case DtlsState::Failed:
      setState(PeerState::Failed, dtls_->error());
      break;
    case DtlsState::Closed:
      // The peer ended DTLS (close_notify): the transport is over.
      setState(PeerState::Closed, dtls_->peerClosed() ? "the peer closed DTLS" : "");
      break;
    default:
      break;
  }
}

long PeerCore::tick(uint64_t nowMs) {
  nowMs_ = nowMs;
  if (client_) clientTick(nowMs);
  if (!dtls_ || (dtls_->state() != DtlsState::Connecting)) return -1;
  const long t = dtls_->timeoutMs();
  if (t == 0) {
    dtls_->onTimeout();
    flushDtls();
    onDtlsProgress();
    return dtls_->timeoutMs();
  }
  return t;
}

bool PeerCore::protectAndSend(const uint8_t* data, size_t len, bool rtcp) {
  const SockAddr* to = ice_.selected();
  if (!srtpOut_ || state_ != PeerState::Connected || !to || len > kMaxDatagram || !ice_.consentFresh(nowMs_)) {
    stats_.notSent++;
    return false;
  }
  std::memcpy(scratch_.data(), data, len);
  size_t n = len;
  if (!(rtcp ? srtpOut_->protectRtcp(scratch_.data(), n, scratch_.size())
             : srtpOut_->protectRtp(scratch_.data(), n, scratch_.size()))) {
    stats_.notSent++;
    return false;
  }
  stats_.packetsOut++;
  stats_.bytesOut += n;
  listener_.sendTo(*to, scratch_.data(), n);
  return true;
}

bool PeerCore::sendRtp(const uint8_t* data, size_t len) { return protectAndSend(data, len, false); }
bool PeerCore::sendRtcp(const uint8_t* data, size_t len) { return protectAndSend(data, len, true); }

bool PeerCore::sendApplicationData(const uint8_t* data, size_t len) {
  if (state_ != PeerState::Connected || !dtls_ || !ice_.selected()) {
    stats_.notSent++;
    return false;
  }
  if (!dtls_->send(data, len)) return false;
  flushDtls();
  return true;
}

void PeerCore::close() {
  if (state_ == PeerState::Closed) return;
  if (dtls_ && dtls_->state() == DtlsState::Connected) {
    dtls_->close();
    flushDtls();
  }
  setState(PeerState::Closed);
}

}  // namespace pb
