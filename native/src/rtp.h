// RTP (RFC 3550) and RTP header extensions (RFC 8285), RTCP compound packets (RFC 3550, RFC 4585, RFC 5104):
// zero-copy views over a datagram, every length checked before it is read. Sans-IO.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pb {

struct RtpView {
  bool marker = false;
  uint8_t payloadType = 0;
  uint16_t sequenceNumber = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  uint8_t csrcCount = 0;
  /** 0xBEDE (one-byte elements), 0x1000–0x100F (two-byte), other profiles, or 0 without an extension block. */
  uint16_t extensionProfile = 0;
  size_t extensionOffset = 0;  // first byte of the extension elements
  size_t extensionLength = 0;  // bytes of elements (the block's length × 4)
  size_t payloadOffset = 0;
  size_t payloadLength = 0;    // without padding
  uint8_t paddingLength = 0;
};

/** RFC 5761/7983: an RTP or RTCP packet (first byte 128–191). RTCP when the payload type is 192–223. */
inline bool looksLikeRtpOrRtcp(const uint8_t* buf, size_t len) { return len >= 8 && buf[0] >= 128 && buf[0] < 192; }
inline bool isRtcp(const uint8_t* buf, size_t len) { return len >= 8 && buf[1] >= 192 && buf[1] <= 223; }

/**
 * Bytes of the RTP header (fixed part, CSRCs, extension block), or 0 when they do not fit in `len` or the
 * version is not 2. Reads nothing past the header, so it works on SRTP packets, whose payload and padding
 * are still encrypted.
 */
inline size_t rtpHeaderLength(const uint8_t* buf, size_t len) {
  if (len < 12 || (buf[0] >> 6) != 2) return 0;
  size_t h = 12 + 4 * static_cast<size_t>(buf[0] & 0x0f);
  if (len < h) return 0;
  if (buf[0] & 0x10) {
    if (len - h < 4) return 0;
    h += 4 + 4 * ((static_cast<size_t>(buf[h + 2]) << 8) | buf[h + 3]);
    if (len < h) return 0;
  }
  return h;
}

bool parseRtp(const uint8_t* buf, size_t len, RtpView& out);

/**
 * The value of header extension `id` (one-byte or two-byte form); false when absent or malformed. `data`
 * points into `buf`.
 */
bool findRtpExtension(const uint8_t* buf, const RtpView& rtp, uint8_t id, const uint8_t** data, size_t* size);

/** One packet of an RTCP compound. */
struct RtcpView {
  uint8_t count = 0;  // RC / FMT field
  uint8_t packetType = 0;
  const uint8_t* body = nullptr;  // after the 4-byte header
  size_t bodyLength = 0;          // length field × 4 (padding included)
};

/**
 * Iterates an RTCP compound: call with `offset` 0, then as long as it returns true. False at the end or at
 * the first malformed packet (version, a length past the datagram).
 */
bool nextRtcp(const uint8_t* buf, size_t len, size_t& offset, RtcpView& out);

/** Generic NACK (RTPFB FMT 1): the media SSRC and every lost sequence number (PID + BLP bitmask). */
bool parseNack(const RtcpView& v, uint32_t& mediaSsrc, std::vector<uint16_t>& lost);

/** PLI (PSFB FMT 1): the media SSRC. */
bool parsePli(const RtcpView& v, uint32_t& mediaSsrc);

/** FIR (PSFB FMT 4): the SSRCs of its entries. */
bool parseFir(const RtcpView& v, std::vector<uint32_t>& ssrcs);

/** Builds a Generic NACK for sorted sequence numbers; returns the bytes written, 0 when `cap` is short. */
size_t buildNack(uint8_t* out, size_t cap, uint32_t senderSsrc, uint32_t mediaSsrc, const uint16_t* lost, size_t count);

size_t buildPli(uint8_t* out, size_t cap, uint32_t senderSsrc, uint32_t mediaSsrc);

}  // namespace pb
