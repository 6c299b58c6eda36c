// PcmFramer turns one continuous byte stream, chunked arbitrarily by the sender, into exact 20 ms frames
// of the adapter's wire format (3 840 bytes for 48 kHz stereo s16le, 160 for 8 kHz µ-law…). SPEC §2.5:
// chunks need not be aligned to frames or even to samples, so anything short of a full frame (including
// a lone odd byte) is carried over to the next push.
//
// Hot path: a 16 KiB message yields ~4 frames; each frame costs one allocation and one bulk byte copy
// (TypedArray#set), never a per-byte JS loop. Copying (rather than viewing the caller's buffer) is what
// makes the returned frames safe to queue for a minute: the caller's buffer may be a pooled `ws` buffer
// that gets reused, and a view could also start at an odd byteOffset, which Int16Array cannot express.
// Every frame owns its ArrayBuffer from offset 0, so a 16-bit format can view it as an Int16Array.

import { FRAME_BYTES } from "./audio-format.ts";

export class PcmFramer {
  // Always exactly one frame long so a frame can be assembled in place; only the first `pending` bytes
  // are meaningful.
  readonly #partial: Uint8Array;
  #pending = 0;

  /**
   * `frameBytes`: the size of one 20 ms frame of the stream's format (default: 48 kHz stereo s16le);
   * `silenceByte`: what pads a partial frame (0 for PCM; 0xFF µ-law, 0xD5 A-law, where 0 is loud).
   */
  constructor(
    readonly frameBytes = FRAME_BYTES,
    private readonly silenceByte = 0,
  ) {
    if (!Number.isInteger(frameBytes) || frameBytes < 1)
      throw new RangeError(`frameBytes must be a positive integer, got ${frameBytes}`);
    this.#partial = new Uint8Array(frameBytes);
  }

  /** Bytes received but not yet returned in a frame (0 ≤ pendingBytes < frameBytes). */
  get pendingBytes(): number {
    return this.#pending;
  }

  /**
   * Appends `bytes` to the stream and returns every frame completed by it, in order. Each frame is a fresh
   * array of `frameBytes` bytes that the caller owns.
   */
  push(bytes: Uint8Array): Uint8Array[] {
    const size = this.frameBytes;
    const frames: Uint8Array[] = [];
    let offset = 0;
    const length = bytes.length;

    if (this.#pending > 0) {
      const take = Math.min(size - this.#pending, length);
      this.#partial.set(bytes.subarray(0, take), this.#pending);
      this.#pending += take;
      offset = take;
      if (this.#pending < size) return frames;
      frames.push(copyOf(this.#partial));
      this.#pending = 0;
    }

    while (length - offset >= size) {
      frames.push(copyOf(bytes.subarray(offset, offset + size)));
      offset += size;
    }

    if (offset < length) {
      this.#partial.set(bytes.subarray(offset), 0);
      this.#pending = length - offset;
    }
    return frames;
  }

  /**
   * Ends the current segment: a partial frame is completed with silence and returned; null when nothing
   * is pending. An odd trailing byte of a 16-bit format becomes the low byte of a sample whose high byte
   * is zero — inaudible, and it keeps every received byte in the output.
   */
  flush(): Uint8Array | null {
    if (this.#pending === 0) return null;
    this.#partial.fill(this.silenceByte, this.#pending);
    const frame = copyOf(this.#partial);
    this.#pending = 0;
    return frame;
  }
}

/** A copy in its own ArrayBuffer (Buffer#slice would return a view of a possibly pooled buffer). */
function copyOf(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}
