// One WebRTC transport (one BUNDLE group) without I/O: ICE-lite, DTLS-SRTP and the RFC 7983 demultiplexing
// of what arrives on its 5-tuple. Datagrams and time go in; datagrams to send, decrypted RTP/RTCP and state
// changes come out through PeerListener. The addon (udp_mux, addon.cc) feeds it from libuv; tests feed it
// directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dtls.h"
#include "ice_client.h"
#include "ice_lite.h"
#include "net.h"
#include "srtp.h"

namespace pb {

enum class PeerState { New, Connecting, Connected, Failed, Closed };
const char* peerStateName(PeerState s);

class PeerListener {
 public:
  virtual ~PeerListener() = default;
  virtual void sendTo(const SockAddr& to, const uint8_t* data, size_t len) = 0;
  /** A decrypted RTP (`rtcp` false) or RTCP compound packet. `data` is valid during the call. */
  virtual void onMedia(bool rtcp, const uint8_t* data, size_t len) = 0;
  virtual void onState(PeerState state, const std::string& detail) = 0;
  /** ICE selected a new remote address (the shared-port mux routes its 5-tuple here). */
  virtual void onSelected(const SockAddr& remote) {}
  /** One DTLS application-data record (SCTP, for data channels). `data` is valid during the call. */
  virtual void onApplicationData(const uint8_t* data, size_t len) {}
};

struct PeerStats {
  uint64_t packetsIn = 0, bytesIn = 0, packetsOut = 0, bytesOut = 0;
  uint64_t dropped = 0;        // not from a validated address, not RTP/RTCP/DTLS/STUN, or before keys
  uint64_t srtpFailures = 0;   // authentication, replay, malformed (the SRTP contexts' counters)
  uint64_t notSent = 0;        // sendRtp/sendRtcp before connected or without consent
  uint64_t lastInboundMs = 0;  // any valid datagram (checks included)
};

class PeerCore {
 public:
  PeerCore(std::shared_ptr<DtlsCertificate> cert, std::string localUfrag, std::string localPwd,
           PeerListener& listener);
  ~PeerCore();

  /** The peer's parameters from its SDP; the DTLS role is ours. Later calls only add fingerprints. */
  void setRemote(const std::string& ufrag, const std::vector<std::pair<std::string, std::string>>& fingerprints,
                 bool dtlsClient);
  /**
   * Client mode toward an ICE-lite peer (peer_client.cc), after setRemote(..., dtlsClient = true): we are the
   * controlling agent and check the pair (our socket → `remote`, the peer's candidate) with `remoteUfrag` and
   * `remotePwd`; the first check goes out now, retransmissions and consent checks from tick(). The validated
   * pair starts DTLS. No checks for 15 s answered: Failed. The benchmark's native load generator uses it.
   */
  void startControlling(const std::string& remoteUfrag, const std::string& remotePwd, const SockAddr& remote);
  /** Client mode's counters; nullptr on a server peer. */
  const IceClientStats* iceClientStats() const { return client_ ? &client_->stats() : nullptr; }
  /** `data` is decrypted in place. */
  void onDatagram(const SockAddr& from, uint8_t* data, size_t len, uint64_t nowMs);
  /** DTLS retransmissions; returns ms until it wants to run again (-1: no timer). */
  long tick(uint64_t nowMs);
  /** The clock for sends (consent freshness) between datagrams: the addon sets its loop time. */
  void setNow(uint64_t nowMs) { nowMs_ = nowMs; }
  bool sendRtp(const uint8_t* data, size_t len);
  bool sendRtcp(const uint8_t* data, size_t len);
  /** One DTLS application-data record (an SCTP packet); false before DTLS is up or above 16 KiB. */
  bool sendApplicationData(const uint8_t* data, size_t len);
  void close();

  PeerState state() const { return state_; }
  const std::string& localUfrag() const { return ice_.localUfrag(); }
  const PeerStats& stats() const { return stats_; }
  const IceStats& iceStats() const { return ice_.stats(); }
  uint16_t srtpProfile() const { return srtpProfile_; }

 private:
  void setState(PeerState s, const std::string& detail = {});
  void flushDtls();
  void onDtlsProgress();
  bool protectAndSend(const uint8_t* data, size_t len, bool rtcp);

  std::shared_ptr<DtlsCertificate> cert_;
  PeerListener& listener_;
  IceLiteAgent ice_;
  // Client mode (peer_client.cc): the controlling agent, and its hooks in onDatagram and tick.
  std::unique_ptr<IceControllingAgent> client_;
  bool onClientStun(const SockAddr& from, const uint8_t* data, size_t len, uint64_t nowMs);
  void clientTick(uint64_t nowMs);
  std::unique_ptr<DtlsEndpoint> dtls_;
  std::unique_ptr<SrtpContext> srtpIn_, srtpOut_;
  /** DTLS records that arrived before the remote description (an early ClientHello). */
  std::vector<std::pair<SockAddr, std::vector<uint8_t>>> early_;
  bool dtlsClient_ = false;
  bool remoteSet_ = false;
  uint16_t srtpProfile_ = 0;
  PeerState state_ = PeerState::New;
  uint64_t nowMs_ = 0;
  PeerStats stats_;
  std::vector<uint8_t> scratch_;
};

}  // namespace pb
