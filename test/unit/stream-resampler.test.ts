import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resample } from "../../src/media/resample.ts";
import { StreamResampler } from "../../src/media/stream-resampler.ts";
import { bandLimitedSpeech, concatPcm, dB, fitTone, seededRandom } from "../helpers/signals.ts";

const PAIRS: [number, number][] = [
  [8000, 48000],
  [48000, 8000],
  [16000, 48000],
  [48000, 16000],
  [24000, 48000],
  [48000, 24000],
];
const LAYOUTS = [1, 2];

function label(from: number, to: number, channels: number): string {
  return `${from / 1000}k → ${to / 1000}k ${channels === 1 ? "mono" : "stereo"}`;
}

/** Interleaved s16 with channel c carrying a sine at freqs[c] of amplitude amps[c] (fraction of full scale). */
function tones(rate: number, frames: number, freqs: number[], amps: number[]): Int16Array {
  const ch = freqs.length;
  const out = new Int16Array(frames * ch);
  for (let c = 0; c < ch; c++) {
    const w = (2 * Math.PI * freqs[c]) / rate;
    for (let i = 0; i < frames; i++) out[i * ch + c] = Math.round(amps[c] * 32767 * Math.sin(w * i + c));
  }
  return out;
}

/** White noise, seeded, about −10 dBFS. */
function noise(frames: number, channels: number, seed: number): Int16Array {
  const random = seededRandom(seed);
  const out = new Int16Array(frames * channels);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((random() - 0.5) * 20000);
  return out;
}

/** Channel c of interleaved x over frames [from, to), in fractions of full scale. */
function channel(x: Int16Array, channels: number, c: number, from: number, to: number): Float64Array {
  const out = new Float64Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = x[i * channels + c] / 32767;
  return out;
}

/** Amplitude (fraction of full scale) of the tone at `freq` in channel c of x over frames [from, to). */
function fitAmplitude(
  x: Int16Array,
  channels: number,
  c: number,
  rate: number,
  freq: number,
  from: number,
  to: number,
): number {
  return fitTone(channel(x, channels, c, from, to), rate, freq).amplitude;
}

/** RMS of channel c over frames [from, to), as a fraction of full scale. */
function channelRms(x: Int16Array, channels: number, c: number, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += x[i * channels + c] ** 2;
  return Math.sqrt(sum / (to - from)) / 32767;
}

/** Frequencies in [lo, hi] × base, `count` of them, evenly spaced. */
function spread(base: number, lo: number, hi: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => base * (lo + ((hi - lo) * i) / (count - 1)));
}

/** Output frames to skip before a steady state: the filter's whole length, plus a margin. */
function settle(r: StreamResampler): number {
  return 2 * r.delayFrames + 16;
}

describe("StreamResampler: streaming", () => {
  for (const [from, to] of PAIRS) {
    for (const channels of LAYOUTS) {
      test(`${label(from, to, channels)}: 20 ms chunks and random chunks equal one call; exact frame counts`, () => {
        const frames = from; // 1 s
        const input = noise(frames, channels, from + to + channels);
        const whole = new StreamResampler({ fromRate: from, toRate: to, channels }).process(input);
        assert.equal(whole.length, to * channels, "1 s in, 1 s out");

        const chunk = from / 50;
        const outChunk = to / 50;
        const byFrame = new StreamResampler({ fromRate: from, toRate: to, channels });
        const parts: Int16Array[] = [];
        for (let i = 0; i < frames; i += chunk) {
          const out = byFrame.process(input.subarray(i * channels, (i + chunk) * channels));
          assert.equal(
            out.length,
            outChunk * channels,
            `20 ms frame at ${i}: ${out.length / channels} frames`,
          );
          parts.push(out);
        }
        assert.deepEqual(concatPcm(...parts), whole);

        const random = seededRandom(7 * from + to + channels);
        const byRandom = new StreamResampler({ fromRate: from, toRate: to, channels });
        const randomParts: Int16Array[] = [];
        let fed = 0;
        let produced = 0;
        while (fed < frames) {
          // Mostly small, sometimes empty, sometimes large.
          const u = random();
          const size = Math.min(frames - fed, u < 0.1 ? 0 : u < 0.8 ? 1 + Math.floor(random() * 40) : 500);
          const out = byRandom.process(input.subarray(fed * channels, (fed + size) * channels));
          fed += size;
          produced += out.length / channels;
          assert.equal(produced, Math.floor((fed * to) / from), `after ${fed} input frames`);
          randomParts.push(out);
        }
        assert.deepEqual(concatPcm(...randomParts), whole);
      });
    }
  }

  test("10 ms and 60 ms chunks give their exact frame counts too", () => {
    for (const [from, to] of PAIRS) {
      const r = new StreamResampler({ fromRate: from, toRate: to, channels: 2 });
      for (const ms of [10, 60, 10, 20]) {
        const out = r.process(new Int16Array(((from * ms) / 1000) * 2));
        assert.equal(out.length, ((to * ms) / 1000) * 2, `${from} → ${to}, ${ms} ms`);
      }
    }
  });
});

describe("StreamResampler: frequency response", () => {
  for (const [from, to] of PAIRS) {
    const lower = Math.min(from, to);
    for (const channels of LAYOUTS) {
      test(`${label(from, to, channels)}: passband 5–43 % of ${lower / 1000} kHz within ±0.1 dB`, () => {
        const freqs = spread(lower, 0.05, 0.43, 14);
        const frames = Math.round(from * 0.15);
        let worst = 0;
        for (let k = 0; k < freqs.length; k++) {
          // Stereo: the right channel carries another frequency at another level, so a mixed-up or
          // dead channel shows.
          const f = channels === 1 ? [freqs[k]] : [freqs[k], freqs[freqs.length - 1 - k]];
          const amps = channels === 1 ? [0.5] : [0.5, 0.3];
          const r = new StreamResampler({ fromRate: from, toRate: to, channels });
          const out = r.process(tones(from, frames, f, amps));
          const n = out.length / channels;
          for (let c = 0; c < channels; c++) {
            const gain = dB(fitAmplitude(out, channels, c, to, f[c], settle(r), n) / amps[c]);
            worst = Math.max(worst, Math.abs(gain));
            assert.ok(Math.abs(gain) <= 0.1, `${f[c].toFixed(0)} Hz, channel ${c}: ${gain.toFixed(4)} dB`);
          }
        }
        assert.ok(worst <= 0.1, `worst ${worst} dB`);
      });

      if (from > to) {
        test(`${label(from, to, channels)}: tones above ${to / 2000} kHz alias at ≤ −70 dB`, () => {
          // Just above the target Nyquist frequency (folds to just below it), in the middle, and near the
          // source's Nyquist frequency.
          const freqs = [0.52 * to, 0.5625 * to, 0.75 * to, 1.25 * to, 2.5 * to, 0.48 * from].filter(
            (f) => f > to / 2 && f < from / 2,
          );
          assert.ok(freqs.length >= 4);
          const frames = Math.round(from * 0.15);
          for (let k = 0; k < freqs.length; k++) {
            const f = channels === 1 ? [freqs[k]] : [freqs[k], freqs[freqs.length - 1 - k]];
            const amps = channels === 1 ? [0.9] : [0.9, 0.9];
            const input = tones(from, frames, f, amps);
            const r = new StreamResampler({ fromRate: from, toRate: to, channels });
            const out = r.process(input);
            const n = out.length / channels;
            for (let c = 0; c < channels; c++) {
              const level = dB(
                channelRms(out, channels, c, settle(r), n) / channelRms(input, channels, c, 0, frames),
              );
              assert.ok(level <= -70, `${f[c].toFixed(0)} Hz, channel ${c}: ${level.toFixed(1)} dB`);
            }
          }
        });
      } else {
        test(`${label(from, to, channels)}: images of passband tones at ≤ −70 dB`, () => {
          const freqs = spread(lower, 0.05, 0.43, 8);
          const frames = Math.round(from * 0.15);
          for (let k = 0; k < freqs.length; k++) {
            const f = channels === 1 ? [freqs[k]] : [freqs[k], freqs[freqs.length - 1 - k]];
            const amps = channels === 1 ? [0.9] : [0.9, 0.6];
            const r = new StreamResampler({ fromRate: from, toRate: to, channels });
            const out = r.process(tones(from, frames, f, amps));
            const n = out.length / channels;
            for (let c = 0; c < channels; c++) {
              // Take the tone itself out first: fitted next to a tone 70 dB stronger, an image would pick up
              // the tone's leakage through the finite window.
              const x = channel(out, channels, c, settle(r), n);
              const { fitted } = fitTone(x, to, f[c]);
              const residual = x.map((v, i) => v - fitted[i]);
              // Images of f: m·lower ± f for every m ≥ 1 below the output Nyquist frequency.
              let imagePower = 0;
              let images = 0;
              for (let m = 1; m * lower - f[c] < to / 2; m++) {
                for (const image of [m * lower - f[c], m * lower + f[c]]) {
                  if (image >= to / 2) continue;
                  images++;
                  imagePower += fitTone(residual, to, image).amplitude ** 2;
                }
              }
              assert.ok(images >= 1);
              const level = dB(Math.sqrt(imagePower) / amps[c]);
              assert.ok(
                level <= -70,
                `${f[c].toFixed(0)} Hz, channel ${c}: images at ${level.toFixed(1)} dB`,
              );
              // Everything that is not the tone (images, rounding noise, distortion) is that low too.
              const rest = dB(
                Math.sqrt(residual.reduce((sum, v) => sum + v * v, 0) / residual.length) / amps[c],
              );
              assert.ok(
                rest <= -70,
                `${f[c].toFixed(0)} Hz, channel ${c}: residual at ${rest.toFixed(1)} dB`,
              );
            }
          }
        });
      }
    }
  }
});

describe("StreamResampler: delay and reference", () => {
  for (const [from, to] of PAIRS) {
    test(`${label(from, to, 2)}: an impulse peaks delayFrames later`, () => {
      const r = new StreamResampler({ fromRate: from, toRate: to, channels: 2 });
      assert.ok(Number.isInteger(r.delayFrames) && r.delayFrames > 0);
      // Impulses at input frames 0 and 60 ms (left) and 30 ms (right, negative).
      const frames = from / 10;
      const input = new Int16Array(frames * 2);
      input[0] = 30000;
      input[((from * 60) / 1000) * 2] = 30000;
      input[((from * 30) / 1000) * 2 + 1] = -30000;
      const out = r.process(input);
      const peaks = (c: number, sign: number, from_: number, to_: number) => {
        let best = from_;
        for (let i = from_; i < to_; i++) if (sign * out[i * 2 + c] > sign * out[best * 2 + c]) best = i;
        return best;
      };
      const ms = (t: number) => (to * t) / 1000;
      const d = r.delayFrames;
      assert.ok(
        Math.abs(peaks(0, 1, 0, ms(30)) - d) <= 1,
        `first peak at ${peaks(0, 1, 0, ms(30))}, delay ${d}`,
      );
      assert.ok(Math.abs(peaks(0, 1, ms(50), ms(100)) - (ms(60) + d)) <= 1);
      assert.ok(Math.abs(peaks(1, -1, 0, ms(100)) - (ms(30) + d)) <= 1);
    });
  }

  for (const [from, to] of PAIRS) {
    for (const channels of LAYOUTS) {
      test(`${label(from, to, channels)}: correlates ≥ 0.999 with resample() on band-limited speech`, () => {
        const frames = Math.round(from * 0.8);
        const input = bandLimitedSpeech(from, frames, channels, 0.4 * Math.min(from, to), from + to);
        const r = new StreamResampler({ fromRate: from, toRate: to, channels });
        const ours = r.process(input);
        const floats = Float32Array.from(input, (v) => v / 32768);
        const reference = resample(floats, channels, from, to);
        const d = r.delayFrames;
        const edge = Math.round(to * 0.05);
        const n = ours.length / channels;
        for (let c = 0; c < channels; c++) {
          // ours[i + d] ≈ reference[i]
          let sxy = 0;
          let sxx = 0;
          let syy = 0;
          for (let i = edge; i + d < n - edge; i++) {
            const x = reference[i * channels + c];
            const y = ours[(i + d) * channels + c] / 32768;
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
          }
          const corr = sxy / Math.sqrt(sxx * syy);
          assert.ok(corr >= 0.999, `channel ${c}: correlation ${corr}`);
          assert.ok(Math.abs(dB(Math.sqrt(syy / sxx))) < 0.1, `channel ${c}: level differs`);
        }
      });
    }
  }
});

describe("StreamResampler: arguments and pass-through", () => {
  test("equal rates copy, with no delay", () => {
    const r = new StreamResampler({ fromRate: 48000, toRate: 48000, channels: 2 });
    assert.equal(r.delayFrames, 0);
    const x = new Int16Array([1, -2, 3, -4]);
    const y = r.process(x);
    assert.deepEqual(y, x);
    assert.notEqual(y.buffer, x.buffer, "a copy, not the input");
  });

  test("reports its taps and delay", () => {
    const up = new StreamResampler({ fromRate: 8000, toRate: 48000, channels: 1 });
    const down = new StreamResampler({ fromRate: 48000, toRate: 8000, channels: 1 });
    assert.ok(up.tapsPerOutput > 20 && up.tapsPerOutput < 200, `${up.tapsPerOutput}`);
    assert.ok(down.tapsPerOutput > 6 * 20, `${down.tapsPerOutput}`);
    // Same prototype (both designed at 48 kHz): the same delay in time, to within one 8 kHz frame.
    assert.ok(Math.abs(up.delayFrames / 48000 - down.delayFrames / 8000) < 1 / 8000);
  });

  test("rejects bad rates, channel counts, ratios and partial frames", () => {
    const ok = { fromRate: 48000, toRate: 16000, channels: 2 };
    assert.throws(() => new StreamResampler({ ...ok, fromRate: 0 }), RangeError);
    assert.throws(() => new StreamResampler({ ...ok, toRate: 384001 }), RangeError);
    assert.throws(() => new StreamResampler({ ...ok, toRate: 16000.5 }), RangeError);
    assert.throws(() => new StreamResampler({ ...ok, channels: 0 }), RangeError);
    assert.throws(() => new StreamResampler({ ...ok, channels: 9 }), RangeError);
    assert.throws(() => new StreamResampler({ ...ok, channels: 1.5 }), RangeError);
    // 48000 → 44101 does not reduce: 44101/48000.
    assert.throws(() => new StreamResampler({ ...ok, toRate: 44101 }), RangeError);
    assert.doesNotThrow(() => new StreamResampler({ ...ok, toRate: 44100 }));
    assert.throws(() => new StreamResampler(ok).process(new Int16Array(3)), RangeError);
  });

  test("more than two channels stay separate", () => {
    const r = new StreamResampler({ fromRate: 16000, toRate: 48000, channels: 3 });
    const x = tones(16000, 1600, [500, 1000, 2000], [0.5, 0, 0.25]);
    const y = r.process(x);
    const n = y.length / 3;
    const skip = settle(r);
    assert.ok(Math.abs(dB(fitAmplitude(y, 3, 0, 48000, 500, skip, n) / 0.5)) < 0.1);
    assert.equal(channelRms(y, 3, 1, 0, n), 0);
    assert.ok(Math.abs(dB(fitAmplitude(y, 3, 2, 48000, 2000, skip, n) / 0.25)) < 0.1);
  });
});
