// DTLS-SRTP between two in-memory endpoints: keys, both profiles, fingerprints, loss, hostile datagrams,
// application data and close_notify, and the MTU bound on every datagram.
#include "../src/dtls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "check.h"

using pb::DtlsEndpoint;
using pb::DtlsState;
using Bytes = std::vector<uint8_t>;

static std::string fingerprint(X509* cert, const EVP_MD* md, bool lower = false) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  X509_digest(cert, md, buf, &n);
  std::string hex = check::tohex(buf, n), out;
  for (size_t i = 0; i < hex.size(); i += 2) out += (i ? ":" : "") + hex.substr(i, 2);
  if (!lower)
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

static bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

/** Carries datagrams between two endpoints, logging each direction; `drop` may discard one in flight. */
struct Link {
  DtlsEndpoint& a;
  DtlsEndpoint& b;
  std::vector<Bytes> fromA, fromB;
  size_t largest = 0;
  std::function<bool(bool fromA, size_t index)> drop;

  Link(DtlsEndpoint& a, DtlsEndpoint& b) : a(a), b(b) {}
  bool step() {
    bool moved = false;
    Bytes d;
    for (int side = 0; side < 2; side++) {
      DtlsEndpoint& src = side == 0 ? a : b;
      DtlsEndpoint& dst = side == 0 ? b : a;
      auto& log = side == 0 ? fromA : fromB;
      while (src.takeOutgoing(d)) {
        moved = true;
        largest = std::max(largest, d.size());
        log.push_back(d);
        if (!drop || !drop(side == 0, log.size() - 1)) dst.onDatagram(d.data(), d.size());
      }
    }
    return moved;
  }
  void run() {
    for (int i = 0; i < 50 && step(); i++) {
    }
  }
};

struct Peers {
  std::shared_ptr<pb::DtlsCertificate> clientCert, serverCert;
  DtlsEndpoint client, server;
  Link link{client, server};
  Peers(const char* clientProfiles = nullptr, const char* serverProfiles = nullptr,
        std::shared_ptr<pb::DtlsCertificate> cc = pb::DtlsCertificate::generate(),
        std::shared_ptr<pb::DtlsCertificate> sc = pb::DtlsCertificate::generate())
      : clientCert(cc), serverCert(sc), client(cc, true, clientProfiles), server(sc, false, serverProfiles) {}
  void trustEachOther() {
    client.addRemoteFingerprint("sha-256", serverCert->fingerprintSha256);
    server.addRemoteFingerprint("sha-256", clientCert->fingerprintSha256);
  }
  void connect() {
    server.start();
    client.start();
    link.run();
  }
  bool connected() const { return client.state() == DtlsState::Connected && server.state() == DtlsState::Connected; }
};

static void expectMirroredKeys(const Peers& p, uint16_t profile, size_t saltLen) {
  const auto &c = p.client.keys(), &s = p.server.keys();
  EXPECT(c.profile == profile && s.profile == profile);
  EXPECT(c.localKey.size() == 16 && c.remoteKey.size() == 16);
  EXPECT(c.localSalt.size() == saltLen && c.remoteSalt.size() == saltLen);
  EXPECT(c.localKey == s.remoteKey && c.remoteKey == s.localKey);
  EXPECT(c.localSalt == s.remoteSalt && c.remoteSalt == s.localSalt);
  EXPECT(c.localKey != c.remoteKey && c.localSalt != c.remoteSalt);
}

TEST(certificate_is_self_signed_p256_with_its_sha256_fingerprint) {
  auto a = pb::DtlsCertificate::generate(), b = pb::DtlsCertificate::generate();
  EXPECT(a->fingerprintSha256.size() == 32 * 3 - 1);
  EXPECT(a->fingerprintSha256 == fingerprint(a->cert, EVP_sha256()));
  EXPECT(a->fingerprintSha256 != b->fingerprintSha256);
  EXPECT(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert), X509_get0_serialNumber(b->cert)) != 0);
  EXPECT(EVP_PKEY_get_bits(a->key) == 256 && EVP_PKEY_get_base_id(a->key) == EVP_PKEY_EC);
  char cn[32] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(a->cert), NID_commonName, cn, sizeof cn);
  EXPECT(std::string(cn) == "patchbay");
  EXPECT(X509_NAME_cmp(X509_get_subject_name(a->cert), X509_get_issuer_name(a->cert)) == 0);
  EXPECT(X509_verify(a->cert, a->key) == 1);
  EXPECT(X509_cmp_current_time(X509_get0_notBefore(a->cert)) < 0);
  EXPECT(X509_cmp_current_time(X509_get0_notAfter(a->cert)) > 0);
  time_t in29days = time(nullptr) + 29 * 86400, in31days = time(nullptr) + 31 * 86400;
  EXPECT(X509_cmp_time(X509_get0_notAfter(a->cert), &in29days) > 0);
  EXPECT(X509_cmp_time(X509_get0_notAfter(a->cert), &in31days) < 0);
}

TEST(handshake_agrees_on_gcm_keys_in_mirror_image) {
  Peers p;
  p.trustEachOther();
  EXPECT(p.client.state() == DtlsState::New && p.client.timeoutMs() == -1);
  p.connect();
  EXPECT(p.connected());
  expectMirroredKeys(p, 7, 12);
  EXPECT(p.link.largest <= pb::kDtlsMtu);
  EXPECT(p.client.malformed() == 0 && p.server.malformed() == 0);
  EXPECT(p.client.error().empty() && p.server.error().empty());
  EXPECT(ERR_peek_error() == 0);
}

TEST(cm_profile_when_one_side_offers_only_it) {
  Peers cmOnly("SRTP_AES128_CM_SHA1_80", "SRTP_AES128_CM_SHA1_80");
  cmOnly.trustEachOther();
  cmOnly.connect();
  EXPECT(cmOnly.connected());
  expectMirroredKeys(cmOnly, 1, 14);
  Peers serverCmOnly(nullptr, "SRTP_AES128_CM_SHA1_80");
  serverCmOnly.trustEachOther();
  serverCmOnly.connect();
  EXPECT(serverCmOnly.connected());
  expectMirroredKeys(serverCmOnly, 1, 14);
  bool threw = false;
  try {
    DtlsEndpoint bad(cmOnly.clientCert, true, "SRTP_NOT_A_PROFILE");
  } catch (const std::runtime_error&) {
    threw = true;
  }
  EXPECT(threw && ERR_peek_error() == 0);
}

TEST(any_listed_fingerprint_algorithm_and_case_matches) {
  Peers p;
  p.client.addRemoteFingerprint("sha-256", p.clientCert->fingerprintSha256);  // someone else's: ignored
  p.client.addRemoteFingerprint("md5", "00:11");                               // unknown: ignored
  p.client.addRemoteFingerprint("SHA-1", fingerprint(p.serverCert->cert, EVP_sha1(), true));
  p.server.addRemoteFingerprint("Sha-512", fingerprint(p.clientCert->cert, EVP_sha512(), true));
  p.connect();
  EXPECT(p.connected());
}

TEST(wrong_fingerprint_fails_the_verifying_side_and_alerts_the_other) {
  for (bool clientChecksWrong : {true, false}) {
    Peers p;
    DtlsEndpoint& verifier = clientChecksWrong ? p.client : p.server;
    DtlsEndpoint& other = clientChecksWrong ? p.server : p.client;
    auto& verifiedCert = clientChecksWrong ? p.serverCert : p.clientCert;
    auto& verifierCert = clientChecksWrong ? p.clientCert : p.serverCert;
    verifier.addRemoteFingerprint("sha-256", pb::DtlsCertificate::generate()->fingerprintSha256);
    other.addRemoteFingerprint("sha-256", verifierCert->fingerprintSha256);
    p.connect();
    EXPECT(verifier.state() == DtlsState::Failed);
    EXPECT(contains(verifier.error(), "fingerprint"));
    EXPECT(contains(verifier.error(), verifiedCert->fingerprintSha256.c_str()));
    EXPECT(verifier.keys().profile == 0 && verifier.keys().localKey.empty());
    EXPECT(other.state() == DtlsState::Failed);
    EXPECT(contains(other.error(), "bad certificate"));
    EXPECT(ERR_peek_error() == 0);
  }
  Peers none;  // no fingerprint from the SDP at all: nothing can match
  none.server.addRemoteFingerprint("sha-256", none.clientCert->fingerprintSha256);
  none.connect();
  EXPECT(none.client.state() == DtlsState::Failed && contains(none.client.error(), "none of the 0 fingerprint"));
}

TEST(lost_flights_are_retransmitted_on_timeout) {
  // The server's first flight, then its last (CCS + Finished, after which the server is already Connected
  // and must answer the client's retransmitted Finished from its read path).
  for (size_t lost : {0, 1}) {
    Peers p;
    p.trustEachOther();
    p.client.setInitialTimeoutMs(50);
    p.server.setInitialTimeoutMs(50);
    p.link.drop = [lost](bool fromClient, size_t i) { return !fromClient && i == lost; };
    p.connect();
    EXPECT(p.client.state() == DtlsState::Connecting && p.link.fromB.size() == lost + 1);
    EXPECT(p.server.state() == (lost == 0 ? DtlsState::Connecting : DtlsState::Connected));
    long t = p.client.timeoutMs();
    EXPECT(t > 0 && t <= 50);
    auto begin = std::chrono::steady_clock::now();
    for (int round = 0; round < 10 && !p.connected(); round++) {
      long wait = p.client.timeoutMs();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max(wait, 0L) + 2));
      p.client.onTimeout();
      p.server.onTimeout();
      p.link.run();
    }
    EXPECT(p.connected());
    EXPECT(std::chrono::steady_clock::now() - begin < std::chrono::milliseconds(500));
    expectMirroredKeys(p, 7, 12);
    EXPECT(p.client.timeoutMs() == -1 && p.server.timeoutMs() == -1);
  }
}

TEST(flights_fragment_to_the_mtu) {
  // A certificate larger than the MTU forces the Certificate message into several fragments.
  auto big = [] {
    auto c = pb::DtlsCertificate::generate();
    ASN1_IA5STRING* comment = ASN1_IA5STRING_new();
    ASN1_STRING_set(comment, std::string(2500, 'x').c_str(), 2500);
    X509_add1_ext_i2d(c->cert, NID_netscape_comment, comment, 0, 0);
    ASN1_IA5STRING_free(comment);
    X509_sign(c->cert, c->key, EVP_sha256());
    c->fingerprintSha256 = fingerprint(c->cert, EVP_sha256());
    return c;
  };
  Peers p(nullptr, nullptr, big(), big());
  p.trustEachOther();
  p.connect();
  EXPECT(p.connected());
  EXPECT(p.link.largest <= pb::kDtlsMtu);
  EXPECT(p.link.fromA.size() >= 4 && p.link.fromB.size() >= 4);
}

TEST(mutated_handshake_datagrams_never_crash_a_fresh_endpoint) {
  Peers real;
  real.trustEachOther();
  real.connect();
  EXPECT(real.connected());
  size_t fed = 0;
  // Each datagram after the real ones that precede it, to the role that receives it, mutated.
  auto feed = [&](bool toServer, size_t index, const Bytes& mutated) {
    DtlsEndpoint e(toServer ? real.serverCert : real.clientCert, !toServer);
    e.addRemoteFingerprint("sha-256", (toServer ? real.clientCert : real.serverCert)->fingerprintSha256);
    e.start();
    const auto& log = toServer ? real.link.fromA : real.link.fromB;
    for (size_t i = 0; i < index; i++) e.onDatagram(log[i].data(), log[i].size());
    e.onDatagram(mutated.data(), mutated.size());
    Bytes out;
    while (e.takeOutgoing(out)) EXPECT(out.size() <= pb::kDtlsMtu);
    EXPECT(e.state() == DtlsState::Connecting || e.state() == DtlsState::Failed);
    EXPECT(e.malformed() <= index + 1);
    EXPECT(e.state() != DtlsState::Failed || !e.error().empty());
    EXPECT(!contains(e.error(), "peer sent"));  // the logged peer sent no alert: any was ours
    EXPECT(!e.send(reinterpret_cast<const uint8_t*>("x"), 1));
    fed++;
  };
  for (bool toServer : {true, false}) {
    const auto& log = toServer ? real.link.fromA : real.link.fromB;
    for (size_t i = 0; i < log.size(); i++) {
      for (size_t n = 0; n < log[i].size(); n++) feed(toServer, i, Bytes(log[i].begin(), log[i].begin() + n));
      for (size_t at = 0; at < log[i].size(); at++) {
        Bytes flipped = log[i];
        flipped[at] ^= static_cast<uint8_t>(1u << (at % 8));
        feed(toServer, i, flipped);
      }
    }
  }
  EXPECT(fed > 1000);
  EXPECT(ERR_peek_error() == 0);
}

TEST(garbage_and_out_of_state_datagrams_are_counted) {
  Peers p;
  p.trustEachOther();
  const uint8_t hello[] = {22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  p.server.onDatagram(hello, sizeof hello);  // before start()
  EXPECT(p.server.malformed() == 1 && p.server.state() == DtlsState::New);
  p.connect();
  EXPECT(p.connected());
  const uint8_t rtp[] = {0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  p.server.onDatagram(rtp, sizeof rtp);
  p.server.onDatagram(nullptr, 0);
  const uint8_t heartbeat[] = {24, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 0};
  p.server.onDatagram(heartbeat, sizeof heartbeat);
  const uint8_t overlong[] = {23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40, 1, 2};
  p.server.onDatagram(overlong, sizeof overlong);
  EXPECT(p.server.malformed() == 5 && p.server.state() == DtlsState::Connected);
  // A well-formed record that fails authentication: OpenSSL discards it, the association survives.
  EXPECT(p.client.send(reinterpret_cast<const uint8_t*>("abc"), 3));
  Bytes d;
  EXPECT(p.client.takeOutgoing(d));
  d.back() ^= 1;
  p.server.onDatagram(d.data(), d.size());
  EXPECT(p.server.state() == DtlsState::Connected && !p.server.takeApplicationData(d));
}

TEST(application_data_both_ways_then_close_notify) {
  Peers p;
  p.trustEachOther();
  const uint8_t ping[] = {'p', 'i', 'n', 'g'};
  EXPECT(!p.client.send(ping, sizeof ping));  // not connected yet
  p.connect();
  EXPECT(p.connected());
  EXPECT(p.client.send(ping, sizeof ping));
  Bytes big(1100);
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<uint8_t>(i);
  EXPECT(p.server.send(big.data(), big.size()));
  EXPECT(!p.server.send(big.data(), 0) && !p.server.send(big.data(), 16385));
  p.link.run();
  Bytes got;
  EXPECT(p.server.takeApplicationData(got) && got == Bytes(ping, ping + 4));
  EXPECT(p.client.takeApplicationData(got) && got == big);
  EXPECT(!p.client.takeApplicationData(got));
  // Two records in one datagram both arrive, in order.
  Bytes a, b;
  EXPECT(p.client.send(ping, 1) && p.client.send(ping + 1, 3));
  EXPECT(p.client.takeOutgoing(a) && p.client.takeOutgoing(b));
  a.insert(a.end(), b.begin(), b.end());
  p.server.onDatagram(a.data(), a.size());
  EXPECT(p.server.takeApplicationData(got) && got == Bytes(ping, ping + 1));
  EXPECT(p.server.takeApplicationData(got) && got == Bytes(ping + 1, ping + 4));
  EXPECT(p.link.largest <= pb::kDtlsMtu);

  p.client.close();
  EXPECT(p.client.state() == DtlsState::Closed && !p.client.peerClosed());
  p.client.close();  // idempotent
  EXPECT(!p.client.send(ping, 4));
  p.link.run();
  EXPECT(p.server.peerClosed() && p.server.state() == DtlsState::Closed);
  EXPECT(!p.server.send(ping, 4));
  EXPECT(p.client.malformed() == 1);  // the server's answering close_notify arrived after Closed
  EXPECT(p.server.error().empty() && p.client.error().empty());
}

TEST_MAIN
