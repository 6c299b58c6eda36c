import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Encoder } from "@evan/opus";
import {
  OpusDecodeError,
  OpusDecoder,
  opusPacketSamples,
  parseOpusPacket,
} from "../../src/media/opus-decoder.ts";
import { rms, sine, speechLike } from "../helpers/signals.ts";

// libopus encoder ctl requests (opus_defines.h); the typings of @evan/opus do not export its `ctl` table.
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;

interface EncodeOptions {
  channels?: 1 | 2;
  application?: "voip" | "audio";
  bitrate?: number;
  frameSamples?: number;
  fec?: boolean;
}

/** Encodes interleaved PCM (of `channels`) into one Opus packet per `frameSamples`. */
function encode(pcm: Int16Array, options: EncodeOptions = {}): Uint8Array[] {
  const channels = options.channels ?? 2;
  const encoder = new Encoder({ channels, sample_rate: 48_000, application: options.application ?? "voip" });
  if (options.fec ?? true) {
    encoder.ctl(OPUS_SET_INBAND_FEC, 1);
    encoder.ctl(OPUS_SET_PACKET_LOSS_PERC, 20);
    assert.equal(encoder.inband_fec, true);
    assert.equal(encoder.packet_loss, 20);
  }
  encoder.bitrate = options.bitrate ?? 32_000;
  const step = (options.frameSamples ?? 960) * channels;
  const packets: Uint8Array[] = [];
  for (let i = 0; i + step <= pcm.length; i += step) packets.push(encoder.encode(pcm.subarray(i, i + step)));
  return packets;
}

function toMono(stereo: Int16Array): Int16Array {
  const mono = new Int16Array(stereo.length / 2);
  for (let i = 0; i < mono.length; i++) mono[i] = stereo[2 * i];
  return mono;
}

function channelsIdentical(pcm: Int16Array): boolean {
  for (let i = 0; i < pcm.length; i += 2) if (pcm[i] !== pcm[i + 1]) return false;
  return true;
}

function correlation(a: Int16Array, b: Int16Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

function squaredError(a: Int16Array, b: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum;
}

/** Fraction of the left channel's energy at `freqHz` (Goertzel), 1 for a pure tone at that frequency. */
function toneFraction(pcm: Int16Array, freqHz: number): number {
  const n = pcm.length / 2;
  const coeff = 2 * Math.cos((2 * Math.PI * freqHz) / 48_000);
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const x = pcm[2 * i];
    energy += x * x;
    const s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return energy === 0 ? 0 : (2 * power) / (n * energy);
}

/** Two decoders in the same state: the packets before the loss fed to both. */
function twinDecoders(history: Uint8Array[]): [OpusDecoder, OpusDecoder] {
  const a = new OpusDecoder();
  const b = new OpusDecoder();
  for (const p of history) {
    a.decode(p);
    b.decode(p);
  }
  return [a, b];
}

describe("OpusDecoder: decoding", () => {
  const tone = sine(1000, 1000, 0.5);
  const packets = encode(tone);

  test("a 1 kHz stereo sine decodes to 20 ms stereo frames with the right energy and pitch", () => {
    const decoder = new OpusDecoder();
    const frames = packets.map((p) => decoder.decode(p));
    for (const f of frames) assert.equal(f.length, 960 * 2);
    const steady = frames.slice(5);
    const outRms = rms(Int16Array.from(steady.flatMap((f) => [...f])));
    const inRms = rms(tone);
    assert.ok(outRms > 0.8 * inRms && outRms < 1.2 * inRms, `rms ${outRms} vs ${inRms}`);
    for (const f of steady) assert.ok(toneFraction(f, 1000) > 0.95, `tone fraction ${toneFraction(f, 1000)}`);
    assert.equal(decoder.lastPacketDuration, 960);
    decoder.close();
  });

  test("the test stream really carries in-band FEC (SILK or hybrid packets)", () => {
    for (const p of packets) assert.notEqual(parseOpusPacket(p)?.mode, "celt");
  });

  test("10, 40 and 60 ms packets decode to their real length", () => {
    for (const frameSamples of [480, 1920, 2880]) {
      const decoder = new OpusDecoder();
      const stream = encode(sine(440, 600), { frameSamples, application: "audio", bitrate: 64_000 });
      assert.equal(opusPacketSamples(stream[0]), frameSamples);
      for (const p of stream) assert.equal(decoder.decode(p).length, frameSamples * 2);
      assert.equal(decoder.lastPacketDuration, frameSamples);
      assert.ok(
        rms(decoder.decode(stream[stream.length - 1])) > 1000,
        "rms(decoder.decode(stream[stream.length - 1])) > 1000",
      );
      decoder.close();
    }
  });

  test("a mono-encoded stream comes out as two identical channels, also when concealed or FEC-decoded", () => {
    const mono = toMono(speechLike(1000, { seed: 11 }));
    const stream = encode(mono, { channels: 1, bitrate: 24_000 });
    assert.equal(parseOpusPacket(stream[0])?.stereo, false);
    const decoder = new OpusDecoder();
    let energy = 0;
    for (let k = 0; k < stream.length; k++) {
      const out =
        k % 10 === 5
          ? decoder.conceal()
          : k % 10 === 7
            ? decoder.decodeFec(stream[k + 1])
            : decoder.decode(stream[k]);
      assert.equal(out.length, 1920);
      assert.ok(channelsIdentical(out), `frame ${k} has different channels`);
      energy += rms(out);
    }
    assert.ok(energy > 0, "all silent: the check above proved nothing");
    decoder.close();
  });

  test("an empty packet throws instead of concealing 120 ms; a corrupt one throws OpusDecodeError; the decoder survives", () => {
    const decoder = new OpusDecoder();
    decoder.decode(packets[0]);
    assert.throws(() => decoder.decode(new Uint8Array(0)), OpusDecodeError);
    // TOC code 3 with a frame count of 0 is invalid (RFC 6716 §3.2.5).
    assert.throws(
      () => decoder.decode(Uint8Array.of(0x0b, 0x00)),
      (e: unknown) => e instanceof OpusDecodeError && e.code === -4 && /corrupted|invalid/i.test(e.message),
    );
    assert.equal(decoder.decode(packets[1]).length, 1920);
    decoder.close();
  });

  test("a packet longer than the scratch buffer is still decoded", () => {
    const decoder = new OpusDecoder();
    const big = encode(speechLike(200, { seed: 2 }), {
      application: "audio",
      bitrate: 510_000,
      frameSamples: 2880,
    });
    assert.ok(
      big.some((p) => p.length > 1000),
      "big.some((p) => p.length > 1000)",
    );
    for (const p of big) assert.equal(decoder.decode(p).length, 2880 * 2);
    decoder.close();
  });

  test("close() is idempotent and any later use throws", () => {
    const decoder = new OpusDecoder();
    decoder.close();
    decoder.close();
    assert.throws(() => decoder.decode(packets[0]), /closed/);
    assert.throws(() => decoder.conceal(), /closed/);
  });

  test("many decoders coexist without sharing state", () => {
    const a = new OpusDecoder();
    const b = new OpusDecoder();
    const other = encode(sine(300, 200));
    for (let k = 0; k < 10; k++) {
      a.decode(packets[k]);
      b.decode(other[k]);
    }
    const [ref] = twinDecoders(packets.slice(0, 10));
    assert.deepEqual(a.conceal(), ref.conceal());
    for (const d of [a, b, ref]) d.close();
  });
});

describe("OpusDecoder: packet loss concealment", () => {
  const tone = sine(1000, 2000, 0.5);
  const packets = encode(tone);

  test("conceal() returns exactly one 20 ms stereo frame, continuing the tone", () => {
    const decoder = new OpusDecoder();
    for (const p of packets.slice(0, 20)) decoder.decode(p);
    const plc = decoder.conceal();
    assert.equal(plc.length, 960 * 2);
    assert.ok(rms(plc) > 0.3 * rms(tone), `PLC rms ${rms(plc)}`);
    assert.ok(toneFraction(plc, 1000) > 0.6, `PLC tone fraction ${toneFraction(plc, 1000)}`);
    assert.equal(decoder.lastPacketDuration, 960);
    decoder.close();
  });

  test("other lengths are exact too, and lengths libopus cannot conceal are rejected", () => {
    const decoder = new OpusDecoder();
    decoder.decode(packets[0]);
    assert.equal(decoder.conceal(480).length, 960);
    assert.equal(decoder.conceal(2880).length, 5760);
    assert.equal(decoder.conceal(120).length, 240);
    for (const bad of [0, 100, 959, 5880, 1.5]) assert.throws(() => decoder.conceal(bad), RangeError);
    assert.throws(() => decoder.decodeFec(packets[1], 100), RangeError);
    decoder.close();
  });

  test("concealment keeps the decoder state continuous: decoding resumes cleanly", () => {
    for (const at of [20, 33, 47]) {
      const [lossy, reference] = twinDecoders(packets.slice(0, at));
      lossy.conceal();
      reference.decode(packets[at]);
      // The lossy decoder re-converges onto the reference: SILK's pitch predictor needs a few frames to
      // lock back onto a pure tone's phase, so the first two frames after the loss are not compared.
      let last = 0;
      for (let k = at + 1; k < at + 10; k++) {
        const got = lossy.decode(packets[k]);
        const want = reference.decode(packets[k]);
        assert.equal(got.length, 1920);
        if (k < at + 3) continue;
        last = correlation(got, want);
        const ratio = rms(got) / rms(want);
        assert.ok(last > 0.8, `loss at ${at}, frame ${k}: correlation ${last.toFixed(3)}`);
        assert.ok(ratio > 0.6 && ratio < 1.6, `loss at ${at}, frame ${k}: energy ratio ${ratio.toFixed(2)}`);
      }
      assert.ok(last > 0.95, `loss at ${at}: still diverged after 9 frames (${last.toFixed(3)})`);
      lossy.close();
      reference.close();
    }
  });

  test("concealment before any packet is silence; after reset() too", () => {
    const decoder = new OpusDecoder();
    assert.equal(rms(decoder.conceal()), 0);
    for (const p of packets.slice(0, 10)) decoder.decode(p);
    assert.ok(rms(decoder.conceal()) > 0, "rms(decoder.conceal()) > 0");
    decoder.reset();
    assert.equal(rms(decoder.conceal()), 0);
    decoder.close();
  });

  test("long concealment fades out rather than looping the tone forever", () => {
    const decoder = new OpusDecoder();
    for (const p of packets.slice(0, 20)) decoder.decode(p);
    const levels = Array.from({ length: 15 }, () => rms(decoder.conceal()));
    assert.ok(levels[14] < 0.1 * levels[0], `levels ${levels.map((l) => l.toFixed(0)).join(" ")}`);
    decoder.close();
  });
});

describe("OpusDecoder: in-band FEC", () => {
  // Non-stationary input: PLC can only extrapolate the previous frame, FEC knows the lost one.
  const speech = speechLike(4000, { seed: 3 });
  const packets = encode(speech);
  const reference = new OpusDecoder();
  const clean = packets.map((p) => reference.decode(p));
  reference.close();
  const lossSlots: number[] = [];
  for (let k = 20; k < packets.length - 1; k += 7) if (rms(clean[k]) > 500) lossSlots.push(k);

  test("the speech test stream has FEC-capable packets and enough voiced loss slots", () => {
    assert.ok(lossSlots.length >= 8, `only ${lossSlots.length} slots`);
    for (const p of packets) assert.notEqual(parseOpusPacket(p)?.mode, "celt");
  });

  test("decodeFec(next) rebuilds the lost frame close to the original and beats PLC", () => {
    let fecError = 0;
    let plcError = 0;
    for (const k of lossSlots) {
      const [withFec, withPlc] = twinDecoders(packets.slice(0, k));
      const recovered = withFec.decodeFec(packets[k + 1]);
      const concealed = withPlc.conceal();
      assert.equal(recovered.length, 1920);
      const c = correlation(recovered, clean[k]);
      const ratio = rms(recovered) / rms(clean[k]);
      assert.ok(c > 0.8, `slot ${k}: FEC correlation ${c.toFixed(3)}`);
      assert.ok(ratio > 0.5 && ratio < 2, `slot ${k}: FEC energy ratio ${ratio.toFixed(2)}`);
      fecError += squaredError(recovered, clean[k]);
      plcError += squaredError(concealed, clean[k]);
      // The FEC call must not consume the next packet: it still decodes normally afterwards.
      const next = withFec.decode(packets[k + 1]);
      assert.ok(correlation(next, clean[k + 1]) > 0.9, "correlation(next, clean[k + 1]) > 0.9");
      withFec.close();
      withPlc.close();
    }
    assert.ok(
      fecError < 0.5 * plcError,
      `FEC error ${fecError.toExponential(2)} vs PLC ${plcError.toExponential(2)}`,
    );
  });

  test("without FEC in the next packet it falls back to exactly the PLC output", () => {
    const celt = encode(speech.subarray(0, 48_000 * 2), {
      application: "audio",
      bitrate: 128_000,
      fec: false,
    });
    const celtOnly = celt.map((p) => parseOpusPacket(p)?.mode);
    const k = celtOnly.findIndex((mode, i) => i >= 10 && mode === "celt" && celtOnly[i + 1] === "celt");
    assert.ok(k > 0, `no CELT-only packet pair in ${celtOnly.join(",")}`);
    const [fec, plc] = twinDecoders(celt.slice(0, k));
    assert.deepEqual(fec.decodeFec(celt[k + 1]), plc.conceal());
    // And with FEC present the two differ, so the assertion above can fail.
    const [fec2, plc2] = twinDecoders(packets.slice(0, lossSlots[0]));
    assert.notDeepEqual(fec2.decodeFec(packets[lossSlots[0] + 1]), plc2.conceal());
    for (const d of [fec, plc, fec2, plc2]) d.close();
  });

  test("an empty next packet means plain concealment", () => {
    const [a, b] = twinDecoders(packets.slice(0, 30));
    assert.deepEqual(a.decodeFec(new Uint8Array(0)), b.conceal());
    a.close();
    b.close();
  });
});

describe("parseOpusPacket / opusPacketSamples", () => {
  test("TOC configurations, frame codes and invalid packets", () => {
    // config 1: SILK NB 20 ms; config 13: hybrid SWB 20 ms; config 16: CELT NB 2.5 ms; 31: CELT FB 20 ms.
    assert.deepEqual(parseOpusPacket(Uint8Array.of(1 << 3)), {
      mode: "silk",
      frameSamples: 960,
      frameCount: 1,
      totalSamples: 960,
      stereo: false,
    });
    assert.equal(parseOpusPacket(Uint8Array.of((13 << 3) | 4))?.mode, "hybrid");
    assert.equal(parseOpusPacket(Uint8Array.of((13 << 3) | 4))?.stereo, true);
    assert.equal(opusPacketSamples(Uint8Array.of(16 << 3)), 120);
    assert.equal(opusPacketSamples(Uint8Array.of((31 << 3) | 1)), 1920); // code 1: two frames
    assert.equal(opusPacketSamples(Uint8Array.of((31 << 3) | 2, 0)), 1920); // code 2: two frames
    assert.equal(opusPacketSamples(Uint8Array.of((3 << 3) | 3, 2)), 5760); // code 3: 2 × 60 ms
    assert.equal(opusPacketSamples(Uint8Array.of((3 << 3) | 3, 3)), undefined); // 180 ms: too long
    assert.equal(opusPacketSamples(Uint8Array.of((3 << 3) | 3, 0)), undefined); // no frames
    assert.equal(opusPacketSamples(Uint8Array.of((3 << 3) | 3)), undefined); // count byte missing
    assert.equal(opusPacketSamples(new Uint8Array(0)), undefined);
  });
});
