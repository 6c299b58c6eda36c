// Forwarding one RTP packet to one subscriber, sans-IO: the rewrite a send stream applies (SSRC, payload type,
// sequence number, timestamp, header-extension ids, the subscriber's mid) written into a fresh buffer, the
// source left untouched because every subscriber of the packet reads it. The sequence number and timestamp come
// from the control plane (src/rtc/forwarding-stream.ts: the munger owns them); the rest is the route.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace pb {

struct ForwardRoute {
  uint32_t ssrc = 0;
  uint8_t payloadType = 0;
  /** The subscriber's sdes:mid extension id (1–14), written first; 0: none. */
  uint8_t midId = 0;
  std::string mid;  // 1–16 bytes when midId is set
  /** Publisher extension id → subscriber id (1–14); 0 drops the element. */
  uint8_t extMap[256] = {};
};

/** A route the one-byte header form can express (ids 1–14, a mid of 1–16 bytes, payload type < 128). */
bool validRoute(const ForwardRoute& r);

/**
 * Writes `src` (a decrypted RTP packet) as the subscriber receives it: marker and CSRCs kept, padding
 * dropped, the extensions the route maps in the one-byte form (elements longer than 16 bytes cannot be
 * expressed there and are dropped). Returns the bytes written, 0 when `src` is not RTP or `cap` is short.
 */
size_t rewriteRtp(const uint8_t* src, size_t len, const ForwardRoute& route, uint16_t seq, uint32_t ts, uint8_t* out,
                  size_t cap);

}  // namespace pb
