import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { decodePacket, encodePacket } from "../../src/client/endpoint.ts";
import { decodeOpus, encodeOpus, publishAudio, publishRealtime, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, speechLike } from "../helpers/signals.ts";
import { audioFrames, createIngest, waitForAudio } from "../helpers/ws-endpoints.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

describe("echo example on the server: egress → /echo/in → /echo/out → ingest", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("a subscriber of the ingest track hears the published voice (≥ 5 s, correlation ≥ 0.9)", async (t) => {
    const base = srv.url.replace("http", "ws");
    const source = speechLike(6000, { seed: 11 });
    const payloads = encodeOpus(source);
    // The ingest adapter dials /out: its track exists (silent) before any audio flows.
    const ingest = await createIngest(srv.api, `${base}/examples/echo/out?room=r`, "echo");
    const sub = await pullAudio(srv.api, { sessionId: ingest.sessionId, trackName: ingest.trackName });
    const pub = await publishAudio(srv.api, "mic");
    try {
      const res = await srv.api.raw<{ tracks: { adapterId?: string; errorCode?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        {
          tracks: [
            {
              location: "remote",
              sessionId: pub.sessionId,
              trackName: "mic",
              endpoint: `${base}/examples/echo/in?room=r`,
              outputCodec: "pcm",
            },
          ],
        },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(res.body.tracks[0].adapterId, JSON.stringify(res.body));

      await publishRealtime(pub, payloads);
      await waitForAudio(sub, payloads.length - 5, 15_000);
      const audio = audioFrames(sub.packets).packets;
      const heard = decodeOpus(audio.map((p) => p.payload));
      assert.ok(rms(heard) > 500, `echo is not silent (rms ${rms(heard).toFixed(0)})`);
      const { correlation, lagSamples } = alignAndCorrelate(source, heard);
      t.diagnostic(`echo: r=${correlation.toFixed(3)}, lag ${lagSamples} samples, ${audio.length} frames`);
      assert.ok(
        correlation >= 0.9,
        `echo matches the published voice (r=${correlation.toFixed(3)}, lag ${lagSamples})`,
      );

      const rooms = (await (await fetch(`${srv.url}/examples/echo/rooms`)).json()) as {
        rooms: { room: string; ins: number; outs: number; forwardedFrames: number; droppedFrames: number }[];
      };
      const room = rooms.rooms.find((r) => r.room === "r");
      assert.ok(room, JSON.stringify(rooms));
      assert.equal(room.ins, 1);
      assert.equal(room.outs, 1);
      assert.ok(room.forwardedFrames >= payloads.length - 5, JSON.stringify(room));
      assert.equal(room.droppedFrames, 0);
    } finally {
      await pub.close();
      await sub.close();
    }
  });

  test("frames sent before an /out connects are kept (bounded) and delivered when it does; bad rooms refused", async () => {
    const base = `${srv.url.replace("http", "ws")}/examples/echo`;
    const input = await connect(`${base}/in?room=buffered`);
    // 2 s of 20 ms frames; the room keeps only the latest second.
    for (let i = 0; i < 100; i++) {
      const payload = new Uint8Array(3840).fill(i);
      input.send(encodePacket({ sequenceNumber: i + 1, timestamp: i * 960, payload }));
    }
    input.send("text is ignored");
    input.send(Uint8Array.from([0xff, 0xff]));
    // The server reads a socket in order: its pong to this ping means every message above was handled.
    input.ping();
    await once(input, "pong");
    // The backlog is sent right behind the handshake: listen before the socket opens.
    const output = new WebSocket(`${base}/out?room=buffered`);
    const got: number[] = [];
    const waiters: { n: number; resolve: () => void }[] = [];
    const arrived = (n: number) =>
      new Promise<void>((resolve) => (got.length >= n ? resolve() : waiters.push({ n, resolve })));
    output.on("message", (data) => {
      const r = decodePacket(data as Buffer);
      assert.ok(r.ok);
      got.push(r.packet.payload.length === 0 ? -1 : r.packet.payload[0]);
      for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve();
    });
    await once(output, "open");
    await arrived(50);
    assert.deepEqual(
      got.slice(0, 50),
      Array.from({ length: 50 }, (_, i) => 50 + i),
      "the latest second, in order",
    );
    input.close();
    await arrived(51);
    assert.equal(got.at(-1), -1, "an empty packet (end of segment) when the last /in leaves");
    output.close();

    await assert.rejects(connect(`${base}/in?room=${encodeURIComponent("a b")}`), /HTTP 400/);
    await assert.rejects(connect(`${base}/sideways?room=x`), /HTTP 404/);
  });
});

describe("echo example, standalone script", () => {
  let child: ChildProcess;
  let urls: string[];
  before(async () => {
    child = spawn(process.execPath, ["--import", "tsx", "examples/echo.ts", "--port", "0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    urls = await new Promise<string[]>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const lines = out.split("\n");
        if (lines.length > 2) resolve(lines.slice(0, 2));
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

  test("prints /echo/in and /echo/out and forwards between them", async () => {
    assert.match(urls[0], /^ws:\/\/127\.0\.0\.1:\d+\/echo\/in$/);
    assert.match(urls[1], /^ws:\/\/127\.0\.0\.1:\d+\/echo\/out$/);
    const output = await connect(`${urls[1]}?room=s`);
    const input = await connect(`${urls[0]}?room=s`);
    const received = once(output, "message");
    input.send(encodePacket({ sequenceNumber: 1, timestamp: 0, payload: new Uint8Array(3840).fill(7) }));
    const [data] = await received;
    const r = decodePacket(data as Buffer);
    assert.ok(r.ok && r.packet.payload.length === 3840 && r.packet.payload[0] === 7);
    input.close();
    output.close();
  });
});
