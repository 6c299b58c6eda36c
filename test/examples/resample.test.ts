import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  float32ToInt16,
  int16ToFloat32,
  monoToStereo,
  resample,
  resampledLength,
} from "../../src/media/resample.ts";

function sineAt(rate: number, freq: number, seconds: number, amplitude = 0.5): Float32Array {
  const n = Math.round(rate * seconds);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

/** Amplitude of `freq` in `x` (single-bin DFT over the interior, skipping the edges). */
function toneAmplitude(x: Float32Array, rate: number, freq: number, skip: number): number {
  let re = 0;
  let im = 0;
  let n = 0;
  for (let i = skip; i < x.length - skip; i++) {
    re += x[i] * Math.cos((2 * Math.PI * freq * i) / rate);
    im += x[i] * Math.sin((2 * Math.PI * freq * i) / rate);
    n++;
  }
  return (2 * Math.hypot(re, im)) / n;
}

describe("resample (windowed sinc)", () => {
  test("output length is round(frames × to / from); equal rates copy", () => {
    assert.equal(resampledLength(22050, 22050, 48000), 48000);
    assert.equal(resample(new Float32Array(22050), 1, 22050, 48000).length, 48000);
    assert.equal(resample(new Float32Array(2 * 441), 2, 44100, 48000).length, 2 * 480);
    const x = new Float32Array([0.1, 0.2, 0.3]);
    const y = resample(x, 1, 48000, 48000);
    assert.deepEqual([...y], [...x]);
    assert.notEqual(y, x, "a copy, not the input");
  });

  test("upsampling 22 050 → 48 000 reproduces a 1 kHz sine (interior error < 1e-3 of full scale)", () => {
    const input = sineAt(22050, 1000, 0.5);
    const out = resample(input, 1, 22050, 48000);
    const ideal = sineAt(48000, 1000, 0.5);
    let maxErr = 0;
    for (let i = 2400; i < out.length - 2400; i++) maxErr = Math.max(maxErr, Math.abs(out[i] - ideal[i]));
    assert.ok(maxErr < 1e-3, `max error ${maxErr}`);
  });

  test("upsampling passes speech-band tones at unity gain (±1 %)", () => {
    for (const f of [100, 440, 3000, 8000]) {
      const out = resample(sineAt(22050, f, 0.5), 1, 22050, 48000);
      const a = toneAmplitude(out, 48000, f, 2400);
      assert.ok(Math.abs(a - 0.5) < 0.005, `${f} Hz: amplitude ${a}`);
    }
  });

  test("downsampling 48 000 → 16 000 keeps 1 kHz and rejects 12 kHz (no alias at 4 kHz, < −40 dB)", () => {
    const pass = resample(sineAt(48000, 1000, 0.5), 1, 48000, 16000);
    assert.ok(Math.abs(toneAmplitude(pass, 16000, 1000, 800) - 0.5) < 0.005);
    const stop = resample(sineAt(48000, 12000, 0.5), 1, 48000, 16000);
    const alias = toneAmplitude(stop, 16000, 4000, 800);
    assert.ok(alias < 0.5 * 0.01, `alias amplitude ${alias}`);
  });

  test("DC stays DC; channels stay separate", () => {
    const frames = 2205;
    const x = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) x[i * 2] = 0.25; // left DC, right silent
    const y = resample(x, 2, 22050, 48000);
    for (let i = 200; i < y.length / 2 - 200; i++) {
      assert.ok(Math.abs(y[i * 2] - 0.25) < 1e-3, `left[${i}] = ${y[i * 2]}`);
      assert.equal(y[i * 2 + 1], 0);
    }
  });

  test("rejects bad arguments", () => {
    assert.throws(() => resample(new Float32Array(4), 0, 48000, 16000), RangeError);
    assert.throws(() => resample(new Float32Array(4), 1, 0, 16000), RangeError);
    assert.throws(() => resample(new Float32Array(4), 1, 48000, 1.5), RangeError);
    assert.throws(() => resample(new Float32Array(4), 1, 48000, 16000, { halfWidth: 0 }), RangeError);
  });

  test("s16 ↔ float conversions round and clamp; mono → stereo duplicates", () => {
    const f = int16ToFloat32(new Int16Array([-32768, 0, 16384, 32767]));
    assert.deepEqual([...f], [-1, 0, 0.5, 32767 / 32768]);
    assert.deepEqual(
      [...float32ToInt16(new Float32Array([-1.2, -1, 0.5, 1, 1.3]))],
      [-32768, -32768, 16384, 32767, 32767],
    );
    assert.deepEqual([...monoToStereo(new Int16Array([1, -2]))], [1, 1, -2, -2]);
  });
});
