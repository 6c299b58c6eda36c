#pragma once
#include <napi.h>

namespace pb {
/** Adds UdpSocket, Peer and certificateFingerprint() to the addon's exports. */
void initTransport(Napi::Env env, Napi::Object exports);
}  // namespace pb
