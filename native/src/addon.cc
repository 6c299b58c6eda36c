// Node-API surface of the native media plane. Today: the SRTP contexts (for interop tests against werift and
// the cost benchmark); the transport and forwarding core land on this addon next (docs/NATIVE.md).
#include <napi.h>

#include <cstring>
#include <memory>
#include <vector>

#include "napi_transport.h"
#include "srtp.h"

namespace {

class NativeSrtp : public Napi::ObjectWrap<NativeSrtp> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SrtpContext",
                       {InstanceMethod("protectRtp", &NativeSrtp::ProtectRtp),
                        InstanceMethod("unprotectRtp", &NativeSrtp::UnprotectRtp),
                        InstanceMethod("protectRtcp", &NativeSrtp::ProtectRtcp),
                        InstanceMethod("unprotectRtcp", &NativeSrtp::UnprotectRtcp),
                        InstanceMethod("protectRtpBatch", &NativeSrtp::ProtectRtpBatch),
                        InstanceMethod("stats", &NativeSrtp::Stats)});
  }

  /** new SrtpContext(profile: 1 | 7, masterKey: Buffer(16), masterSalt: Buffer(14 | 12)) */
  explicit NativeSrtp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSrtp>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsBuffer())
      throw Napi::TypeError::New(env, "SrtpContext(profile, masterKey, masterSalt)");
    const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    if (id != 1 && id != 7) throw Napi::RangeError::New(env, "SRTP profile must be 1 (AES_CM_128_HMAC_SHA1_80) or 7 (AEAD_AES_128_GCM)");
    const auto profile = static_cast<pb::SrtpProfile>(id);
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    auto salt = info[2].As<Napi::Buffer<uint8_t>>();
    if (key.Length() != pb::kSrtpMasterKeyLen || salt.Length() != pb::srtpMasterSaltLen(profile))
      throw Napi::RangeError::New(env, "wrong master key or salt length for this SRTP profile");
    ctx_ = std::make_unique<pb::SrtpContext>(profile, key.Data(), salt.Data());
  }

 private:
  using Op = bool (pb::SrtpContext::*)(uint8_t*, size_t&, size_t);
  using UnOp = bool (pb::SrtpContext::*)(uint8_t*, size_t&);

  Napi::Value Protect(const Napi::CallbackInfo& info, Op op) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
    auto in = info[0].As<Napi::Buffer<uint8_t>>();
    scratch_.resize(in.Length() + pb::kSrtpMaxOverhead);
    std::memcpy(scratch_.data(), in.Data(), in.Length());
    size_t len = in.Length();
    if (!((*ctx_).*op)(scratch_.data(), len, scratch_.size())) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), scratch_.data(), len);
  }

  Napi::Value Unprotect(const Napi::CallbackInfo& info, UnOp op) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
    auto in = info[0].As<Napi::Buffer<uint8_t>>();
    scratch_.assign(in.Data(), in.Data() + in.Length());
    size_t len = in.Length();
    if (!((*ctx_).*op)(scratch_.data(), len)) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), scratch_.data(), len);
  }

  Napi::Value ProtectRtp(const Napi::CallbackInfo& info) { return Protect(info, &pb::SrtpContext::protectRtp); }
  Napi::Value ProtectRtcp(const Napi::CallbackInfo& info) { return Protect(info, &pb::SrtpContext::protectRtcp); }
  Napi::Value UnprotectRtp(const Napi::CallbackInfo& info) {
    return Unprotect(info, &pb::SrtpContext::unprotectRtp);
  }
  Napi::Value UnprotectRtcp(const Napi::CallbackInfo& info) {
    return Unprotect(info, &pb::SrtpContext::unprotectRtcp);
  }

  /**
   * protectRtpBatch(packet, count, firstSeq): protects `count` copies of one RTP packet with consecutive
   * sequence numbers in one call; returns how many succeeded. The benchmark's measure of the cipher cost
   * without a boundary crossing per packet.
   */
  Napi::Value ProtectRtpBatch(const Napi::CallbackInfo& info) {
    if (info.Length() < 3 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "(packet, count, firstSeq)");
    auto in = info[0].As<Napi::Buffer<uint8_t>>();
    const uint32_t count = info[1].As<Napi::Number>().Uint32Value();
    uint32_t seq = info[2].As<Napi::Number>().Uint32Value();
    if (in.Length() < 12) return Napi::Number::New(info.Env(), 0);
    std::vector<uint8_t> buf(in.Length() + pb::kSrtpMaxOverhead);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < count; i++, seq++) {
      std::memcpy(buf.data(), in.Data(), in.Length());
      buf[2] = static_cast<uint8_t>(seq >> 8);
      buf[3] = static_cast<uint8_t>(seq);
      size_t len = in.Length();
      if (ctx_->protectRtp(buf.data(), len, buf.size())) ok++;
    }
    return Napi::Number::New(info.Env(), ok);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    auto s = ctx_->stats();
    auto o = Napi::Object::New(info.Env());
    o.Set("authFailures", Napi::Number::New(info.Env(), static_cast<double>(s.authFailures)));
    o.Set("replays", Napi::Number::New(info.Env(), static_cast<double>(s.replays)));
    o.Set("malformed", Napi::Number::New(info.Env(), static_cast<double>(s.malformed)));
    return o;
  }

  std::unique_ptr<pb::SrtpContext> ctx_;
  std::vector<uint8_t> scratch_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("SrtpContext", NativeSrtp::Init(env));
  pb::initTransport(env, exports);
  exports.Set("version", Napi::String::New(env, "0.2.0"));
  return exports;
}

}  // namespace

NODE_API_MODULE(patchbay_native, Init)
