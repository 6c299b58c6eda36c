import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import wavefile from "wavefile";
import { WebSocket } from "ws";
import { chunkPcm, encodePacket } from "../../src/client/endpoint.ts";
import { TimelineAssembler } from "../../src/examples/recorder.ts";
import { encodeOpus, publishAudio, publishRealtime } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, speechLike, toBytes } from "../helpers/signals.ts";
import { pollAdapter } from "../helpers/ws-endpoints.ts";

const { WaveFile } = wavefile;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface ParsedWav {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  samples: Int16Array;
  durationMs: number;
}

/** Parses a WAV with the WAV library (not with our own code). */
function parseWav(bytes: Uint8Array): ParsedWav {
  const wav = new WaveFile(bytes);
  const fmt = wav.fmt as {
    sampleRate: number;
    numChannels: number;
    bitsPerSample: number;
    audioFormat: number;
  };
  assert.equal(fmt.audioFormat, 1, "PCM");
  const samples = wav.getSamples(true, Int16Array) as unknown as Int16Array;
  return {
    sampleRate: fmt.sampleRate,
    channels: fmt.numChannels,
    bitsPerSample: fmt.bitsPerSample,
    samples,
    durationMs: (samples.length / fmt.numChannels / fmt.sampleRate) * 1000,
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

describe("recorder: timeline", () => {
  const packet = (timestamp: number, bytes: number) => ({
    sequenceNumber: 0,
    timestamp,
    payload: new Uint8Array(bytes).fill(1),
  });
  const lengths = (chunks: Uint8Array[]) => chunks.map((c) => c.length);

  test("consecutive timestamps append as is; a forward jump is filled with silence", () => {
    const t = new TimelineAssembler(48_000);
    assert.deepEqual(lengths(t.push(packet(1000, 3840))), [3840]);
    assert.deepEqual(lengths(t.push(packet(1960, 3840))), [3840]);
    const gap = t.push(packet(1960 + 960 + 480, 3840)); // 10 ms missing
    assert.deepEqual(lengths(gap), [480 * 4, 3840]);
    assert.ok(
      gap[0].every((b) => b === 0),
      "silence",
    );
  });

  test("RTP wrap-around is not a gap; backwards, huge jumps and empty payloads add nothing", () => {
    const t = new TimelineAssembler(48_000);
    t.push(packet(0xffff_ffff - 479, 1920)); // 480 frames, ends exactly at the wrap
    assert.deepEqual(lengths(t.push(packet(0, 3840))), [3840]);
    assert.deepEqual(lengths(t.push(packet(100, 3840))), [3840], "backwards: appended, no fill");
    assert.deepEqual(lengths(t.push(packet(10_000_000, 3840))), [3840], "beyond the fill limit: no fill");
    assert.deepEqual(lengths(t.push(packet(10_000_000 + 960, 0))), []);
  });

  test("an unaligned payload suspends gap filling until the stream is frame-aligned again", () => {
    const t = new TimelineAssembler(48_000);
    t.push(packet(0, 3)); // not a whole frame
    assert.deepEqual(lengths(t.push(packet(5000, 5))), [5], "no fill while misaligned");
    t.push(packet(5001, 40_000)); // aligned again; 10 000 frames of audio received in all
    assert.deepEqual(lengths(t.push(packet(15_001 + 4000, 4))), [4 * 4000, 4], "aligned again: filled");
  });

  test("silence never exceeds the audio received: tiny packets with large jumps add little", () => {
    const t = new TimelineAssembler(480_000); // gaps up to 10 s may be filled
    let written = 0;
    let received = 0;
    for (let i = 0; i < 100; i++) {
      const p = packet(i * 480_000, 4);
      received += 4;
      for (const c of t.push(p)) written += c.length;
    }
    assert.ok(written <= 2 * received, `${written} bytes written for ${received} received`);
    assert.equal(t.receivedBytes, received);
    assert.ok(t.silenceBytes <= t.receivedBytes);
    // A real pause after real audio is still filled (up to what was received).
    const r = new TimelineAssembler(480_000);
    for (let i = 0; i < 100; i++) r.push(packet(i * 960, 3840)); // 2 s of audio
    assert.deepEqual(
      lengths(r.push(packet(100 * 960 + 48_000, 3840))),
      [48_000 * 4, 3840],
      "1 s pause filled",
    );
  });
});

describe("recorder example on the server, driven by a real egress adapter", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("one WAV per connection: 48 kHz, 2 ch, 16 bit, the sent duration (±40 ms), the sent audio", async (t) => {
    const source = speechLike(3000, { seed: 7 });
    const payloads = encodeOpus(source);
    const pub = await publishAudio(srv.api, "voice");
    try {
      const endpoint = `${srv.url.replace("http", "ws")}/examples/recorder?label=e2e`;
      const res = await srv.api.raw<{ tracks: { adapterId: string; errorCode?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        {
          tracks: [
            {
              location: "remote",
              sessionId: pub.sessionId,
              trackName: "voice",
              endpoint,
              outputCodec: "pcm",
            },
          ],
        },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { adapterId } = res.body.tracks[0];
      assert.ok(adapterId, JSON.stringify(res.body));

      // While it records, the recording is listed as active.
      const listing = async () =>
        (await fetch(`${srv.url}/examples/recorder/files`)).json() as Promise<{
          files: { name: string; url: string; durationMs: number; bytes: number }[];
          active: { file: string; packets: number; label: string }[];
        }>;
      await publishRealtime(pub, payloads);
      await pollAdapter(srv.api, adapterId, (s) => s.frames >= payloads.length, { timeoutMs: 10_000 });
      // When its source stops, the egress adapter conceals up to 3 more frames (its jitter buffer cannot
      // tell a pause from a loss) before it goes quiet; wait for that, so the count is final.
      let frames = 0;
      let stableSince = performance.now();
      await pollAdapter(
        srv.api,
        adapterId,
        (s) => {
          if (s.frames !== frames) {
            frames = s.frames;
            stableSince = performance.now();
          }
          return performance.now() - stableSince > 300;
        },
        { timeoutMs: 10_000 },
      );
      const concealedTail = frames - payloads.length;
      assert.ok(
        concealedTail >= 0 && concealedTail <= 3,
        `egress frames: ${frames} for ${payloads.length} sent`,
      );
      const during = await until("frames at the recorder", async () => {
        const l = await listing();
        return l.active.find((a) => a.label === "e2e" && a.packets >= frames);
      });
      assert.match(during.file, /^rec-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-e2e-[0-9a-f]{8}\.wav$/);

      const closed = await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
      assert.equal(closed.status, 200);
      const file = await until("the finished file", async () =>
        (await listing()).files.find((f) => f.name === during.file),
      );
      assert.equal(file.url, `/examples/recorder/files/${file.name}`);

      const got = await fetch(`${srv.url}${file.url}`);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), "audio/wav");
      const wav = parseWav(new Uint8Array(await got.arrayBuffer()));
      assert.equal(wav.sampleRate, 48_000);
      assert.equal(wav.channels, 2);
      assert.equal(wav.bitsPerSample, 16);
      const sentMs = payloads.length * 20;
      const tailMs = concealedTail * 20;
      assert.ok(
        Math.abs(wav.durationMs - tailMs - sentMs) <= 40,
        `duration ${wav.durationMs} ms = ${sentMs} ms sent + ${tailMs} ms concealed by egress (±40 ms)`,
      );
      assert.equal(wav.durationMs, frames * 20, "every frame the egress adapter sent, nothing else");
      assert.ok(Math.abs(file.durationMs - wav.durationMs) < 1, "listed duration matches the file");
      assert.ok(rms(wav.samples) > 500, `not silent (rms ${rms(wav.samples).toFixed(0)})`);
      const { correlation } = alignAndCorrelate(source, wav.samples, { maxLagSamples: 4800 });
      t.diagnostic(
        `recorder: ${wav.durationMs.toFixed(1)} ms recorded = ${sentMs} ms sent + ${tailMs} ms egress tail, r=${correlation.toFixed(3)}`,
      );
      assert.ok(correlation >= 0.9, `the recording is the published audio (r=${correlation.toFixed(3)})`);

      assert.equal((await fetch(`${srv.url}/examples/recorder/files/..%2Fapps.json`)).status, 404);
      assert.equal((await fetch(`${srv.url}/examples/recorder/files/rec-nope.wav`)).status, 404);
    } finally {
      await pub.close();
    }
  });

  test("bad input (text, garbage, an empty message) is skipped; the file holds only the audio", async () => {
    const ws = await connect(`${srv.url.replace("http", "ws")}/examples/recorder?label=robust`);
    const pcm = speechLike(500, { seed: 8 });
    ws.send("not audio");
    ws.send(Uint8Array.from([0xff, 0xff, 0xff]));
    ws.send(new Uint8Array(0));
    chunkPcm(pcm, 4000).forEach((c, i) => {
      ws.send(encodePacket({ sequenceNumber: i + 1, timestamp: 0, payload: c }));
    });
    await new Promise((r) => setTimeout(r, 100));
    ws.close();
    const name = await until("the file", async () => {
      const l = (await (await fetch(`${srv.url}/examples/recorder/files`)).json()) as {
        files: { name: string }[];
      };
      return l.files.find((f) => f.name.includes("-robust-"))?.name;
    });
    const wav = parseWav(
      new Uint8Array(await (await fetch(`${srv.url}/examples/recorder/files/${name}`)).arrayBuffer()),
    );
    assert.deepEqual(
      Buffer.from(wav.samples.buffer, wav.samples.byteOffset, wav.samples.byteLength),
      Buffer.from(toBytes(pcm)),
    );
  });

  test("a label outside [A-Za-z0-9_-] is refused", async () => {
    const ws = new WebSocket(
      `${srv.url.replace("http", "ws")}/examples/recorder?label=${encodeURIComponent("a/b")}`,
    );
    const [, res] = await once(ws, "unexpected-response");
    assert.equal((res as { statusCode: number }).statusCode, 400);
    ws.on("error", () => {});
    ws.terminate();
  });
});

describe("recorder example, standalone script", () => {
  let child: ChildProcess;
  let url: string;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "patchbay-rec-"));
    child = spawn(
      process.execPath,
      ["--import", "tsx", "examples/recorder.ts", "--port", "0", "--dir", dir],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\n")) resolve(out.split("\n")[0]);
      });
      child.once("exit", (code) => reject(new Error(`script exited early with ${code}`)));
    });
  });
  after(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test("prints its URL and writes a WAV into --dir when the connection ends", async () => {
    assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/recorder$/);
    const ws = await connect(url);
    const pcm = speechLike(1000, { seed: 9 });
    const bytes = toBytes(pcm);
    for (let i = 0; i * 3840 < bytes.length; i++) {
      const payload = bytes.subarray(i * 3840, (i + 1) * 3840); // 20 ms frames, as egress sends them
      ws.send(encodePacket({ sequenceNumber: i + 1, timestamp: 5000 + i * 960, payload }));
    }
    ws.close();
    const name = await until("the file", async () => readdirSync(dir).find((f) => f.endsWith(".wav")));
    const wav = parseWav(readFileSync(join(dir, name)));
    assert.equal(wav.sampleRate, 48_000);
    assert.equal(wav.channels, 2);
    assert.equal(Math.round(wav.durationMs), 1000);
    assert.deepEqual(
      Buffer.from(wav.samples.buffer, wav.samples.byteOffset, wav.samples.byteLength),
      Buffer.from(toBytes(pcm)),
    );
  });
});
