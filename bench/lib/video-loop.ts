// The video the forwarding benchmark's publishers send with --media video: VP8-shaped RTP payloads at
// 1.5 Mb/s. The SFU never decodes video (it reads the VP8 payload descriptor and, for keyframe detection, the
// payload header), so the bytes after the headers are seeded noise; what matters for its cost is the packet
// rate and size, which match a browser's 1.5 Mb/s VP8 (≈ 200 packets/s of ≈ 940 bytes).

import { seededRandom } from "../../test/helpers/signals.ts";

/** Packets per 20 ms tick per stream: one frame per tick, split in this many packets. */
export const VIDEO_PACKETS_PER_TICK = 4;
/** 4 × 938 bytes × 50 ticks/s × 8 = 1.5 Mb/s of payload. */
export const VIDEO_PAYLOAD_BYTES = 938;
/** A keyframe every this many frames (2 s). */
const KEYFRAME_EVERY = 100;
const WIDTH = 640;
const HEIGHT = 360;

/**
 * `frames` frames of VIDEO_PACKETS_PER_TICK packets each. Packet 0 of a frame starts VP8 partition 0
 * (RFC 7741 descriptor S=1, PID=0) with the payload header (P=0 on keyframes, which also carry the start code
 * and dimensions); the others are continuation packets (descriptor 0x00).
 */
export function encodeVideoLoop(frames: number, seed: number): Buffer[] {
  const rand = seededRandom(seed);
  const out: Buffer[] = [];
  for (let f = 0; f < frames; f++) {
    const key = f % KEYFRAME_EVERY === 0;
    for (let k = 0; k < VIDEO_PACKETS_PER_TICK; k++) {
      const b = Buffer.alloc(VIDEO_PAYLOAD_BYTES);
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
      if (k === 0) {
        b[0] = 0x10; // X=0 N=0 S=1 PID=0
        b[1] = key ? 0x10 : 0x11; // show_frame=1, version 0, P (inverse keyframe flag)
        if (key) {
          b[4] = 0x9d;
          b[5] = 0x01;
          b[6] = 0x2a;
          b.writeUInt16LE(WIDTH, 7);
          b.writeUInt16LE(HEIGHT, 9);
        }
      } else {
        b[0] = 0x00;
      }
      out.push(b);
    }
  }
  return out;
}
