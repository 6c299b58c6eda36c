// VP8 payload descriptor (RFC 7741 §4.2) parsing and per-subscriber rewriting for simulcast.
//
// Each simulcast layer is an independent VP8 stream with its own PictureID, TL0PICIDX and KEYIDX
// sequences. A subscriber only ever sees one decoder instance, so when the SFU switches it to another
// layer those sequences must keep counting from where the previous layer left off; otherwise the
// receiver's frame-reference logic sees a jump (or a step back) and treats frames as lost or stale.
//
//        0 1 2 3 4 5 6 7
//       +-+-+-+-+-+-+-+-+
//       |X|R|N|S|R| PID | (REQUIRED)
//       +-+-+-+-+-+-+-+-+
//  X:   |I|L|T|K| RSV   | (OPTIONAL)
//       +-+-+-+-+-+-+-+-+
//  I:   |M| PictureID   | (OPTIONAL, M=1 adds a second byte: 15-bit PictureID)
//       +-+-+-+-+-+-+-+-+
//  L:   |   TL0PICIDX   | (OPTIONAL)
//       +-+-+-+-+-+-+-+-+
//  T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//       +-+-+-+-+-+-+-+-+

export interface Vp8Descriptor {
  pictureId?: number;
  pictureIdBits?: 7 | 15;
  tl0PicIdx?: number;
  /** Temporal layer index; present only when the T bit is set. */
  tid?: number;
  /** Present only when the K bit is set. */
  keyIdx?: number;
  /** S bit: first packet of a VP8 partition. */
  start: boolean;
  partitionId: number;
  /** Bytes of descriptor before the VP8 payload proper. */
  headerLength: number;
}

interface Layout extends Vp8Descriptor {
  // Byte positions of the rewritable fields; -1 when absent. Kept out of the public type because
  // they are an artefact of this parser, not of the descriptor.
  pidAt: number;
  tl0At: number;
  tkAt: number;
}

function parseLayout(p: Uint8Array): Layout | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0];
  const d: Layout = {
    start: (b0 & 0x10) !== 0,
    partitionId: b0 & 0x07,
    headerLength: 1,
    pidAt: -1,
    tl0At: -1,
    tkAt: -1,
  };
  let i = 1;
  if (b0 & 0x80) {
    if (p.length < 2) return undefined;
    const x = p[1];
    i = 2;
    if (x & 0x80) {
      if (p.length < i + 1) return undefined;
      d.pidAt = i;
      if (p[i] & 0x80) {
        if (p.length < i + 2) return undefined;
        d.pictureId = ((p[i] & 0x7f) << 8) | p[i + 1];
        d.pictureIdBits = 15;
        i += 2;
      } else {
        d.pictureId = p[i] & 0x7f;
        d.pictureIdBits = 7;
        i += 1;
      }
    }
    if (x & 0x40) {
      if (p.length < i + 1) return undefined;
      d.tl0At = i;
      d.tl0PicIdx = p[i];
      i += 1;
    }
    // T and K share one byte; either bit makes it present, but each field is only meaningful when
    // its own bit is set.
    if (x & 0x30) {
      if (p.length < i + 1) return undefined;
      d.tkAt = i;
      if (x & 0x20) d.tid = p[i] >> 6;
      if (x & 0x10) d.keyIdx = p[i] & 0x1f;
      i += 1;
    }
  }
  d.headerLength = i;
  return d;
}

/** Parses the RFC 7741 payload descriptor; undefined when the payload is too short for the fields it announces. */
export function parseVp8Descriptor(payload: Uint8Array): Vp8Descriptor | undefined {
  const l = parseLayout(payload);
  if (!l) return undefined;
  const { pidAt: _p, tl0At: _t, tkAt: _k, ...d } = l;
  return d;
}

/** Signed distance a - b on a circle of `modulus` values. */
const circDiff = (a: number, b: number, modulus: number): number => {
  const half = modulus / 2;
  return ((((a - b) % modulus) + modulus + half) % modulus) - half;
};
const mod = (a: number, m: number): number => ((a % m) + m) % m;

/**
 * One modular counter (PictureID, TL0PICIDX or KEYIDX) for one subscriber. The offset is fixed for
 * the lifetime of a layer so every packet of a picture, and a late picture, maps the same way; it
 * is only recomputed at a switch, against the highest value sent so far (not the last one, which
 * may belong to a reordered older picture).
 */
class Counter {
  offset = 0;
  /** Highest value sent, in the modulus of the layer that produced it. */
  last: number | undefined;
  /** Set on a switch; resolved on the first packet that actually carries the field. */
  rebase = false;

  map(input: number, modulus: number): number {
    if (this.rebase) {
      this.rebase = false;
      if (this.last !== undefined) {
        this.offset = mod(this.last + 1 - input, modulus);
        const out = mod(input + this.offset, modulus);
        // Assigned unconditionally: `last` may be in another layer's modulus (7- vs 15-bit
        // PictureID), so comparing against it would be meaningless.
        this.last = out;
        return out;
      }
    }
    const out = mod(input + this.offset, modulus);
    if (this.last === undefined || circDiff(out, this.last, modulus) > 0) this.last = out;
    return out;
  }
}

/**
 * Rewrites VP8 descriptors for one subscriber so PictureID / TL0PICIDX / KEYIDX stay continuous
 * across simulcast layer switches. Sans-IO: the caller says when a packet is the first after a switch.
 */
export class Vp8Munger {
  readonly #pid = new Counter();
  readonly #tl0 = new Counter();
  readonly #key = new Counter();

  /**
   * Returns a rewritten copy (the input is shared between subscribers and must not be touched). A
   * payload without a PictureID, or with a truncated descriptor, is returned as is: there is nothing
   * to keep continuous.
   */
  rewrite(payload: Uint8Array, opts: { switched: boolean }): Uint8Array {
    const d = parseLayout(payload);
    if (!d || d.pictureId === undefined) return payload;
    if (opts.switched) {
      this.#pid.rebase = true;
      this.#tl0.rebase = true;
      this.#key.rebase = true;
    }
    const out = payload.slice();
    if (d.pictureIdBits === 15) {
      const pid = this.#pid.map(d.pictureId, 0x8000);
      out[d.pidAt] = 0x80 | (pid >> 8);
      out[d.pidAt + 1] = pid & 0xff;
    } else {
      out[d.pidAt] = this.#pid.map(d.pictureId, 0x80);
    }
    if (d.tl0PicIdx !== undefined) out[d.tl0At] = this.#tl0.map(d.tl0PicIdx, 0x100);
    if (d.keyIdx !== undefined) out[d.tkAt] = (out[d.tkAt] & 0xe0) | this.#key.map(d.keyIdx, 0x20);
    return out;
  }
}
