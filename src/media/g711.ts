// ITU-T G.711 companding (µ-law for PCMU, A-law for PCMA), sans-IO and table-driven.
//
// Bit-exact with ffmpeg's pcm_mulaw / pcm_alaw (libavcodec/pcm_tablegen.h), which is what the far end of
// most PCMU/PCMA interop we test against runs: the decoders are Sun's g711.c ulaw2linear/alaw2linear (µ-law
// bias 0x84, A-law even-bit inversion 0x55), and the encoder looks the sample up by its top 14 bits (an
// arithmetic shift, so negative values round towards −∞) and picks the code whose decoded value is
// nearest, ties to the larger magnitude; magnitudes beyond the largest code saturate (µ-law from 31612,
// which is where Sun's clip at 32635 lands too). The tables are built from the decoders exactly as ffmpeg
// builds them, so the two cannot drift.
//
// Known difference from Sun's linear2ulaw/linear2alaw encoders (decoders are identical): Sun truncates
// within a segment, so inputs just below a segment boundary (e.g. µ-law 16252..16379, A-law 16384..16511)
// go to the first code of the next segment there and to the last code of the lower segment here, and
// Sun's A-law folds negatives with −x − 1 rather than flooring. 512 of the 65536 inputs encode
// differently for µ-law, 964 for A-law, each by one code step.
//
// Cost: one table read per sample each way; the tables (2 × 16 KiB encode, 2 × 512 B decode) are built
// once at module load.

const SIGN_BIT = 0x80;
const QUANT_MASK = 0x0f;
const SEG_SHIFT = 4;
const SEG_MASK = 0x70;
const BIAS = 0x84;

/** Decoded value of a µ-law byte (Sun's ulaw2linear). */
function ulawToLinear(code: number): number {
  const u = ~code & 0xff;
  let t = ((u & QUANT_MASK) << 3) + BIAS;
  t <<= (u & SEG_MASK) >> SEG_SHIFT;
  return u & SIGN_BIT ? BIAS - t : t - BIAS;
}

/** Decoded value of an A-law byte (Sun's alaw2linear). */
function alawToLinear(code: number): number {
  const a = (code ^ 0x55) & 0xff;
  let t = a & QUANT_MASK;
  const seg = (a & SEG_MASK) >> SEG_SHIFT;
  if (seg) t = (t + t + 1 + 32) << (seg + 2);
  else t = (t + t + 1) << 3;
  return a & SIGN_BIT ? t : -t;
}

/**
 * Encode table indexed by (sample + 32768) >> 2. Magnitude codes 0..127 are walked upwards; every 14-bit
 * step below the midpoint of two neighbouring decoded values gets the lower code (ffmpeg's
 * build_xlaw_table, mirrored for the negative half).
 */
function buildEncodeTable(toLinear: (code: number) => number, mask: number): Uint8Array {
  const table = new Uint8Array(16384);
  table[8192] = mask;
  let j = 1;
  for (let i = 0; i < 127; i++) {
    const v1 = toLinear(i ^ mask);
    const v2 = toLinear((i + 1) ^ mask);
    const v = (v1 + v2 + 4) >> 3;
    for (; j < v; j++) {
      table[8192 - j] = i ^ (mask ^ 0x80);
      table[8192 + j] = i ^ mask;
    }
  }
  for (; j < 8192; j++) {
    table[8192 - j] = 127 ^ (mask ^ 0x80);
    table[8192 + j] = 127 ^ mask;
  }
  table[0] = table[1];
  return table;
}

function buildDecodeTable(toLinear: (code: number) => number): Int16Array {
  const table = new Int16Array(256);
  for (let i = 0; i < 256; i++) table[i] = toLinear(i);
  return table;
}

const MULAW_ENCODE = buildEncodeTable(ulawToLinear, 0xff);
const ALAW_ENCODE = buildEncodeTable(alawToLinear, 0xd5);
const MULAW_DECODE = buildDecodeTable(ulawToLinear);
const ALAW_DECODE = buildDecodeTable(alawToLinear);

function outputFor<T extends Uint8Array | Int16Array>(
  out: T | undefined,
  n: number,
  make: (n: number) => T,
): T {
  if (out === undefined) return make(n);
  if (out.length < n) throw new RangeError(`output holds ${out.length} samples, need ${n}`);
  return out.subarray(0, n) as T;
}

function encode(table: Uint8Array, pcm: Int16Array, out: Uint8Array | undefined): Uint8Array {
  const n = pcm.length;
  const dst = outputFor(out, n, (k) => new Uint8Array(k));
  for (let i = 0; i < n; i++) dst[i] = table[(pcm[i] + 32768) >> 2];
  return dst;
}

function decode(table: Int16Array, bytes: Uint8Array, out: Int16Array | undefined): Int16Array {
  const n = bytes.length;
  const dst = outputFor(out, n, (k) => new Int16Array(k));
  for (let i = 0; i < n; i++) dst[i] = table[bytes[i]];
  return dst;
}

/** s16 → µ-law, one byte per sample. With `out` (at least pcm.length long) returns out.subarray(0, n). */
export function encodeMulaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  return encode(MULAW_ENCODE, pcm, out);
}

/** µ-law → s16. With `out` (at least bytes.length long) returns out.subarray(0, n). */
export function decodeMulaw(bytes: Uint8Array, out?: Int16Array): Int16Array {
  return decode(MULAW_DECODE, bytes, out);
}

/** s16 → A-law, one byte per sample. With `out` (at least pcm.length long) returns out.subarray(0, n). */
export function encodeAlaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  return encode(ALAW_ENCODE, pcm, out);
}

/** A-law → s16. With `out` (at least bytes.length long) returns out.subarray(0, n). */
export function decodeAlaw(bytes: Uint8Array, out?: Int16Array): Int16Array {
  return decode(ALAW_DECODE, bytes, out);
}
