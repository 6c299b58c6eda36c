// DTLS 1.2 with use_srtp (RFC 6347, RFC 5764) for WebRTC, on OpenSSL 3. Sans-IO: datagrams and timer
// expiries in, datagrams, SRTP keys and application data out; the caller owns sockets and clocks. The peer
// is authenticated by the certificate fingerprint from its SDP (RFC 8122), not by a CA chain.
#pragma once
#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pb {

/** Every datagram the endpoint emits fits this (IPv6 minimum 1280 less IP/UDP headers and TURN headroom). */
constexpr size_t kDtlsMtu = 1200;

/** A self-signed ECDSA P-256 certificate, CN "patchbay", random 64-bit serial, valid now-1 day to now+30 days. */
struct DtlsCertificate {
  /** Throws std::runtime_error on failure. */
  static std::shared_ptr<DtlsCertificate> generate();
  DtlsCertificate() = default;
  DtlsCertificate(const DtlsCertificate&) = delete;
  DtlsCertificate& operator=(const DtlsCertificate&) = delete;
  ~DtlsCertificate();
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  /** "AB:CD:...": upper-case hex pairs joined by ':', as an SDP a=fingerprint carries it. */
  std::string fingerprintSha256;
};

enum class DtlsState { New, Connecting, Connected, Failed, Closed };

/** SRTP master keys from the "EXTRACTOR-dtls_srtp" exporter (RFC 5764 §4.2), split by role. */
struct DtlsSrtpKeys {
  /** The use_srtp profile id: 1 = SRTP_AES128_CM_SHA1_80, 7 = SRTP_AEAD_AES_128_GCM. */
  uint16_t profile = 0;
  /** Keys are 16 bytes; salts 14 (AES-CM) or 12 (GCM). */
  std::vector<uint8_t> localKey, localSalt, remoteKey, remoteSalt;
};

class DtlsEndpoint {
 public:
  /**
   * `srtpProfiles` overrides the offered use_srtp list ("SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80" by
   * default, preference order). Throws std::runtime_error when OpenSSL refuses the configuration (such as
   * an unknown profile name), std::invalid_argument without a certificate.
   */
  DtlsEndpoint(std::shared_ptr<DtlsCertificate> cert, bool client, const char* srtpProfiles = nullptr);
  ~DtlsEndpoint();
  DtlsEndpoint(const DtlsEndpoint&) = delete;
  DtlsEndpoint& operator=(const DtlsEndpoint&) = delete;

  /**
   * A fingerprint from the peer's SDP: `algorithm` "sha-1" | "sha-224" | "sha-256" | "sha-384" | "sha-512",
   * `value` hex pairs joined by ':' (both case-insensitive). The peer's certificate must match at least one;
   * an unknown algorithm or a malformed value is kept but can never match.
   */
  void addRemoteFingerprint(const std::string& algorithm, const std::string& value);
  /**
   * First retransmission timeout, doubling up to 60 s (OpenSSL's default starts at 1 s). Set before start().
   * The handshake fails after 12 retransmissions of a flight.
   */
  void setInitialTimeoutMs(unsigned ms);
  /** New → Connecting; a client queues its ClientHello. */
  void start();
  /** One received UDP datagram (it may hold several records). Never throws; garbage is dropped and counted. */
  void onDatagram(const uint8_t* data, size_t len);
  /** Milliseconds until the retransmission timer fires (0: due now), -1 when none runs. */
  long timeoutMs();
  /** Call when timeoutMs() has elapsed: retransmits the last flight, or fails after too many. */
  void onTimeout();
  /** Pops the next datagram to send (one per call, ≤ kDtlsMtu bytes); false when none. */
  bool takeOutgoing(std::vector<uint8_t>& datagram);
  /** Sends close_notify when connected; → Closed. Idempotent; a Failed endpoint stays Failed. */
  void close();

  DtlsState state() const;
  /** Why the endpoint Failed. */
  const std::string& error() const;
  /** Valid once Connected. */
  const DtlsSrtpKeys& keys() const;
  /** The peer sent close_notify (the state is then Closed). */
  bool peerClosed() const;
  /** Datagrams dropped: not DTLS records, received before start() or after Failed/Closed. */
  uint64_t malformed() const;

  /** Application data (SCTP for data channels): false when not connected or `len` is 0 or above 16384. */
  bool send(const uint8_t* data, size_t len);
  /** Pops the next received application-data record; false when none. */
  bool takeApplicationData(std::vector<uint8_t>& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb
