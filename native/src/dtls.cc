#include "dtls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <stdexcept>

namespace pb {

namespace {

// ECDHE only (forward secrecy); the RSA suites are for peers whose certificate is RSA.
constexpr const char* kCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";
constexpr const char* kSrtpProfiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";
constexpr size_t kMaxPlain = 16384;  // SSL3_RT_MAX_PLAIN_LENGTH: the largest record SSL_write takes
constexpr size_t kRecordHeader = 13;
constexpr unsigned kMaxTimeoutUs = 60000000;

std::string hexPairs(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    if (i) s += ':';
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

int hexDigit(char c) {
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/** "ab:CD:01" → bytes; anything else (odd digits, other separators, empty) → false. */
bool parseHexPairs(const std::string& s, std::vector<uint8_t>& out) {
  if (s.size() % 3 != 2) return false;
  for (size_t i = 0; i < s.size(); i += 3) {
    int hi = hexDigit(s[i]), lo = hexDigit(s[i + 1]);
    if (hi < 0 || lo < 0 || (i + 2 < s.size() && s[i + 2] != ':')) return false;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

/** The hash function names of RFC 8122 §5 that OpenSSL has (md5 and md2 are not accepted: too weak). */
const EVP_MD* digestNamed(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name == "sha-1") return EVP_sha1();
  if (name == "sha-224") return EVP_sha224();
  if (name == "sha-256") return EVP_sha256();
  if (name == "sha-384") return EVP_sha384();
  if (name == "sha-512") return EVP_sha512();
  return nullptr;
}

/**
 * DTLS record headers (RFC 6347 §4.1) back to back, each body inside the datagram, content types 20–23.
 * OpenSSL silently discards such garbage; refusing it here lets it be counted, and keeps the bytes of one
 * datagram from ever being read together with the next.
 */
bool wellFormedRecords(const uint8_t* p, size_t len) {
  if (!p || len == 0 || len > 65535) return false;
  for (size_t off = 0; off < len;) {
    if (len - off < kRecordHeader) return false;
    const uint8_t* r = p + off;
    if (r[0] < 20 || r[0] > 23 || r[1] != 0xFE || (r[2] != 0xFF && r[2] != 0xFD)) return false;
    size_t body = static_cast<size_t>(r[11]) << 8 | r[12];
    if (body > len - off - kRecordHeader) return false;
    off += kRecordHeader + body;
  }
  return true;
}

/** The earliest queued OpenSSL reason (the root cause), or `fallback`. */
std::string opensslReason(const char* fallback) {
  unsigned long code = ERR_peek_error();
  const char* reason = code ? ERR_reason_error_string(code) : nullptr;
  return reason ? reason : fallback;
}

// The write side is a queue of datagrams: a memory BIO would concatenate them. During the handshake OpenSSL
// puts a buffering BIO in front of this one and flushes it once per datagram (sizing records so that what
// is buffered plus the next record fits the MTU), so one write here is one datagram.
using DatagramQueue = std::deque<std::vector<uint8_t>>;

int queueWrite(BIO* bio, const char* data, int len) noexcept {
  if (len <= 0) return 0;
  auto* q = static_cast<DatagramQueue*>(BIO_get_data(bio));
  q->emplace_back(reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + len);
  return len;
}

long queueCtrl(BIO*, int cmd, long, void*) noexcept {
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // the buffering BIO's flush fails the write unless its next BIO's flush says 1
    case BIO_CTRL_DGRAM_SET_CONNECTED:
      return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
      return kDtlsMtu;
    default:
      // WPENDING/PENDING 0: nothing is held back (a non-zero value would shrink the next record);
      // GET_MTU_OVERHEAD 0: the MTU set is the DTLS payload; GET_PEER, MTU_EXCEEDED: no socket, never.
      return 0;
  }
}

BIO_METHOD* queueMethod() {
  // Created once: BIO type indexes are a small global pool, and the method holds no per-endpoint state.
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "patchbay datagram queue");
    if (m && (BIO_meth_set_write(m, queueWrite) != 1 || BIO_meth_set_ctrl(m, queueCtrl) != 1)) {
      BIO_meth_free(m);
      m = nullptr;
    }
    return m;
  }();
  return method;
}

}  // namespace

DtlsCertificate::~DtlsCertificate() {
  X509_free(cert);
  EVP_PKEY_free(key);
}

std::shared_ptr<DtlsCertificate> DtlsCertificate::generate() {
  auto c = std::make_shared<DtlsCertificate>();
  ERR_clear_error();
  uint64_t serial = 0;
  X509_NAME* name = nullptr;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdLen = 0;
  bool ok = (c->key = EVP_EC_gen("P-256")) && (c->cert = X509_new()) &&
            RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) == 1 &&
            X509_set_version(c->cert, X509_VERSION_3) == 1 &&
            ASN1_INTEGER_set_uint64(X509_get_serialNumber(c->cert), serial ? serial : 1) == 1 &&
            (name = X509_get_subject_name(c->cert)) &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("patchbay"),
                                       -1, -1, 0) == 1 &&
            X509_set_issuer_name(c->cert, name) == 1 && X509_gmtime_adj(X509_getm_notBefore(c->cert), -86400) &&
            X509_gmtime_adj(X509_getm_notAfter(c->cert), 30L * 86400) && X509_set_pubkey(c->cert, c->key) == 1 &&
            X509_sign(c->cert, c->key, EVP_sha256()) > 0 && X509_digest(c->cert, EVP_sha256(), md, &mdLen) == 1;
  if (!ok) {
    std::string reason = opensslReason("unknown error");
    ERR_clear_error();
    throw std::runtime_error("DTLS certificate generation failed: " + reason);
  }
  c->fingerprintSha256 = hexPairs(md, mdLen);
  return c;
}

struct DtlsEndpoint::Impl {
  struct Fingerprint {
    std::string algorithm;
    const EVP_MD* md;  // null: an algorithm we do not know, never matches
    std::vector<uint8_t> value;
  };

  std::shared_ptr<DtlsCertificate> cert;
  bool client = false;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // owned by ssl
  DatagramQueue outgoing, appData;
  std::vector<Fingerprint> remote;
  DtlsState state = DtlsState::New;
  std::string error;
  std::string why;  // a reason found inside an OpenSSL callback, reported when the call it ran under fails
  DtlsSrtpKeys keys;
  bool peerClosed = false;
  uint64_t malformed = 0;
  unsigned initialTimeoutUs = 1000000;

  ~Impl() {
    SSL_free(ssl);  // frees both BIOs
    SSL_CTX_free(ctx);
  }

  static Impl* of(const SSL* ssl) { return static_cast<Impl*>(SSL_get_app_data(ssl)); }

  // Any chain is acceptable (self-signed, expired, unknown issuer): the SDP fingerprint is the check, made
  // here so that a mismatch aborts the handshake with a bad_certificate alert before any key is derived.
  static int verify(int, X509_STORE_CTX* store) noexcept {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (ssl && leaf && of(ssl)->peerMatches(leaf)) return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
  }

  static unsigned timer(SSL* ssl, unsigned previousUs) noexcept {
    return previousUs == 0 ? of(ssl)->initialTimeoutUs : std::min(previousUs * 2, kMaxTimeoutUs);
  }

  static void info(const SSL* ssl, int where, int alert) noexcept {
    // SSL_CB_READ_ALERT is two bits, one of them shared with SSL_CB_WRITE_ALERT (the alerts we send).
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (alert >> 8) == SSL3_AL_FATAL && of(ssl)->why.empty())
      of(ssl)->why = std::string("peer sent fatal alert ") + SSL_alert_desc_string_long(alert);
  }

  bool peerMatches(X509* peer) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    for (const auto& f : remote)
      if (f.md && X509_digest(peer, f.md, md, &n) == 1 && std::equal(md, md + n, f.value.begin(), f.value.end()))
        return true;
    std::string offered;
    for (const auto& f : remote) offered += (offered.empty() ? "" : ", ") + f.algorithm;
    why = "peer certificate fingerprint (sha-256 " +
          (X509_digest(peer, EVP_sha256(), md, &n) == 1 ? hexPairs(md, n) : "?") + ") matches none of the " +
          std::to_string(remote.size()) + " fingerprint(s) from its SDP" +
          (offered.empty() ? "" : " (" + offered + ")");
    return false;
  }

  void fail(const std::string& reason) {
    if (state != DtlsState::Failed && state != DtlsState::Closed) {
      state = DtlsState::Failed;
      error = reason;
    }
    ERR_clear_error();
  }

  /** After an SSL_* call returned `ret` ≤ 0: waiting for input is normal, close_notify closes, else Failed. */
  void onSslResult(int ret, const char* what) {
    int code = SSL_get_error(ssl, ret);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return;
    if (code == SSL_ERROR_ZERO_RETURN) {
      peerClosed = true;
      if (state == DtlsState::Connected) SSL_shutdown(ssl);  // answer with our own close_notify
      state = DtlsState::Closed;
      ERR_clear_error();
      return;
    }
    // With memory BIOs SSL_ERROR_SYSCALL is no I/O error: OpenSSL gave up on the input without a reason
    // (e.g. a fragment whose message length it cannot reassemble), and the handshake cannot recover.
    const char* fallback =
        code == SSL_ERROR_SYSCALL ? "input rejected without a reason (SSL_ERROR_SYSCALL)" : "unknown error";
    fail(std::string(what) + ": " + (why.empty() ? opensslReason(fallback) : why));
  }

  void handshake() {
    ERR_clear_error();
    int ret = SSL_do_handshake(ssl);
    if (ret == 1) return finishHandshake();
    onSslResult(ret, "DTLS handshake failed");
  }

  void finishHandshake() {
    // verify() already checked the certificate; this covers a handshake that did not run it.
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (!peer || !peerMatches(peer)) return fail("DTLS handshake failed: " + (peer ? why : "no peer certificate"));
    const SRTP_PROTECTION_PROFILE* p = SSL_get_selected_srtp_profile(ssl);
    if (!p || (p->id != SRTP_AES128_CM_SHA1_80 && p->id != SRTP_AEAD_AES_128_GCM))
      return fail("DTLS peer negotiated no supported SRTP profile (use_srtp)");
    const size_t saltLen = p->id == SRTP_AEAD_AES_128_GCM ? 12 : 14;
    unsigned char m[2 * (16 + 14)];
    const size_t total = 2 * (16 + saltLen);
    static const char kLabel[] = "EXTRACTOR-dtls_srtp";
    if (SSL_export_keying_material(ssl, m, total, kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1)
      return fail("DTLS-SRTP key export failed: " + opensslReason("unknown error"));
    // RFC 5764 §4.2: client_write_key | server_write_key | client_write_salt | server_write_salt.
    const unsigned char* key[2] = {m, m + 16};
    const unsigned char* salt[2] = {m + 32, m + 32 + saltLen};
    const int local = client ? 0 : 1, peerSide = 1 - local;
    keys.profile = static_cast<uint16_t>(p->id);
    keys.localKey.assign(key[local], key[local] + 16);
    keys.remoteKey.assign(key[peerSide], key[peerSide] + 16);
    keys.localSalt.assign(salt[local], salt[local] + saltLen);
    keys.remoteSalt.assign(salt[peerSide], salt[peerSide] + saltLen);
    OPENSSL_cleanse(m, sizeof m);
    state = DtlsState::Connected;
  }

  /** Drains the records left in the datagram: application data, alerts, a peer's retransmitted Finished. */
  void readRecords() {
    unsigned char buf[kMaxPlain];
    while (state == DtlsState::Connected) {
      ERR_clear_error();
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return onSslResult(n, "DTLS read failed");
      appData.emplace_back(buf, buf + n);
    }
  }
};

DtlsEndpoint::DtlsEndpoint(std::shared_ptr<DtlsCertificate> cert, bool client, const char* srtpProfiles)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.cert = std::move(cert);
  s.client = client;
  if (!s.cert || !s.cert->cert || !s.cert->key) throw std::invalid_argument("DtlsEndpoint needs a certificate");
  ERR_clear_error();
  // One SSL_CTX per endpoint: no state shared between associations, and nothing global to tear down.
  bool ok =
      (s.ctx = SSL_CTX_new(DTLS_method())) && SSL_CTX_set_min_proto_version(s.ctx, DTLS1_2_VERSION) == 1 &&
      SSL_CTX_set_max_proto_version(s.ctx, DTLS1_2_VERSION) == 1 && SSL_CTX_set_cipher_list(s.ctx, kCiphers) == 1 &&
      SSL_CTX_set1_groups_list(s.ctx, "X25519:P-256") == 1 &&
      SSL_CTX_set_tlsext_use_srtp(s.ctx, srtpProfiles ? srtpProfiles : kSrtpProfiles) == 0 &&  // 0 = success
      SSL_CTX_use_certificate(s.ctx, s.cert->cert) == 1 && SSL_CTX_use_PrivateKey(s.ctx, s.cert->key) == 1;
  if (ok) {
    // NO_QUERY_MTU: our MTU stays (there is no socket to ask); no tickets, cache or renegotiation: each
    // association is one full handshake, and verify() runs on every one.
    SSL_CTX_set_options(s.ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(s.ctx, SSL_SESS_CACHE_OFF);
    // A server with SSL_VERIFY_PEER sends CertificateRequest; FAIL_IF_NO_PEER_CERT refuses a client without one.
    SSL_CTX_set_verify(s.ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, &Impl::verify);
  }
  BIO* wbio = nullptr;
  ok = ok && (s.ssl = SSL_new(s.ctx)) && (s.rbio = BIO_new(BIO_s_mem())) && queueMethod() &&
       (wbio = BIO_new(queueMethod()));
  if (!ok) {
    BIO_free(s.rbio);  // not yet owned by the SSL
    std::string reason = opensslReason("unknown error");
    ERR_clear_error();
    throw std::runtime_error("DTLS setup failed: " + reason);
  }
  SSL_set_app_data(s.ssl, &s);
  SSL_set_info_callback(s.ssl, &Impl::info);
  DTLS_set_timer_cb(s.ssl, &Impl::timer);
  BIO_set_mem_eof_return(s.rbio, -1);  // empty input reads as "retry", not EOF
  BIO_set_data(wbio, &s.outgoing);
  BIO_set_init(wbio, 1);
  SSL_set_bio(s.ssl, s.rbio, wbio);
  SSL_set_mtu(s.ssl, kDtlsMtu);  // after the BIOs: the minimum it checks against asks the write BIO
  ERR_clear_error();
}

DtlsEndpoint::~DtlsEndpoint() = default;

void DtlsEndpoint::addRemoteFingerprint(const std::string& algorithm, const std::string& value) {
  Impl::Fingerprint f{algorithm, digestNamed(algorithm), {}};
  if (!parseHexPairs(value, f.value) || (f.md && f.value.size() != static_cast<size_t>(EVP_MD_get_size(f.md))))
    f.md = nullptr;
  impl_->remote.push_back(std::move(f));
}

void DtlsEndpoint::setInitialTimeoutMs(unsigned ms) { impl_->initialTimeoutUs = std::clamp(ms, 1u, 60000u) * 1000; }

void DtlsEndpoint::start() {
  Impl& s = *impl_;
  if (s.state != DtlsState::New) return;
  s.state = DtlsState::Connecting;
  if (s.client) {
    SSL_set_connect_state(s.ssl);
    s.handshake();  // queues the ClientHello
  } else {
    SSL_set_accept_state(s.ssl);
  }
}

void DtlsEndpoint::onDatagram(const uint8_t* data, size_t len) {
  Impl& s = *impl_;
  if ((s.state != DtlsState::Connecting && s.state != DtlsState::Connected) || !wellFormedRecords(data, len) ||
      BIO_write(s.rbio, data, static_cast<int>(len)) != static_cast<int>(len)) {
    s.malformed++;
    ERR_clear_error();
    return;
  }
  if (s.state == DtlsState::Connecting) s.handshake();
  if (s.state == DtlsState::Connected) s.readRecords();
  (void)BIO_reset(s.rbio);  // whatever OpenSSL did not read (it failed, or the datagram overflowed its buffer)
}

long DtlsEndpoint::timeoutMs() {
  Impl& s = *impl_;
  timeval tv{};
  if ((s.state != DtlsState::Connecting && s.state != DtlsState::Connected) || DTLSv1_get_timeout(s.ssl, &tv) != 1)
    return -1;
  return static_cast<long>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
}

void DtlsEndpoint::onTimeout() {
  Impl& s = *impl_;
  if (s.state != DtlsState::Connecting && s.state != DtlsState::Connected) return;
  ERR_clear_error();
  // 0: the timer had not expired (a no-op); 1: the flight went out again; -1: too many retransmissions.
  if (DTLSv1_handle_timeout(s.ssl) < 0) s.fail("DTLS handshake timed out: " + opensslReason("no response"));
  ERR_clear_error();
}

bool DtlsEndpoint::takeOutgoing(std::vector<uint8_t>& datagram) {
  auto& q = impl_->outgoing;
  if (q.empty()) return false;
  datagram = std::move(q.front());
  q.pop_front();
  return true;
}

void DtlsEndpoint::close() {
  Impl& s = *impl_;
  if (s.state == DtlsState::Failed || s.state == DtlsState::Closed) return;
  if (s.state == DtlsState::Connected) {
    ERR_clear_error();
    SSL_shutdown(s.ssl);
    ERR_clear_error();
  }
  s.state = DtlsState::Closed;
}

DtlsState DtlsEndpoint::state() const { return impl_->state; }
const std::string& DtlsEndpoint::error() const { return impl_->error; }
const DtlsSrtpKeys& DtlsEndpoint::keys() const { return impl_->keys; }
bool DtlsEndpoint::peerClosed() const { return impl_->peerClosed; }
uint64_t DtlsEndpoint::malformed() const { return impl_->malformed; }

bool DtlsEndpoint::send(const uint8_t* data, size_t len) {
  Impl& s = *impl_;
  if (s.state != DtlsState::Connected || !data || len == 0 || len > kMaxPlain) return false;
  ERR_clear_error();
  int n = SSL_write(s.ssl, data, static_cast<int>(len));
  if (n == static_cast<int>(len)) return true;
  s.onSslResult(n, "DTLS write failed");
  return false;
}

bool DtlsEndpoint::takeApplicationData(std::vector<uint8_t>& out) {
  auto& q = impl_->appData;
  if (q.empty()) return false;
  out = std::move(q.front());
  q.pop_front();
  return true;
}

}  // namespace pb
