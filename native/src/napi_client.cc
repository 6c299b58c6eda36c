#include "napi_client.h"

#include <uv.h>

namespace pb {

void startControllingFromJs(Napi::Env env, PeerCore& core, const std::string& remoteUfrag, const Napi::Value& controlling) {
  const char* usage = "setRemote(ufrag, fingerprints, true, { ip, port, pwd }): the controlling option needs the peer's candidate ip, port and ICE pwd";
  if (!controlling.IsObject()) throw Napi::TypeError::New(env, usage);
  auto o = controlling.As<Napi::Object>();
  Napi::Value ip = o.Get("ip"), port = o.Get("port"), pwd = o.Get("pwd");
  if (!ip.IsString() || !port.IsNumber() || !pwd.IsString()) throw Napi::TypeError::New(env, usage);
  const std::string ipText = ip.As<Napi::String>().Utf8Value();
  const int32_t portNum = port.As<Napi::Number>().Int32Value();
  if (portNum <= 0 || portNum > 65535) throw Napi::RangeError::New(env, "controlling.port must be 1..65535");
  sockaddr_storage ss{};
  const int r = ipText.find(':') != std::string::npos
                    ? uv_ip6_addr(ipText.c_str(), portNum, reinterpret_cast<sockaddr_in6*>(&ss))
                    : uv_ip4_addr(ipText.c_str(), portNum, reinterpret_cast<sockaddr_in*>(&ss));
  if (r != 0) throw Napi::TypeError::New(env, "controlling.ip is not an IP address: " + ipText);
  core.startControlling(remoteUfrag, pwd.As<Napi::String>().Utf8Value(), SockAddr::from(reinterpret_cast<sockaddr*>(&ss)));
}

void addClientStats(Napi::Env env, Napi::Object& o, const PeerCore& core) {
  const IceClientStats* s = core.iceClientStats();
  if (!s) return;
  o.Set("iceChecksSent", double(s->checksSent));
  o.Set("iceResponses", double(s->successes));
  o.Set("iceErrorResponses", double(s->errorResponses));
  o.Set("iceBadResponses", double(s->badResponses));
  o.Set("iceRttMs", double(s->lastRttMs));
}

}  // namespace pb
