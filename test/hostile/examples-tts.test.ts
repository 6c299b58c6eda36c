/**
 * Issue 9 item 5 (tts): unauthenticated text-to-speech requests used to run without limit (20 requests: 75 %
 * of a core for 40 s) and its clip cache held 190 MB. The tts example now bounds:
 *
 * - the syntheses in progress (a request for a clip that is neither cached nor being made is refused with 429
 *   once that many run),
 * - the sockets open at once,
 * - the text of one request (1000 characters),
 * - the memory of clips (an LRU cache bounded in bytes, and clips held by open sockets within one budget).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { WebSocket } from "ws";
import { decodePacket } from "../../src/client/endpoint.ts";
import { ExampleHost } from "../../src/examples/host.ts";
import { TtsExample } from "../../src/examples/tts.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const MiB = 1024 * 1024;

interface Harness {
  url: string;
  tts: TtsExample;
  close(): Promise<void>;
}

/** The tts example on its own HTTP server (as examples/tts.ts runs it), with a fake synthesizer. */
async function startTts(synthesize: (text: string) => Promise<Int16Array>): Promise<Harness> {
  const tts = new TtsExample({ synthesize, logger: quiet });
  const host = new ExampleHost({ prefix: "", examples: [tts], logger: quiet });
  const server: Server = createServer((_req, res) => res.writeHead(426).end());
  host.attach(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/tts`,
    tts,
    async close() {
      await host.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  ws.on("error", () => {});
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

/** Resolves when the clip's end (an empty Packet) arrives, or with the close code when the socket closes. */
function clipOrClose(ws: WebSocket): Promise<"clip" | number> {
  return new Promise((resolve) => {
    ws.on("message", (data) => {
      const r = decodePacket(data as Buffer);
      if (r.ok && r.packet.payload.length === 0) resolve("clip");
    });
    ws.once("close", (code) => resolve(code));
  });
}

describe("tts: bounded work", () => {
  let h: Harness;
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const release: (() => void)[] = [];
  before(async () => {
    h = await startTts(async () => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => release.push(r));
      running--;
      return new Int16Array(9600); // 100 ms
    });
  });
  after(async () => {
    for (const r of release.splice(0)) r();
    await h?.close();
  });

  test("12 simultaneous requests for different texts: a few synthesize, the others are refused (429)", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        connect(`${h.url}?text=${encodeURIComponent(`Sentence number ${i}.`)}`),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    const opened = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
    const refused = results.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    assert.ok(maxRunning <= 4, `at most 4 syntheses at once (saw ${maxRunning})`);
    assert.ok(calls <= 4, `${calls} syntheses started`);
    assert.ok(refused.length >= 8, `the others are refused (${refused.length})`);
    for (const r of refused) assert.match(r, /HTTP 429/);
    // Once they finish, new requests are served again.
    for (const r of release.splice(0)) r();
    await Promise.all(opened.map((ws) => clipOrClose(ws)));
    for (const ws of opened) ws.close();
    await new Promise((r) => setTimeout(r, 50));
    const again = await connect(`${h.url}?text=Later`);
    const done = clipOrClose(again);
    await new Promise((r) => setTimeout(r, 20));
    for (const r of release.splice(0)) r();
    assert.equal(await done, "clip");
    again.close();
  });

  test("a text over 1000 characters is refused (400)", async () => {
    await assert.rejects(connect(`${h.url}?text=${"a".repeat(1001)}`), /HTTP 400/);
  });
});

describe("tts: bounded sockets", () => {
  let h: Harness;
  before(async () => {
    h = await startTts(async () => new Int16Array(9600));
  });
  after(async () => {
    await h?.close();
  });

  test("40 sockets for the same (cached) text: at most 16 stay open, the others are refused (429)", async () => {
    const results = await Promise.allSettled(Array.from({ length: 40 }, () => connect(`${h.url}?text=Same`)));
    const opened = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
    const refused = results.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    assert.ok(opened.length <= 16, `${opened.length} open`);
    assert.ok(opened.length >= 1);
    for (const r of refused) assert.match(r, /HTTP 429/);
    for (const ws of opened) ws.close();
  });
});

describe("tts: bounded clip memory", () => {
  test("20 requests for different 8 MiB clips keep at most 64 MiB of clips alive", async () => {
    const alive: WeakRef<Int16Array>[] = [];
    const h = await startTts(async () => {
      const clip = new Int16Array((8 * MiB) / 2);
      alive.push(new WeakRef(clip));
      return clip;
    });
    try {
      for (let i = 0; i < 20; i++) {
        const ws = await connect(`${h.url}?text=${encodeURIComponent(`Long text ${i}`)}`);
        const end = clipOrClose(ws);
        assert.equal(await end, "clip", `request ${i} is served`);
        const gone = new Promise((r) => ws.once("close", r));
        ws.close();
        await gone;
      }
      await new Promise((r) => setTimeout(r, 100));
      gc();
      await new Promise((r) => setTimeout(r, 50));
      gc();
      const held = alive.filter((w) => w.deref() !== undefined).length * 8 * MiB;
      assert.ok(held <= 64 * MiB, `${held / MiB} MiB of clips still held after every socket closed`);
    } finally {
      await h.close();
    }
  });
});
