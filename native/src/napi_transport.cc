// Node-API surface of the native transport: UdpSocket (a UdpMux) and Peer (a PeerCore on a socket).
// JS hears from a peer once per receive batch: one Buffer holding every packet that arrived for it
// ([u16 length][u8 kind 0=RTP 1=RTCP 2=DTLS application data][u8 0][bytes]...), so the boundary is crossed per batch, not per packet.
#include "napi_transport.h"

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dtls.h"
#include "forward.h"
#include "napi_client.h"
#include "peer.h"
#include "peer_client.h"
#include "udp_mux.h"

namespace pb {
namespace {

/** One certificate per process (generated on first use); its fingerprint goes into every answer. */
std::shared_ptr<DtlsCertificate> processCertificate() {
  static std::shared_ptr<DtlsCertificate> cert = DtlsCertificate::generate();
  return cert;
}

uv_loop_t* loopOf(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) throw Napi::Error::New(env, "no libuv loop");
  return loop;
}

class NativeUdpSocket : public Napi::ObjectWrap<NativeUdpSocket> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "UdpSocket",
                       {InstanceMethod("bind", &NativeUdpSocket::Bind), InstanceMethod("close", &NativeUdpSocket::Close),
                        InstanceMethod("stats", &NativeUdpSocket::Stats)});
  }
  explicit NativeUdpSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeUdpSocket>(info) {
    mux_ = new UdpMux(loopOf(info.Env()));
  }
  ~NativeUdpSocket() override { closeMux(); }
  UdpMux* mux() { return mux_; }

 private:
  /** bind(ip, port, batched) → the bound port; throws an Error whose `code` is libuv's (EADDRINUSE…). */
  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!mux_) throw Napi::Error::New(env, "socket closed");
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "bind(ip, port, batched)");
    const bool batched = info.Length() > 2 && info[2].ToBoolean().Value();
    const int r = mux_->bind(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value(), batched);
    if (r != 0) {
      Napi::Error e = Napi::Error::New(env, std::string("bind: ") + uv_strerror(r));
      e.Set("code", Napi::String::New(env, uv_err_name(r)));
      throw e;
    }
    return Napi::Number::New(env, mux_->localPort());
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    closeMux();
    return info.Env().Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    if (!mux_) return o;
    const MuxStats& s = mux_->stats();
    o.Set("datagrams", double(s.datagrams));
    o.Set("bytes", double(s.bytes));
    o.Set("batches", double(s.batches));
    o.Set("unrouted", double(s.unrouted));
    o.Set("truncated", double(s.truncated));
    o.Set("sendErrors", double(s.sendErrors));
    o.Set("sendCalls", double(s.sendCalls));
    o.Set("peers", double(mux_->peerCount()));
    o.Set("recvmmsg", mux_->usingRecvmmsg());
    return o;
  }
  void closeMux() {
    if (mux_) mux_->close();
    mux_ = nullptr;
  }
  UdpMux* mux_ = nullptr;
};

class NativePeer;
/** Open peers by id: a forwarding instruction names its destination by id, so a closed one is simply absent. */
std::unordered_map<uint32_t, NativePeer*>& peersById() {
  static std::unordered_map<uint32_t, NativePeer*> peers;
  return peers;
}

/**
 * With a dispatcher set (setMediaDispatcher), peers do not call JS at the end of each socket's receive batch:
 * they queue, and a libuv check handle (after the poll phase, once per loop turn) hands every queued peer's
 * media to JS in one call. Every socket that was readable in a turn then costs one JS entry together, where a
 * call per peer (with its microtask checkpoint) cost more than the packet's own work.
 */
struct MediaDispatch {
  Napi::Env env = Napi::Env(nullptr);
  Napi::FunctionReference fn;
  std::unique_ptr<Napi::AsyncContext> async;
  uv_check_t check{};
  std::vector<NativePeer*> pending;
  /** The peers handed to JS in the call running now (entries nulled when a peer goes away during it). */
  std::vector<NativePeer*> dispatching;
  std::vector<uint8_t> bytes;
};
MediaDispatch* gDispatch = nullptr;
void dispatchPending();

class NativePeer : public Napi::ObjectWrap<NativePeer>, public MuxPeer, public PeerListener {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Peer",
                       {InstanceMethod("setRemote", &NativePeer::SetRemote),
                        InstanceMethod("sendRtp", &NativePeer::SendRtp),
                        InstanceMethod("sendRtcp", &NativePeer::SendRtcp),
                        InstanceMethod("sendApplicationData", &NativePeer::SendApplicationData),
                        InstanceMethod("sendRtpBatch", &NativePeer::SendRtpBatch),
                        InstanceMethod("tick", &NativePeer::Tick), InstanceMethod("stats", &NativePeer::Stats),
                        InstanceMethod("close", &NativePeer::Close), InstanceMethod("id", &NativePeer::Id),
                        InstanceMethod("msSinceInbound", &NativePeer::MsSinceInbound),
                        InstanceMethod("defineRoute", &NativePeer::DefineRoute),
                        InstanceMethod("deleteRoute", &NativePeer::DeleteRoute),
                        InstanceMethod("forward", &NativePeer::Forward)});
  }

  /** new Peer(socket, ufrag, pwd, onMedia(buffer, count), onState(state, detail)) */
  explicit NativePeer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePeer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsObject() || !info[1].IsString() || !info[2].IsString() ||
        !info[3].IsFunction() || !info[4].IsFunction())
      throw Napi::TypeError::New(env, "Peer(socket, ufrag, pwd, onMedia, onState)");
    auto* socket = NativeUdpSocket::Unwrap(info[0].As<Napi::Object>());
    if (!socket || !socket->mux()) throw Napi::Error::New(env, "socket closed");
    socketRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    mux_ = socket->mux();
    loop_ = loopOf(env);
    onMedia_ = Napi::Persistent(info[3].As<Napi::Function>());
    onState_ = Napi::Persistent(info[4].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "PatchbayPeer");
    std::shared_ptr<DtlsCertificate> cert;
    try {
      cert = processCertificate();
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    core_ = std::make_unique<PeerCore>(cert, info[1].As<Napi::String>().Utf8Value(),
                                       info[2].As<Napi::String>().Utf8Value(), *this);
    mux_->attach(this);
    env_ = env;
    static uint32_t nextId = 0;
    id_ = ++nextId;
    peersById()[id_] = this;
  }
  ~NativePeer() override {
    detach();
    if (gDispatch) std::replace(gDispatch->dispatching.begin(), gDispatch->dispatching.end(), this,
                                static_cast<NativePeer*>(nullptr));
  }

  PeerCore& core() override { return *core_; }

  void onBatchEnd() override {
    if (!gDispatch) {
      flushMedia();
      return;
    }
    if (queued_ || batchCount_ == 0) return;
    queued_ = true;
    gDispatch->pending.push_back(this);
  }

  void sendTo(const SockAddr& to, const uint8_t* data, size_t len) override {
    if (mux_) mux_->sendTo(to, data, len);
  }
  void onMedia(bool rtcp, const uint8_t* data, size_t len) override { append(rtcp ? 1 : 0, data, len); }
  void onApplicationData(const uint8_t* data, size_t len) override { append(2, data, len); }
  void append(uint8_t kind, const uint8_t* data, size_t len) {
    if (len > 0xffff) return;
    const size_t at = batch_.size();
    batch_.resize(at + 4 + len);
    batch_[at] = static_cast<uint8_t>(len >> 8);
    batch_[at + 1] = static_cast<uint8_t>(len);
    batch_[at + 2] = kind;
    batch_[at + 3] = 0;
    std::memcpy(batch_.data() + at + 4, data, len);
    batchCount_++;
  }
  void onState(PeerState state, const std::string& detail) override {
    // Media decrypted before the change goes first (a close_notify after the last packets).
    if (gDispatch) dispatchPending();
    flushMedia();
    Napi::HandleScope scope(env_);
    call(onState_, {Napi::String::New(env_, peerStateName(state)), Napi::String::New(env_, detail)});
  }
  void onSelected(const SockAddr& remote) override {
    if (mux_) mux_->route(remote, this);
  }

 private:
  void call(Napi::FunctionReference& fn, const std::vector<napi_value>& args) {
    try {
      fn.MakeCallback(Value(), args, *async_);
    } catch (const Napi::Error&) {
      // The JS side reports its own errors; a throw must not unwind through libuv.
    }
  }

  void flushMedia() {
    if (batchCount_ == 0) return;
    Napi::HandleScope scope(env_);
    auto buf = Napi::Buffer<uint8_t>::Copy(env_, batch_.data(), batch_.size());
    const uint32_t count = batchCount_;
    // The batch stays readable by forward() while JS handles it (forward() is only valid during onMedia).
    inflight_.swap(batch_);
    inflightCount_ = count;
    batch_.clear();
    batchCount_ = 0;
    call(onMedia_, {buf, Napi::Number::New(env_, count)});
    inflightCount_ = 0;
  }

  void detach() {
    if (gDispatch && queued_) {
      auto& p = gDispatch->pending;
      p.erase(std::remove(p.begin(), p.end(), this), p.end());
      queued_ = false;
    }
    if (mux_) mux_->detach(this);
    mux_ = nullptr;
    if (!socketRef_.IsEmpty()) socketRef_.Reset();
    peersById().erase(id_);
    routes_.clear();
  }

  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }

  /** Liveness for the RTCP tick without building the whole stats object: ms, or -1 before anything arrived. */
  Napi::Value MsSinceInbound(const Napi::CallbackInfo& info) {
    const uint64_t last = core_->stats().lastInboundMs;
    return Napi::Number::New(info.Env(), last == 0 ? -1.0 : double(uv_now(loop_) - last));
  }

  /** defineRoute(routeId, ssrc, payloadType, midId, mid, extMap: Uint8Array(256)) → false if not expressible. */
  Napi::Value DefineRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[4].IsString() || !info[5].IsTypedArray())
      throw Napi::TypeError::New(env, "defineRoute(routeId, ssrc, payloadType, midId, mid, extMap)");
    auto map = info[5].As<Napi::Uint8Array>();
    if (map.ElementLength() != 256) throw Napi::TypeError::New(env, "extMap must have 256 entries");
    ForwardRoute r;
    r.ssrc = info[1].As<Napi::Number>().Uint32Value();
    r.payloadType = static_cast<uint8_t>(info[2].As<Napi::Number>().Uint32Value() & 0xff);
    r.midId = static_cast<uint8_t>(info[3].As<Napi::Number>().Uint32Value() & 0xff);
    r.mid = info[4].As<Napi::String>().Utf8Value();
    std::memcpy(r.extMap, map.Data(), 256);
    if (!validRoute(r) || info[2].As<Napi::Number>().Uint32Value() > 127) return Napi::Boolean::New(env, false);
    routes_[info[0].As<Napi::Number>().Uint32Value()] = std::move(r);
    return Napi::Boolean::New(env, true);
  }

  Napi::Value DeleteRoute(const Napi::CallbackInfo& info) {
    if (info.Length() > 0 && info[0].IsNumber()) routes_.erase(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  /**
   * forward(instructions: Uint32Array, count) → packets sent. Valid only while this peer's onMedia runs:
   * each instruction is [batch index, destination peer id, route id, sequence number, timestamp] and sends
   * that packet of the batch being handled, rewritten by the destination's route, through its SRTP.
   */
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "forward(instructions, count)");
    auto ins = info[0].As<Napi::Uint32Array>();
    const size_t count = std::min<size_t>(info[1].As<Napi::Number>().Uint32Value(), ins.ElementLength() / 5);
    if (inflightCount_ == 0 || count == 0) return Napi::Number::New(env, 0);
    // Entry offsets of the batch, found once per call.
    offsets_.clear();
    for (size_t at = 0; at + 4 <= inflight_.size() && offsets_.size() < inflightCount_;) {
      offsets_.push_back(at);
      at += 4 + ((size_t(inflight_[at]) << 8) | inflight_[at + 1]);
    }
    const uint64_t now = uv_now(loop_);
    uint32_t sent = 0;
    uint8_t out[1500 + 64];
    corked_.clear();
    for (size_t k = 0; k < count; k++) {
      const uint32_t* in = ins.Data() + 5 * k;
      if (in[0] >= offsets_.size()) continue;
      const size_t at = offsets_[in[0]];
      const size_t len = (size_t(inflight_[at]) << 8) | inflight_[at + 1];
      if (inflight_[at + 2] != 0 || at + 4 + len > inflight_.size()) continue;  // RTCP, or a torn batch
      auto peer = peersById().find(in[1]);
      if (peer == peersById().end()) continue;
      NativePeer* dest = peer->second;
      auto route = dest->routes_.find(in[2]);
      if (route == dest->routes_.end()) continue;
      const size_t n = rewriteRtp(inflight_.data() + at + 4, len, route->second, static_cast<uint16_t>(in[3]), in[4],
                                  out, sizeof out);
      if (n == 0) continue;
      if (!dest->mux_) continue;
      if (!dest->mux_->corked()) {
        dest->mux_->cork();
        corked_.push_back(dest->mux_);
      }
      dest->core_->setNow(now);
      if (dest->core_->sendRtp(out, n)) sent++;
    }
    for (UdpMux* mux : corked_) mux->flush();
    return Napi::Number::New(env, sent);
  }

  /** setRemote(ufrag, [[algorithm, value], ...], dtlsClient) */
  Napi::Value SetRemote(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray()) throw Napi::TypeError::New(env, "setRemote(ufrag, fingerprints, dtlsClient)");
    std::vector<std::pair<std::string, std::string>> fps;
    auto arr = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsArray()) continue;
      auto pair = v.As<Napi::Array>();
      fps.emplace_back(pair.Get(0u).ToString().Utf8Value(), pair.Get(1u).ToString().Utf8Value());
    }
    core_->setNow(uv_now(loop_));
    core_->setRemote(info[0].As<Napi::String>().Utf8Value(), fps, info[2].ToBoolean().Value());
    // Client mode (the benchmark's load generator): setRemote(ufrag, fps, true, { ip, port, pwd }).
    if (info.Length() > 3 && !info[3].IsUndefined())
      startControllingFromJs(env, *core_, info[0].As<Napi::String>().Utf8Value(), info[3]);
    return env.Undefined();
  }

  /** sendRtpBatch(batch) → packets sent; the receive batches' framing (peer_client.h sendMediaBatch). */
  Napi::Value SendRtpBatch(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    core_->setNow(uv_now(loop_));
    return Napi::Number::New(info.Env(), sendMediaBatch(*core_, b.Data(), b.Length()));
  }

  Napi::Value Send(const Napi::CallbackInfo& info, bool rtcp) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    core_->setNow(uv_now(loop_));
    const bool ok = rtcp ? core_->sendRtcp(b.Data(), b.Length()) : core_->sendRtp(b.Data(), b.Length());
    return Napi::Boolean::New(info.Env(), ok);
  }
  Napi::Value SendRtp(const Napi::CallbackInfo& info) { return Send(info, false); }
  Napi::Value SendRtcp(const Napi::CallbackInfo& info) { return Send(info, true); }
  /** sendApplicationData(buffer) → false before DTLS is connected or for an empty or > 16 KiB record. */
  Napi::Value SendApplicationData(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    core_->setNow(uv_now(loop_));
    return Napi::Boolean::New(info.Env(), core_->sendApplicationData(b.Data(), b.Length()));
  }

  /** tick() → ms until the DTLS timer wants another tick, or -1. */
  Napi::Value Tick(const Napi::CallbackInfo& info) {
    uv_update_time(loop_);
    return Napi::Number::New(info.Env(), static_cast<double>(core_->tick(uv_now(loop_))));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const PeerStats& s = core_->stats();
    const IceStats& i = core_->iceStats();
    uv_update_time(loop_);
    auto o = Napi::Object::New(env);
    o.Set("state", peerStateName(core_->state()));
    o.Set("packetsIn", double(s.packetsIn));
    o.Set("bytesIn", double(s.bytesIn));
    o.Set("packetsOut", double(s.packetsOut));
    o.Set("bytesOut", double(s.bytesOut));
    o.Set("dropped", double(s.dropped));
    o.Set("srtpFailures", double(s.srtpFailures));
    o.Set("notSent", double(s.notSent));
    o.Set("msSinceInbound", s.lastInboundMs == 0 ? -1.0 : double(uv_now(loop_) - s.lastInboundMs));
    o.Set("iceChecks", double(i.checks));
    o.Set("iceBadIntegrity", double(i.badIntegrity + i.wrongUsername));
    o.Set("srtpProfile", double(core_->srtpProfile()));
    addClientStats(env, o, *core_);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_->close();
    detach();
    return info.Env().Undefined();
  }

  Napi::Env env_ = Napi::Env(nullptr);
  Napi::ObjectReference socketRef_;
  UdpMux* mux_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  Napi::FunctionReference onMedia_, onState_;
  std::unique_ptr<Napi::AsyncContext> async_;
  std::unique_ptr<PeerCore> core_;
  std::vector<uint8_t> batch_;
  uint32_t batchCount_ = 0;
  std::vector<uint8_t> inflight_;
  uint32_t inflightCount_ = 0;
  std::vector<size_t> offsets_;
  std::vector<UdpMux*> corked_;
  bool queued_ = false;
  friend void dispatchPending();
  uint32_t id_ = 0;
  std::unordered_map<uint32_t, ForwardRoute> routes_;
};

void dispatchPending() {
  MediaDispatch& d = *gDispatch;
  if (d.pending.empty() || !d.dispatching.empty()) return;  // nothing, or already inside the call
  Napi::Env env = d.env;
  Napi::HandleScope scope(env);
  d.dispatching.swap(d.pending);
  d.bytes.clear();
  auto meta = Napi::Uint32Array::New(env, 3 * d.dispatching.size());
  size_t i = 0;
  for (NativePeer* peer : d.dispatching) {
    peer->queued_ = false;
    meta[3 * i] = peer->id_;
    meta[3 * i + 1] = peer->batchCount_;
    meta[3 * i + 2] = static_cast<uint32_t>(peer->batch_.size());
    d.bytes.insert(d.bytes.end(), peer->batch_.begin(), peer->batch_.end());
    // forward() reads the batch it belongs to while JS handles it.
    peer->inflight_.swap(peer->batch_);
    peer->inflightCount_ = peer->batchCount_;
    peer->batch_.clear();
    peer->batchCount_ = 0;
    i++;
  }
  auto buf = Napi::Buffer<uint8_t>::Copy(env, d.bytes.data(), d.bytes.size());
  try {
    d.fn.MakeCallback(env.Global(), {buf, meta}, *d.async);
  } catch (const Napi::Error&) {
    // The JS side reports its own errors; a throw must not unwind through libuv.
  }
  for (NativePeer* peer : d.dispatching)
    if (peer) peer->inflightCount_ = 0;
  d.dispatching.clear();
}

}  // namespace

void initTransport(Napi::Env env, Napi::Object exports) {
  // setMediaDispatcher(fn(buffer, peers: Uint32Array [id, count, bytes]…)): every peer's media in one call
  // per loop turn instead of each Peer's onMedia. Set once per process; the Peer callbacks stay for the rest.
  exports.Set("setMediaDispatcher", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env env = info.Env();
                if (info.Length() < 1 || !info[0].IsFunction())
                  throw Napi::TypeError::New(env, "setMediaDispatcher(fn)");
                if (gDispatch) throw Napi::Error::New(env, "a media dispatcher is already set");
                auto* d = new MediaDispatch();
                d->env = env;
                d->fn = Napi::Persistent(info[0].As<Napi::Function>());
                d->async = std::make_unique<Napi::AsyncContext>(env, "PatchbayMedia");
                uv_loop_t* loop = loopOf(env);
                uv_check_init(loop, &d->check);
                uv_check_start(&d->check, [](uv_check_t*) { dispatchPending(); });
                // The check handle must not keep the process alive by itself.
                uv_unref(reinterpret_cast<uv_handle_t*>(&d->check));
                gDispatch = d;
                return env.Undefined();
              }));
  exports.Set("UdpSocket", NativeUdpSocket::Init(env));
  exports.Set("Peer", NativePeer::Init(env));
  exports.Set("certificateFingerprint", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                try {
                  return Napi::String::New(info.Env(), processCertificate()->fingerprintSha256);
                } catch (const std::exception& e) {
                  throw Napi::Error::New(info.Env(), e.what());
                }
              }));
}

}  // namespace pb
