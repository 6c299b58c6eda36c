// libFuzzer target for the DTLS endpoint. The first byte picks the mode:
//   0: a server is fed the input as datagrams, each [2-byte big-endian length][bytes] (the last: the rest);
//   1: the same into a client that has sent its ClientHello;
//   2: a real client and server handshake whose datagrams the input corrupts in flight (4-byte edits), so
//      that the fuzzer reaches every later flight, application data and close_notify without a corpus.
// Datagrams out must stay within the MTU; states and counters must stay consistent.
#include <algorithm>

#include "../src/dtls.h"

static std::shared_ptr<pb::DtlsCertificate> gCert, gPeerCert;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gCert = pb::DtlsCertificate::generate();
  gPeerCert = pb::DtlsCertificate::generate();
  return 0;
}

static void drain(pb::DtlsEndpoint& e) {
  std::vector<uint8_t> d;
  while (e.takeOutgoing(d))
    if (d.size() > pb::kDtlsMtu) __builtin_trap();
  while (e.takeApplicationData(d)) {
  }
  if (e.state() == pb::DtlsState::Failed && e.error().empty()) __builtin_trap();
}

static void rawDatagrams(bool client, const uint8_t* p, size_t n) {
  pb::DtlsEndpoint e(gCert, client);
  e.addRemoteFingerprint("sha-256", gPeerCert->fingerprintSha256);
  e.start();
  drain(e);
  uint64_t datagrams = 0;
  while (n > 0) {
    size_t len = n >= 2 ? std::min<size_t>(p[0] << 8 | p[1], n - 2) : n;
    const uint8_t* d = n >= 2 ? p + 2 : p;
    e.onDatagram(d, len);
    datagrams++;
    drain(e);
    n -= d + len - p;
    p = d + len;
  }
  if (e.malformed() > datagrams) __builtin_trap();
  e.timeoutMs();
  e.onTimeout();
  const uint8_t x = 0;
  e.send(&x, 1);
  e.close();
  drain(e);
}

/** Edits of 4 bytes: [op << 4 | datagram index mod 16][offset, 2 bytes][value]; ops xor, truncate, drop, set. */
static void corruptedHandshake(const uint8_t* p, size_t n) {
  pb::DtlsEndpoint c(gPeerCert, true), s(gCert, false);
  c.addRemoteFingerprint("sha-256", gCert->fingerprintSha256);
  s.addRemoteFingerprint("sha-256", gPeerCert->fingerprintSha256);
  s.start();
  c.start();
  size_t index = 0;
  std::vector<uint8_t> d;
  auto pump = [&] {
    for (int round = 0; round < 12; round++) {
      bool moved = false;
      for (int side = 0; side < 2; side++) {
        pb::DtlsEndpoint& from = side ? s : c;
        pb::DtlsEndpoint& to = side ? c : s;
        while (from.takeOutgoing(d)) {
          if (d.size() > pb::kDtlsMtu) __builtin_trap();
          moved = true;
          bool drop = false;
          for (size_t i = 0; i + 4 <= n; i += 4) {
            if ((p[i] & 15) != index % 16 || d.empty()) continue;
            size_t at = (p[i + 1] << 8 | p[i + 2]) % d.size();
            switch (p[i] >> 4 & 3) {
              case 0: d[at] ^= p[i + 3]; break;
              case 1: d.resize(at); break;
              case 2: drop = true; break;
              case 3: d[at] = p[i + 3]; break;
            }
          }
          index++;
          if (!drop) to.onDatagram(d.data(), d.size());
        }
        while (to.takeApplicationData(d)) {
        }
      }
      if (!moved) return;
    }
  };
  pump();
  if (c.state() == pb::DtlsState::Connected && s.state() == pb::DtlsState::Connected &&
      (c.keys().localKey != s.keys().remoteKey || c.keys().remoteSalt != s.keys().localSalt))
    __builtin_trap();
  c.send(p, std::min<size_t>(n, 1000));
  s.send(p, std::min<size_t>(n, 1000));
  pump();
  c.close();
  pump();
  s.close();
  pump();
  drain(c);
  drain(s);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 3) {
    case 0: rawDatagrams(false, data + 1, size - 1); break;
    case 1: rawDatagrams(true, data + 1, size - 1); break;
    case 2: corruptedHandshake(data + 1, size - 1); break;
  }
  return 0;
}
