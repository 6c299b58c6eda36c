// Node-API glue for a Peer in client mode (peer.h startControlling), kept apart from napi_transport.cc.
#pragma once
#include <napi.h>

#include <string>

#include "peer.h"

namespace pb {

/**
 * `controlling` is setRemote's fourth argument, `{ ip, port, pwd }`: the ICE-lite peer's candidate and
 * password. Starts the controlling agent (the first check goes out now). Throws a TypeError when malformed.
 */
void startControllingFromJs(Napi::Env env, PeerCore& core, const std::string& remoteUfrag, const Napi::Value& controlling);

/** Adds client mode's counters (iceChecksSent, iceResponses, iceErrorResponses, iceBadResponses, iceRttMs). */
void addClientStats(Napi::Env env, Napi::Object& o, const PeerCore& core);

}  // namespace pb
