// Client mode: a controlling PeerCore (ice_client.h, peer_client.cc) against an ICE-lite server PeerCore over
// a fake network and a fake clock: checks, nomination, DTLS (client role) and SRTP both ways, consent, and the
// responses that must not validate anything.
#include <arpa/inet.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "../src/ice_client.h"
#include "../src/peer.h"
#include "../src/peer_client.h"
#include "../src/stun.h"
#include "check.h"

namespace {

pb::SockAddr addr4(const char* ip, uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  inet_pton(AF_INET, ip, &sin.sin_addr);
  return pb::SockAddr::from(reinterpret_cast<sockaddr*>(&sin));
}

const pb::SockAddr kClientAddr = addr4("10.0.0.1", 5000);
const pb::SockAddr kServerAddr = addr4("10.0.0.2", 6000);
const std::string kServerPwd = "server-password-0123456789";
const std::string kClientPwd = "client-password-0123456789";

struct Datagram {
  pb::SockAddr from, to;
  std::vector<uint8_t> bytes;
};

/** A PeerListener on a shared wire: what it sends is queued with its own address as the source. */
struct Endpoint : pb::PeerListener {
  Endpoint(std::deque<Datagram>& wire, pb::SockAddr self) : wire(wire), self(self) {}
  std::deque<Datagram>& wire;
  pb::SockAddr self;
  std::vector<std::vector<uint8_t>> media;
  std::vector<std::vector<uint8_t>> appData;
  std::vector<std::string> states;
  std::vector<pb::SockAddr> selected;
  void sendTo(const pb::SockAddr& to, const uint8_t* d, size_t n) override {
    wire.push_back({self, to, std::vector<uint8_t>(d, d + n)});
  }
  void onMedia(bool, const uint8_t* d, size_t n) override { media.emplace_back(d, d + n); }
  void onApplicationData(const uint8_t* d, size_t n) override { appData.emplace_back(d, d + n); }
  void onState(pb::PeerState s, const std::string&) override { states.push_back(pb::peerStateName(s)); }
  void onSelected(const pb::SockAddr& a) override { selected.push_back(a); }
};

std::vector<uint8_t> rtpPacket(uint16_t seq, uint32_t ssrc, size_t payload) {
  std::vector<uint8_t> p(12 + payload);
  p[0] = 0x80;
  p[1] = 111;
  p[2] = static_cast<uint8_t>(seq >> 8);
  p[3] = static_cast<uint8_t>(seq);
  p[8] = static_cast<uint8_t>(ssrc >> 24);
  p[9] = static_cast<uint8_t>(ssrc >> 16);
  p[10] = static_cast<uint8_t>(ssrc >> 8);
  p[11] = static_cast<uint8_t>(ssrc);
  for (size_t i = 0; i < payload; i++) p[12 + i] = static_cast<uint8_t>(i * 7 + seq);
  return p;
}

/** Client and server peers on one wire; pump() delivers (optionally dropping one direction) and ticks. */
struct Net {
  std::shared_ptr<pb::DtlsCertificate> serverCert = pb::DtlsCertificate::generate();
  std::shared_ptr<pb::DtlsCertificate> clientCert = pb::DtlsCertificate::generate();
  std::deque<Datagram> wire;
  Endpoint cli{wire, kClientAddr}, srv{wire, kServerAddr};
  pb::PeerCore client{clientCert, "cliU", kClientPwd, cli};
  pb::PeerCore server{serverCert, "srvU", kServerPwd, srv};
  uint64_t now = 1000;
  bool dropToClient = false;
  size_t delivered = 0;

  void deliver() {
    while (!wire.empty()) {
      Datagram d = std::move(wire.front());
      wire.pop_front();
      delivered++;
      if (d.to == kClientAddr && !dropToClient) client.onDatagram(d.from, d.bytes.data(), d.bytes.size(), now);
      else if (d.to == kServerAddr) server.onDatagram(d.from, d.bytes.data(), d.bytes.size(), now);
    }
  }
  /** Advance the clock by `ms` in 10 ms steps, ticking both peers and delivering everything. */
  void run(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 10) {
      now += 10;
      client.tick(now);
      server.tick(now);
      deliver();
    }
  }
  void setUp() {
    server.setRemote("cliU", {{"sha-256", clientCert->fingerprintSha256}}, false);
    client.setNow(now);
    client.setRemote("srvU", {{"sha-256", serverCert->fingerprintSha256}}, true);
  }
};

}  // namespace

TEST(controlling_client_connects_to_a_lite_server_and_moves_srtp_both_ways) {
  Net net;
  net.setUp();
  EXPECT(net.wire.empty());  // the DTLS client waits for a validated pair
  net.client.startControlling("srvU", kServerPwd, kServerAddr);
  // The first check goes out at once, to the server's candidate, and the mux is told to route it here.
  EXPECT(net.wire.size() == 1 && net.wire.front().to == kServerAddr);
  EXPECT(!net.cli.selected.empty() && net.cli.selected[0] == kServerAddr);
  {
    pb::StunMessage m;
    const auto& b = net.wire.front().bytes;
    EXPECT(pb::parseStun(b.data(), b.size(), m) && m.type == pb::kStunBindingRequest);
    EXPECT(m.username == "srvU:cliU" && m.useCandidate && m.iceControlling && m.tieBreaker != 0);
    EXPECT(pb::stunIntegrityValid(b.data(), b.size(), m, kServerPwd) && pb::stunFingerprintValid(b.data(), b.size(), m));
  }
  net.deliver();
  for (int i = 0; i < 50 && net.client.state() != pb::PeerState::Connected; i++) net.run(10);
  EXPECT(net.client.state() == pb::PeerState::Connected);
  EXPECT(net.server.state() == pb::PeerState::Connected);
  EXPECT(net.client.srtpProfile() == net.server.srtpProfile() && net.client.srtpProfile() != 0);
  EXPECT(net.server.iceStats().checks >= 1 && net.server.iceStats().badIntegrity == 0);
  EXPECT(net.client.iceClientStats() && net.client.iceClientStats()->successes >= 1);
  EXPECT(net.server.iceClientStats() == nullptr);
  EXPECT(net.cli.states.size() == 2 && net.cli.states[0] == "connecting" && net.cli.states[1] == "connected");

  // Client → server, one packet at a time and as a framed batch.
  for (uint16_t seq = 0; seq < 10; seq++) {
    auto p = rtpPacket(seq, 0x1111, 80);
    net.client.setNow(net.now);
    EXPECT(net.client.sendRtp(p.data(), p.size()));
    net.deliver();
    EXPECT(!net.srv.media.empty() && net.srv.media.back() == p);
  }
  {
    std::vector<uint8_t> batch;
    for (uint16_t seq = 10; seq < 13; seq++) {
      auto p = rtpPacket(seq, 0x1111, 50 + seq);
      batch.push_back(static_cast<uint8_t>(p.size() >> 8));
      batch.push_back(static_cast<uint8_t>(p.size()));
      batch.push_back(0);
      batch.push_back(0);
      batch.insert(batch.end(), p.begin(), p.end());
    }
    std::vector<uint8_t> rr = {0x80, 201, 0, 1, 0, 0, 0x11, 0x11};
    batch.insert(batch.end(), {0, 8, 1, 0});
    batch.insert(batch.end(), rr.begin(), rr.end());
    batch.insert(batch.end(), {0, 200, 0});  // a truncated frame ends the batch
    EXPECT(pb::sendMediaBatch(net.client, batch.data(), batch.size()) == 4);
    net.deliver();
    EXPECT(net.srv.media.size() == 14 && net.srv.media[12] == rtpPacket(12, 0x1111, 62) && net.srv.media[13] == rr);
  }
  // Server → client.
  for (uint16_t seq = 0; seq < 10; seq++) {
    auto p = rtpPacket(seq, 0x2222, 60);
    net.server.setNow(net.now);
    EXPECT(net.server.sendRtp(p.data(), p.size()));
    net.deliver();
    EXPECT(!net.cli.media.empty() && net.cli.media.back() == p);
  }

  // Consent both ways for a minute: the client's consent checks keep the lite server sending, and the
  // server's answers keep the client sending.
  const uint64_t checksBefore = net.client.iceClientStats()->checksSent;
  net.run(60000);
  const uint64_t consentChecks = net.client.iceClientStats()->checksSent - checksBefore;
  EXPECT(consentChecks >= 60000 / 3000 && consentChecks <= 60000 / 2000 + 1);
  auto p = rtpPacket(100, 0x2222, 60);
  net.server.setNow(net.now);
  EXPECT(net.server.sendRtp(p.data(), p.size()));
  net.client.setNow(net.now);
  EXPECT(net.client.sendRtp(p.data(), p.size()));
  net.deliver();

  // The server's answers stop reaching the client: after 30 s the client has no consent and sends nothing.
  // The last answer came at most one consent interval (≤ 3 s) before the cut.
  net.dropToClient = true;
  net.run(26000);
  net.client.setNow(net.now);
  EXPECT(net.client.sendRtp(p.data(), p.size()));
  net.run(5000);
  net.client.setNow(net.now);
  EXPECT(!net.client.sendRtp(p.data(), p.size()));
  EXPECT(net.client.stats().notSent == 1);
  // The server still hears the checks, so it still has consent to send.
  net.server.setNow(net.now);
  EXPECT(net.server.sendRtp(p.data(), p.size()));
  // Back in touch: consent returns with the next answered check.
  net.dropToClient = false;
  net.run(3100);
  net.client.setNow(net.now);
  EXPECT(net.client.sendRtp(p.data(), p.size()));
}

TEST(dtls_application_data_moves_both_ways_record_by_record_only_once_connected) {
  Net net;
  net.setUp();
  const std::vector<uint8_t> early = {1, 2, 3};
  EXPECT(!net.client.sendApplicationData(early.data(), early.size()));  // no DTLS yet
  net.client.startControlling("srvU", kServerPwd, kServerAddr);
  net.deliver();
  for (int i = 0; i < 50 && net.client.state() != pb::PeerState::Connected; i++) net.run(10);
  EXPECT(net.client.state() == pb::PeerState::Connected && net.server.state() == pb::PeerState::Connected);
  // An SCTP-sized record each way, then a burst: order and bytes kept, no record merged or split.
  std::vector<uint8_t> big(1200);
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<uint8_t>(i * 13);
  net.client.setNow(net.now);
  EXPECT(net.client.sendApplicationData(big.data(), big.size()));
  for (uint8_t k = 0; k < 20; k++) {
    std::vector<uint8_t> r(1 + k, k);
    EXPECT(net.server.sendApplicationData(r.data(), r.size()));
  }
  net.deliver();
  EXPECT(net.srv.appData.size() == 1 && net.srv.appData[0] == big);
  EXPECT(net.cli.appData.size() == 20);
  for (uint8_t k = 0; k < 20 && k < net.cli.appData.size(); k++)
    EXPECT(net.cli.appData[k] == std::vector<uint8_t>(1 + k, k));
  // Neither side mistook a record for media.
  EXPECT(net.srv.media.empty() && net.cli.media.empty());
  // Empty and oversize records are refused.
  std::vector<uint8_t> huge(16385, 7);
  EXPECT(!net.server.sendApplicationData(huge.data(), 0));
  EXPECT(!net.server.sendApplicationData(huge.data(), huge.size()));
  net.server.close();
  net.deliver();
  EXPECT(!net.server.sendApplicationData(big.data(), big.size()));
}

TEST(responses_that_are_not_authenticated_answers_validate_nothing) {
  Net net;
  net.setUp();
  net.client.startControlling("srvU", kServerPwd, kServerAddr);
  EXPECT(net.wire.size() == 1);
  const Datagram check = net.wire.front();
  net.wire.clear();
  pb::StunMessage m;
  EXPECT(pb::parseStun(check.bytes.data(), check.bytes.size(), m));
  uint8_t tx[12];
  std::memcpy(tx, m.transactionId, 12);
  uint8_t out[256];
  const auto* ip = kClientAddr.addr();
  // 1. The right transaction, keyed with the wrong password.
  size_t n = pb::buildStunBindingSuccess(out, sizeof out, tx, 4, ip, kClientAddr.port(), "not-the-server-password-xx");
  net.client.onDatagram(kServerAddr, out, n, net.now);
  // 2. Correctly keyed, but a transaction the client never started.
  uint8_t otherTx[12];
  std::memset(otherTx, 0x5a, sizeof otherTx);
  n = pb::buildStunBindingSuccess(out, sizeof out, otherTx, 4, ip, kClientAddr.port(), kServerPwd);
  net.client.onDatagram(kServerAddr, out, n, net.now);
  // 3. Correctly keyed and the right transaction, from another address than the checked one.
  n = pb::buildStunBindingSuccess(out, sizeof out, tx, 4, ip, kClientAddr.port(), kServerPwd);
  net.client.onDatagram(addr4("10.0.0.66", 6000), out, n, net.now);
  // 4. A tampered copy of a good answer (integrity no longer matches).
  n = pb::buildStunBindingSuccess(out, sizeof out, tx, 4, ip, kClientAddr.port(), kServerPwd);
  std::vector<uint8_t> tampered(out, out + n);
  tampered[25] ^= 1;  // inside XOR-MAPPED-ADDRESS
  net.client.onDatagram(kServerAddr, tampered.data(), tampered.size(), net.now);
  EXPECT(net.client.iceClientStats()->badResponses == 4 && net.client.iceClientStats()->successes == 0);
  // Nothing validated: no DTLS ClientHello went out, media from the server's address is dropped.
  EXPECT(net.wire.empty() && net.client.state() == pb::PeerState::Connecting);
  auto junk = rtpPacket(1, 1, 20);
  const uint64_t droppedBefore = net.client.stats().dropped;
  net.client.onDatagram(kServerAddr, junk.data(), junk.size(), net.now);
  EXPECT(net.client.stats().dropped == droppedBefore + 1);
  // 5. An error response (the server refusing our credentials) is counted and validates nothing either.
  n = pb::buildStunBindingError(out, sizeof out, tx, 401, "Unauthorized");
  net.client.onDatagram(kServerAddr, out, n, net.now);
  EXPECT(net.client.iceClientStats()->errorResponses == 1 && net.wire.empty());
  // The genuine answer to the same transaction validates the pair and starts DTLS.
  n = pb::buildStunBindingSuccess(out, sizeof out, tx, 4, ip, kClientAddr.port(), kServerPwd);
  net.client.onDatagram(kServerAddr, out, n, net.now);
  EXPECT(net.client.iceClientStats()->successes == 1);
  EXPECT(!net.wire.empty() && net.wire.front().to == kServerAddr && net.wire.front().bytes[0] == 22);
}

TEST(a_client_with_the_wrong_password_never_connects_and_fails_after_the_timeout) {
  Net net;
  net.setUp();
  net.client.startControlling("srvU", "wrong-password-0123456789xx", kServerAddr);
  net.run(pb::kIceClientConnectTimeoutMs - 100);
  EXPECT(net.client.state() == pb::PeerState::Connecting);
  EXPECT(net.server.iceStats().badIntegrity > 0 && net.server.iceStats().checks == 0);
  EXPECT(net.client.iceClientStats()->errorResponses > 0 && net.client.iceClientStats()->successes == 0);
  // Retransmissions back off to kIceClientMaxRetransmitMs: about 30 checks in 15 s, not hundreds.
  EXPECT(net.client.iceClientStats()->checksSent < 40);
  net.run(200);
  EXPECT(net.client.state() == pb::PeerState::Failed && net.cli.states.back() == "failed");
  const size_t before = net.delivered;
  net.run(5000);
  EXPECT(net.delivered == before);  // a failed client checks no more
}

TEST(the_agent_backs_off_then_paces_consent_checks) {
  pb::IceControllingAgent a("cliU", "srvU", kServerPwd, kServerAddr);
  uint8_t out[256];
  std::vector<uint64_t> sent;
  for (uint64_t t = 0; t < 3000; t++)
    if (a.poll(t, out, sizeof out) > 0) sent.push_back(t);
  // 0, 50, 150, 350, 750, then every 500 ms.
  EXPECT(sent.size() >= 8 && sent[0] == 0 && sent[1] == 50 && sent[2] == 150 && sent[3] == 350 && sent[4] == 750);
  EXPECT(sent[5] == 1250 && sent[6] == 1750);
  EXPECT(!a.validated() && !a.consentFresh(3000) && !a.timedOut(3000) && a.timedOut(pb::kIceClientConnectTimeoutMs));
  // Answer the latest check: validated; the next check is a consent check 2–3 s later.
  pb::StunMessage m;
  EXPECT(a.poll(3249, out, sizeof out) == 0);
  size_t n = a.poll(3250, out, sizeof out);
  EXPECT(n > 0 && pb::parseStun(out, n, m));
  uint8_t resp[256];
  const size_t rn = pb::buildStunBindingSuccess(resp, sizeof resp, m.transactionId, 4, kClientAddr.addr(), 5000, kServerPwd);
  EXPECT(a.onStun(resp, rn, kServerAddr, 3255) == pb::IceControllingAgent::Result::Success);
  EXPECT(a.validated() && a.consentFresh(3255) && a.stats().lastRttMs == 5 && !a.timedOut(100000));
  EXPECT(a.msUntilDue(3255) >= pb::kIceClientConsentMs && a.msUntilDue(3255) < pb::kIceClientConsentMs + 1000);
  // The same answer again: that transaction is spent.
  EXPECT(a.onStun(resp, rn, kServerAddr, 3256) == pb::IceControllingAgent::Result::Refused);
  // A Binding request is not the agent's business.
  n = pb::buildStunBindingRequest(out, sizeof out, m.transactionId, "cliU:srvU", kClientPwd, 1, false, false, 1);
  EXPECT(a.onStun(out, n, kServerAddr, 3257) == pb::IceControllingAgent::Result::NotOurs);
  EXPECT(!a.consentFresh(3255 + pb::kConsentTimeoutMs));
}

TEST_MAIN
