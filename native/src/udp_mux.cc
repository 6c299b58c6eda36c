#include "udp_mux.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ice_lite.h"

namespace pb {

namespace {
// One receive buffer for every mux of the process: libuv fills it and calls back for each datagram before
// the next receive, all on Node's one loop thread, and nothing keeps a pointer into it after the callback.
// recvmmsg takes one 64 KiB slot per message.
constexpr size_t kSlots = 32;
constexpr size_t kSlot = 64 * 1024;
alignas(64) uint8_t gBatchBuffer[kSlots * kSlot];
alignas(64) uint8_t gSingleBuffer[kSlot];
uint64_t loopNow(uv_udp_t* h) { return uv_now(h->loop); }
}  // namespace

UdpMux::UdpMux(uv_loop_t* loop) {
  uv_udp_init_ex(loop, &handle_, AF_UNSPEC | UV_UDP_RECVMMSG);
  handle_.data = this;
}

int UdpMux::bind(const std::string& ip, int port, bool batched) {
  if (bound_ || closed_) return UV_EINVAL;
  sockaddr_storage ss{};
  int r = ip.find(':') != std::string::npos ? uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss))
                                            : uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss));
  if (r != 0) return r;
  r = uv_udp_bind(&handle_, reinterpret_cast<const sockaddr*>(&ss), 0);
  if (r != 0) return r;
  batched_ = batched;
  if (batched) {
    // A shared port carries every session: room for bursts while JS runs.
    int size = 4 << 20;
    uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&handle_), &size);
    size = 4 << 20;
    uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&handle_), &size);
  }
  r = uv_udp_recv_start(&handle_, &UdpMux::onAlloc, &UdpMux::onRecv);
  if (r != 0) return r;
  bound_ = true;
  return 0;
}

int UdpMux::localPort() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_udp_getsockname(&handle_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return SockAddr::from(reinterpret_cast<sockaddr*>(&ss)).port();
}

bool UdpMux::usingRecvmmsg() const { return batched_ && uv_udp_using_recvmmsg(&handle_) != 0; }

void UdpMux::attach(MuxPeer* peer) { byUfrag_[peer->core().localUfrag()] = peer; }

void UdpMux::detach(MuxPeer* peer) {
  auto it = byUfrag_.find(peer->core().localUfrag());
  if (it != byUfrag_.end() && it->second == peer) byUfrag_.erase(it);
  for (auto a = byAddr_.begin(); a != byAddr_.end();) a = a->second == peer ? byAddr_.erase(a) : std::next(a);
  // A batch in progress must not call it back.
  std::replace(dirty_.begin(), dirty_.end(), peer, static_cast<MuxPeer*>(nullptr));
}

void UdpMux::route(const SockAddr& remote, MuxPeer* peer) { byAddr_[remote] = peer; }

bool UdpMux::sendTo(const SockAddr& to, const uint8_t* data, size_t len) {
  if (!bound_ || closed_) return false;
  if (corked_) {
    heldMessages_.push_back({held_.size(), len, to});
    held_.insert(held_.end(), data, data + len);
    return true;
  }
  uv_buf_t b = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(data)), static_cast<unsigned>(len));
  const int r = uv_udp_try_send(&handle_, &b, 1, to.sa());
  if (r < 0) {
    // EAGAIN (socket buffer full) drops the datagram: real-time media is not queued behind itself.
    stats_.sendErrors++;
    return false;
  }
  return true;
}

void UdpMux::flush() {
  corked_ = false;
  const size_t n = heldMessages_.size();
  if (n > 0 && bound_ && !closed_) {
#ifdef __linux__
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&handle_), &fd) == 0) {
      constexpr size_t kMax = 64;
      mmsghdr msgs[kMax];
      iovec iov[kMax];
      for (size_t i = 0; i < n;) {
        const size_t k = std::min(kMax, n - i);
        for (size_t j = 0; j < k; j++) {
          const Held& h = heldMessages_[i + j];
          iov[j] = {held_.data() + h.offset, h.length};
          msgs[j] = {};
          msgs[j].msg_hdr.msg_iov = &iov[j];
          msgs[j].msg_hdr.msg_iovlen = 1;
          msgs[j].msg_hdr.msg_name = const_cast<sockaddr*>(h.to.sa());
          msgs[j].msg_hdr.msg_namelen = h.to.family() == 6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        }
        const int r = sendmmsg(fd, msgs, static_cast<unsigned>(k), MSG_DONTWAIT);
        stats_.sendCalls++;
        if (r > 0) {
          i += static_cast<size_t>(r);
        } else if (r < 0 && errno == EINTR) {
          continue;
        } else {
          // The first datagram cannot go (EAGAIN: socket buffer full): dropped, as sendTo() drops.
          stats_.sendErrors++;
          i++;
        }
      }
    } else {
      stats_.sendErrors += n;
    }
#else
    for (const Held& h : heldMessages_) {
      uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(held_.data() + h.offset), static_cast<unsigned>(h.length));
      if (uv_udp_try_send(&handle_, &b, 1, h.to.sa()) < 0) stats_.sendErrors++;
      stats_.sendCalls++;
    }
#endif
  }
  held_.clear();
  heldMessages_.clear();
}

void UdpMux::close() {
  if (closed_) return;
  closed_ = true;
  byUfrag_.clear();
  byAddr_.clear();
  dirty_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), [](uv_handle_t* h) { delete static_cast<UdpMux*>(h->data); });
}

void UdpMux::onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<UdpMux*>(h->data);
  if (self->batched_) *buf = uv_buf_init(reinterpret_cast<char*>(gBatchBuffer), sizeof gBatchBuffer);
  else *buf = uv_buf_init(reinterpret_cast<char*>(gSingleBuffer), sizeof gSingleBuffer);
}

void UdpMux::onRecv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned flags) {
  auto* self = static_cast<UdpMux*>(h->data);
  if (self->closed_) return;
  if (nread > 0 && addr != nullptr) {
    if (flags & UV_UDP_PARTIAL) self->stats_.truncated++;
    else self->deliver(SockAddr::from(addr), reinterpret_cast<uint8_t*>(buf->base), static_cast<size_t>(nread));
  }
  // recvmmsg: one callback per message flagged MMSG_CHUNK, then one with no address; plain recv: one.
  if (!(flags & UV_UDP_MMSG_CHUNK)) self->endBatch();
}

void UdpMux::deliver(const SockAddr& from, uint8_t* data, size_t len) {
  stats_.datagrams++;
  stats_.bytes += len;
  MuxPeer* peer = nullptr;
  auto it = byAddr_.find(from);
  if (it != byAddr_.end()) peer = it->second;
  else if (len > 0 && data[0] < 4) {
    const std::string_view ufrag = stunLocalUfrag(data, len);
    auto u = ufrag.empty() ? byUfrag_.end() : byUfrag_.find(std::string(ufrag));
    if (u != byUfrag_.end()) peer = u->second;
  }
  if (!peer) {
    stats_.unrouted++;
    return;
  }
  peer->core().onDatagram(from, data, len, loopNow(&handle_));
  if (!peer->dirty) {
    peer->dirty = true;
    dirty_.push_back(peer);
  }
}

void UdpMux::endBatch() {
  if (dirty_.empty()) return;
  stats_.batches++;
  // The list may be appended to or nulled (detach) while peers call out: index, never iterators.
  for (size_t i = 0; i < dirty_.size(); i++) {
    MuxPeer* p = dirty_[i];
    if (!p) continue;
    p->dirty = false;
    p->onBatchEnd();
    if (closed_) return;
  }
  dirty_.clear();
}

}  // namespace pb
