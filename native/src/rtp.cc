#include "rtp.h"

#include "bytes.h"

namespace pb {

bool parseRtp(const uint8_t* buf, size_t len, RtpView& out) {
  out = RtpView{};
  const size_t at = rtpHeaderLength(buf, len);
  if (at == 0 || isRtcp(buf, len)) return false;
  out.marker = (buf[1] & 0x80) != 0;
  out.payloadType = buf[1] & 0x7f;
  out.sequenceNumber = rd16(buf + 2);
  out.timestamp = rd32(buf + 4);
  out.ssrc = rd32(buf + 8);
  out.csrcCount = buf[0] & 0x0f;
  if (buf[0] & 0x10) {
    const size_t block = 12 + 4 * static_cast<size_t>(out.csrcCount);
    out.extensionProfile = rd16(buf + block);
    out.extensionOffset = block + 4;
    out.extensionLength = at - out.extensionOffset;
  }
  size_t end = len;
  if (buf[0] & 0x20) {
    const uint8_t pad = buf[len - 1];
    if (pad == 0 || pad > len - at) return false;
    out.paddingLength = pad;
    end -= pad;
  }
  out.payloadOffset = at;
  out.payloadLength = end - at;
  return true;
}

bool findRtpExtension(const uint8_t* buf, const RtpView& rtp, uint8_t id, const uint8_t** data, size_t* size) {
  if (rtp.extensionLength == 0 || id == 0) return false;
  const uint8_t* p = buf + rtp.extensionOffset;
  const uint8_t* end = p + rtp.extensionLength;
  if (rtp.extensionProfile == 0xBEDE) {
    if (id > 14) return false;
    while (p < end) {
      if (*p == 0) {  // padding
        p++;
        continue;
      }
      const uint8_t eid = *p >> 4;
      const size_t elen = (*p & 0x0f) + 1u;
      if (eid == 15) return false;  // reserved: stop (RFC 8285 §4.2)
      p++;
      if (static_cast<size_t>(end - p) < elen) return false;
      if (eid == id) {
        *data = p;
        *size = elen;
        return true;
      }
      p += elen;
    }
    return false;
  }
  if ((rtp.extensionProfile & 0xfff0) == 0x1000) {
    while (p < end) {
      if (*p == 0) {
        p++;
        continue;
      }
      if (end - p < 2) return false;
      const uint8_t eid = p[0];
      const size_t elen = p[1];
      p += 2;
      if (static_cast<size_t>(end - p) < elen) return false;
      if (eid == id) {
        *data = p;
        *size = elen;
        return true;
      }
      p += elen;
    }
  }
  return false;
}

bool nextRtcp(const uint8_t* buf, size_t len, size_t& offset, RtcpView& out) {
  if (offset >= len || len - offset < 4) return false;
  const uint8_t* p = buf + offset;
  if ((p[0] >> 6) != 2) return false;
  const size_t bytes = 4 * (static_cast<size_t>(rd16(p + 2)) + 1);
  if (bytes > len - offset) return false;
  out.count = p[0] & 0x1f;
  out.packetType = p[1];
  out.body = p + 4;
  out.bodyLength = bytes - 4;
  offset += bytes;
  return true;
}

bool parseNack(const RtcpView& v, uint32_t& mediaSsrc, std::vector<uint16_t>& lost) {
  if (v.packetType != 205 || v.count != 1 || v.bodyLength < 12) return false;
  mediaSsrc = rd32(v.body + 4);
  for (size_t at = 8; at + 4 <= v.bodyLength; at += 4) {
    const uint16_t pid = rd16(v.body + at);
    const uint16_t blp = rd16(v.body + at + 2);
    lost.push_back(pid);
    for (int i = 0; i < 16; i++)
      if (blp & (1u << i)) lost.push_back(static_cast<uint16_t>(pid + i + 1));
  }
  return true;
}

bool parsePli(const RtcpView& v, uint32_t& mediaSsrc) {
  if (v.packetType != 206 || v.count != 1 || v.bodyLength < 8) return false;
  mediaSsrc = rd32(v.body + 4);
  return true;
}

bool parseFir(const RtcpView& v, std::vector<uint32_t>& ssrcs) {
  if (v.packetType != 206 || v.count != 4 || v.bodyLength < 16) return false;
  for (size_t at = 8; at + 8 <= v.bodyLength; at += 8) ssrcs.push_back(rd32(v.body + at));
  return true;
}

size_t buildNack(uint8_t* out, size_t cap, uint32_t senderSsrc, uint32_t mediaSsrc, const uint16_t* lost,
                 size_t count) {
  // Group into (PID, BLP) pairs: each covers PID and the 16 numbers after it.
  size_t pairs = 0;
  for (size_t i = 0; i < count;) {
    const uint16_t pid = lost[i++];
    while (i < count && static_cast<uint16_t>(lost[i] - pid) >= 1 && static_cast<uint16_t>(lost[i] - pid) <= 16) i++;
    pairs++;
  }
  const size_t total = 12 + 4 * pairs;
  if (count == 0 || cap < total || pairs > 0xfffd) return 0;
  out[0] = 0x80 | 1;
  out[1] = 205;
  wr16(out + 2, static_cast<uint16_t>(total / 4 - 1));
  wr32(out + 4, senderSsrc);
  wr32(out + 8, mediaSsrc);
  size_t at = 12;
  for (size_t i = 0; i < count;) {
    const uint16_t pid = lost[i++];
    uint16_t blp = 0;
    while (i < count) {
      const uint16_t d = static_cast<uint16_t>(lost[i] - pid);
      if (d < 1 || d > 16) break;
      blp |= static_cast<uint16_t>(1u << (d - 1));
      i++;
    }
    wr16(out + at, pid);
    wr16(out + at + 2, blp);
    at += 4;
  }
  return total;
}

size_t buildPli(uint8_t* out, size_t cap, uint32_t senderSsrc, uint32_t mediaSsrc) {
  if (cap < 12) return 0;
  out[0] = 0x80 | 1;
  out[1] = 206;
  wr16(out + 2, 2);
  wr32(out + 4, senderSsrc);
  wr32(out + 8, mediaSsrc);
  return 12;
}

}  // namespace pb
