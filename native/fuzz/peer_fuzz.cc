// libFuzzer: arbitrary datagrams into a peer whose ICE check passed, so STUN, DTLS and SRTP paths all see
// hostile input. Input: [u8 flags][u16 len][bytes]... (flags bit 0: the datagram comes from a stranger).
#include <arpa/inet.h>

#include <cstring>
#include <memory>

#include "../src/peer.h"
#include "../src/stun.h"

namespace {
struct Null : pb::PeerListener {
  void sendTo(const pb::SockAddr&, const uint8_t*, size_t) override {}
  void onMedia(bool, const uint8_t*, size_t) override {}
  void onState(pb::PeerState, const std::string&) override {}
};
pb::SockAddr addr(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(0x7f000001);
  return pb::SockAddr::from(reinterpret_cast<sockaddr*>(&sin));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto cert = pb::DtlsCertificate::generate();
  Null listener;
  pb::PeerCore peer(cert, "srvU", "server-password-0123456789", listener);
  const auto client = addr(4000), stranger = addr(5000);
  uint8_t tx[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t check[256];
  const size_t n = pb::buildStunBindingRequest(check, sizeof check, tx, "srvU:cliU", "server-password-0123456789", 1, true, true, 7);
  peer.onDatagram(client, check, n, 0);
  peer.setRemote("cliU", {{"sha-256", "00:11"}}, size > 0 && (data[0] & 2));
  std::vector<uint8_t> buf;
  size_t at = 0;
  uint64_t now = 0;
  while (at + 3 <= size) {
    const uint8_t flags = data[at];
    size_t len = static_cast<size_t>(data[at + 1]) << 8 | data[at + 2];
    at += 3;
    if (len > size - at) len = size - at;
    buf.assign(data + at, data + at + len);
    at += len;
    peer.onDatagram(flags & 1 ? stranger : client, buf.data(), buf.size(), now += 10);
    peer.tick(now);
  }
  uint8_t rtp[32] = {0x80, 111};
  peer.sendRtp(rtp, sizeof rtp);
  peer.close();
  return 0;
}
