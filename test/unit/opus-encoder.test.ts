import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Decoder } from "@evan/opus";
import { FRAME_SAMPLES, FRAME_VALUES } from "../../src/media/audio-format.ts";
import { OpusEncoder } from "../../src/media/opus-encoder.ts";
import { alignAndCorrelate, concatPcm, rms, silence, sine, speechLike } from "../helpers/signals.ts";

function newDecoder(): Decoder {
  return new Decoder({ channels: 2, sample_rate: 48_000 });
}

function decode(decoder: Decoder, packet: Uint8Array): Int16Array {
  const bytes = decoder.decode(packet);
  // Copy into an aligned buffer: the binding's output is not guaranteed to be 2-byte aligned.
  const out = new Int16Array(bytes.length / 2);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function framesOf(pcm: Int16Array): Int16Array[] {
  assert.equal(pcm.length % FRAME_VALUES, 0, "test signal must be a whole number of frames");
  const frames: Int16Array[] = [];
  for (let i = 0; i < pcm.length; i += FRAME_VALUES) frames.push(pcm.slice(i, i + FRAME_VALUES));
  return frames;
}

function maxAbs(pcm: Int16Array): number {
  let m = 0;
  for (const v of pcm) m = Math.max(m, Math.abs(v));
  return m;
}

/** TOC config (RFC 6716 §3.1): 0–11 SILK, 12–15 hybrid, 16–31 CELT. */
function modeOf(packet: Uint8Array): "silk" | "hybrid" | "celt" {
  const config = packet[0] >> 3;
  return config < 12 ? "silk" : config < 16 ? "hybrid" : "celt";
}

describe("OpusEncoder", () => {
  it("round-trips speech-like audio: aligned, same energy, envelope correlation ≥ 0.9", () => {
    const encoder = new OpusEncoder();
    const input = speechLike(3000, { seed: 21 });
    // Encode everything before decoding anything, so packets that alias a shared buffer would show.
    const packets = framesOf(input).map((f) => encoder.encode(f));
    const decoder = newDecoder();
    const output = concatPcm(...packets.map((p) => decode(decoder, p)));
    assert.equal(output.length, input.length, "one 20 ms packet decodes to exactly 20 ms");

    const result = alignAndCorrelate(input, output, { maxLagSamples: 4800 });
    assert.ok(Math.abs(result.lagSamples - encoder.lookaheadSamples) <= 8, `lag ${result.lagSamples}`);
    assert.ok(result.envelope >= 0.9, `envelope correlation ${result.envelope}`);
    assert.ok(result.waveform >= 0.8, `waveform correlation ${result.waveform}`);
    const energyRatio = rms(output) / rms(input);
    assert.ok(energyRatio > 0.8 && energyRatio < 1.2, `energy ratio ${energyRatio}`);
  });

  it("produces 20 ms stereo packets at about the configured bitrate", () => {
    const encoder = new OpusEncoder({ bitrate: 48_000 });
    const packets = framesOf(speechLike(2000, { seed: 22 })).map((f) => encoder.encode(f));
    const decoder = newDecoder();
    for (const p of packets) {
      assert.equal(p[0] & 0x04, 0x04, "TOC stereo flag");
      assert.equal(p[0] & 0x03, 0, "one frame per packet");
      decode(decoder, p);
      assert.equal(decoder.last_packet_duration, FRAME_SAMPLES);
    }
    const bits = packets.reduce((n, p) => n + p.length * 8, 0);
    const kbps = bits / 2 / 1000;
    assert.ok(kbps > 24 && kbps < 60, `average ${kbps} kb/s`);
  });

  it("codes speech in SILK/hybrid mode by default, where inband FEC exists", () => {
    const encoder = new OpusEncoder();
    const packets = framesOf(speechLike(2000, { seed: 23 })).map((f) => encoder.encode(f));
    const fecCapable = packets.filter((p) => modeOf(p) !== "celt").length;
    assert.ok(fecCapable / packets.length > 0.9, `${fecCapable}/${packets.length} packets can carry FEC`);
  });

  it("returns independent packet buffers", () => {
    const encoder = new OpusEncoder();
    const [a, b] = framesOf(speechLike(40, { seed: 24 }));
    const p1 = encoder.encode(a);
    const copy = Uint8Array.from(p1);
    encoder.encode(b);
    assert.deepEqual(p1, copy);
  });

  it("rejects a frame of the wrong size", () => {
    const encoder = new OpusEncoder();
    assert.throws(() => encoder.encode(new Int16Array(FRAME_VALUES - 2)), RangeError);
    assert.throws(() => encoder.encodeSlot(new Int16Array(10)), RangeError);
  });

  it("rejects invalid options", () => {
    assert.throws(() => new OpusEncoder({ bitrate: 100 }), RangeError);
    assert.throws(() => new OpusEncoder({ complexity: 11 }), RangeError);
    assert.throws(() => new OpusEncoder({ packetLossPercent: 101 }), RangeError);
  });

  describe("silence", () => {
    it("is the canonical 3-byte CELT silence packet, a fresh copy each time", () => {
      const encoder = new OpusEncoder();
      const s = encoder.silenceFrame();
      assert.deepEqual([...s], [0xf8, 0xff, 0xfe]);
      s[0] = 0;
      assert.deepEqual([...encoder.silenceFrame()], [0xf8, 0xff, 0xfe]);
    });

    it("decodes to 20 ms of digital silence in a fresh decoder", () => {
      const decoder = newDecoder();
      const pcm = decode(decoder, new OpusEncoder().silenceFrame());
      assert.equal(pcm.length, FRAME_VALUES);
      assert.equal(maxAbs(pcm), 0);
    });

    it("decodes to near-silence right after loud audio", () => {
      const encoder = new OpusEncoder();
      const decoder = newDecoder();
      for (const f of framesOf(sine(440, 200, 0.8))) decode(decoder, encoder.encode(f));
      const after = [1, 2, 3, 4, 5].map(() => decode(decoder, encoder.silenceFrame()));
      // The first frame may still carry the codec's overlap tail; from then on it must be silent.
      for (const pcm of after.slice(1)) assert.ok(maxAbs(pcm) <= 64, `max ${maxAbs(pcm)}`);
    });
  });

  describe("encodeSlot", () => {
    it("sends canned silence before any audio, flushes the lookahead on the first silent slot after audio", () => {
      const encoder = new OpusEncoder();
      const frame = framesOf(sine(440, 20, 0.5))[0];
      const slots = [null, null, frame, frame, null, null, null, frame, null];
      const packets = slots.map((f) => encoder.encodeSlot(f));
      const canned = packets.map((p) => p.length === 3 && p[0] === 0xf8 && p[1] === 0xff && p[2] === 0xfe);
      assert.deepEqual(canned, [true, true, false, false, false, true, true, false, false]);
    });

    it("keeps the end of a talk-spurt that is followed by silence (the encoder lookahead is flushed)", () => {
      const encoder = new OpusEncoder();
      const decoder = newDecoder();
      const tone = sine(1000, 400, 0.4); // loud right up to its last sample
      const slots: Array<Int16Array | null> = [...framesOf(tone), ...Array<null>(10).fill(null)];
      const output = concatPcm(...slots.map((f) => decode(decoder, encoder.encodeSlot(f))));
      const lag = encoder.lookaheadSamples;
      // The tone's final 3 ms, `lag` samples later in the output. Sending canned silence straight after
      // the audio loses most of them (measured ratio ≈ 0.2); flushing keeps them (≈ 0.95).
      const tailStart = (400 - 3) * 48;
      const tailEnd = 400 * 48;
      const expected = tone.subarray(tailStart * 2, tailEnd * 2);
      const got = output.subarray((tailStart + lag) * 2, (tailEnd + lag) * 2);
      const ratio = rms(got) / rms(expected);
      assert.ok(ratio > 0.8, `tail energy ratio ${ratio}`);
      // …and the silence after it is silence.
      const later = output.subarray((tailEnd + lag + 30 * 48) * 2);
      assert.ok(maxAbs(later) <= 64, `max after the tail ${maxAbs(later)}`);
    });

    it("encodes a talk-spurt after canned silence exactly as a fresh encoder would (no stale state)", () => {
      const a = framesOf(sine(700, 300, 0.6));
      const b = framesOf(speechLike(300, { seed: 33 }));
      const encoder = new OpusEncoder();
      for (const f of a) encoder.encodeSlot(f);
      for (let i = 0; i < 3; i++) encoder.encodeSlot(null); // flush + 2 canned
      const afterGap = b.map((f) => encoder.encodeSlot(f));
      const fresh = new OpusEncoder();
      const reference = b.map((f) => fresh.encode(f));
      assert.deepEqual(afterGap, reference);
    });

    it("starts a talk-spurt after silence cleanly (the whole sequence stays aligned and correlated)", () => {
      const encoder = new OpusEncoder();
      const decoder = newDecoder();
      const a = speechLike(600, { seed: 31 });
      const b = speechLike(600, { seed: 32 });
      const gapMs = 200;
      const slots: Array<Int16Array | null> = [
        ...framesOf(a),
        ...Array<null>(gapMs / 20).fill(null),
        ...framesOf(b),
        ...Array<null>(5).fill(null),
      ];
      const output = concatPcm(...slots.map((f) => decode(decoder, encoder.encodeSlot(f))));
      const reference = concatPcm(a, silence(gapMs), b, silence(100));
      const whole = alignAndCorrelate(reference, output, { maxLagSamples: 4800 });
      assert.ok(Math.abs(whole.lagSamples - encoder.lookaheadSamples) <= 8, `lag ${whole.lagSamples}`);
      assert.ok(whole.envelope >= 0.95, `envelope ${whole.envelope}`);

      // The second talk-spurt on its own, at the same lag: no smear from stale encoder state.
      const lag = whole.lagSamples;
      const bStart = (600 + gapMs) * 48;
      const bOut = output.subarray((bStart + lag) * 2, (bStart + lag + 600 * 48) * 2);
      const second = alignAndCorrelate(b, bOut, { maxLagSamples: 96 });
      assert.ok(Math.abs(second.lagSamples) <= 4, `second spurt lag ${second.lagSamples}`);
      assert.ok(second.envelope >= 0.98, `second spurt envelope ${second.envelope}`);
    });
  });
});
