import assert from "node:assert/strict";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { ERRORS } from "../../src/api/errors.ts";
import { closePeers } from "../helpers/api-inject.ts";
import { type Closed, RawConnection } from "../helpers/raw-http.ts";
import { encodeOpus, publishAudio, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";

// Slowloris and connection exhaustion (issue 9 item 6): a client that sends a request's headers or body a
// byte at a time, or holds a connection idle, is disconnected by the server after --http-headers-timeout-ms,
// --http-request-timeout-ms or --http-idle-timeout-ms; connections above --http-max-connections are refused
// while the ones already open (and the media) carry on. Timings below are only failure guards: what is
// asserted is that the server closes the connections, not how fast.

const A = TEST_APPS[0];
const HEADERS_MS = 500;
const REQUEST_MS = 1000;
const IDLE_MS = 500;
/** How long a test waits for the server to act before calling it a failure (well above every timeout). */
const GUARD_MS = 10_000;

const auth = `Authorization: Bearer ${A.secret}\r\n`;

function describeLifetimes(closed: Closed[]): string {
  const ms = closed.map((c) => Math.round(c.lifetimeMs)).sort((a, b) => a - b);
  return `${ms.length} connections closed after ${ms[0]}–${ms[ms.length - 1]} ms`;
}

/** A Cloudflare-shaped 408 (what the server writes when it gives up on a request). */
function assertTimeoutResponse(conn: RawConnection): void {
  const [res, ...more] = conn.responses();
  assert.ok(res, `no response before the close; got ${JSON.stringify(conn.received.slice(0, 200))}`);
  assert.equal(more.length, 0);
  assert.equal(res.status, 408, conn.received);
  assert.match(res.headers["content-type"] ?? "", /application\/json/);
  assert.equal(res.headers.connection?.toLowerCase(), "close");
  const body = JSON.parse(res.body);
  assert.equal(body.errorCode, "request_timeout");
  assert.equal(ERRORS[body.errorCode as keyof typeof ERRORS].status, 408);
  assert.equal(typeof body.errorDescription, "string");
  assert.ok(body.errorDescription.length > 0);
}

/** Normal traffic while an attack runs: fresh connections get answers. */
async function normalTraffic(srv: TestServer, until: Promise<unknown>): Promise<number> {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  let ok = 0;
  while (!done) {
    const health = await fetch(`${srv.url}/healthz`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const { sessionId } = await srv.api.newSession();
    assert.match(sessionId, /^[0-9a-f]{32}$/);
    ok++;
    await new Promise((r) => setTimeout(r, 100));
  }
  return ok;
}

describe("slow clients", () => {
  let srv: TestServer;
  let blackHole: Server;
  const held: Socket[] = [];
  const conns: RawConnection[] = [];

  before(async () => {
    srv = await startTestServer([
      "--http-headers-timeout-ms",
      String(HEADERS_MS),
      "--http-request-timeout-ms",
      String(REQUEST_MS),
      "--http-idle-timeout-ms",
      String(IDLE_MS),
      "--http-max-connections",
      "20",
      "--ws-connect-timeout-ms",
      "1500",
    ]);
    // A WebSocket endpoint that accepts TCP and never answers the handshake: adapters/new waits for it.
    blackHole = createTcpServer((s) => held.push(s));
    await new Promise<void>((r) => blackHole.listen(0, "127.0.0.1", r));
  });
  after(async () => {
    for (const c of conns) c.destroy();
    for (const s of held) s.destroy();
    await new Promise((r) => blackHole.close(r));
    await srv.close();
  });

  const open = async () => {
    const c = await RawConnection.open(srv.url);
    conns.push(c);
    return c;
  };

  test("headers sent one byte every 100 ms: closed with a 408 after the headers timeout", async (t) => {
    const attackers = await Promise.all(Array.from({ length: 5 }, open));
    for (const [i, c] of attackers.entries())
      c.trickle(
        `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow-${i}: ${"a".repeat(10_000)}\r\n\r\n`,
        100,
      );
    const closing = Promise.all(attackers.map((c, i) => c.waitClosed(GUARD_MS, `header trickler ${i}`)));
    const served = await normalTraffic(srv, closing);
    const closed = await closing;
    t.diagnostic(`${describeLifetimes(closed)}; ${served} normal request pairs answered meanwhile`);
    for (const c of attackers) assertTimeoutResponse(c);
    assert.ok(served >= 1);
  });

  test("body sent one byte every 100 ms: closed with a 408 after the request timeout", async (t) => {
    const attackers = await Promise.all(Array.from({ length: 5 }, open));
    const body = JSON.stringify({ pad: "x".repeat(500) });
    for (const c of attackers) {
      c.write(
        `POST /v1/apps/${A.appId}/sessions/new HTTP/1.1\r\nHost: localhost\r\n${auth}` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      c.trickle(body, 100);
    }
    const closing = Promise.all(attackers.map((c, i) => c.waitClosed(GUARD_MS, `body trickler ${i}`)));
    const served = await normalTraffic(srv, closing);
    const closed = await closing;
    t.diagnostic(`${describeLifetimes(closed)}; ${served} normal request pairs answered meanwhile`);
    for (const c of attackers) assertTimeoutResponse(c);
  });

  test("a connection that sends nothing is closed after the headers timeout", async (t) => {
    const silent = await Promise.all(Array.from({ length: 3 }, open));
    const closed = await Promise.all(silent.map((c, i) => c.waitClosed(GUARD_MS, `silent connection ${i}`)));
    t.diagnostic(describeLifetimes(closed));
  });

  test("an idle keep-alive connection is closed after the idle timeout, but not during a slow request", async (t) => {
    const c = await open();
    // The handler of this request takes ~1.5 s (the endpoint never completes its handshake): longer than
    // the idle and request timeouts, which must not cut a request whose bytes have all arrived.
    const body = JSON.stringify({
      tracks: [
        {
          location: "local",
          trackName: "slow",
          endpoint: `ws://127.0.0.1:${(blackHole.address() as { port: number }).port}/never`,
          inputCodec: "pcm",
        },
      ],
    });
    const sentAt = performance.now();
    c.write(
      `POST /v1/apps/${A.appId}/adapters/websocket/new HTTP/1.1\r\nHost: localhost\r\n${auth}` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    const [slow] = await c.waitResponses(1, GUARD_MS);
    const answeredAt = performance.now();
    assert.equal(slow.status, 503, slow.body);
    assert.equal(JSON.parse(slow.body).tracks[0].errorCode, "websocket_connection_timeout");
    assert.ok(answeredAt - sentAt > IDLE_MS, "the handler was expected to outlast the idle timeout");

    c.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const [, health] = await c.waitResponses(2, GUARD_MS);
    assert.equal(health.status, 200);
    const lastAnswer = performance.now();
    await c.waitClosed(GUARD_MS, "idle keep-alive connection");
    t.diagnostic(
      `slow request answered after ${Math.round(answeredAt - sentAt)} ms; ` +
        `idle connection closed ${Math.round(c.closedAt! - lastAnswer)} ms after its last response`,
    );
    // An idle close is silent: no 408 after the two answers.
    assert.equal(c.responses().length, 2);
  });
});

describe("connection cap", () => {
  const CAP = 20;
  let srv: TestServer;
  const conns: RawConnection[] = [];

  before(async () => {
    // Timeouts well above the test's length, so only the cap closes connections here.
    srv = await startTestServer([
      "--http-headers-timeout-ms",
      "20000",
      "--http-request-timeout-ms",
      "30000",
      "--http-idle-timeout-ms",
      "20000",
      "--http-max-connections",
      String(CAP),
    ]);
  });
  after(async () => {
    for (const c of conns) c.destroy();
    await srv.close();
  });

  test("connections over --http-max-connections are refused; open connections and the media go on", async (t) => {
    // A call in progress: one publisher, one subscriber (UDP media, set up before the flood).
    const pub = await publishAudio(srv.api, "cap-mic");
    const sub = await pullAudio(srv.api, { sessionId: pub.sessionId, trackName: "cap-mic" });
    try {
      // The client that was there first: one keep-alive connection.
      const keeper = await RawConnection.open(srv.url);
      conns.push(keeper);
      keeper.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
      assert.equal((await keeper.waitResponses(1, GUARD_MS))[0].status, 200);

      // The flood: twice the cap of idle connections.
      const flood: RawConnection[] = [];
      for (let i = 0; i < 2 * CAP; i++) {
        try {
          const c = await RawConnection.open(srv.url);
          conns.push(c);
          flood.push(c);
        } catch {
          // A connect that fails outright is refused too; nothing to track.
        }
      }
      // The keeper holds one slot (the API client's pooled connections may hold more): at least this many
      // flood connections are over the cap and must be closed by the server without a byte of HTTP.
      const minRefused = flood.length - (CAP - 1);
      const deadline = performance.now() + GUARD_MS;
      while (flood.filter((c) => !c.isOpen).length < minRefused) {
        if (performance.now() > deadline)
          assert.fail(
            `${flood.filter((c) => !c.isOpen).length} of ${flood.length} flood connections closed after ` +
              `${GUARD_MS} ms; expected at least ${minRefused} refused (cap ${CAP})`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 300));
      const refused = flood.filter((c) => !c.isOpen);
      const accepted = flood.filter((c) => c.isOpen);
      for (const c of refused) assert.equal(c.received, "", "a refused connection gets no HTTP response");
      assert.ok(accepted.length <= CAP - 1, `${accepted.length} flood connections accepted above the cap`);
      t.diagnostic(
        `${refused.length} of ${flood.length} flood connections refused, ` +
          `at most ${Math.round(Math.max(...refused.map((c) => c.closedAt! - c.connectedAt)))} ms after connect`,
      );

      // The keeper goes on: health and an authenticated API call on its connection.
      keeper.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
      keeper.write(
        `POST /v1/apps/${A.appId}/sessions/new HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 0\r\n\r\n`,
      );
      const answers = await keeper.waitResponses(3, GUARD_MS);
      assert.equal(answers[1].status, 200);
      assert.equal(answers[2].status, 201, answers[2].body);

      // The media goes on while the HTTP side is full.
      const before = sub.packets.length;
      await pub.send(encodeOpus(new Int16Array(1920 * 25)), 20);
      await sub.waitFor(before + 20, GUARD_MS);

      // The cap refuses new connections, it does not evict: the accepted flood is still open.
      assert.equal(accepted.filter((c) => c.isOpen).length, accepted.length);

      // Once the flood goes away, new connections are accepted again.
      for (const c of flood) c.destroy();
      const deadline2 = performance.now() + GUARD_MS;
      for (;;) {
        const c = await RawConnection.open(srv.url).catch(() => undefined);
        if (c) {
          conns.push(c);
          c.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
          await c.closed;
          if (c.responses()[0]?.status === 200) break;
        }
        if (performance.now() > deadline2)
          assert.fail("new connections still refused after the flood closed");
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await closePeers([pub.pc, sub.pc]);
    }
  });
});
