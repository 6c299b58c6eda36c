// Keyframe detection on RTP payloads, without depacketizing. A forwarder needs it to know where a
// subscriber may start (or switch simulcast layers) without the decoder referencing frames it never got.
// Every parser here is defensive: the payloads come straight off the network, so anything short or
// inconsistent is "not a keyframe start" rather than an exception on the hot path.

import { parseVp8Descriptor } from "./vp8-munger.ts";

export type VideoCodecName = "vp8" | "vp9" | "h264" | "av1";

const CODECS: Record<string, VideoCodecName> = {
  "video/vp8": "vp8",
  "video/vp9": "vp9",
  "video/h264": "h264",
  "video/av1": "av1",
};

/** Maps an SDP/WebRTC mime type ("video/VP8") to a codec name; undefined for anything else. */
export function codecNameOf(mimeType: string): VideoCodecName | undefined {
  return CODECS[mimeType.trim().toLowerCase()];
}

/** True when this RTP payload is the first packet of a keyframe, i.e. a decoder can start here. */
export function isKeyframeStart(codec: VideoCodecName, payload: Uint8Array): boolean {
  switch (codec) {
    case "vp8":
      return vp8(payload);
    case "vp9":
      return vp9(payload);
    case "h264":
      return h264(payload);
    case "av1":
      return av1(payload);
    default:
      return false;
  }
}

function vp8(p: Uint8Array): boolean {
  const d = parseVp8Descriptor(p);
  // The VP8 payload header (RFC 7741 §4.3) only exists at the start of partition 0, and its
  // P bit is an inverse key-frame flag.
  if (!d?.start || d.partitionId !== 0 || p.length <= d.headerLength) return false;
  return (p[d.headerLength] & 0x01) === 0;
}

// RFC 9628 (formerly draft-ietf-payload-vp9) §4.2:
//   |I|P|L|F|B|E|V|Z|  then PictureID (I), layer indices (L; + TL0PICIDX when F=0),
//   P_DIFFs (F=1 and P=1), scalability structure (V).
function vp9(p: Uint8Array): boolean {
  if (p.length < 1) return false;
  const b0 = p[0];
  const I = (b0 & 0x80) !== 0;
  const P = (b0 & 0x40) !== 0;
  const L = (b0 & 0x20) !== 0;
  const F = (b0 & 0x10) !== 0;
  const B = (b0 & 0x08) !== 0;
  const V = (b0 & 0x02) !== 0;
  if (!B || P) return false;
  let i = 1;
  if (I) {
    if (i >= p.length) return false;
    i += p[i] & 0x80 ? 2 : 1;
  }
  if (L) {
    if (i >= p.length) return false;
    // Only the base spatial layer is decodable on its own; upper ones with P=0 still depend on it
    // through inter-layer prediction.
    if ((p[i] >> 1) & 0x07) return false;
    i += F ? 1 : 2;
  }
  // P_DIFFs only follow when P=1, which was rejected above.
  if (V) {
    const ss = skipScalabilityStructure(p, i);
    if (ss < 0) return false;
    i = ss;
  }
  return i < p.length;
}

/** Returns the offset after the SS block, or -1 when it runs past the payload. */
function skipScalabilityStructure(p: Uint8Array, i: number): number {
  if (i >= p.length) return -1;
  const b = p[i++];
  const spatialLayers = (b >> 5) + 1;
  if (b & 0x10) i += 4 * spatialLayers;
  if (b & 0x08) {
    if (i >= p.length) return -1;
    const groups = p[i++];
    for (let g = 0; g < groups; g++) {
      if (i >= p.length) return -1;
      const refs = (p[i] >> 2) & 0x03;
      i += 1 + refs;
    }
  }
  return i <= p.length ? i : -1;
}

const H264_IDR = 5;
const H264_SPS = 7;
const H264_STAP_A = 24;
const H264_FU_A = 28;
const isH264Start = (type: number): boolean => type === H264_IDR || type === H264_SPS;

// RFC 6184 §5.
function h264(p: Uint8Array): boolean {
  // A NAL header alone (or nothing) carries no decodable data; F=1 marks a syntax violation.
  if (p.length < 2 || p[0] & 0x80) return false;
  const type = p[0] & 0x1f;
  if (type >= 1 && type <= 23) return isH264Start(type);
  if (type === H264_STAP_A) return stapA(p);
  if (type === H264_FU_A) {
    if (p.length < 3) return false;
    const fu = p[1];
    return (fu & 0x80) !== 0 && isH264Start(fu & 0x1f);
  }
  return false;
}

function stapA(p: Uint8Array): boolean {
  // The whole aggregate is validated before answering, so a truncated packet is rejected even when
  // its first unit would have been an SPS: the PPS/IDR behind it are what the decoder needs next.
  let found = false;
  let i = 1;
  if (i >= p.length) return false;
  while (i < p.length) {
    if (i + 2 > p.length) return false;
    const size = (p[i] << 8) | p[i + 1];
    i += 2;
    if (size === 0 || i + size > p.length) return false;
    if (p[i] & 0x80) return false;
    if (isH264Start(p[i] & 0x1f)) found = true;
    i += size;
  }
  return found;
}

// AV1 RTP payload format §4.4: |Z|Y|W W|N|-|-|-|.
function av1(p: Uint8Array): boolean {
  if (p.length < 2) return false;
  const Z = (p[0] & 0x80) !== 0;
  const N = (p[0] & 0x08) !== 0;
  // A packet that starts with the continuation of an earlier OBU cannot open a new sequence; the
  // two flags together mean the header is corrupt.
  return N && !Z;
}
