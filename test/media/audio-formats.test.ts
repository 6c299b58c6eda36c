// Every endpoint format round trips (issue 14): an ingest adapter whose endpoint speaks format F feeds a
// track; an egress adapter on that track speaks F back. PCM at 8/16/24/48 kHz, mono and stereo, G.711
// µ-law and A-law. The reference is prepared independently of the server's converters (the block
// resampler of src/media/resample.ts, G.711 checked bit-exact against ffmpeg in test/unit/g711.test.ts);
// each comes back with the right frame size, the right duration and envelope correlation ≥ 0.9.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "../../src/media/g711.ts";
import { float32ToInt16, int16ToFloat32, monoToStereo, resample } from "../../src/media/resample.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, fromBytes, rms, speechLike, toBytes } from "../helpers/signals.ts";
import { createEgress, createIngest, receiver, startEndpoint, ttsBurst } from "../helpers/ws-endpoints.ts";

interface Format {
  codec: "pcm" | "pcmu" | "pcma";
  sampleRate: number;
  channels: 1 | 2;
}

const FORMATS: Format[] = [
  ...[8000, 16000, 24000, 48000].flatMap((sampleRate) =>
    ([1, 2] as const).map((channels) => ({ codec: "pcm" as const, sampleRate, channels })),
  ),
  { codec: "pcmu", sampleRate: 8000, channels: 1 },
  { codec: "pcma", sampleRate: 8000, channels: 1 },
];

const CLIP_MS = 3000;
const SILENT_RMS = 60;

function name(f: Format): string {
  return `${f.codec} ${f.sampleRate / 1000} kHz ${f.channels === 1 ? "mono" : "stereo"}`;
}

/** 48 kHz stereo → the format's rate and channels, as PCM (the block resampler, not the server's). */
function toFormatPcm(pcm48: Int16Array, f: Format): Int16Array {
  let x = pcm48;
  if (f.channels === 1) {
    x = new Int16Array(pcm48.length / 2);
    for (let i = 0; i < x.length; i++) x[i] = (pcm48[2 * i] + pcm48[2 * i + 1]) >> 1;
  }
  return float32ToInt16(resample(int16ToFloat32(x), f.channels, 48000, f.sampleRate));
}

/** Back to 48 kHz stereo for the correlation helpers. */
function toWire(pcm: Int16Array, f: Format): Int16Array {
  const up = float32ToInt16(resample(int16ToFloat32(pcm), f.channels, f.sampleRate, 48000));
  return f.channels === 1 ? monoToStereo(up) : up;
}

function encode(pcm: Int16Array, f: Format): Uint8Array {
  return f.codec === "pcmu" ? encodeMulaw(pcm) : f.codec === "pcma" ? encodeAlaw(pcm) : toBytes(pcm);
}

function decode(bytes: Uint8Array, f: Format): Int16Array {
  return f.codec === "pcmu" ? decodeMulaw(bytes) : f.codec === "pcma" ? decodeAlaw(bytes) : fromBytes(bytes);
}

/** Index of the first and last 20 ms frame that is not silent. */
function soundSpan(pcm: Int16Array, f: Format): [number, number] {
  const per = (f.sampleRate / 50) * f.channels;
  let first = -1;
  let last = -1;
  for (let i = 0; i * per < pcm.length; i++) {
    if (rms(pcm.subarray(i * per, (i + 1) * per)) > SILENT_RMS) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return [first, last];
}

interface RoundTrip {
  /** What the ingest endpoint sent, as PCM in its format. */
  sent: Int16Array;
  /** The Packets' payloads the egress endpoint received. */
  payloads: Uint8Array[];
  audioFormat: string | undefined;
}

/**
 * Ingest endpoint (format f) → track → egress endpoint (format f). Only collects: the analysis runs after
 * every round trip has finished, so its CPU cannot stall another format's media clock.
 */
async function roundTrip(srv: TestServer, f: Format): Promise<RoundTrip> {
  const reference = toFormatPcm(speechLike(CLIP_MS, { seed: 70 + f.sampleRate / 1000 + f.channels }), f);
  const sent = decode(encode(reference, f), f); // what G.711 can carry at all
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const tts = await startEndpoint((ws) => {
    void gate.then(() => ttsBurst(encode(sent, f), 4001)(ws));
  });
  const stt = await startEndpoint(() => {});
  try {
    const fields = { sampleRate: f.sampleRate, channels: f.channels };
    const ingest = await createIngest(srv.api, tts.url, "voice", { inputCodec: f.codec, ...fields });
    const sttConn = stt.nextConnection();
    const egress = await createEgress(srv.api, { sessionId: ingest.sessionId, trackName: "voice" }, stt.url, {
      outputCodec: f.codec,
      ...fields,
    });
    const rx = receiver(await sttConn);
    release();
    const clipFrames = CLIP_MS / 20;
    let first = -1;
    const received = await rx.waitUntil(
      (p) => {
        for (let i = first < 0 ? 0 : p.length; first < 0 && i < p.length; i++)
          if (rms(decode(p[i].payload, f)) > SILENT_RMS) first = i;
        return first >= 0 && p.length >= first + clipFrames + 15;
      },
      20_000,
      `${name(f)} clip at the egress endpoint`,
    );
    const status = await srv.api.raw<{ audioFormat?: string }>(
      "GET",
      `adapters/websocket/${egress.adapterId}`,
    );
    return { sent, payloads: received.map((p) => p.payload), audioFormat: status.body.audioFormat };
  } finally {
    release();
    await tts.close();
    await stt.close();
  }
}

describe("endpoint audio formats: ingest → track → egress", { timeout: 90_000 }, () => {
  let srv: TestServer;
  const results = new Map<Format, RoundTrip | Error>();
  before(async () => {
    srv = await startTestServer();
    await Promise.all(
      FORMATS.map(async (f) => {
        results.set(f, await roundTrip(srv, f).catch((err: Error) => err));
      }),
    );
  });
  after(async () => {
    await srv.close();
  });

  for (const f of FORMATS) {
    test(`${name(f)} round trips with the right duration and r ≥ 0.9`, () => {
      const r = results.get(f);
      if (r instanceof Error || r === undefined) throw r ?? new Error("no result");
      const frameBytes = (f.sampleRate / 50) * f.channels * (f.codec === "pcm" ? 2 : 1);
      for (const p of r.payloads) assert.equal(p.length, frameBytes, "every Packet holds exactly 20 ms");
      const out = decode(new Uint8Array(Buffer.concat(r.payloads)), f);
      const sent = r.sent;
      const [refFirst, refLast] = soundSpan(sent, f);
      const [outFirst, outLast] = soundSpan(out, f);
      const refSpan = refLast - refFirst;
      const outSpan = outLast - outFirst;
      const { correlation, lagSamples } = alignAndCorrelate(
        toWire(sent, f),
        toWire(out.subarray(Math.max(0, (outFirst - refFirst - 5) * (f.sampleRate / 50) * f.channels)), f),
        { maxLagSamples: 9600 },
      );
      console.log(
        `${name(f)}: sound spans ${refSpan} → ${outSpan} frames, r=${correlation.toFixed(3)} (lag ${lagSamples})`,
      );
      assert.ok(
        Math.abs(outSpan - refSpan) <= 2,
        `duration kept: ${refSpan} frames of sound in, ${outSpan} out`,
      );
      assert.ok(correlation >= 0.9, `${name(f)}: r=${correlation.toFixed(3)}`);
      const expected = `${f.codec} ${f.sampleRate} Hz ${f.channels === 1 ? "mono" : "stereo"}`;
      const isDefault = f.codec === "pcm" && f.sampleRate === 48000 && f.channels === 2;
      assert.equal(r.audioFormat, isDefault ? undefined : expected, "the status names the endpoint format");
    });
  }
});
