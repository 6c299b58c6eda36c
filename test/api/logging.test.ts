// Logs that explain (issue 10 item 3): every API failure is logged once (route, method, app, errorCode,
// status, request id) at info for client errors; adapter and session life cycles are logged once per event
// with their ids; an egress endpoint that drops is logged when it drops and when it is back; a port in use
// is one line, not a stack. No secret, Authorization header or `?token=` value reaches the log.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { ApiClient } from "../../src/client/api-client.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import { createEgress, createIngest, receiver, startEndpoint } from "../helpers/ws-endpoints.ts";

type Line = Record<string, unknown> & { level: number; msg: string };

const INFO = 30;
const WARN = 40;
/** Secrets the test hands the server; none may appear in any log line. */
const WRONG_SECRET = "not-the-secret-4d9c1e";
const TOKENS = ["SEKRIT-dial-7f3a", "SEKRIT-ingest-0b2c", "SEKRIT-egress-9e41"];

const lines: Line[] = [];
const raw: string[] = [];
const waiters = new Set<() => void>();
const logger = pino(
  { level: "debug" },
  {
    write(chunk: string) {
      raw.push(chunk);
      lines.push(JSON.parse(chunk) as Line);
      for (const w of [...waiters]) w();
    },
  },
);

/** The first line (from `from` on) with `msg` whose fields include `fields`; waits for it (log events, no polling). */
function logged(msg: string, fields: Record<string, unknown> = {}, timeoutMs = 5000): Promise<Line> {
  const find = () => lines.find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
  const hit = find();
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const check = () => {
      const l = find();
      if (!l) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(l);
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(
        new Error(`no log line "${msg}" ${JSON.stringify(fields)} in ${timeoutMs} ms:\n${raw.join("")}`),
      );
    }, timeoutMs);
    waiters.add(check);
  });
}

function count(msg: string, fields: Record<string, unknown>): number {
  return lines.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v)).length;
}

let srv: TestServer;
const appId = TEST_APPS[0].appId;

before(async () => {
  // Short enough to see a session close unconnected, long enough for a loaded machine to finish binding its
  // ports and DTLS certificate first (a session closed while gathering answers sessions/new with a 500).
  srv = await startTestServer(["--session-connect-timeout-ms", "1500"], { logger });
});
after(async () => {
  await srv.close();
  const all = raw.join("");
  for (const secret of [TEST_APPS[0].secret, TEST_APPS[1].secret, WRONG_SECRET, ...TOKENS])
    assert.ok(!all.includes(secret), `a secret reached the log: ${secret}`);
  assert.ok(!/"authorization"|"headers"/i.test(all), "request headers reached the log");
});

describe("API failures", () => {
  test("a 401 is logged once at info with route, method, app, errorCode, status and request id", async () => {
    const wrong = new ApiClient(`${srv.url}/v1`, appId, WRONG_SECRET);
    const res = await wrong.raw("POST", "sessions/new");
    assert.equal(res.status, 401);
    const l = await logged("API request failed", { errorCode: "unauthorized" });
    assert.equal(l.level, INFO);
    assert.equal(l.status, 401);
    assert.equal(l.method, "POST");
    assert.equal(l.route, "/v1/apps/:appId/sessions/new");
    assert.equal(l.appId, appId);
    assert.equal(typeof l.reqId, "string");
    assert.equal(count("API request failed", { reqId: l.reqId }), 1, "once");
  });

  test("a decoding_error is logged at info", async () => {
    const res = await fetch(`${srv.url}/v1/apps/${appId}/sessions/new`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_APPS[0].secret}`, "content-type": "application/json" },
      body: TOKENS[0], // short enough for V8 to quote it whole in its parse error
    });
    assert.equal(res.status, 400);
    assert.ok((await res.text()).includes(TOKENS[0]), "the client is told what it sent");
    const l = await logged("API request failed", { errorCode: "decoding_error" });
    assert.equal(l.level, INFO);
    assert.equal(l.status, 400);
    assert.equal(l.route, "/v1/apps/:appId/sessions/new");
  });

  test("an unknown route is logged with its path, never its query", async () => {
    const res = await fetch(`${srv.url}/v1/apps/${appId}/nothing-here?token=${TOKENS[0]}`);
    assert.equal(res.status, 404);
    const l = await logged("API request failed", { errorCode: "not_found", status: 404 });
    assert.equal(l.path, `/v1/apps/${appId}/nothing-here`);
  });

  test("a per-item failure of tracks/close is logged with its index", async () => {
    const { sessionId } = await srv.api.newSession();
    const res = await srv.api.raw<{ tracks: { errorCode?: string }[] }>(
      "PUT",
      `sessions/${sessionId}/tracks/close`,
      { tracks: [{ mid: "7" }], force: true },
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.tracks[0].errorCode, "close_track_error");
    const l = await logged("API request item failed", { errorCode: "close_track_error" });
    assert.equal(l.level, INFO);
    assert.equal(l.item, 0);
    assert.equal(l.route, "/v1/apps/:appId/sessions/:sessionId/tracks/close");
    assert.equal(l.sessionId, sessionId);
  });
});

describe("adapters", () => {
  let refusing: Server;
  let refusingUrl: string;
  before(async () => {
    // An endpoint that refuses the upgrade like an examples endpoint without its token.
    refusing = createServer((_req, res) => res.writeHead(401).end());
    refusing.on("upgrade", (_req, socket: Socket) => {
      socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    await new Promise<void>((r) => refusing.listen(0, "127.0.0.1", () => r()));
    refusingUrl = `ws://127.0.0.1:${(refusing.address() as AddressInfo).port}/tts?token=${TOKENS[0]}`;
  });
  after(() => new Promise<void>((r) => refusing.close(() => r())));

  test("a handshake failure is logged: the dial's detail and the failed item", async () => {
    const res = await srv.api.raw<{ tracks: { errorCode?: string }[] }>("POST", "adapters/websocket/new", {
      tracks: [{ location: "local", trackName: "t", endpoint: refusingUrl, inputCodec: "pcm" }],
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.tracks[0].errorCode, "websocket_handshake_failed");
    const dial = await logged("adapter dial failed");
    assert.match(String(dial.detail), /401/);
    const item = await logged("API request item failed", { errorCode: "websocket_handshake_failed" });
    assert.equal(item.level, INFO);
    assert.equal(item.item, 0);
    assert.equal(item.status, 503);
    assert.equal(item.route, "/v1/apps/:appId/adapters/websocket/new");
    assert.equal(item.appId, appId);
  });

  test("adapter and session life cycle: created, then closed with the reason, once each", async () => {
    const ep = await startEndpoint(() => {}, `/tts?token=${TOKENS[1]}&text=hi`);
    try {
      const { adapterId, sessionId } = await createIngest(srv.api, ep.url, "speech");
      const created = await logged("adapter created", { adapterId });
      assert.equal(created.level, INFO);
      assert.equal(created.direction, "ingest");
      assert.equal(created.sessionId, sessionId);
      assert.equal(created.appId, appId);
      assert.match(String(created.endpoint), /^ws:\/\/127\.0\.0\.1:\d+\/tts\?token=/);
      const session = await logged("session created", { sessionId });
      assert.equal(session.level, INFO);
      assert.equal(session.appId, appId);
      await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
      const closed = await logged("adapter closed", { adapterId });
      assert.equal(closed.level, INFO);
      assert.equal(closed.reason, "closed by API");
      const sessionClosed = await logged("session closed", { sessionId });
      assert.equal(sessionClosed.level, INFO);
      assert.equal(typeof sessionClosed.reason, "string");
      assert.equal(count("adapter created", { adapterId }), 1);
      assert.equal(count("adapter closed", { adapterId }), 1);
      assert.equal(count("session closed", { sessionId }), 1);
    } finally {
      await ep.close();
    }
  });

  test("an egress endpoint that drops is logged when it drops and when the adapter is back", async () => {
    const source = await startEndpoint(() => {}, "/silence");
    const sink = await startEndpoint(() => {}, `/rec?token=${TOKENS[2]}`);
    try {
      const ingest = await createIngest(srv.api, source.url, "src");
      const first = sink.nextConnection();
      const { adapterId } = await createEgress(
        srv.api,
        { sessionId: ingest.sessionId, trackName: "src" },
        sink.url,
      );
      const ws = await first;
      const second = sink.nextConnection();
      ws.terminate(); // no close frame: 1006, a drop
      const lost = await logged("adapter endpoint lost, reconnecting", { adapterId });
      assert.equal(lost.level, WARN);
      assert.match(String(lost.reason), /1006/);
      receiver(await second);
      const back = await logged("adapter reconnected", { adapterId });
      assert.equal(back.level, INFO);
      assert.equal(back.reconnects, 1);
      assert.equal(typeof back.downMs, "number");
      await srv.api.raw("POST", "adapters/websocket/close", {
        tracks: [{ adapterId }, { adapterId: ingest.adapterId }],
      });
    } finally {
      await source.close();
      await sink.close();
    }
  });
});

test("a session that never connects: created, then closed with its reason", async () => {
  const { sessionId } = await srv.api.newSession();
  const created = await logged("session created", { sessionId });
  assert.equal(created.appId, appId);
  const closed = await logged("session closed", { sessionId }, 10_000);
  assert.equal(closed.reason, "session never connected");
  assert.equal(closed.level, INFO);
});

test("a port in use: one line on stderr naming the port and the flag, no stack, exit 1", async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
  const port = (busy.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), "patchbay-port-"));
  try {
    const bin = fileURLToPath(new URL("../../bin/patchbay.js", import.meta.url));
    for (const format of ["pretty", "json"]) {
      const r = spawnSync(
        process.execPath,
        [bin, "--http-port", String(port), "--data-dir", dir, "--log-format", format],
        { encoding: "utf8", timeout: 30_000, env: { ...process.env, PATCHBAY_APPS: "" } },
      );
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 1, out);
      assert.doesNotMatch(out, /^\s+at /m, `${format}: no stack trace:\n${out}`);
      const errLines = r.stderr.trim().split("\n");
      assert.equal(errLines.length, 1, `${format}: one line on stderr:\n${r.stderr}`);
      assert.match(errLines[0], new RegExp(`127\\.0\\.0\\.1:${port} is in use.*--http-port`));
      assert.doesNotMatch(
        r.stdout,
        /EADDRINUSE|in use|failed to start/,
        `${format}: said once:\n${r.stdout}`,
      );
    }
  } finally {
    busy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
