#include "forward.h"

#include <cstring>

#include "rtp.h"

namespace pb {

namespace {
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

/** Appends one one-byte element when it is expressible and fits (`at` ≤ `end`). */
inline bool putElement(uint8_t* out, size_t& at, size_t end, uint8_t id, const uint8_t* data, size_t n) {
  if (id == 0 || id > 14 || n == 0 || n > 16 || at + 1 + n > end) return false;
  out[at++] = static_cast<uint8_t>((id << 4) | (n - 1));
  std::memcpy(out + at, data, n);
  at += n;
  return true;
}
}  // namespace

bool validRoute(const ForwardRoute& r) {
  if (r.payloadType > 127) return false;
  if (r.midId != 0 && (r.midId > 14 || r.mid.empty() || r.mid.size() > 16)) return false;
  for (uint8_t id : r.extMap)
    if (id > 14) return false;
  return true;
}

size_t rewriteRtp(const uint8_t* src, size_t len, const ForwardRoute& route, uint16_t seq, uint32_t ts, uint8_t* out,
                  size_t cap) {
  RtpView v;
  if (!parseRtp(src, len, v)) return 0;
  const size_t fixed = 12 + 4 * static_cast<size_t>(v.csrcCount);
  // Worst case for the extension block: the mid, then every source element re-encoded (never longer than
  // in the source, whose one-byte and two-byte headers are ≥ 1 byte each), padded to 4.
  const size_t extMax = 4 + (route.midId ? 1 + route.mid.size() : 0) + v.extensionLength + 3;
  if (cap < fixed + extMax + v.payloadLength) return 0;

  out[0] = static_cast<uint8_t>(0x80 | v.csrcCount);
  out[1] = static_cast<uint8_t>((v.marker ? 0x80 : 0) | route.payloadType);
  put16(out + 2, seq);
  put32(out + 4, ts);
  put32(out + 8, route.ssrc);
  std::memcpy(out + 12, src + 12, fixed - 12);

  size_t at = fixed + 4;  // elements start after the 0xBEDE header
  const size_t end = fixed + extMax;
  if (route.midId) putElement(out, at, end, route.midId, reinterpret_cast<const uint8_t*>(route.mid.data()), route.mid.size());
  const uint8_t* e = src + v.extensionOffset;
  const size_t elen = v.extensionLength;
  if (v.extensionProfile == 0xBEDE) {
    for (size_t i = 0; i < elen;) {
      const uint8_t b = e[i];
      if (b == 0) {
        i++;
        continue;
      }
      const uint8_t id = b >> 4;
      const size_t n = (b & 0x0f) + 1u;
      if (id == 15 || i + 1 + n > elen) break;  // RFC 8285: 15 ends the walk
      const uint8_t to = route.extMap[id];
      if (to != route.midId) putElement(out, at, end, to, e + i + 1, n);
      i += 1 + n;
    }
  } else if ((v.extensionProfile & 0xfff0) == 0x1000) {
    for (size_t i = 0; i < elen;) {
      const uint8_t id = e[i];
      if (id == 0) {
        i++;
        continue;
      }
      if (i + 2 > elen) break;
      const size_t n = e[i + 1];
      if (i + 2 + n > elen) break;
      const uint8_t to = route.extMap[id];
      if (to != route.midId) putElement(out, at, end, to, e + i + 2, n);
      i += 2 + n;
    }
  }
  size_t hdr = fixed;
  if (at > fixed + 4) {
    while ((at - fixed) % 4 != 0) out[at++] = 0;
    out[0] |= 0x10;
    put16(out + fixed, 0xBEDE);
    put16(out + fixed + 2, static_cast<uint16_t>((at - fixed - 4) / 4));
    hdr = at;
  }
  std::memcpy(out + hdr, src + v.payloadOffset, v.payloadLength);
  return hdr + v.payloadLength;
}

}  // namespace pb
