// Test signals and comparison tools shared by every media test (unit, WebSocket, WebRTC, browser).
//
// All audio here is interleaved stereo s16 at 48 kHz (the adapter wire format) unless an option says
// otherwise. Everything is deterministic given a seed.
//
// Which comparison to use:
// - Lossless paths (framer, pacer, PCM passthrough, egress of a PCM frame we just produced): compare
//   bytes exactly; if an alignment is needed, `waveformCorrelation` should be ≥ 0.999.
// - Anything that went through Opus (ingest → track, track → egress, browser round trips): use
//   `envelopeCorrelation` (1 ms RMS envelopes, Pearson). Opus does not preserve the waveform reliably —
//   SILK is parametric at low rates, CELT reshapes high bands, and packet loss concealment invents
//   samples — but it preserves where the energy is. A working path scores ≥ 0.9; silence, a wrong
//   signal or a badly broken stream scores far lower. `waveformCorrelation` after Opus is informative
//   only.
// - Discrimination grows with length and shrinks with the lag range searched (the best of many lags is
//   taken): two unrelated 5 s speechLike signals searched over ±1 s score ≤ ~0.4 envelope, but 2 s
//   signals over ±1 s can reach ~0.7. Use ≥ 5 s of audio, or a tight maxLagSamples, when the test must
//   tell "right audio" from "some audio".
// - `alignAndCorrelate` finds the lag once and reports both numbers; `correlation` is the envelope one
//   unless `method: "waveform"` is asked for.
//
// Lag convention everywhere: received[n + lagSamples] ≈ reference[n]; a positive lag means the received
// signal is late (codec lookahead, network, buffering). Lags are in samples per channel (1 ms = 48).

import { CHANNELS, SAMPLE_RATE } from "../../src/media/audio-format.ts";

const SAMPLES_PER_MS = SAMPLE_RATE / 1000;

/** mulberry32: small, fast, seedable; good enough for test signals. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function clampToInt16(x: number): number {
  const v = Math.round(x);
  return Math.min(32767, Math.max(-32768, v));
}

function sampleCount(durationMs: number): number {
  if (!(durationMs >= 0) || !Number.isFinite(durationMs)) throw new RangeError(`bad duration ${durationMs}`);
  return Math.round(durationMs * SAMPLES_PER_MS);
}

export interface SpeechLikeOptions {
  seed: number;
  /** Peak level as a fraction of full scale. Default 0.5 (about −6 dBFS), leaving codec headroom. */
  peak?: number;
}

/**
 * Speech-shaped test audio: "syllables" of 80–300 ms separated by 30–200 ms pauses, each with a raised
 * cosine envelope and its own random level; inside, a harmonic series whose fundamental glides randomly
 * in 90–260 Hz, harmonics weighted by two moving formant peaks, plus a little noise. Because pitch,
 * formants and syllable timing never repeat, any two windows of a few ms look different, so the
 * correlation peak is unique. Left and right differ slightly (gain, noise) so a dead channel shows.
 */
export function speechLike(durationMs: number, options: SpeechLikeOptions): Int16Array {
  const n = sampleCount(durationMs);
  const random = seededRandom(options.seed);
  const peak = (options.peak ?? 0.5) * 32767;
  // Synthesized in floats, then scaled once so the loudest sample hits `peak` exactly.
  const left = new Float64Array(n);
  const right = new Float64Array(n);
  const harmonics = 12;
  const phases = new Float64Array(harmonics);
  for (let h = 0; h < harmonics; h++) phases[h] = random() * 2 * Math.PI;

  let f0 = 90 + random() * 170;
  let f0Target = 90 + random() * 170;
  let formant1 = 300 + random() * 600;
  let formant2 = 1000 + random() * 1500;
  // Start inside a pause so the first syllable has a clean onset at a random place.
  let inSyllable = false;
  let segmentLeft = Math.round((5 + random() * 40) * SAMPLES_PER_MS);
  let segmentLength = segmentLeft;
  let level = 0;
  const weights = new Float64Array(harmonics);

  for (let i = 0; i < n; i++) {
    if (segmentLeft <= 0) {
      inSyllable = !inSyllable;
      segmentLength = Math.round((inSyllable ? 80 + random() * 220 : 30 + random() * 170) * SAMPLES_PER_MS);
      segmentLeft = segmentLength;
      level = 0.35 + random() * 0.65;
      f0Target = 90 + random() * 170;
      formant1 = 300 + random() * 600;
      formant2 = 1000 + random() * 1500;
    }
    // Re-weighting every 1 ms is plenty for formant motion and keeps this loop cheap.
    if (i % SAMPLES_PER_MS === 0) {
      f0 += (f0Target - f0) * 0.02;
      for (let h = 0; h < harmonics; h++) {
        const f = f0 * (h + 1);
        const w1 = Math.exp(-(((f - formant1) / 250) ** 2));
        const w2 = 0.6 * Math.exp(-(((f - formant2) / 400) ** 2));
        weights[h] = (0.15 + w1 + w2) / (h + 1) ** 0.5;
      }
    }
    let v = 0;
    if (inSyllable) {
      for (let h = 0; h < harmonics; h++) {
        phases[h] += (2 * Math.PI * f0 * (h + 1)) / SAMPLE_RATE;
        v += weights[h] * Math.sin(phases[h]);
      }
      const pos = 1 - segmentLeft / segmentLength;
      const env = 0.5 - 0.5 * Math.cos(2 * Math.PI * pos);
      v = v * env * level + (random() - 0.5) * 0.05 * env;
    } else {
      for (let h = 0; h < harmonics; h++) phases[h] += (2 * Math.PI * f0 * (h + 1)) / SAMPLE_RATE;
    }
    segmentLeft--;
    left[i] = v;
    right[i] = v * 0.8 + (random() - 0.5) * 0.004;
  }
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(left[i]), Math.abs(right[i]));
  const scale = max > 0 ? peak / max : 0;
  const out = new Int16Array(n * CHANNELS);
  for (let i = 0; i < n; i++) {
    out[i * 2] = clampToInt16(left[i] * scale);
    out[i * 2 + 1] = clampToInt16(right[i] * scale);
  }
  return out;
}

/** A stereo sine (both channels equal). `amplitude` is a fraction of full scale, default 0.5. */
export function sine(freqHz: number, durationMs: number, amplitude = 0.5): Int16Array {
  const n = sampleCount(durationMs);
  const out = new Int16Array(n * CHANNELS);
  const a = amplitude * 32767;
  for (let i = 0; i < n; i++) {
    const v = clampToInt16(a * Math.sin((2 * Math.PI * freqHz * i) / SAMPLE_RATE));
    out[i * 2] = v;
    out[i * 2 + 1] = v;
  }
  return out;
}

/** `durationMs` of digital silence, stereo. */
export function silence(durationMs: number): Int16Array {
  return new Int16Array(sampleCount(durationMs) * CHANNELS);
}

export function concatPcm(...parts: Int16Array[]): Int16Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Int16Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Speech-like, band-limited test audio: 40 partials per channel between 80 Hz and `maxFreq` (weights
 * falling like 1/√f) under a syllable envelope of 60–250 ms bursts; peak about half of full scale.
 */
export function bandLimitedSpeech(
  rate: number,
  frames: number,
  channels: number,
  maxFreq: number,
  seed: number,
): Int16Array {
  const random = seededRandom(seed);
  const out = new Int16Array(frames * channels);
  const partials = 40;
  for (let c = 0; c < channels; c++) {
    const freq = Float64Array.from({ length: partials }, () => 80 + random() * (maxFreq - 80));
    const phase = Float64Array.from({ length: partials }, () => random() * 2 * Math.PI);
    const weight = Float64Array.from(freq, (f) => 1 / Math.sqrt(f));
    let norm = 0;
    for (const w of weight) norm += w;
    let segmentStart = 0;
    let segmentLength = Math.round(rate * (0.06 + random() * 0.19));
    let level = 0.3 + random() * 0.7;
    for (let i = 0; i < frames; i++) {
      if (i - segmentStart >= segmentLength) {
        segmentStart = i;
        segmentLength = Math.round(rate * (0.06 + random() * 0.19));
        level = 0.3 + random() * 0.7;
      }
      const env = level * (0.55 - 0.45 * Math.cos((2 * Math.PI * (i - segmentStart)) / segmentLength));
      let v = 0;
      for (let k = 0; k < partials; k++)
        v += weight[k] * Math.sin((2 * Math.PI * freq[k] * i) / rate + phase[k]);
      out[i * channels + c] = Math.round((16000 * env * v) / norm);
    }
  }
  return out;
}

/**
 * Least-squares fit of a·cos + b·sin at `freq` to x: exact for a pure tone whatever the number of cycles in
 * the window. Returns the fitted sinusoid's amplitude and samples (for residual = what is not the tone).
 */
export function fitTone(
  x: Float64Array,
  rate: number,
  freq: number,
): { amplitude: number; fitted: Float64Array } {
  let cc = 0;
  let ss = 0;
  let cs = 0;
  let xc = 0;
  let xs = 0;
  const w = (2 * Math.PI * freq) / rate;
  for (let i = 0; i < x.length; i++) {
    const co = Math.cos(w * i);
    const si = Math.sin(w * i);
    cc += co * co;
    ss += si * si;
    cs += co * si;
    xc += x[i] * co;
    xs += x[i] * si;
  }
  const det = cc * ss - cs * cs;
  const a = (xc * ss - xs * cs) / det;
  const b = (xs * cc - xc * cs) / det;
  const fitted = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) fitted[i] = a * Math.cos(w * i) + b * Math.sin(w * i);
  return { amplitude: Math.hypot(a, b), fitted };
}

/** An amplitude ratio in decibels. */
export const dB = (ratio: number): number => 20 * Math.log10(ratio);

/** s16le bytes of `pcm` (explicitly little-endian, whatever the host). */
export function toBytes(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) view.setInt16(i * 2, pcm[i], true);
  return out;
}

/** Decodes s16le bytes (any alignment, odd trailing byte ignored). */
export function fromBytes(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  const out = new Int16Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** Root mean square over all samples (all channels), in sample units (0…32768). */
export function rms(pcm: Int16Array): number {
  if (pcm.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
  return Math.sqrt(sum / pcm.length);
}

/** RMS relative to full scale in dB (−Infinity for digital silence). */
export function rmsDbfs(pcm: Int16Array): number {
  return 20 * Math.log10(rms(pcm) / 32768);
}

export interface CorrelateOptions {
  /** Interleaved channel count of both inputs. Default 2. */
  channels?: number;
  /** Search lags in [−max, +max] samples per channel. Default 48 000 (1 s). */
  maxLagSamples?: number;
}

export interface Alignment {
  /** received[n + lagSamples] ≈ reference[n]. */
  lagSamples: number;
  /** Normalized correlation at that lag, in [−1, 1]. */
  correlation: number;
}

export interface AlignAndCorrelateResult extends Alignment {
  /** Envelope correlation (Pearson of 1 ms RMS envelopes) at lagSamples. */
  envelope: number;
  /** Waveform correlation (of the channel mix) at lagSamples. */
  waveform: number;
}

// Envelope bin width: 1 ms. Fine enough to resolve syllable onsets, coarse enough that codec phase
// changes average out.
const ENV_BIN = SAMPLES_PER_MS;

function mixToMono(pcm: Int16Array, channels: number): Float64Array {
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`bad channel count ${channels}`);
  const n = Math.floor(pcm.length / channels);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += pcm[i * channels + c];
    out[i] = s / channels;
  }
  return out;
}

/** prefix[i] = Σ x[0..i-1]², so the energy of any window is O(1). */
function energyPrefix(x: Float64Array): Float64Array {
  const p = new Float64Array(x.length + 1);
  for (let i = 0; i < x.length; i++) p[i + 1] = p[i] + x[i] * x[i];
  return p;
}

/** 1 ms RMS envelope of x starting at sample `offset` (which may be negative; out-of-range bins are NaN). */
function envelopeAt(prefix: Float64Array, offset: number, bins: number): Float64Array {
  const n = prefix.length - 1;
  const env = new Float64Array(bins);
  for (let b = 0; b < bins; b++) {
    const start = offset + b * ENV_BIN;
    const end = start + ENV_BIN;
    env[b] =
      start < 0 || end > n ? Number.NaN : Math.sqrt(Math.max(0, prefix[end] - prefix[start]) / ENV_BIN);
  }
  return env;
}

/** Pearson correlation of a[i] and b[i + shift] over the indices where both exist (NaN skipped). */
function pearson(a: Float64Array, b: Float64Array, shift: number, minOverlap: number): number {
  let n = 0;
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  const from = Math.max(0, -shift);
  const to = Math.min(a.length, b.length - shift);
  for (let i = from; i < to; i++) {
    const x = a[i];
    const y = b[i + shift];
    if (Number.isNaN(x) || Number.isNaN(y)) continue;
    n++;
    sa += x;
    sb += y;
    saa += x * x;
    sbb += y * y;
    sab += x * y;
  }
  if (n < minOverlap) return Number.NEGATIVE_INFINITY;
  const cov = sab - (sa * sb) / n;
  const va = saa - (sa * sa) / n;
  const vb = sbb - (sb * sb) / n;
  if (va <= 0 || vb <= 0) return 0;
  return cov / Math.sqrt(va * vb);
}

/** Normalized (not mean-removed: audio is zero-mean) cross-correlation of x[i] and y[i + lag]. */
function waveformAt(x: Float64Array, y: Float64Array, lag: number, minOverlap: number): number {
  const from = Math.max(0, -lag);
  const to = Math.min(x.length, y.length - lag);
  if (to - from < minOverlap) return Number.NEGATIVE_INFINITY;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = from; i < to; i++) {
    const a = x[i];
    const b = y[i + lag];
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (sxx <= 0 || syy <= 0) return 0;
  return sxy / Math.sqrt(sxx * syy);
}

interface Prepared {
  ref: Float64Array;
  rec: Float64Array;
  refPrefix: Float64Array;
  recPrefix: Float64Array;
  maxLag: number;
  minOverlapSamples: number;
}

function prepare(reference: Int16Array, received: Int16Array, options: CorrelateOptions): Prepared {
  const channels = options.channels ?? CHANNELS;
  const ref = mixToMono(reference, channels);
  const rec = mixToMono(received, channels);
  if (ref.length < ENV_BIN * 4 || rec.length < ENV_BIN * 4) {
    throw new RangeError("signals too short to correlate (need ≥ 4 ms each)");
  }
  const maxLag = Math.max(0, Math.floor(options.maxLagSamples ?? SAMPLE_RATE));
  return {
    ref,
    rec,
    refPrefix: energyPrefix(ref),
    recPrefix: energyPrefix(rec),
    maxLag,
    // A lag that overlaps only a sliver of the signals could correlate by accident.
    minOverlapSamples: Math.floor(Math.min(ref.length, rec.length) / 2),
  };
}

/** Envelope correlation at an exact sample lag. */
function envelopeScore(p: Prepared, lag: number, refEnv?: Float64Array): number {
  const bins = Math.floor(p.ref.length / ENV_BIN);
  refEnv ??= envelopeAt(p.refPrefix, 0, bins);
  const recEnv = envelopeAt(p.recPrefix, lag, bins);
  return pearson(refEnv, recEnv, 0, Math.max(2, Math.floor(p.minOverlapSamples / ENV_BIN)));
}

/** Best lag by envelope: coarse search on the 1 ms grid, then every sample within ±1 ms of the winner. */
function envelopeSearch(p: Prepared): Alignment {
  const refBins = Math.floor(p.ref.length / ENV_BIN);
  const recBins = Math.floor(p.rec.length / ENV_BIN);
  const refEnv = envelopeAt(p.refPrefix, 0, refBins);
  const recEnv = envelopeAt(p.recPrefix, 0, recBins);
  const maxBinLag = Math.floor(p.maxLag / ENV_BIN);
  const minOverlapBins = Math.max(2, Math.floor(p.minOverlapSamples / ENV_BIN));
  let bestBin = 0;
  let best = Number.NEGATIVE_INFINITY;
  for (let k = -maxBinLag; k <= maxBinLag; k++) {
    const c = pearson(refEnv, recEnv, k, minOverlapBins);
    if (c > best) {
      best = c;
      bestBin = k;
    }
  }
  let bestLag = bestBin * ENV_BIN;
  let bestScore = Number.NEGATIVE_INFINITY;
  const lo = Math.max(-p.maxLag, bestLag - ENV_BIN);
  const hi = Math.min(p.maxLag, bestLag + ENV_BIN);
  for (let lag = lo; lag <= hi; lag++) {
    const c = envelopeScore(p, lag, refEnv);
    if (c > bestScore) {
      bestScore = c;
      bestLag = lag;
    }
  }
  return { lagSamples: bestLag, correlation: bestScore === Number.NEGATIVE_INFINITY ? 0 : bestScore };
}

/** Best waveform lag within ±radius of `center`. */
function waveformRefine(p: Prepared, center: number, radius: number): Alignment {
  let bestLag = center;
  let best = Number.NEGATIVE_INFINITY;
  const lo = Math.max(-p.maxLag, center - radius);
  const hi = Math.min(p.maxLag, center + radius);
  for (let lag = lo; lag <= hi; lag++) {
    const c = waveformAt(p.ref, p.rec, lag, p.minOverlapSamples);
    if (c > best) {
      best = c;
      bestLag = lag;
    }
  }
  return { lagSamples: bestLag, correlation: best === Number.NEGATIVE_INFINITY ? 0 : best };
}

/**
 * Aligns by 1 ms RMS envelopes (Pearson). Robust after lossy codecs; lag accurate to a few samples.
 * Use for anything that went through Opus.
 */
export function envelopeCorrelation(
  reference: Int16Array,
  received: Int16Array,
  options: CorrelateOptions = {},
): Alignment {
  return envelopeSearch(prepare(reference, received, options));
}

/**
 * Aligns by waveform: envelope search for the coarse lag (a full-rate search over ±1 s would be ~10¹¹
 * operations for 10 s of audio), then a sample-exact waveform search within ±1 ms of it. Use for
 * lossless paths, where it should be ≥ 0.999.
 */
export function waveformCorrelation(
  reference: Int16Array,
  received: Int16Array,
  options: CorrelateOptions = {},
): Alignment {
  const p = prepare(reference, received, options);
  const coarse = envelopeSearch(p);
  return waveformRefine(p, coarse.lagSamples, ENV_BIN);
}

/**
 * Finds the lag once and reports both correlations at it. The lag is the waveform one when the waveform
 * agrees well (≥ 0.5, i.e. the path preserved phase), else the envelope one. `correlation` is the
 * envelope correlation unless `method: "waveform"`.
 */
export function alignAndCorrelate(
  reference: Int16Array,
  received: Int16Array,
  options: CorrelateOptions & { method?: "envelope" | "waveform" } = {},
): AlignAndCorrelateResult {
  const p = prepare(reference, received, options);
  const coarse = envelopeSearch(p);
  const fine = waveformRefine(p, coarse.lagSamples, ENV_BIN);
  const lag = fine.correlation >= 0.5 ? fine.lagSamples : coarse.lagSamples;
  const envelope = lag === coarse.lagSamples ? coarse.correlation : envelopeScore(p, lag);
  const waveform =
    lag === fine.lagSamples ? fine.correlation : waveformAt(p.ref, p.rec, lag, p.minOverlapSamples);
  return {
    lagSamples: lag,
    correlation: options.method === "waveform" ? waveform : envelope,
    envelope,
    waveform,
  };
}

/**
 * Envelope correlation per window of the reference, each aligned on its own within ±slackMs of
 * `lagSamples` (from a first whole-clip alignment). For receivers that may stretch time a little, such as a
 * browser's jitter buffer speeding up at the start of a talk-spurt: the content must match everywhere, the
 * alignment only nearly. A window whose audio is missing from `received` scores 0.
 */
export function windowCorrelations(
  reference: Int16Array,
  received: Int16Array,
  lagSamples: number,
  { channels = CHANNELS, windowMs = 500, slackMs = 60 } = {},
): number[] {
  const win = windowMs * SAMPLES_PER_MS;
  const slack = slackMs * SAMPLES_PER_MS;
  const recFrames = received.length / channels;
  const out: number[] = [];
  for (let start = 0; start + win <= reference.length / channels; start += win) {
    const refSeg = reference.subarray(start * channels, (start + win) * channels);
    const from = Math.max(0, start + lagSamples - slack);
    const to = Math.min(recFrames, start + lagSamples + win + slack);
    if (to - from < win) {
      out.push(0);
      continue;
    }
    const recSeg = received.subarray(from * channels, to * channels);
    const expected = start + lagSamples - from;
    out.push(alignAndCorrelate(refSeg, recSeg, { channels, maxLagSamples: expected + slack }).correlation);
  }
  return out;
}
