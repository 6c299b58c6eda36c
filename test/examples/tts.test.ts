import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { decodePacket, type Packet } from "../../src/client/endpoint.ts";
import { synthesizeSpeech } from "../../src/examples/speech.ts";
import { decodeOpus, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { fromBytes, rms } from "../helpers/signals.ts";
import { audioFrames, createIngest, waitForAudio } from "../helpers/ws-endpoints.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Received {
  packets: Packet[];
  /** Resolves with the packets up to and including the `n`-th empty one. */
  untilEmpty(n?: number, timeoutMs?: number): Promise<Packet[]>;
  closed: Promise<{ code: number; reason: string }>;
}

function receive(ws: WebSocket): Received {
  const packets: Packet[] = [];
  let waiter: (() => void) | undefined;
  ws.on("message", (data) => {
    const r = decodePacket(data as Buffer);
    assert.ok(r.ok, "every message is a valid Packet");
    packets.push({ ...r.packet, payload: r.packet.payload.slice() });
    waiter?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.once("close", (code, reason) => r({ code, reason: reason.toString() })),
  );
  return {
    packets,
    closed,
    untilEmpty(n = 1, timeoutMs = 15_000) {
      const count = () => packets.filter((p) => p.payload.length === 0).length;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${count()} of ${n} end packets`)), timeoutMs);
        const check = () => {
          if (count() < n) return;
          clearTimeout(timer);
          resolve(packets);
        };
        waiter = check;
        check();
      });
    },
  };
}

function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

/** Speech, not noise or a tone: loud enough, and with both voiced stretches and pauses (20 ms windows). */
function assertSpeech(pcm: Int16Array, what: string): void {
  assert.ok(rms(pcm) > 500, `${what}: not silent (rms ${rms(pcm).toFixed(0)})`);
  const windows = Math.floor(pcm.length / 1920);
  const levels: number[] = [];
  for (let w = 0; w < windows; w++) levels.push(rms(pcm.subarray(w * 1920, (w + 1) * 1920)));
  const peak = Math.max(...levels);
  const quiet = levels.filter((l) => l < peak * 0.05).length / windows;
  const loud = levels.filter((l) => l > peak * 0.25).length / windows;
  assert.ok(quiet > 0.03 && quiet < 0.7, `${what}: has pauses (${(quiet * 100).toFixed(0)} % quiet windows)`);
  assert.ok(loud > 0.2, `${what}: has voiced parts (${(loud * 100).toFixed(0)} % loud windows)`);
  for (let i = 0; i < pcm.length; i += 2) {
    if (pcm[i] !== pcm[i + 1]) assert.fail(`${what}: mono speech as two equal channels (sample ${i / 2})`);
  }
}

describe("tts example", () => {
  let srv: TestServer;
  let base: string;
  before(async () => {
    srv = await startTestServer();
    base = `${srv.url.replace("http", "ws")}/examples/tts`;
  });
  after(async () => {
    await srv.close();
  });

  test("a real WebSocket gets ≥ 1 s of speech: 16 KiB Packets, then an empty one; the socket stays open", async () => {
    const text = "The quick brown fox jumps over the lazy dog. Patchbay speaks.";
    const ws = await connect(`${base}?text=${encodeURIComponent(text)}`);
    const rx = receive(ws);
    const packets = await rx.untilEmpty();
    const audio = packets.slice(0, -1);
    assert.equal(packets.at(-1)!.payload.length, 0, "ends with an empty packet");
    for (const p of audio.slice(0, -1)) assert.equal(p.payload.length, 16_384, "16 KiB chunks");
    assert.ok(audio.at(-1)!.payload.length <= 16_384);
    const bytes = Buffer.concat(audio.map((p) => p.payload));
    assert.equal(bytes.length % 4, 0, "whole 48 kHz stereo s16 frames");
    const pcm = fromBytes(bytes);
    const seconds = pcm.length / 2 / 48_000;
    assert.ok(seconds >= 1, `at least 1 s of audio (${seconds.toFixed(2)} s)`);
    assertSpeech(pcm, "tts");
    // The same synthesis run directly: the endpoint sends exactly that clip.
    const direct = await synthesizeSpeech(text);
    assert.deepEqual(bytes, Buffer.from(direct.buffer, direct.byteOffset, direct.byteLength));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ws.readyState, WebSocket.OPEN, "socket kept open after the clip");
    ws.close();
  });

  test("?repeat=1 speaks again after the gap, until the socket closes", async () => {
    const ws = await connect(`${base}?text=Again&repeat=1&gap=100`);
    const rx = receive(ws);
    const t0 = performance.now();
    await rx.untilEmpty(3, 10_000);
    const elapsed = performance.now() - t0;
    const clipBytes = rx.packets.slice(
      0,
      rx.packets.findIndex((p) => p.payload.length === 0),
    );
    const clipMs = Buffer.concat(clipBytes.map((p) => p.payload)).length / 192;
    assert.ok(
      elapsed >= 2 * (clipMs + 100) - 50,
      `repetitions are clip + gap apart (${elapsed.toFixed(0)} ms)`,
    );
    ws.close();
  });

  test("bad parameters refuse the upgrade with 400; an unknown voice closes with 1011 and the reason", async () => {
    await assert.rejects(connect(`${base}?text=${"a".repeat(1001)}`), /HTTP 400/);
    await assert.rejects(connect(`${base}?voice=${encodeURIComponent("../../etc")}`), /HTTP 400/);
    await assert.rejects(connect(`${base}?wpm=5`), /HTTP 400/);
    await assert.rejects(connect(`${base}?repeat=maybe`), /HTTP 400/);
    await assert.rejects(connect(`${base}/nested`), /HTTP 404/);
    const ws = await connect(`${base}?voice=zz`);
    const { code, reason } = await receive(ws).closed;
    assert.equal(code, 1011);
    assert.match(reason, /voice does not exist/);
  });

  test("through an ingest adapter: a subscriber of the new track hears the speech", async () => {
    const ingest = await createIngest(
      srv.api,
      `${base}?text=${encodeURIComponent("Hello, this is the speech test.")}`,
    );
    const sub = await pullAudio(srv.api, { sessionId: ingest.sessionId, trackName: ingest.trackName });
    try {
      await waitForAudio(sub, 60, 15_000);
      const audio = audioFrames(sub.packets).packets;
      const pcm = decodeOpus(audio.map((p) => p.payload));
      assert.ok(rms(pcm) > 500, `decoded speech is not silent (rms ${rms(pcm).toFixed(0)})`);
    } finally {
      await sub.close();
    }
  });
});

describe("tts example, standalone script", () => {
  let child: ChildProcess;
  let url: string;
  before(async () => {
    child = spawn(process.execPath, ["--import", "tsx", "examples/tts.ts", "--port", "0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n")[0];
        if (out.includes("\n")) resolve(line);
      });
      child.once("exit", (code) => reject(new Error(`script exited early with ${code}`)));
    });
  });
  after(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });

  test("prints its ws:// URL and serves speech there", async () => {
    assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/tts$/);
    const ws = await connect(`${url}?text=Standalone`);
    const packets = await receive(ws).untilEmpty();
    const pcm = fromBytes(Buffer.concat(packets.map((p) => p.payload)));
    assert.ok(pcm.length / 2 / 48_000 > 0.3 && rms(pcm) > 500);
    ws.close();
  });

  test("stops cleanly on SIGTERM", async () => {
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
  });
});
