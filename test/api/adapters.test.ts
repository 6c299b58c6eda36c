import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import type { AdapterStatus } from "../../src/adapters/websocket/adapter.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import {
  chunkPackets,
  closedPort,
  closeOf,
  createIngest,
  type Endpoint,
  pollAdapter,
  startEndpoint,
  startRedirectServer,
  startSilentServer,
} from "../helpers/ws-endpoints.ts";

// SPEC §2.3–2.4 against a real server: dialing needs real sockets, so no inject() here. Every endpoint
// lives on 127.0.0.1.

interface Item {
  trackName?: string;
  adapterId?: string;
  sessionId?: string;
  endpoint?: string;
  bytesProcessed?: number;
  errorCode?: string;
  errorDescription?: string;
}
interface Body {
  tracks: Item[];
  errorCode?: string;
  errorDescription?: string;
}

const ingest = (trackName: string, endpoint: string) => ({
  location: "local",
  trackName,
  endpoint,
  inputCodec: "pcm",
  mode: "buffer",
});

describe("adapters/websocket API", () => {
  let srv: TestServer;
  let strict: TestServer;
  let ep: Endpoint;
  const cleanup: (() => Promise<void>)[] = [];

  before(async () => {
    [srv, strict] = await Promise.all([
      startTestServer(["--ws-connect-timeout-ms", "300"]),
      startTestServer(["--endpoint-policy", "strict"]),
    ]);
    ep = await startEndpoint();
  });
  after(async () => {
    for (const c of cleanup) await c();
    await ep.close();
    await srv.close();
    await strict.close();
  });

  const post = (body: unknown, server = srv) => server.api.raw<Body>("POST", "adapters/websocket/new", body);
  const close = (...adapterIds: string[]) =>
    srv.api.raw<Body>("POST", "adapters/websocket/close", {
      tracks: adapterIds.map((adapterId) => ({ adapterId })),
    });

  /** A fresh endpoint for tests that count or inspect its connections. */
  async function endpoint(path?: string): Promise<Endpoint> {
    const e = await startEndpoint(undefined, path);
    cleanup.push(() => e.close());
    return e;
  }

  describe("create: per-item handshake outcomes", () => {
    test("a refused connection (closed port) → 503, item websocket_handshake_failed", async () => {
      const url = `ws://127.0.0.1:${await closedPort()}/tts`;
      const res = await post({ tracks: [ingest("t", url)] });
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks.length, 1);
      const [item] = res.body.tracks;
      assert.equal(item.trackName, "t");
      assert.equal(item.errorCode, "websocket_handshake_failed");
      assert.ok(item.errorDescription);
      assert.equal(item.adapterId, undefined);
    });

    test("an endpoint that accepts TCP and never answers → websocket_connection_timeout after the configured 300 ms", async () => {
      const hung = await startSilentServer();
      cleanup.push(() => hung.close());
      const t0 = performance.now();
      const res = await post({ tracks: [ingest("t", hung.url)] });
      const elapsed = performance.now() - t0;
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks[0].errorCode, "websocket_connection_timeout");
      assert.equal(hung.accepted(), 1, "the TCP connection was made; the handshake is what timed out");
      assert.ok(elapsed >= 290 && elapsed < 2_000, `answered after ${elapsed.toFixed(0)} ms`);
    });

    test("4 items, 2 bad → 200 with successes and failures in request order", async () => {
      const hung = await startSilentServer();
      cleanup.push(() => hung.close());
      const refused = `ws://127.0.0.1:${await closedPort()}/tts`;
      const e = await endpoint();
      // The slowest item (timeout) comes first: answering in completion order would reorder the items.
      const res = await post({
        tracks: [
          ingest("slow", hung.url),
          ingest("one", e.url),
          ingest("refused", refused),
          ingest("two", e.url),
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const [slow, one, bad, two] = res.body.tracks;
      assert.deepEqual(
        res.body.tracks.map((i) => i.trackName),
        ["slow", "one", "refused", "two"],
      );
      assert.equal(slow.errorCode, "websocket_connection_timeout");
      assert.equal(bad.errorCode, "websocket_handshake_failed");
      for (const ok of [one, two]) {
        assert.equal(ok.errorCode, undefined);
        assert.match(ok.adapterId ?? "", /^[0-9a-f]{32}$/);
        assert.match(ok.sessionId ?? "", /^[0-9a-f]{32}$/);
        assert.equal(ok.endpoint, e.url);
      }
      assert.notEqual(one.adapterId, two.adapterId);
      assert.notEqual(one.sessionId, two.sessionId, "each ingest adapter gets its own new session");
      assert.equal(e.connections.length, 2);
      for (const s of [one, two]) {
        const view = await srv.api.getSession(s.sessionId!);
        assert.deepEqual(
          view.tracks.map((t) => [t.trackName, t.status]),
          [[s.trackName, "active"]],
          "the track is published as soon as the call returns",
        );
      }
    });

    test("every item bad → 503 with every item's error", async () => {
      const refused = `ws://127.0.0.1:${await closedPort()}/tts`;
      const res = await post({ tracks: [ingest("a", refused), ingest("b", refused)] });
      assert.equal(res.status, 503);
      assert.deepEqual(
        res.body.tracks.map((i) => [i.trackName, i.errorCode]),
        [
          ["a", "websocket_handshake_failed"],
          ["b", "websocket_handshake_failed"],
        ],
      );
    });

    test("the endpoint sees the exact path and query, no subprotocol and no extension", async () => {
      for (const path of ["/tts?token=abc", "/a/b%20c/?token=x%2Fy&empty=&flag"]) {
        const e = await endpoint(path);
        await createIngest(srv.api, e.url, "t");
        assert.equal(e.requests.length, 1);
        const req = e.requests[0];
        assert.equal(req.url, path);
        assert.equal(req.headers["sec-websocket-protocol"], undefined);
        assert.equal(req.headers["sec-websocket-extensions"], undefined);
      }
    });

    test("a 302 answer to the upgrade is not followed → websocket_handshake_failed", async () => {
      const target = await endpoint();
      const redirect = await startRedirectServer(target.url);
      cleanup.push(() => redirect.close());
      const res = await post({ tracks: [ingest("t", redirect.url)] });
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks[0].errorCode, "websocket_handshake_failed");
      assert.match(res.body.tracks[0].errorDescription ?? "", /302/);
      assert.equal(redirect.hits(), 1);
      assert.equal(target.connections.length, 0, "the redirect target was never dialed");
    });
  });

  describe("create: endpoint policy", () => {
    test("strict policy denies loopback (127.0.0.1 and localhost) → websocket_endpoint_not_allowed", async () => {
      const e = await endpoint();
      const port = new URL(e.url).port;
      const res = await post(
        { tracks: [ingest("a", e.url), ingest("b", `ws://localhost:${port}/tts`)] },
        strict,
      );
      assert.equal(res.status, 503);
      assert.deepEqual(
        res.body.tracks.map((i) => i.errorCode),
        ["websocket_endpoint_not_allowed", "websocket_endpoint_not_allowed"],
      );
      assert.equal(e.connections.length, 0);
      // The default policy allows the same endpoint.
      await createIngest(srv.api, e.url, "a");
    });

    test("default policy denies link-local and metadata addresses without any connection attempt", async () => {
      // Every TCP connect in this process is watched; one to a non-loopback address is recorded and blocked
      // (this suite must never send traffic off the machine, even if the guard were broken).
      const attempts: string[] = [];
      const proto = net.Socket.prototype as unknown as { connect: (...args: unknown[]) => net.Socket };
      const original = proto.connect;
      proto.connect = function (this: net.Socket, ...args: unknown[]) {
        const first = Array.isArray(args[0]) ? args[0][0] : args[0];
        const host =
          typeof first === "object" && first !== null ? (first as { host?: string }).host : args[1];
        if (typeof host === "string" && !/^(127\.|localhost$|::1$)/.test(host)) {
          attempts.push(host);
          process.nextTick(() => this.destroy(new Error(`test blocked a connect to ${host}`)));
          return this;
        }
        return original.apply(this, args);
      };
      try {
        const t0 = performance.now();
        const res = await post({
          tracks: [
            ingest("metadata", "ws://169.254.169.254/latest/meta-data"),
            ingest("mapped", "ws://[::ffff:169.254.169.254]/"),
            ingest("fe80", "ws://[fe80::1]:8080/"),
            ingest("zero", "ws://0.0.0.0:8080/"),
          ],
        });
        const elapsed = performance.now() - t0;
        assert.equal(res.status, 503, JSON.stringify(res.body));
        assert.deepEqual(
          res.body.tracks.map((i) => i.errorCode),
          Array(4).fill("websocket_endpoint_not_allowed"),
        );
        assert.deepEqual(attempts, [], "no connection was attempted");
        assert.ok(elapsed < 300, `denied before dialing (${elapsed.toFixed(0)} ms, the dial timeout is 300)`);
      } finally {
        proto.connect = original;
      }
    });
  });

  describe("create: request validation (nothing is dialed)", () => {
    const cases: [string, () => unknown, number, string][] = [
      [
        "5 items",
        () => ({ tracks: Array.from({ length: 5 }, (_, i) => ingest(`t${i}`, ep.url)) }),
        406,
        "invalid_params",
      ],
      ["0 items", () => ({ tracks: [] }), 406, "invalid_params"],
      ["no tracks field", () => ({}), 406, "invalid_params"],
      [
        "inputCodec opus",
        () => ({ tracks: [{ ...ingest("t", ep.url), inputCodec: "opus" }] }),
        406,
        "invalid_params",
      ],
      [
        "missing inputCodec",
        () => ({ tracks: [{ ...ingest("t", ep.url), inputCodec: undefined }] }),
        406,
        "invalid_params",
      ],
      ["empty trackName", () => ({ tracks: [ingest("", ep.url)] }), 406, "invalid_params"],
      [
        "an http:// endpoint",
        () => ({ tracks: [ingest("t", ep.url.replace(/^ws:/, "http:"))] }),
        406,
        "invalid_params",
      ],
      [
        "an endpoint that is not a URL",
        () => ({ tracks: [ingest("t", "not a url")] }),
        406,
        "invalid_params",
      ],
      [
        "a bad item among good ones",
        () => ({ tracks: [ingest("t", ep.url), ingest("u", "http://x/")] }),
        406,
        "invalid_params",
      ],
      [
        "trackName of the wrong type",
        () => ({ tracks: [{ ...ingest("t", ep.url), trackName: 42 }] }),
        400,
        "decoding_error",
      ],
      ["tracks not an array", () => ({ tracks: ingest("t", ep.url) }), 400, "decoding_error"],
    ];
    for (const [name, body, status, code] of cases) {
      test(`${name} → ${status} ${code}`, async () => {
        const before = ep.connections.length;
        const res = await post(body());
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.equal(res.body.errorCode, code);
        assert.ok(res.body.errorDescription);
        assert.equal(ep.connections.length, before, "no item was dialed");
      });
    }

    test("a body that is not JSON → 400 decoding_error", async () => {
      const res = await fetch(`${srv.api.baseUrl}/apps/${srv.api.appId}/adapters/websocket/new`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_APPS[0].secret}`, "content-type": "application/json" },
        body: '{"tracks": [',
      });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as Body).errorCode, "decoding_error");
    });
  });

  describe("close", () => {
    test("close twice: 200 with bytesProcessed, then 200 without it; the endpoint sees 1000", async () => {
      const e = await endpoint();
      const ad = await createIngest(srv.api, e.url, "t");
      const ws = e.connections[0];
      for (const m of chunkPackets(new Int16Array(5_000), 1_001)) ws.send(m); // 10 000 bytes
      await pollAdapter(srv.api, ad.adapterId, (s) => s.bytesProcessed === 10_000, { timeoutMs: 2_000 });

      const first = await close(ad.adapterId);
      assert.equal(first.status, 200);
      assert.deepEqual(first.body.tracks, [{ adapterId: ad.adapterId, bytesProcessed: 10_000 }]);
      assert.equal((await closeOf(ws)).code, 1000);

      const second = await close(ad.adapterId);
      assert.equal(second.status, 200);
      assert.deepEqual(second.body.tracks, [{ adapterId: ad.adapterId }]);

      const state = await srv.api.raw<AdapterStatus>("GET", `adapters/websocket/${ad.adapterId}`);
      assert.equal(state.body.state, "closed");
      assert.equal(state.body.closeReason, "closed by API");
    });

    test("an adapter closed by its endpoint closes idempotently: 200 without bytesProcessed", async () => {
      const e = await endpoint();
      const ad = await createIngest(srv.api, e.url, "t");
      e.connections[0].close(1000);
      await pollAdapter(srv.api, ad.adapterId, (s) => s.state === "closed", { timeoutMs: 2_000 });
      const res = await close(ad.adapterId);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.tracks, [{ adapterId: ad.adapterId }]);
    });

    test("an unknown id → 503 adapter_not_found; mixed with a known one → 200", async () => {
      const unknown = "0".repeat(32);
      const res = await close(unknown);
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks[0].adapterId, unknown);
      assert.equal(res.body.tracks[0].errorCode, "adapter_not_found");

      const e = await endpoint();
      const ad = await createIngest(srv.api, e.url, "t");
      const mixed = await close(unknown, ad.adapterId);
      assert.equal(mixed.status, 200);
      assert.equal(mixed.body.tracks[0].errorCode, "adapter_not_found");
      assert.deepEqual(mixed.body.tracks[1], { adapterId: ad.adapterId, bytesProcessed: 0 });

      const get = await srv.api.raw<Body>("GET", `adapters/websocket/${unknown}`);
      assert.equal(get.status, 404);
      assert.equal(get.body.errorCode, "adapter_not_found");
    });

    test("close with 0 or 5 items → 406 invalid_params", async () => {
      for (const n of [0, 5]) {
        const res = await close(...Array.from({ length: n }, () => "0".repeat(32)));
        assert.equal(res.status, 406);
        assert.equal(res.body.errorCode, "invalid_params");
      }
    });

    test("another app cannot close (or see) an adapter: adapter_not_found, and it stays open", async () => {
      const e = await endpoint();
      const ad = await createIngest(srv.api, e.url, "t");
      const res = await srv.apiB.raw<Body>("POST", "adapters/websocket/close", {
        tracks: [{ adapterId: ad.adapterId }],
      });
      assert.equal(res.status, 503);
      assert.equal(res.body.tracks[0].errorCode, "adapter_not_found");
      const get = await srv.apiB.raw<Body>("GET", `adapters/websocket/${ad.adapterId}`);
      assert.equal(get.status, 404);
      const mine = await srv.api.raw<AdapterStatus>("GET", `adapters/websocket/${ad.adapterId}`);
      assert.equal(mine.body.state, "open");
      const ws = e.connections[0];
      assert.equal(ws.readyState, ws.OPEN);
    });
  });

  test("GET adapters/websocket lists the calling app's adapters only", async () => {
    const e = await endpoint();
    const a = await createIngest(srv.api, e.url, "mine");
    const b = await createIngest(srv.apiB, e.url, "theirs");
    const listA = await srv.api.raw<{ adapters: AdapterStatus[] }>("GET", "adapters/websocket");
    const listB = await srv.apiB.raw<{ adapters: AdapterStatus[] }>("GET", "adapters/websocket");
    assert.equal(listA.status, 200);
    const idsA = listA.body.adapters.map((s) => s.adapterId);
    const idsB = listB.body.adapters.map((s) => s.adapterId);
    assert.ok(idsA.includes(a.adapterId));
    assert.ok(!idsA.includes(b.adapterId));
    assert.deepEqual(idsB, [b.adapterId]);
    const mine = listA.body.adapters.find((s) => s.adapterId === a.adapterId)!;
    assert.equal(mine.direction, "ingest");
    assert.equal(mine.state, "open");
    assert.equal(mine.trackName, "mine");
    assert.equal(mine.sessionId, a.sessionId);
    assert.equal(mine.endpoint, e.url);
    for (const k of [
      "bytesProcessed",
      "frames",
      "queuedMs",
      "underruns",
      "droppedFrames",
      "reconnects",
    ] as const)
      assert.equal(typeof mine[k], "number", k);
  });
});
