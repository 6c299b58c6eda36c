import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CHANNELS,
  FRAME_BYTES,
  FRAME_MS,
  FRAME_SAMPLES,
  FRAME_VALUES,
  SAMPLE_RATE,
} from "../../src/media/audio-format.ts";
import { PcmFramer } from "../../src/media/pcm-framer.ts";
import { seededRandom, speechLike, toBytes } from "../helpers/signals.ts";

/** The framer hands out frames in their own buffers from offset 0: 16-bit formats view them as samples. */
function samples(frame: Uint8Array): Int16Array {
  assert.equal(frame.byteOffset, 0);
  return new Int16Array(frame.buffer, 0, frame.byteLength >> 1);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Feeds `input` to a fresh framer in chunks of the sizes `nextSize()` returns; checks invariants per push. */
function runChunked(
  input: Uint8Array,
  nextSize: () => number,
): { frames: Uint8Array[]; flushed: Uint8Array | null } {
  const framer = new PcmFramer();
  const frames: Uint8Array[] = [];
  let fed = 0;
  while (fed < input.length) {
    const size = Math.min(Math.max(1, nextSize()), input.length - fed);
    const out = framer.push(input.subarray(fed, fed + size));
    fed += size;
    for (const f of out) {
      assert.ok(f instanceof Uint8Array);
      assert.equal(f.length, FRAME_BYTES);
      assert.equal(samples(f).length, FRAME_VALUES);
      frames.push(f);
    }
    assert.equal(
      frames.length,
      Math.floor(fed / FRAME_BYTES),
      "every complete frame is returned as soon as possible",
    );
    assert.equal(framer.pendingBytes, fed % FRAME_BYTES);
  }
  return { frames, flushed: framer.flush() };
}

function expectedStream(input: Uint8Array): Uint8Array {
  const padded = new Uint8Array(Math.ceil(input.length / FRAME_BYTES) * FRAME_BYTES);
  padded.set(input);
  return padded;
}

describe("audio-format constants", () => {
  it("describe 20 ms of s16le 48 kHz stereo", () => {
    assert.equal(SAMPLE_RATE, 48_000);
    assert.equal(CHANNELS, 2);
    assert.equal(FRAME_MS, 20);
    assert.equal(FRAME_SAMPLES, 960);
    assert.equal(FRAME_VALUES, 1920);
    assert.equal(FRAME_BYTES, 3840);
  });
});

describe("PcmFramer", () => {
  // 1 s of audio plus a partial frame ending on an odd byte, so every test exercises carry-over and flush.
  const audio = toBytes(speechLike(1000, { seed: 11 }));
  const input = concatBytes([audio, audio.subarray(0, 1001)]);
  const expected = expectedStream(input);

  const chunkings: Array<[string, () => () => number]> = [
    ["1-byte chunks", () => () => 1],
    ["1001-byte chunks", () => () => 1001],
    ["16 KiB chunks", () => () => 16_384],
    ["exact frames", () => () => FRAME_BYTES],
    ["frame + 1", () => () => FRAME_BYTES + 1],
    [
      "odd random 1..40000",
      () => {
        const r = seededRandom(5);
        return () => 1 + 2 * Math.floor(r() * 20_000);
      },
    ],
    [
      "random 1..9000",
      () => {
        const r = seededRandom(6);
        return () => 1 + Math.floor(r() * 9000);
      },
    ],
    [
      "tiny random 1..7",
      () => {
        const r = seededRandom(7);
        return () => 1 + Math.floor(r() * 7);
      },
    ],
  ];

  for (const [name, makeSizer] of chunkings) {
    it(`reassembles the stream byte-exactly with ${name}`, () => {
      const { frames, flushed } = runChunked(input, makeSizer());
      assert.ok(flushed, "1001 trailing bytes must come back from flush()");
      const all = concatBytes([...frames, flushed]);
      assert.equal(all.length, expected.length);
      assert.deepEqual(all, expected);
    });
  }

  it("decodes little-endian samples, including negatives", () => {
    const framer = new PcmFramer();
    const bytes = new Uint8Array(FRAME_BYTES);
    bytes.set([0x34, 0x12, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f]);
    const [frame] = framer.push(bytes);
    assert.deepEqual(Array.from(samples(frame).subarray(0, 5)), [0x1234, -1, -32768, 32767, 0]);
  });

  it("decodes correctly from a view at an odd byte offset", () => {
    const pcm = speechLike(60, { seed: 3 });
    const backing = new Uint8Array(1 + pcm.length * 2);
    backing.set(toBytes(pcm), 1);
    const view = backing.subarray(1); // byteOffset 1: not expressible as an Int16Array view
    const frames = new PcmFramer().push(view);
    assert.equal(frames.length, 3);
    for (let i = 0; i < 3; i++)
      assert.deepEqual(samples(frames[i]), pcm.subarray(i * FRAME_VALUES, (i + 1) * FRAME_VALUES));
  });

  it("returns independent copies: reusing the input buffer does not change earlier frames", () => {
    const framer = new PcmFramer();
    const buf = new Uint8Array(FRAME_BYTES + 100).fill(0x11);
    const first = framer.push(buf); // one direct frame + 100 pending bytes
    buf.fill(0x22);
    const second = framer.push(buf.subarray(0, FRAME_BYTES)); // completes the frame assembled from carry-over
    buf.fill(0x33);
    const third = framer.push(buf.subarray(0, FRAME_BYTES)); // reuses the internal partial buffer
    assert.equal(first.length, 1);
    assert.equal(second.length, 1);
    assert.equal(third.length, 1);
    assert.ok(samples(first[0]).every((v) => v === 0x1111));
    assert.ok(
      samples(second[0])
        .subarray(0, 50)
        .every((v) => v === 0x1111),
    );
    assert.ok(
      samples(second[0])
        .subarray(50)
        .every((v) => v === 0x2222),
    );
    assert.ok(
      samples(third[0])
        .subarray(0, 50)
        .every((v) => v === 0x2222),
    );
    assert.ok(
      samples(third[0])
        .subarray(50)
        .every((v) => v === 0x3333),
    );
    assert.notEqual(first[0].buffer, buf.buffer);
    assert.notEqual(second[0].buffer, third[0].buffer);
  });

  it("carries an odd byte over to the next push", () => {
    const framer = new PcmFramer();
    assert.deepEqual(framer.push(Uint8Array.of(0x34)), []);
    assert.equal(framer.pendingBytes, 1);
    const rest = new Uint8Array(FRAME_BYTES - 1);
    rest[0] = 0x12;
    rest[1] = 0xcd;
    rest[2] = 0xab;
    const [frame] = framer.push(rest);
    assert.equal(samples(frame)[0], 0x1234);
    assert.equal(samples(frame)[1], 0xabcd - 0x10000);
    assert.equal(framer.pendingBytes, 0);
  });

  it("flush() returns null when nothing is pending", () => {
    const framer = new PcmFramer();
    assert.equal(framer.flush(), null);
    framer.push(new Uint8Array(FRAME_BYTES));
    assert.equal(framer.flush(), null);
  });

  it("flush() pads a partial frame with silence, including an odd trailing byte", () => {
    const framer = new PcmFramer();
    framer.push(Uint8Array.of(0x34, 0x12, 0x7f));
    assert.equal(framer.pendingBytes, 3);
    const flushed = framer.flush();
    assert.ok(flushed);
    const frame = samples(flushed);
    assert.equal(frame.length, FRAME_VALUES);
    assert.equal(frame[0], 0x1234);
    assert.equal(frame[1], 0x7f, "the odd byte is the low byte of a sample whose high byte is zero");
    assert.ok(frame.subarray(2).every((v) => v === 0));
    assert.equal(framer.pendingBytes, 0);
    assert.equal(framer.flush(), null, "flush is not repeated");
  });

  it("stale bytes from an earlier, longer partial do not leak into a later flush", () => {
    const framer = new PcmFramer();
    framer.push(new Uint8Array(3000).fill(0x55));
    framer.flush();
    framer.push(Uint8Array.of(1, 0));
    const flushed = framer.flush();
    assert.ok(flushed);
    const frame = samples(flushed);
    assert.equal(frame[0], 1);
    assert.ok(frame.subarray(1).every((v) => v === 0));
  });

  it("continues cleanly after flush (a new segment starts at a frame boundary)", () => {
    const framer = new PcmFramer();
    framer.push(new Uint8Array(10).fill(9));
    framer.flush();
    const frames = framer.push(new Uint8Array(FRAME_BYTES).fill(1));
    assert.equal(frames.length, 1);
    assert.ok(samples(frames[0]).every((v) => v === 0x0101));
  });

  it("frames other formats and pads them with their own silence (8 kHz µ-law: 160 bytes, 0xFF)", () => {
    const framer = new PcmFramer(160, 0xff);
    const frames = framer.push(new Uint8Array(400).fill(0x12));
    assert.equal(frames.length, 2);
    assert.ok(frames.every((f) => f.length === 160 && f.every((v) => v === 0x12)));
    const last = framer.flush();
    assert.ok(last);
    assert.ok(last.subarray(0, 80).every((v) => v === 0x12));
    assert.ok(
      last.subarray(80).every((v) => v === 0xff),
      "µ-law silence, not 0 (full scale)",
    );
  });

  it("copies out of a Node Buffer (whose slice() would be a view of a pooled buffer)", () => {
    const buf = Buffer.alloc(FRAME_BYTES, 7);
    const [frame] = new PcmFramer().push(buf);
    buf.fill(8);
    assert.ok(frame.every((v) => v === 7));
  });

  it("ignores empty pushes", () => {
    const framer = new PcmFramer();
    framer.push(new Uint8Array(7));
    assert.deepEqual(framer.push(new Uint8Array(0)), []);
    assert.equal(framer.pendingBytes, 7);
  });

  it("returns several frames from one large push, in order", () => {
    const pcm = speechLike(200, { seed: 4 });
    const frames = new PcmFramer().push(toBytes(pcm));
    assert.equal(frames.length, 10);
    frames.forEach((f, i) => {
      assert.deepEqual(samples(f), pcm.subarray(i * FRAME_VALUES, (i + 1) * FRAME_VALUES));
    });
  });
});
