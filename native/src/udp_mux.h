// One UDP socket on the libuv loop Node runs, shared by any number of PeerCores: a datagram goes to the
// peer its 5-tuple is routed to, else (STUN only) to the peer whose local ufrag its USERNAME names. The
// per-session port mode is the same mux with one peer. Receive is batched with recvmmsg where libuv has it;
// each peer hears "batch end" once per batch it got data in (the addon crosses into JS there, not per packet).
#pragma once
#include <uv.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "net.h"
#include "peer.h"

namespace pb {

class MuxPeer {
 public:
  virtual ~MuxPeer() = default;
  virtual PeerCore& core() = 0;
  /** Called once after a receive batch that delivered to this peer. */
  virtual void onBatchEnd() = 0;
  bool dirty = false;
};

struct MuxStats {
  uint64_t datagrams = 0, bytes = 0, batches = 0, unrouted = 0, truncated = 0, sendErrors = 0;
  uint64_t sendCalls = 0;  // system calls that sent held datagrams (flush)
};

class UdpMux {
 public:
  /** Heap-only: close() frees it after libuv has closed the handle. */
  explicit UdpMux(uv_loop_t* loop);
  /** Binds and starts receiving. 0, or a libuv error code (UV_EADDRINUSE…). */
  int bind(const std::string& ip, int port, bool batched);
  int localPort() const;
  void attach(MuxPeer* peer);
  void detach(MuxPeer* peer);
  void route(const SockAddr& remote, MuxPeer* peer);
  bool sendTo(const SockAddr& to, const uint8_t* data, size_t len);
  /**
   * Holds sends until flush(), which hands them to the kernel in as few system calls as it can (sendmmsg
   * on Linux): the forwarding path corks every socket it writes a batch's copies to.
   */
  void cork() { corked_ = true; }
  bool corked() const { return corked_; }
  void flush();
  void close();
  const MuxStats& stats() const { return stats_; }
  bool usingRecvmmsg() const;
  size_t peerCount() const { return byUfrag_.size(); }

 private:
  ~UdpMux() = default;
  static void onAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void onRecv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned flags);
  void deliver(const SockAddr& from, uint8_t* data, size_t len);
  void endBatch();

  uv_udp_t handle_{};
  bool bound_ = false;
  bool closed_ = false;
  bool batched_ = false;
  std::unordered_map<std::string, MuxPeer*> byUfrag_;
  std::unordered_map<SockAddr, MuxPeer*, SockAddrHash> byAddr_;
  std::vector<MuxPeer*> dirty_;
  MuxStats stats_;
  struct Held {
    size_t offset, length;
    SockAddr to;
  };
  bool corked_ = false;
  std::vector<uint8_t> held_;
  std::vector<Held> heldMessages_;
};

}  // namespace pb
