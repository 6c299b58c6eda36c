// Sample-rate conversion for audio that does not arrive at the wire rate (48 kHz), e.g. the 22 050 Hz
// output of the offline speech synthesizer in the examples. Sans-IO and allocation-light.
//
// Method: band-limited interpolation with a Blackman-windowed sinc kernel (Smith's "bandlimited
// interpolation"). Output sample n sits at input position t = n · from / to; it is the sum of the input
// samples within ±span of t, weighted by the kernel at their distance. The kernel's cutoff is the lower of
// the two Nyquist frequencies (times a small roll-off), so upsampling does not create images and
// downsampling does not alias. The kernel is tabulated once per call (TABLE_RES points per input sample)
// and read with linear interpolation, which keeps the inner loop free of trigonometry.
//
// Edges: samples outside the input are taken as zero. Output length: round(frames · to / from).

const TABLE_RES = 512;
/** Cutoff as a fraction of the lower Nyquist frequency: leaves a transition band for a finite kernel. */
const ROLLOFF = 0.94;

export interface ResampleOptions {
  /** Kernel half-width in zero crossings of the sinc (taps per side at the lower rate). Default 16. */
  halfWidth?: number;
}

function assertRate(name: string, rate: number): void {
  if (!Number.isInteger(rate) || rate <= 0 || rate > 1_000_000) {
    throw new RangeError(`${name} must be an integer sample rate in (0, 1000000], got ${rate}`);
  }
}

/** Number of output frames for `frames` input frames. */
export function resampledLength(frames: number, fromRate: number, toRate: number): number {
  return Math.round((frames * toRate) / fromRate);
}

/**
 * Resamples interleaved float audio (`channels` interleaved, any scale) from `fromRate` to `toRate`.
 * A trailing partial frame is ignored. Equal rates return a copy.
 */
export function resample(
  input: Float32Array,
  channels: number,
  fromRate: number,
  toRate: number,
  options: ResampleOptions = {},
): Float32Array {
  if (!Number.isInteger(channels) || channels < 1 || channels > 64) {
    throw new RangeError(`channels must be an integer in [1, 64], got ${channels}`);
  }
  assertRate("fromRate", fromRate);
  assertRate("toRate", toRate);
  const halfWidth = options.halfWidth ?? 16;
  if (!Number.isInteger(halfWidth) || halfWidth < 1 || halfWidth > 256) {
    throw new RangeError(`halfWidth must be an integer in [1, 256], got ${halfWidth}`);
  }
  const frames = Math.floor(input.length / channels);
  if (fromRate === toRate) return input.slice(0, frames * channels);

  const outFrames = resampledLength(frames, fromRate, toRate);
  const out = new Float32Array(outFrames * channels);
  // Cutoff relative to the input Nyquist frequency: 1 when upsampling, to/from when downsampling.
  const fc = Math.min(1, toRate / fromRate) * ROLLOFF;
  // Kernel support in input samples: halfWidth zero crossings of sinc(fc·x).
  const span = halfWidth / fc;
  const table = kernelTable(fc, span);

  for (let n = 0; n < outFrames; n++) {
    const t = (n * fromRate) / toRate;
    const first = Math.max(0, Math.floor(t - span) + 1);
    const last = Math.min(frames - 1, Math.floor(t + span));
    for (let c = 0; c < channels; c++) {
      let acc = 0;
      for (let k = first; k <= last; k++) {
        const pos = Math.abs(t - k) * TABLE_RES;
        const i = pos | 0;
        const frac = pos - i;
        const h = table[i] + (table[i + 1] - table[i]) * frac;
        acc += input[k * channels + c] * h;
      }
      out[n * channels + c] = acc;
    }
  }
  return out;
}

/** h(x) = fc · sinc(fc · x) · blackman(x / span) for x in [0, span], TABLE_RES points per unit, plus guard. */
function kernelTable(fc: number, span: number): Float64Array {
  const size = Math.ceil(span * TABLE_RES) + 2;
  const table = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const x = i / TABLE_RES;
    if (x >= span) continue; // zero outside the support (and in the guard entries)
    const u = Math.PI * fc * x;
    const sinc = x === 0 ? 1 : Math.sin(u) / u;
    const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / span) + 0.08 * Math.cos((2 * Math.PI * x) / span);
    table[i] = fc * sinc * w;
  }
  return table;
}

/** s16 → float in [−1, 1). */
export function int16ToFloat32(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}

/** Float in [−1, 1] → s16, rounded and clamped (resampling can overshoot full scale slightly). */
export function float32ToInt16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round(samples[i] * 32768);
    out[i] = Math.min(32767, Math.max(-32768, v));
  }
  return out;
}

/** Mono → interleaved stereo with both channels equal. */
export function monoToStereo(mono: Int16Array): Int16Array {
  const out = new Int16Array(mono.length * 2);
  for (let i = 0; i < mono.length; i++) {
    out[i * 2] = mono[i];
    out[i * 2 + 1] = mono[i];
  }
  return out;
}
