import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  alignAndCorrelate,
  concatPcm,
  envelopeCorrelation,
  fromBytes,
  rms,
  rmsDbfs,
  seededRandom,
  silence,
  sine,
  speechLike,
  toBytes,
  waveformCorrelation,
} from "../helpers/signals.ts";

/** `pcm` delayed by `lag` samples per channel (zeros in front), same length. Negative lag advances it. */
function delayed(pcm: Int16Array, lag: number, channels = 2): Int16Array {
  const out = new Int16Array(pcm.length);
  if (lag >= 0) out.set(pcm.subarray(0, pcm.length - lag * channels), lag * channels);
  else out.set(pcm.subarray(-lag * channels));
  return out;
}

function addNoise(pcm: Int16Array, amplitude: number, seed: number): Int16Array {
  const random = seededRandom(seed);
  return pcm.map((v) => Math.max(-32768, Math.min(32767, Math.round(v + (random() - 0.5) * 2 * amplitude))));
}

function windowRms(pcm: Int16Array, startMs: number, ms: number): number {
  return rms(pcm.subarray(startMs * 96, (startMs + ms) * 96));
}

describe("seededRandom", () => {
  it("is deterministic per seed and spread over [0, 1)", () => {
    const a = seededRandom(1);
    const b = seededRandom(1);
    const c = seededRandom(2);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b()),
    );
    assert.notDeepEqual(
      xs.slice(0, 10),
      Array.from({ length: 10 }, () => c()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05);
  });
});

describe("speechLike", () => {
  const pcm = speechLike(3000, { seed: 1 });

  it("is stereo 48 kHz of the requested duration, deterministic per seed", () => {
    assert.equal(pcm.length, 3000 * 48 * 2);
    assert.deepEqual(speechLike(3000, { seed: 1 }), pcm);
    assert.notDeepEqual(speechLike(3000, { seed: 2 }).subarray(0, 48_000), pcm.subarray(0, 48_000));
  });

  it("peaks at the requested level and is clearly not silence", () => {
    let peak = 0;
    for (const v of pcm) peak = Math.max(peak, Math.abs(v));
    assert.ok(Math.abs(peak - 0.5 * 32767) <= 1, `peak ${peak}`);
    assert.ok(rmsDbfs(pcm) > -35 && rmsDbfs(pcm) < -12, `level ${rmsDbfs(pcm)} dBFS`);
    const quiet = speechLike(1000, { seed: 1, peak: 0.1 });
    let quietPeak = 0;
    for (const v of quiet) quietPeak = Math.max(quietPeak, Math.abs(v));
    assert.ok(Math.abs(quietPeak - 3277) <= 1);
  });

  it("has a syllable-like envelope: pauses and loud parts", () => {
    const windows = Array.from({ length: 300 }, (_, i) => windowRms(pcm, i * 10, 10));
    const loud = windows.filter((r) => r > 2000).length;
    const pause = windows.filter((r) => r < 50).length;
    assert.ok(loud > 30, `${loud} loud 10 ms windows`);
    assert.ok(pause > 30, `${pause} near-silent 10 ms windows`);
  });

  it("has both channels alive and different", () => {
    const left = pcm.filter((_, i) => i % 2 === 0);
    const right = pcm.filter((_, i) => i % 2 === 1);
    assert.ok(rms(left) > 500 && rms(right) > 500);
    assert.notDeepEqual(left, right);
  });

  it("is not periodic over short windows: no lag other than 0 aligns it with itself", () => {
    // Compare the signal against itself shifted by 1–30 ms: the best waveform match must be far from 1.
    for (const shiftMs of [1, 2.5, 4, 5, 7, 10, 20, 30]) {
      const shift = Math.round(shiftMs * 48);
      const r = waveformCorrelation(pcm, delayed(pcm, shift), { maxLagSamples: 0 });
      assert.ok(r.correlation < 0.8, `correlation ${r.correlation} at a ${shiftMs} ms offset`);
    }
  });
});

describe("sine, silence, concatPcm", () => {
  it("sine has the requested frequency, amplitude and duration on both channels", () => {
    const s = sine(1000, 100, 0.25);
    assert.equal(s.length, 100 * 48 * 2);
    let crossings = 0;
    for (let i = 2; i < s.length; i += 2) if (s[i - 2] < 0 && s[i] >= 0) crossings++;
    assert.ok(crossings >= 99 && crossings <= 100, `${crossings} upward zero crossings in 100 ms`);
    assert.ok(Math.abs(rms(s) - (0.25 * 32767) / Math.SQRT2) < 20);
    for (let i = 0; i < s.length; i += 2) assert.equal(s[i], s[i + 1]);
  });

  it("silence is zeros; concatPcm joins in order", () => {
    assert.equal(rms(silence(20)), 0);
    assert.equal(silence(20).length, 1920);
    assert.deepEqual(
      concatPcm(Int16Array.of(1, 2), Int16Array.of(), Int16Array.of(3)),
      Int16Array.of(1, 2, 3),
    );
  });
});

describe("toBytes / fromBytes / rms", () => {
  it("writes s16le explicitly", () => {
    assert.deepEqual(
      [...toBytes(Int16Array.of(0x1234, -2, -32768, 32767))],
      [0x34, 0x12, 0xfe, 0xff, 0x00, 0x80, 0xff, 0x7f],
    );
  });

  it("round-trips, including from an odd byte offset", () => {
    const pcm = speechLike(50, { seed: 9 });
    const bytes = toBytes(pcm);
    assert.deepEqual(fromBytes(bytes), pcm);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual(fromBytes(shifted.subarray(1)), pcm);
  });

  it("rms of a full-scale square is its amplitude, of nothing is 0", () => {
    assert.equal(rms(Int16Array.of(1000, -1000, 1000, -1000)), 1000);
    assert.equal(rms(new Int16Array(0)), 0);
    assert.equal(rmsDbfs(new Int16Array(4)), Number.NEGATIVE_INFINITY);
  });
});

describe("correlation and alignment", () => {
  const ref = speechLike(2000, { seed: 5 });

  for (const lag of [0, 1, 37, 312, 960, 4801, 24_000, -1, -250, -9600]) {
    it(`finds a delay of ${lag} samples exactly, with correlation ≈ 1`, () => {
      const rec = delayed(ref, lag);
      const r = alignAndCorrelate(ref, rec);
      assert.equal(r.lagSamples, lag);
      assert.ok(r.envelope > 0.999, `envelope ${r.envelope}`);
      assert.ok(r.waveform > 0.999, `waveform ${r.waveform}`);
      assert.equal(r.correlation, r.envelope, "envelope is the default method");
      assert.equal(waveformCorrelation(ref, rec).lagSamples, lag);
      assert.ok(Math.abs(envelopeCorrelation(ref, rec).lagSamples - lag) <= 2);
    });
  }

  it("handles a received signal longer than the reference (leading and trailing silence)", () => {
    const rec = concatPcm(silence(123), ref, silence(300));
    const r = alignAndCorrelate(ref, rec);
    assert.equal(r.lagSamples, 123 * 48);
    assert.ok(r.waveform > 0.999);
  });

  it("is invariant to gain and robust to noise", () => {
    const quieter = delayed(
      ref.map((v) => v >> 2),
      500,
    );
    assert.ok(alignAndCorrelate(ref, quieter).waveform > 0.999);
    const noisy = addNoise(delayed(ref, 500), 800, 3);
    const r = alignAndCorrelate(ref, noisy, { method: "waveform" });
    assert.equal(r.lagSamples, 500);
    assert.ok(r.correlation > 0.8 && r.correlation < 0.99, `waveform with noise ${r.correlation}`);
  });

  it("tells the two measures apart: inverted polarity keeps the envelope, flips the waveform", () => {
    const inverted = delayed(ref, 200).map((v) => (v === -32768 ? 32767 : -v));
    const r = alignAndCorrelate(ref, inverted);
    assert.ok(Math.abs(r.lagSamples - 200) <= 2);
    assert.ok(r.envelope > 0.99);
    assert.ok(r.waveform < 0.5);
  });

  it("scores unrelated signals low", () => {
    // 5 s searched over ±1 s: measured maxima over 20 seeds are ≤ 0.37 (a real match is ≥ 0.9).
    const long = speechLike(5000, { seed: 5 });
    for (const seed of [6, 7, 8, 9]) {
      const r = alignAndCorrelate(long, speechLike(5000, { seed }));
      assert.ok(r.envelope < 0.5, `envelope vs seed ${seed}: ${r.envelope}`);
      assert.ok(Math.abs(r.waveform) < 0.2, `waveform vs seed ${seed}: ${r.waveform}`);
    }
    const tone = alignAndCorrelate(long, sine(440, 5000, 0.5));
    assert.ok(tone.envelope < 0.3, `vs a steady tone: ${tone.envelope}`);
  });

  it("scores silence as no correlation, not as a match", () => {
    const r = alignAndCorrelate(ref, silence(2000));
    assert.equal(r.envelope, 0);
    assert.equal(r.waveform, 0);
  });

  it("respects maxLagSamples", () => {
    const rec = delayed(ref, 4800);
    const r = alignAndCorrelate(ref, rec, { maxLagSamples: 1000 });
    assert.ok(Math.abs(r.lagSamples) <= 1000);
    assert.ok(r.envelope < 0.9);
  });

  it("works for mono with channels: 1", () => {
    const mono = ref.filter((_, i) => i % 2 === 0);
    const r = alignAndCorrelate(mono, delayed(mono, 77, 1), { channels: 1 });
    assert.equal(r.lagSamples, 77);
    assert.ok(r.waveform > 0.999);
  });

  it("rejects signals too short to correlate", () => {
    assert.throws(() => alignAndCorrelate(new Int16Array(10), new Int16Array(10)), RangeError);
  });

  it("aligns 10 s of audio quickly", () => {
    const long = speechLike(10_000, { seed: 12 });
    const rec = delayed(long, 3333);
    const start = performance.now();
    const r = alignAndCorrelate(long, rec);
    const elapsed = performance.now() - start;
    assert.equal(r.lagSamples, 3333);
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  });
});
