// PcmFramer turns one continuous s16le byte stream, chunked arbitrarily by the sender, into exact 20 ms
// frames. SPEC §2.5: chunks need not be aligned to frames or even to samples, so anything short of a full
// frame (including a lone odd byte) is carried over to the next push.
//
// Hot path: a 16 KiB message yields ~4 frames; each frame costs one allocation and one bulk byte copy
// (TypedArray#set), never a per-byte JS loop. Copying (rather than viewing the caller's buffer) is what
// makes the returned frames safe to queue for a minute: the caller's buffer may be a pooled `ws` buffer
// that gets reused, and a view could also start at an odd byteOffset, which Int16Array cannot express.

import { FRAME_BYTES, FRAME_VALUES } from "./audio-format.ts";

// Copying raw bytes into an Int16Array's buffer decodes them in platform byte order. Every platform Node
// ships for today is little-endian, but checking once is cheaper than being wrong on s390x.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapPairsInPlace(bytes: Uint8Array): void {
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const b = bytes[i];
    bytes[i] = bytes[i + 1];
    bytes[i + 1] = b;
  }
}

export class PcmFramer {
  // Always exactly one frame long so a frame can be assembled in place; only the first `pending` bytes
  // are meaningful.
  readonly #partial = new Uint8Array(FRAME_BYTES);
  #pending = 0;

  /** Bytes received but not yet returned in a frame (0 ≤ pendingBytes < FRAME_BYTES). */
  get pendingBytes(): number {
    return this.#pending;
  }

  /**
   * Appends `bytes` to the stream and returns every frame completed by it, in order. Each frame is a fresh
   * Int16Array of FRAME_VALUES interleaved samples that the caller owns.
   */
  push(bytes: Uint8Array): Int16Array[] {
    const frames: Int16Array[] = [];
    let offset = 0;
    const length = bytes.length;

    if (this.#pending > 0) {
      const take = Math.min(FRAME_BYTES - this.#pending, length);
      this.#partial.set(bytes.subarray(0, take), this.#pending);
      this.#pending += take;
      offset = take;
      if (this.#pending < FRAME_BYTES) return frames;
      frames.push(frameFromBytes(this.#partial));
      this.#pending = 0;
    }

    while (length - offset >= FRAME_BYTES) {
      frames.push(frameFromBytes(bytes.subarray(offset, offset + FRAME_BYTES)));
      offset += FRAME_BYTES;
    }

    if (offset < length) {
      this.#partial.set(bytes.subarray(offset), 0);
      this.#pending = length - offset;
    }
    return frames;
  }

  /**
   * Ends the current segment: a partial frame is completed with silence (zero bytes) and returned; null
   * when nothing is pending. An odd trailing byte becomes the low byte of a sample whose high byte is
   * zero — inaudible, and it keeps every received byte in the output.
   */
  flush(): Int16Array | null {
    if (this.#pending === 0) return null;
    this.#partial.fill(0, this.#pending);
    const frame = frameFromBytes(this.#partial);
    this.#pending = 0;
    return frame;
  }
}

function frameFromBytes(src: Uint8Array): Int16Array {
  const frame = new Int16Array(FRAME_VALUES);
  const dst = new Uint8Array(frame.buffer);
  dst.set(src);
  if (!HOST_IS_LITTLE_ENDIAN) swapPairsInPlace(dst);
  return frame;
}
