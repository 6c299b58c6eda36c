// A UDP 5-tuple's remote half, comparable and hashable (the mux's routing key).
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

namespace pb {

struct SockAddr {
  sockaddr_storage ss{};

  static SockAddr from(const sockaddr* sa) {
    SockAddr a;
    if (sa->sa_family == AF_INET) std::memcpy(&a.ss, sa, sizeof(sockaddr_in));
    else if (sa->sa_family == AF_INET6) std::memcpy(&a.ss, sa, sizeof(sockaddr_in6));
    return a;
  }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  bool valid() const { return ss.ss_family == AF_INET || ss.ss_family == AF_INET6; }
  int family() const { return ss.ss_family == AF_INET6 ? 6 : 4; }
  const uint8_t* addr() const {
    if (ss.ss_family == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr.s6_addr;
    return reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr);
  }
  uint16_t port() const {
    const uint16_t p = ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
                                                : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port;
    return ntohs(p);
  }
  bool operator==(const SockAddr& o) const {
    if (ss.ss_family != o.ss.ss_family || port() != o.port()) return false;
    return std::memcmp(addr(), o.addr(), family() == 6 ? 16 : 4) == 0;
  }
  bool operator!=(const SockAddr& o) const { return !(*this == o); }
};

struct SockAddrHash {
  size_t operator()(const SockAddr& a) const {
    size_t h = a.port();
    const uint8_t* p = a.addr();
    for (int i = 0, n = a.family() == 6 ? 16 : 4; i < n; i++) h = h * 131 + p[i];
    return std::hash<size_t>()(h);
  }
};

}  // namespace pb
