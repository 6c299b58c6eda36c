// Adapter life cycle under faults (issue 9 items 2, 7, 8, 9, 12): closed adapters free what they held,
// dials have an absolute deadline and are abandoned with the request or the server, a flapping egress
// endpoint is given up on, shutdown says 1001, and quotas refuse with Cloudflare's error shape.
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Adapter } from "../../src/adapters/websocket/adapter.ts";
import { publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import {
  closeOf,
  createEgress,
  createIngest,
  pollAdapter,
  startEndpoint,
  ttsBurst,
} from "../helpers/ws-endpoints.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** A TCP server that answers the upgrade with a valid 101, one byte every `everyMs` (never finishing in time). */
async function startTricklingServer(everyMs: number) {
  const sockets: Socket[] = [];
  const closed: Promise<unknown>[] = [];
  const srv = createServer((s) => {
    sockets.push(s);
    closed.push(once(s, "close"));
    s.on("error", () => {});
    s.once("data", () => {
      const answer = Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
      let i = 0;
      const t = setInterval(() => {
        if (s.destroyed || i >= answer.length) return clearInterval(t);
        s.write(answer.subarray(i, ++i));
      }, everyMs);
      s.on("close", () => clearInterval(t));
    });
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/slow`,
    sockets,
    /** Resolves when the n-th accepted socket has closed. */
    closedAt: async (n: number) => {
      while (closed.length <= n) await new Promise((r) => setTimeout(r, 10));
      await closed[n];
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe("adapter life cycle under faults", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer([
      "--ws-connect-timeout-ms",
      "1500",
      "--egress-reconnect-window-ms",
      "2000",
      "--max-adapters-per-app",
      "4",
      "--max-adapters",
      "6",
    ]);
  });
  after(async () => {
    await srv.close();
  });

  test("a closed ingest adapter frees its queued audio: nothing keeps the adapter object alive", async () => {
    const manager = srv.server.adapters(srv.api.appId)!;
    const refs: WeakRef<Adapter>[] = [];
    const clip = speechLike(10_000, { seed: 5 }); // 10 s ≈ 1.9 MB queued per adapter
    const ep = await startEndpoint(ttsBurst(clip));
    try {
      for (let i = 0; i < 3; i++) {
        const conn = ep.nextConnection();
        const { adapterId } = await createIngest(srv.api, ep.url, `held-${i}`);
        await conn;
        await pollAdapter(srv.api, adapterId, (s) => s.queuedMs >= 9_000, { timeoutMs: 5000 });
        refs.push(new WeakRef(manager.get(adapterId)!));
        const res = await srv.api.raw<{ tracks: { bytesProcessed?: number }[] }>(
          "POST",
          "adapters/websocket/close",
          { tracks: [{ adapterId }] },
        );
        assert.equal(res.status, 200);
        assert.ok((res.body.tracks[0].bytesProcessed ?? 0) >= clip.byteLength);
        // The status record stays for the state endpoint and idempotent close.
        const again = await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
        assert.deepEqual(again.body, { tracks: [{ adapterId }] });
        const status = await srv.api.raw<{ state: string; queuedMs: number }>(
          "GET",
          `adapters/websocket/${adapterId}`,
        );
        assert.equal(status.body.state, "closed");
        assert.equal(status.body.queuedMs, 0, "the queue is gone");
      }
      // Sockets finish their close handshakes and timers fire; then nothing may hold an adapter.
      for (let round = 0; round < 50 && refs.some((r) => r.deref()); round++) {
        await new Promise((r) => setTimeout(r, 50));
        gc();
      }
      assert.deepEqual(
        refs.map((r) => r.deref() === undefined),
        [true, true, true],
        "closed adapters were garbage-collected (before the fix the manager kept 10 000 of them, 11 MB each)",
      );
    } finally {
      await ep.close();
    }
  });

  test("the handshake has an absolute deadline: a 101 trickled a byte at a time does not hold the request", async () => {
    const slow = await startTricklingServer(100);
    try {
      const t0 = performance.now();
      const res = await srv.api.raw<{ tracks: { errorCode?: string; errorDescription?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        { tracks: [{ location: "local", trackName: "slow", endpoint: slow.url, inputCodec: "pcm" }] },
      );
      const ms = performance.now() - t0;
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks[0].errorCode, "websocket_connection_timeout");
      assert.match(res.body.tracks[0].errorDescription ?? "", /within 1500 ms/);
      assert.ok(ms < 4000, `answered after ${ms.toFixed(0)} ms (deadline 1500 ms)`);
      await slow.closedAt(0);
    } finally {
      await slow.close();
    }
  });

  test("a client that disconnects abandons its dial: the endpoint's socket is closed, no adapter appears", async () => {
    const slow = await startTricklingServer(100);
    try {
      const before = (await srv.api.raw<{ adapters: unknown[] }>("GET", "adapters/websocket")).body.adapters
        .length;
      const abort = new AbortController();
      const req = fetch(`${srv.url}/v1/apps/${TEST_APPS[0].appId}/adapters/websocket/new`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_APPS[0].secret}`, "content-type": "application/json" },
        body: JSON.stringify({
          tracks: [{ location: "local", trackName: "gone", endpoint: slow.url, inputCodec: "pcm" }],
        }),
        signal: abort.signal,
      }).catch(() => undefined);
      while (slow.sockets.length === 0) await new Promise((r) => setTimeout(r, 10));
      const t0 = performance.now();
      abort.abort();
      await req;
      await slow.closedAt(0);
      const ms = performance.now() - t0;
      assert.ok(ms < 1000, `dial abandoned ${ms.toFixed(0)} ms after the client left (deadline 1500 ms)`);
      const afterList = (await srv.api.raw<{ adapters: unknown[] }>("GET", "adapters/websocket")).body
        .adapters;
      assert.equal(afterList.length, before, "no adapter was created for the departed client");
    } finally {
      await slow.close();
    }
  });

  test("an egress endpoint that accepts and drops every connection is given up on a window after the first failure", async () => {
    const pub = await publishAudio(srv.api, "flap-src");
    const ep = await startEndpoint((ws) => ws.close(1011, "go away"), "/flap");
    try {
      const conn = ep.nextConnection();
      const { adapterId } = await createEgress(
        srv.api,
        { sessionId: pub.sessionId, trackName: "flap-src" },
        ep.url,
      );
      await conn;
      const s = await pollAdapter(srv.api, adapterId, (x) => x.state === "closed", {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      assert.match(
        s.closeReason ?? "",
        /^endpoint unreachable for 2 s: endpoint closed the WebSocket \(1011 go away\)/,
      );
      // Backoff 100, 200, 400, 800, then the window: about 5 connections, not ~10 a second forever.
      assert.ok(ep.connections.length <= 8, `${ep.connections.length} connections in the 2 s window`);
    } finally {
      await pub.close();
      await ep.close();
    }
  });

  test("quotas: adapters per app and per server, with Cloudflare's error shape; closing frees a slot", async () => {
    const clip = speechLike(200, { seed: 3 });
    const ep = await startEndpoint(ttsBurst(clip));
    const made: { api: typeof srv.api; id: string }[] = [];
    try {
      for (let i = 0; i < 4; i++)
        made.push({ api: srv.api, id: (await createIngest(srv.api, ep.url, `q${i}`)).adapterId });
      const over = await srv.api.raw<{ tracks: { errorCode?: string; errorDescription?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        { tracks: [{ location: "local", trackName: "q4", endpoint: ep.url, inputCodec: "pcm" }] },
      );
      assert.equal(over.status, 429);
      assert.equal(over.body.tracks[0].errorCode, "quota_exceeded");
      assert.match(over.body.tracks[0].errorDescription ?? "", /--max-adapters-per-app 4/);
      // The other app has its own per-app quota but shares the server's (6).
      for (let i = 0; i < 2; i++)
        made.push({ api: srv.apiB, id: (await createIngest(srv.apiB, ep.url, `b${i}`)).adapterId });
      const global = await srv.apiB.raw<{ tracks: { errorCode?: string; errorDescription?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        { tracks: [{ location: "local", trackName: "b2", endpoint: ep.url, inputCodec: "pcm" }] },
      );
      assert.equal(global.body.tracks[0].errorCode, "quota_exceeded");
      assert.match(global.body.tracks[0].errorDescription ?? "", /--max-adapters 6/);
      const first = made.shift()!;
      await first.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId: first.id }] });
      made.push({ api: srv.apiB, id: (await createIngest(srv.apiB, ep.url, "b2")).adapterId });
    } finally {
      for (const m of made)
        await m.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId: m.id }] });
      await ep.close();
    }
  });
});

describe("shutdown", { timeout: 30_000 }, () => {
  test("egress endpoints hear 1001 going away, and a pending dial does not hold the shutdown", async () => {
    const srv = await startTestServer(["--ws-connect-timeout-ms", "20000"]);
    const pub = await publishAudio(srv.api, "src");
    const ep = await startEndpoint(() => {}, "/egress");
    const slow = await startTricklingServer(1000);
    try {
      const conn = ep.nextConnection();
      await createEgress(srv.api, { sessionId: pub.sessionId, trackName: "src" }, ep.url);
      const ws = await conn;
      const pending = srv.api
        .raw("POST", "adapters/websocket/new", {
          tracks: [{ location: "local", trackName: "pending", endpoint: slow.url, inputCodec: "pcm" }],
        })
        .catch(() => undefined);
      while (slow.sockets.length === 0) await new Promise((r) => setTimeout(r, 10));
      const t0 = performance.now();
      await srv.close();
      const ms = performance.now() - t0;
      assert.ok(ms < 5000, `shutdown took ${ms.toFixed(0)} ms with a dial pending (connect timeout 20 s)`);
      const close = await closeOf(ws);
      assert.equal(close.code, 1001, `egress endpoint got ${close.code} ${close.reason}`);
      await slow.closedAt(0);
      await pending;
    } finally {
      await pub.close();
      await ep.close();
      await slow.close();
    }
  });
});
