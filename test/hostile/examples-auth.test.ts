/**
 * Issue 9 item 5 (access): the built-in examples (/examples/…) on an exposed server.
 *
 * - On a server bound beyond loopback every /examples request needs the examples token (an HMAC of an app's
 *   secret, from `GET /examples/token` with the app's bearer secret), as `?token=` or `Authorization: Bearer`;
 *   the adapter carries it in its endpoint URL.
 * - On a loopback server no token is needed, but a browser page of another site cannot use them: a foreign
 *   `Origin` or a non-loopback `Host` (DNS rebinding) is refused.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import { tryHandshake } from "../helpers/ws-endpoints.ts";

/** A raw WebSocket handshake with exactly these headers; resolves with the HTTP status line's code. */
function rawUpgrade(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    sock.on("error", reject);
    sock.once("connect", () => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      sock.write(`${lines.join("\r\n")}\r\n\r\n`);
    });
    let buf = "";
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) {
        resolve(Number(m[1]));
        sock.destroy();
      }
    });
  });
}

describe("examples on a server bound beyond loopback (--http-host 0.0.0.0) need the examples token", () => {
  let srv: TestServer;
  let port: number;
  let base: string;
  before(async () => {
    srv = await startTestServer(["--http-host", "0.0.0.0"]);
    port = Number(new URL(srv.url).port);
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await srv?.close();
  });

  async function token(appId: string, secret: string): Promise<Response> {
    return fetch(`${base}/examples/token?appId=${appId}`, { headers: { authorization: `Bearer ${secret}` } });
  }

  test("without a token: every WebSocket endpoint refuses the handshake (401)", async () => {
    for (const path of ["/examples/tts", "/examples/recorder", "/examples/echo/in", "/examples/echo/out"]) {
      assert.equal(await tryHandshake(`ws://127.0.0.1:${port}${path}`), "HTTP 401", path);
    }
    assert.equal(await tryHandshake(`ws://127.0.0.1:${port}/examples/tts?token=guessed`), "HTTP 401");
  });

  test("without a token: recordings and echo rooms are not readable (401, error shape)", async () => {
    for (const path of [
      "/examples/recorder/files",
      "/examples/recorder/files/rec-x.wav",
      "/examples/echo/rooms",
    ]) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      const body = (await res.json()) as { errorCode: string; errorDescription: string };
      assert.equal(body.errorCode, "unauthorized", path);
      assert.ok(body.errorDescription.length > 0);
    }
  });

  test("GET /examples/token needs the app's secret", async () => {
    assert.equal((await token(TEST_APPS[0].appId, "wrong-secret-0123456789")).status, 401);
    assert.equal((await fetch(`${base}/examples/token?appId=${TEST_APPS[0].appId}`)).status, 401);
    const res = await token(TEST_APPS[0].appId, TEST_APPS[0].secret);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { token: string; required: boolean };
    assert.equal(body.required, true);
    assert.match(body.token, /^[A-Za-z0-9_-]{20,}$/);
    assert.ok(!body.token.includes(TEST_APPS[0].secret), "the token is not the secret");
    const other = (await (await token(TEST_APPS[1].appId, TEST_APPS[1].secret)).json()) as { token: string };
    assert.notEqual(other.token, body.token, "one token per app");
  });

  test("with the token (query or bearer) the examples work, also for an adapter that dials them", async () => {
    const { token: t } = (await (await token(TEST_APPS[0].appId, TEST_APPS[0].secret)).json()) as {
      token: string;
    };
    assert.equal(await tryHandshake(`ws://127.0.0.1:${port}/examples/echo/out?room=r1&token=${t}`), "open");
    assert.equal(
      await tryHandshake(`ws://127.0.0.1:${port}/examples/echo/out?room=r2`, {
        authorization: `Bearer ${t}`,
      }),
      "open",
    );
    assert.equal((await fetch(`${base}/examples/recorder/files?token=${t}`)).status, 200);
    assert.equal(
      (await fetch(`${base}/examples/echo/rooms`, { headers: { authorization: `Bearer ${t}` } })).status,
      200,
    );
    const res = await srv.api.raw<{ tracks: { adapterId?: string; errorCode?: string }[] }>(
      "POST",
      "adapters/websocket/new",
      {
        tracks: [
          {
            location: "local",
            trackName: "tts",
            endpoint: `ws://127.0.0.1:${port}/examples/tts?text=Hi&token=${t}`,
            inputCodec: "pcm",
          },
        ],
      },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.tracks[0].adapterId, JSON.stringify(res.body));
  });
});

describe("examples on a loopback server refuse other sites' pages", () => {
  let srv: TestServer;
  let port: number;
  before(async () => {
    srv = await startTestServer();
    port = Number(new URL(srv.url).port);
  });
  after(async () => {
    await srv?.close();
  });

  test("a handshake from a page of another origin (Origin header) is refused (403)", async () => {
    const host = `127.0.0.1:${port}`;
    assert.equal(
      await rawUpgrade(port, "/examples/recorder", { Host: host, Origin: "http://attacker.example" }),
      403,
    );
    assert.equal(await rawUpgrade(port, "/examples/tts", { Host: host, Origin: "null" }), 403);
    // The adapter (no Origin) and the server's own page (same origin) are fine.
    assert.equal(await rawUpgrade(port, "/examples/echo/out?room=a", { Host: host }), 101);
    assert.equal(
      await rawUpgrade(port, "/examples/echo/out?room=b", { Host: host, Origin: `http://${host}` }),
      101,
    );
  });

  test("a handshake naming another host (DNS rebinding) is refused (403)", async () => {
    assert.equal(await rawUpgrade(port, "/examples/recorder", { Host: `attacker.example:${port}` }), 403);
    assert.equal(await rawUpgrade(port, "/examples/echo/out?room=c", { Host: `localhost:${port}` }), 101);
  });

  test("another site cannot read the recordings list (403)", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/examples/recorder/files`, {
      headers: { origin: "http://attacker.example" },
    });
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { errorCode: string }).errorCode, "unauthorized");
    assert.equal((await fetch(`http://127.0.0.1:${port}/examples/recorder/files`)).status, 200);
    const token = await fetch(`http://127.0.0.1:${port}/examples/token?appId=${TEST_APPS[0].appId}`, {
      headers: { authorization: `Bearer ${TEST_APPS[0].secret}` },
    });
    assert.equal(((await token.json()) as { required: boolean }).required, false, "no token needed here");
  });
});
