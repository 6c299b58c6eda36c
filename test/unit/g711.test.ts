import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "../../src/media/g711.ts";
import { fromBytes, toBytes } from "../helpers/signals.ts";

/** Every int16 value once, ascending. */
function allInt16(): Int16Array {
  const out = new Int16Array(65536);
  for (let i = 0; i < 65536; i++) out[i] = i - 32768;
  return out;
}

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);

/** Sorted distinct decoded values of a law: its reconstruction levels. */
function levels(decode: (b: Uint8Array) => Int16Array): number[] {
  return [...new Set(decode(ALL_CODES))].sort((a, b) => a - b);
}

/** Distance from x to the nearest of the sorted `levels`. */
function nearestDistance(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid;
    else hi = mid;
  }
  return Math.min(Math.abs(sorted[lo] - x), Math.abs(sorted[hi] - x));
}

interface Law {
  name: string;
  format: "mulaw" | "alaw";
  encode: (pcm: Int16Array, out?: Uint8Array) => Uint8Array;
  decode: (bytes: Uint8Array, out?: Int16Array) => Int16Array;
  /** Quantizer step of segment s, in 16-bit units. */
  step: (segment: number) => number;
  /** Largest decoded magnitude. */
  top: number;
}

const LAWS: Law[] = [
  {
    name: "µ-law",
    format: "mulaw",
    encode: encodeMulaw,
    decode: decodeMulaw,
    step: (s) => 8 << s,
    top: 32124,
  },
  {
    name: "A-law",
    format: "alaw",
    encode: encodeAlaw,
    decode: decodeAlaw,
    step: (s) => (s === 0 ? 16 : 8 << s),
    top: 32256,
  },
];

describe("G.711 round trip over all 65536 int16 values", () => {
  for (const law of LAWS) {
    test(`${law.name}: decode(encode(x)) is within half a step (plus the 14-bit lookup) of x`, () => {
      const x = allInt16();
      const codes = law.encode(x);
      const y = law.decode(codes);
      const sorted = levels(law.decode);
      assert.equal(sorted.length, law.format === "mulaw" ? 255 : 256, "µ-law has ±0, A-law has no zero");
      let worstInRange = 0;
      for (let i = 0; i < x.length; i++) {
        const err = Math.abs(y[i] - x[i]);
        if (Math.abs(x[i]) > law.top) {
          // Beyond the largest level: saturates at it.
          assert.equal(Math.abs(y[i]), law.top, `x = ${x[i]}`);
          continue;
        }
        // The code is a nearest level of the sample's top 14 bits (x rounded down to a multiple of 4).
        const x14 = (x[i] >> 2) * 4;
        assert.equal(Math.abs(y[i] - x14), nearestDistance(sorted, x14), `x = ${x[i]} → ${y[i]}`);
        // Step sizes: the segment (the code's bits 4–6) sets the step; a sample near a segment boundary
        // may go to the coarser neighbour, so allow half of the next segment's step.
        const segment = ((codes[i] ^ (law.format === "mulaw" ? 0xff : 0x55)) >> 4) & 7;
        assert.ok(err <= law.step(Math.min(7, segment + 1)) / 2 + 3, `x = ${x[i]}: error ${err}`);
        worstInRange = Math.max(worstInRange, err);
      }
      // The coarsest segment's step is 1024: no in-range sample is off by more than half of it (+3).
      assert.ok(worstInRange <= 515, `worst in-range error ${worstInRange}`);
      // Small signals keep fine resolution.
      for (let v = -100; v <= 100; v++) {
        const err = Math.abs(y[v + 32768] - v);
        assert.ok(err <= (law.format === "mulaw" ? 7 : 11), `x = ${v} → ${y[v + 32768]}`);
      }
    });

    test(`${law.name}: decoding then re-encoding every code gives the code back`, () => {
      const decoded = law.decode(ALL_CODES);
      const again = law.encode(decoded);
      for (let c = 0; c < 256; c++) {
        // µ-law's negative zero (0x7F) decodes to 0, which encodes as positive zero (0xFF).
        const expected = law.format === "mulaw" && c === 0x7f ? 0xff : c;
        assert.equal(again[c], expected, `code 0x${c.toString(16)}`);
      }
    });
  }
});

describe("G.711 known code points", () => {
  test("µ-law", () => {
    assert.deepEqual(
      [...encodeMulaw(new Int16Array([0, 32767, -32768, -32767, 1, -1]))],
      [0xff, 0x80, 0x00, 0x00, 0xff, 0x7e],
    );
    assert.deepEqual(
      [...decodeMulaw(new Uint8Array([0xff, 0x7f, 0x80, 0x00, 0xfe, 0x7e]))],
      [0, 0, 32124, -32124, 8, -8],
    );
  });

  test("A-law", () => {
    assert.deepEqual(
      [...encodeAlaw(new Int16Array([0, 32767, -32768, -32767, 1, -1]))],
      [0xd5, 0xaa, 0x2a, 0x2a, 0xd5, 0x55],
    );
    assert.deepEqual(
      [...decodeAlaw(new Uint8Array([0xd5, 0x55, 0xaa, 0x2a, 0xd4, 0x54]))],
      [8, -8, 32256, -32256, 24, -24],
    );
  });
});

describe("G.711 output buffers", () => {
  test("a given out is filled and returned as out.subarray(0, n); too short throws RangeError", () => {
    const pcm = new Int16Array([0, 1000, -1000]);
    const bytes = new Uint8Array(8).fill(0x11);
    for (const encode of [encodeMulaw, encodeAlaw]) {
      const r = encode(pcm, bytes);
      assert.equal(r.buffer, bytes.buffer);
      assert.equal(r.byteOffset, 0);
      assert.equal(r.length, 3);
      assert.deepEqual([...r], [...encode(pcm)]);
      assert.equal(bytes[3], 0x11, "nothing written past n");
      assert.throws(() => encode(pcm, new Uint8Array(2)), RangeError);
    }
    const samples = new Int16Array(5);
    for (const decode of [decodeMulaw, decodeAlaw]) {
      const codes = new Uint8Array([1, 2, 0x80]);
      const r = decode(codes, samples);
      assert.equal(r.buffer, samples.buffer);
      assert.equal(r.length, 3);
      assert.deepEqual([...r], [...decode(codes)]);
      assert.throws(() => decode(codes, new Int16Array(2)), RangeError);
    }
    assert.equal(encodeMulaw(new Int16Array(0)).length, 0);
  });
});

describe("G.711 is bit-exact with ffmpeg (pcm_mulaw, pcm_alaw)", () => {
  const dir = mkdtempSync(join(tmpdir(), "patchbay-g711-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs ffmpeg (a missing binary throws ENOENT, which fails the test: CI installs it). */
  function ffmpeg(args: string[]): void {
    execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  }

  /**
   * 1 s exponential sweep 20 Hz → 3.9 kHz at 8 kHz whose level rises from −60 dBFS to 0 dBFS (so every
   * segment is crossed at many slopes), followed by every int16 value once.
   */
  function testSignal(): Int16Array {
    const rate = 8000;
    const n = rate;
    const sweep = new Int16Array(n);
    let phase = 0;
    for (let i = 0; i < n; i++) {
      const t = i / n;
      const freq = 20 * (3900 / 20) ** t;
      phase += (2 * Math.PI * freq) / rate;
      const amplitude = 32767 * 10 ** (-3 * (1 - t));
      sweep[i] = Math.round(amplitude * Math.sin(phase));
    }
    const out = new Int16Array(n + 65536);
    out.set(sweep);
    out.set(allInt16(), n);
    return out;
  }

  for (const law of LAWS) {
    test(`${law.name}: encoding matches ffmpeg -f ${law.format} byte for byte`, () => {
      const pcm = testSignal();
      const input = join(dir, `${law.format}-in.raw`);
      const output = join(dir, `${law.format}-out.raw`);
      writeFileSync(input, toBytes(pcm));
      ffmpeg(["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", input, "-f", law.format, output]);
      const theirs = new Uint8Array(readFileSync(output));
      const ours = law.encode(pcm);
      assert.equal(theirs.length, ours.length);
      const mismatches: string[] = [];
      for (let i = 0; i < ours.length && mismatches.length < 5; i++) {
        if (ours[i] !== theirs[i])
          mismatches.push(
            `pcm ${pcm[i]}: ours 0x${ours[i].toString(16)}, ffmpeg 0x${theirs[i].toString(16)}`,
          );
      }
      assert.deepEqual(mismatches, []);
    });

    test(`${law.name}: decoding matches ffmpeg's -f ${law.format} decoder`, () => {
      // ffmpeg's own encoding of the test signal, then every code once.
      const pcm = testSignal();
      const raw = join(dir, `${law.format}-dec-in.raw`);
      const coded = join(dir, `${law.format}-dec.${law.format}`);
      const decoded = join(dir, `${law.format}-dec-out.raw`);
      writeFileSync(raw, toBytes(pcm));
      ffmpeg(["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", raw, "-f", law.format, coded]);
      const bytes = new Uint8Array([...readFileSync(coded), ...ALL_CODES]);
      writeFileSync(coded, bytes);
      ffmpeg(["-f", law.format, "-ar", "8000", "-ac", "1", "-i", coded, "-f", "s16le", decoded]);
      const theirs = fromBytes(new Uint8Array(readFileSync(decoded)));
      const ours = law.decode(bytes);
      assert.equal(theirs.length, ours.length);
      assert.deepEqual(ours, theirs);
    });
  }
});
