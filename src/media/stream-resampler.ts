// Streaming sample-rate conversion by a rational ratio, for adapter endpoints that speak 8/16/24 kHz while
// the wire is 48 kHz. Unlike resample() in resample.ts (one whole block, zero-padded edges, zero delay) this
// keeps filter history and phase between calls, so audio cut into 20 ms frames converts exactly as if it
// were one long buffer, at the price of a fixed, known delay (delayFrames).
//
// Method: classic polyphase interpolation/decimation. The ratio toRate/fromRate is reduced to L/M; the
// input is conceptually zero-stuffed by L, low-pass filtered at rate L·fromRate and kept every M-th sample.
// Only the non-zero products are computed: output n uses phase p = n·M mod L of the prototype (every L-th
// tap, K taps) against the K most recent input frames up to ⌊n·M / L⌋.
//
// Prototype: Kaiser-windowed sinc. Passband edge 0.43 × the lower rate (speech lives well below it),
// stopband edge 0.5 × the lower rate, so nothing that folds or images into the lower rate's band survives:
// with ≥ 80 dB stopband attenuation, aliases and images sit below the s16 noise floor of a normal-level
// signal. Beta and length come from Kaiser's formulas; the window is then widened a little so its centre
// falls on a whole output frame, which makes delayFrames an integer a caller can compensate exactly. The
// table is built once per ratio and shared by every instance through a module-level cache.
//
// Timing: after a stream of T input frames in total, exactly ⌊T·L/M⌋ output frames have come out, whatever
// the chunking; output n is the input around input frame (n − delayFrames)·M/L, history before the first
// input frame being silence. Nothing is flushed at the end (the last delayFrames frames stay inside).

/** Stopband attenuation required, dB. */
const ATTENUATION_DB = 80;
/**
 * Kaiser's beta and length formulas are approximations that land 0.5–0.8 dB short of their target for
 * these transition widths (79.2 dB measured for 48 → 24 kHz when asked for 80), so ask for a little more;
 * 82 dB measures ≥ 81.2 dB for every 8/16/24 ↔ 48 kHz pair and for 44.1 ↔ 48 kHz.
 */
const DESIGN_ATTENUATION_DB = ATTENUATION_DB + 2;
/** Passband and stopband edges as fractions of the lower of the two rates. */
const PASS_EDGE = 0.43;
const STOP_EDGE = 0.5;
const MAX_RATE = 384_000;
const MAX_FACTOR = 1000;
const MAX_CHANNELS = 8;

export interface StreamResamplerOptions {
  fromRate: number;
  toRate: number;
  channels: number;
}

interface PolyphaseTable {
  /** Upsampling factor (number of phases). */
  L: number;
  /** Decimation factor. */
  M: number;
  /** Taps per phase. */
  K: number;
  /** Phase p's taps at [p·K, p·K + K), time-reversed so the inner loop walks history forwards. */
  coeffs: Float32Array;
  /** Filter centre in output frames. */
  delayFrames: number;
  beta: number;
}

const tables = new Map<string, PolyphaseTable>();

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for x ≤ ~20). */
function besselI0(x: number): number {
  const q = (x * x) / 4;
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** Kaiser's beta for a stopband attenuation of `a` dB. */
function kaiserBeta(a: number): number {
  if (a > 50) return 0.1102 * (a - 8.7);
  if (a >= 21) return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21);
  return 0;
}

function polyphaseTable(L: number, M: number): PolyphaseTable {
  const key = `${L}/${M}/${DESIGN_ATTENUATION_DB}`;
  const cached = tables.get(key);
  if (cached) return cached;

  // Frequencies in cycles per sample at the design rate L·fromRate, where the lower rate is 1/max(L, M).
  const lower = 1 / Math.max(L, M);
  const cutoff = ((PASS_EDGE + STOP_EDGE) / 2) * lower;
  const transition = (STOP_EDGE - PASS_EDGE) * lower;
  const beta = kaiserBeta(DESIGN_ATTENUATION_DB);
  // Kaiser's length estimate: N − 1 = (A − 7.95) / (14.36 Δf).
  const order = Math.ceil((DESIGN_ATTENUATION_DB - 7.95) / (14.36 * transition));
  // Centre on a multiple of M so the group delay is a whole number of output frames.
  const delayFrames = Math.ceil(order / 2 / M);
  const centre = delayFrames * M;
  const length = 2 * centre + 1;
  const K = Math.ceil(length / L);

  const proto = new Float64Array(K * L);
  const i0Beta = besselI0(beta);
  let sum = 0;
  for (let k = 0; k < length; k++) {
    const x = k - centre;
    const arg = 2 * Math.PI * cutoff * x;
    const sinc = x === 0 ? 1 : Math.sin(arg) / arg;
    const r = x / centre;
    const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0Beta;
    proto[k] = 2 * cutoff * sinc * w;
    sum += proto[k];
  }
  // Gain L makes up for the zero-stuffing; normalizing the sum also makes DC exact.
  const gain = L / sum;
  const coeffs = new Float32Array(K * L);
  for (let p = 0; p < L; p++) {
    for (let t = 0; t < K; t++) coeffs[p * K + (K - 1 - t)] = proto[p + t * L] * gain;
  }
  const table: PolyphaseTable = { L, M, K, coeffs, delayFrames, beta };
  tables.set(key, table);
  return table;
}

function assertRate(name: string, rate: number): void {
  if (!Number.isInteger(rate) || rate < 1 || rate > MAX_RATE) {
    throw new RangeError(`${name} must be an integer sample rate in [1, ${MAX_RATE}], got ${rate}`);
  }
}

/**
 * Σ coeffs[off + s] · history[base + s] for s < K. Unrolled by 8 into two accumulators, which V8 runs about
 * twice as fast as the plain loop; the summation order is fixed, so results do not depend on chunking.
 */
function dot(coeffs: Float32Array, off: number, history: Float32Array, base: number, K: number): number {
  let a0 = 0;
  let a1 = 0;
  let s = 0;
  for (; s < K - 7; s += 8) {
    const i = base + s;
    const j = off + s;
    a0 += coeffs[j] * history[i] + coeffs[j + 2] * history[i + 2];
    a0 += coeffs[j + 4] * history[i + 4] + coeffs[j + 6] * history[i + 6];
    a1 += coeffs[j + 1] * history[i + 1] + coeffs[j + 3] * history[i + 3];
    a1 += coeffs[j + 5] * history[i + 5] + coeffs[j + 7] * history[i + 7];
  }
  for (; s < K; s++) a0 += coeffs[off + s] * history[base + s];
  return a0 + a1;
}

function toInt16(acc: number): number {
  return Math.min(32767, Math.max(-32768, Math.round(acc)));
}

export class StreamResampler {
  /** Group delay of the filter in output-rate frames (audio comes out this much later). */
  readonly delayFrames: number;
  /** Multiply-adds per output sample (per channel). */
  readonly tapsPerOutput: number;

  private readonly channels: number;
  private readonly table: PolyphaseTable | undefined;
  /**
   * One linear history buffer per channel, oldest frame first: the K − 1 frames before the next output's
   * newest input, then whatever has arrived since. Compacted at the start of each call (K − 1 frames moved).
   */
  private history: Float32Array[];
  /** Frames held in each history buffer. */
  private historyLength: number;
  /** Buffer index of the newest input frame the next output reads (⌊n·M / L⌋ relative to the buffer). */
  private nextIndex: number;
  /** Phase of the next output, n·M mod L. */
  private nextPhase = 0;
  /** (input frames so far · L) mod M: the part of an output frame already paid for. */
  private pending = 0;

  constructor(opts: StreamResamplerOptions) {
    assertRate("fromRate", opts.fromRate);
    assertRate("toRate", opts.toRate);
    if (!Number.isInteger(opts.channels) || opts.channels < 1 || opts.channels > MAX_CHANNELS) {
      throw new RangeError(`channels must be an integer in [1, ${MAX_CHANNELS}], got ${opts.channels}`);
    }
    this.channels = opts.channels;
    const g = gcd(opts.fromRate, opts.toRate);
    const L = opts.toRate / g;
    const M = opts.fromRate / g;
    if (L > MAX_FACTOR || M > MAX_FACTOR) {
      throw new RangeError(
        `${opts.fromRate} → ${opts.toRate} Hz reduces to ${L}/${M}; both terms must be ≤ ${MAX_FACTOR}`,
      );
    }
    if (L === 1 && M === 1) {
      this.table = undefined;
      this.delayFrames = 0;
      this.tapsPerOutput = 0;
      this.history = [];
      this.historyLength = 0;
      this.nextIndex = 0;
      return;
    }
    const table = polyphaseTable(L, M);
    this.table = table;
    this.delayFrames = table.delayFrames;
    this.tapsPerOutput = table.K;
    // K − 1 frames of silence stand for the time before the stream, so the first outputs need no edge case.
    const capacity = Math.max(2 * table.K, 4096);
    this.history = Array.from({ length: this.channels }, () => new Float32Array(capacity));
    this.historyLength = table.K - 1;
    this.nextIndex = table.K - 1;
  }

  /**
   * Interleaved s16 in (any number of whole frames) → interleaved s16 out. Keeps filter history and
   * fractional phase across calls, so cutting a stream into chunks gives exactly the same output as one call.
   */
  process(input: Int16Array): Int16Array {
    const ch = this.channels;
    if (input.length % ch !== 0) {
      throw new RangeError(`input holds ${input.length} samples, not a whole number of ${ch}-channel frames`);
    }
    const table = this.table;
    if (table === undefined) return input.slice();
    const frames = input.length / ch;
    const { L, M, K } = table;

    this.compact(K);
    this.reserve(this.historyLength + frames);
    const start = this.historyLength;
    for (let c = 0; c < ch; c++) {
      const h = this.history[c];
      for (let i = 0, j = c; i < frames; i++, j += ch) h[start + i] = input[j];
    }
    this.historyLength += frames;

    // ⌊T·L/M⌋ outputs after T frames, computed incrementally so no counter grows with the stream.
    const paid = this.pending + frames * L;
    const count = Math.floor(paid / M);
    this.pending = paid - count * M;

    const out = new Int16Array(count * ch);
    const coeffs = table.coeffs;
    const step = Math.floor(M / L);
    const stepPhase = M % L;
    let index = this.nextIndex;
    let phase = this.nextPhase;
    if (ch === 1) {
      const h = this.history[0];
      for (let n = 0; n < count; n++) {
        out[n] = toInt16(dot(coeffs, phase * K, h, index - K + 1, K));
        index += step;
        phase += stepPhase;
        if (phase >= L) {
          phase -= L;
          index++;
        }
      }
    } else if (ch === 2) {
      const h0 = this.history[0];
      const h1 = this.history[1];
      for (let n = 0; n < count; n++) {
        const base = index - K + 1;
        const off = phase * K;
        // Unrolled by 4 with two accumulators per channel: about 1.7× faster in V8 than the plain loop.
        let l0 = 0;
        let l1 = 0;
        let r0 = 0;
        let r1 = 0;
        let s = 0;
        for (; s < K - 3; s += 4) {
          const i = base + s;
          const j = off + s;
          const w0 = coeffs[j];
          const w1 = coeffs[j + 1];
          const w2 = coeffs[j + 2];
          const w3 = coeffs[j + 3];
          l0 += w0 * h0[i] + w2 * h0[i + 2];
          l1 += w1 * h0[i + 1] + w3 * h0[i + 3];
          r0 += w0 * h1[i] + w2 * h1[i + 2];
          r1 += w1 * h1[i + 1] + w3 * h1[i + 3];
        }
        for (; s < K; s++) {
          const w = coeffs[off + s];
          l0 += w * h0[base + s];
          r0 += w * h1[base + s];
        }
        out[2 * n] = toInt16(l0 + l1);
        out[2 * n + 1] = toInt16(r0 + r1);
        index += step;
        phase += stepPhase;
        if (phase >= L) {
          phase -= L;
          index++;
        }
      }
    } else {
      for (let n = 0; n < count; n++) {
        const base = index - K + 1;
        const off = phase * K;
        for (let c = 0; c < ch; c++) out[n * ch + c] = toInt16(dot(coeffs, off, this.history[c], base, K));
        index += step;
        phase += stepPhase;
        if (phase >= L) {
          phase -= L;
          index++;
        }
      }
    }
    this.nextIndex = index;
    this.nextPhase = phase;
    return out;
  }

  /** Drops history the next output no longer reads (it needs the K frames ending at nextIndex). */
  private compact(K: number): void {
    const drop = this.nextIndex - (K - 1);
    if (drop <= 0) return;
    for (const h of this.history) h.copyWithin(0, drop, this.historyLength);
    this.historyLength -= drop;
    this.nextIndex -= drop;
  }

  /** Grows the history buffers (doubling) when a chunk is larger than any before. */
  private reserve(frames: number): void {
    if (frames <= this.history[0].length) return;
    const capacity = Math.max(frames, 2 * this.history[0].length);
    this.history = this.history.map((h) => {
      const grown = new Float32Array(capacity);
      grown.set(h.subarray(0, this.historyLength));
      return grown;
    });
  }
}
