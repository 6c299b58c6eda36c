// The ICE-lite agent and the sans-IO peer (ICE + DTLS-SRTP + demultiplexing), driven by a hand-made full
// ICE client (STUN requests from stun.cc, a DtlsEndpoint client, SRTP contexts) and a fake clock.
#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "../src/dtls.h"
#include "../src/ice_lite.h"
#include "../src/peer.h"
#include "../src/srtp.h"
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

std::vector<uint8_t> checkRequest(const std::string& user, const std::string& pwd, bool useCandidate, uint8_t txByte = 1) {
  uint8_t tx[12];
  std::memset(tx, txByte, sizeof tx);
  std::vector<uint8_t> out(512);
  const size_t n = pb::buildStunBindingRequest(out.data(), out.size(), tx, user, pwd, 0x6e0001ff, useCandidate, true, 42);
  out.resize(n);
  return out;
}

uint16_t stunType(const std::vector<uint8_t>& m) { return m.size() >= 2 ? static_cast<uint16_t>(m[0] << 8 | m[1]) : 0; }

struct Captured : pb::PeerListener {
  std::vector<std::pair<pb::SockAddr, std::vector<uint8_t>>> sent;
  std::vector<std::pair<bool, std::vector<uint8_t>>> media;
  std::vector<std::string> states;
  void sendTo(const pb::SockAddr& to, const uint8_t* d, size_t n) override { sent.emplace_back(to, std::vector<uint8_t>(d, d + n)); }
  void onMedia(bool rtcp, const uint8_t* d, size_t n) override { media.emplace_back(rtcp, std::vector<uint8_t>(d, d + n)); }
  void onState(pb::PeerState s, const std::string&) override { states.push_back(pb::peerStateName(s)); }
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

}  // namespace

TEST(ice_lite_answers_valid_checks_and_refuses_bad_credentials) {
  pb::IceLiteAgent ice("srvU", "server-password-0123456789");
  ice.setRemoteUfrag("cliU");
  const auto from = addr4("10.0.0.2", 5000);
  uint8_t out[256];
  auto bad = checkRequest("srvU:cliU", "wrong-password-0123456789", false);
  size_t n = ice.onStun(bad.data(), bad.size(), from, 0, out, sizeof out);
  EXPECT(n > 0 && (out[0] << 8 | out[1]) == pb::kStunBindingError);
  EXPECT(!ice.validated(from) && ice.selected() == nullptr);
  auto other = checkRequest("otherU:cliU", "server-password-0123456789", false);
  n = ice.onStun(other.data(), other.size(), from, 0, out, sizeof out);
  EXPECT((out[0] << 8 | out[1]) == pb::kStunBindingError && ice.stats().wrongUsername == 1);
  auto good = checkRequest("srvU:cliU", "server-password-0123456789", false);
  n = ice.onStun(good.data(), good.size(), from, 0, out, sizeof out);
  EXPECT(n > 0 && (out[0] << 8 | out[1]) == pb::kStunBindingSuccess);
  pb::StunMessage m;
  EXPECT(pb::parseStun(out, n, m) && pb::stunIntegrityValid(out, n, m, "server-password-0123456789"));
  EXPECT(ice.validated(from) && ice.selected() && *ice.selected() == from && !ice.nominated());
}

TEST(ice_lite_follows_nomination_and_consent_expires_on_fake_clock) {
  pb::IceLiteAgent ice("srvU", "server-password-0123456789");
  const auto a = addr4("10.0.0.2", 5000), b = addr4("10.0.0.3", 6000);
  uint8_t out[256];
  auto plain = checkRequest("srvU:cliU", "server-password-0123456789", false);
  auto nominate = checkRequest("srvU:cliU", "server-password-0123456789", true);
  ice.onStun(nominate.data(), nominate.size(), a, 1000, out, sizeof out);
  EXPECT(ice.nominated() && *ice.selected() == a);
  // A plain check on another pair does not move a nominated selection; a nomination does.
  ice.onStun(plain.data(), plain.size(), b, 2000, out, sizeof out);
  EXPECT(*ice.selected() == a && ice.validated(b));
  ice.onStun(nominate.data(), nominate.size(), b, 3000, out, sizeof out);
  EXPECT(*ice.selected() == b && ice.takeSelectionChanged());
  EXPECT(ice.consentFresh(3000 + pb::kConsentTimeoutMs - 1));
  EXPECT(!ice.consentFresh(3000 + pb::kConsentTimeoutMs));
}

TEST(ice_lite_keeps_a_bounded_set_of_validated_addresses) {
  pb::IceLiteAgent ice("srvU", "server-password-0123456789");
  uint8_t out[256];
  auto plain = checkRequest("srvU:cliU", "server-password-0123456789", false);
  for (int i = 0; i < 50; i++) ice.onStun(plain.data(), plain.size(), addr4("10.0.0.9", 1000 + i), 0, out, sizeof out);
  EXPECT(!ice.validated(addr4("10.0.0.9", 1000)));
  EXPECT(ice.validated(addr4("10.0.0.9", 1049)));
  EXPECT(pb::stunLocalUfrag(plain.data(), plain.size()) == "srvU");
}

TEST(peer_connects_and_moves_srtp_both_ways) {
  auto serverCert = pb::DtlsCertificate::generate();
  auto clientCert = pb::DtlsCertificate::generate();
  Captured cap;
  pb::PeerCore peer(serverCert, "srvU", "server-password-0123456789", cap);
  const auto client = addr4("192.0.2.1", 40000);
  uint64_t now = 1000;
  // The client's DTLS ClientHello arrives before the answer is applied: it is held, then replayed.
  pb::DtlsEndpoint dtls(clientCert, true);
  dtls.addRemoteFingerprint("sha-256", serverCert->fingerprintSha256);
  auto nominate = checkRequest("srvU:cliU", "server-password-0123456789", true);
  peer.onDatagram(client, nominate.data(), nominate.size(), now);
  EXPECT(cap.sent.size() == 1 && stunType(cap.sent[0].second) == pb::kStunBindingSuccess);
  dtls.start();
  std::vector<uint8_t> d;
  while (dtls.takeOutgoing(d)) peer.onDatagram(client, d.data(), d.size(), now);
  EXPECT(peer.state() == pb::PeerState::New);
  peer.setRemote("cliU", {{"sha-256", clientCert->fingerprintSha256}}, false);
  for (int round = 0; round < 10 && dtls.state() != pb::DtlsState::Connected; round++) {
    for (size_t i = 1; i < cap.sent.size(); i++) {
      EXPECT(cap.sent[i].first == client);
      dtls.onDatagram(cap.sent[i].second.data(), cap.sent[i].second.size());
    }
    cap.sent.resize(1);
    while (dtls.takeOutgoing(d)) peer.onDatagram(client, d.data(), d.size(), now);
  }
  EXPECT(dtls.state() == pb::DtlsState::Connected);
  EXPECT(peer.state() == pb::PeerState::Connected);
  EXPECT(cap.states.size() == 2 && cap.states[0] == "connecting" && cap.states[1] == "connected");
  const auto& k = dtls.keys();
  const auto profile = static_cast<pb::SrtpProfile>(k.profile);
  pb::SrtpContext clientOut(profile, k.localKey.data(), k.localSalt.data());
  pb::SrtpContext clientIn(profile, k.remoteKey.data(), k.remoteSalt.data());
  // Client → server: decrypted and handed over unchanged.
  for (uint16_t seq = 0; seq < 20; seq++) {
    auto plain = rtpPacket(seq, 0x1234, 100);
    std::vector<uint8_t> buf(plain);
    buf.resize(plain.size() + pb::kSrtpMaxOverhead);
    size_t n = plain.size();
    EXPECT(clientOut.protectRtp(buf.data(), n, buf.size()));
    peer.onDatagram(client, buf.data(), n, now);
    EXPECT(!cap.media.empty() && !cap.media.back().first && cap.media.back().second == plain);
  }
  EXPECT(cap.media.size() == 20 && peer.stats().packetsIn == 20);
  // The same packet again is a replay: refused, counted, not delivered.
  {
    auto plain = rtpPacket(19, 0x1234, 100);
    std::vector<uint8_t> buf(plain);
    buf.resize(plain.size() + pb::kSrtpMaxOverhead);
    size_t n = plain.size();
    pb::SrtpContext again(profile, k.localKey.data(), k.localSalt.data());
    for (uint16_t s = 0; s < 19; s++) {
      auto p = rtpPacket(s, 0x1234, 100);
      p.resize(p.size() + pb::kSrtpMaxOverhead);
      size_t m = 112;
      again.protectRtp(p.data(), m, p.size());
    }
    EXPECT(again.protectRtp(buf.data(), n, buf.size()));
    peer.onDatagram(client, buf.data(), n, now);
    EXPECT(cap.media.size() == 20 && peer.stats().srtpFailures == 1);
  }
  // Media from an address that never passed a check is dropped before decryption.
  {
    auto p = rtpPacket(100, 0x1234, 10);
    peer.onDatagram(addr4("203.0.113.9", 9), p.data(), p.size(), now);
    EXPECT(cap.media.size() == 20 && peer.stats().dropped == 1);
  }
  // Server → client.
  cap.sent.clear();
  peer.setNow(now);
  auto out = rtpPacket(7, 0xabcd, 60);
  EXPECT(peer.sendRtp(out.data(), out.size()));
  EXPECT(cap.sent.size() == 1 && cap.sent[0].first == client);
  {
    auto buf = cap.sent[0].second;
    size_t n = buf.size();
    EXPECT(clientIn.unprotectRtp(buf.data(), n));
    EXPECT(n == out.size() && std::memcmp(buf.data(), out.data(), n) == 0);
  }
  // RTCP (a receiver report) rides the same association.
  {
    std::vector<uint8_t> rr = {0x80, 201, 0, 1, 0, 0, 0, 1};
    rr.resize(rr.size() + pb::kSrtpMaxOverhead);
    size_t n = 8;
    EXPECT(clientOut.protectRtcp(rr.data(), n, rr.size()));
    peer.onDatagram(client, rr.data(), n, now);
    EXPECT(cap.media.back().first && cap.media.back().second.size() == 8);
  }
  // Without a check for 30 s consent is gone: nothing is sent.
  peer.setNow(now + pb::kConsentTimeoutMs + 1);
  EXPECT(!peer.sendRtp(out.data(), out.size()) && peer.stats().notSent == 1);
  // close() says close_notify to the client.
  cap.sent.clear();
  peer.close();
  EXPECT(peer.state() == pb::PeerState::Closed && cap.sent.size() == 1);
  dtls.onDatagram(cap.sent[0].second.data(), cap.sent[0].second.size());
  EXPECT(dtls.peerClosed());
}

TEST(peer_fails_on_a_wrong_fingerprint) {
  auto serverCert = pb::DtlsCertificate::generate();
  auto clientCert = pb::DtlsCertificate::generate();
  auto stranger = pb::DtlsCertificate::generate();
  Captured cap;
  pb::PeerCore peer(serverCert, "srvU", "server-password-0123456789", cap);
  const auto client = addr4("192.0.2.1", 40000);
  auto nominate = checkRequest("srvU:cliU", "server-password-0123456789", true);
  peer.onDatagram(client, nominate.data(), nominate.size(), 0);
  peer.setRemote("cliU", {{"sha-256", stranger->fingerprintSha256}}, false);
  pb::DtlsEndpoint dtls(clientCert, true);
  dtls.addRemoteFingerprint("sha-256", serverCert->fingerprintSha256);
  dtls.start();
  std::vector<uint8_t> d;
  for (int round = 0; round < 10 && peer.state() == pb::PeerState::Connecting; round++) {
    while (dtls.takeOutgoing(d)) peer.onDatagram(client, d.data(), d.size(), 0);
    for (size_t i = 1; i < cap.sent.size(); i++) dtls.onDatagram(cap.sent[i].second.data(), cap.sent[i].second.size());
    cap.sent.resize(1);
  }
  EXPECT(peer.state() == pb::PeerState::Failed);
  EXPECT(!cap.states.empty() && cap.states.back() == "failed");
}

TEST(peer_drops_garbage_of_every_class_without_state_change) {
  auto cert = pb::DtlsCertificate::generate();
  Captured cap;
  pb::PeerCore peer(cert, "srvU", "server-password-0123456789", cap);
  peer.setRemote("cliU", {}, false);
  const auto from = addr4("192.0.2.7", 1);
  std::vector<std::vector<uint8_t>> junk = {{}, {0}, {1, 2, 3}, {22, 254, 253}, {0x80}, {0x80, 111, 0, 0}, {200, 1}, {64, 0, 0}};
  for (auto& j : junk) peer.onDatagram(from, j.data(), j.size(), 0);
  EXPECT(peer.state() == pb::PeerState::Connecting && cap.media.empty());
  EXPECT(peer.stats().dropped >= 5);
}

TEST_MAIN
