import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tryHandshake } from "../helpers/ws-endpoints.ts";

describe("examples mounted on the server (default config)", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("GET /examples lists the endpoints with ws:// URLs the server can dial", async () => {
    const res = await fetch(`${srv.url}/examples`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      examples: { name: string; endpoints: { path: string; url: string; adapter: string }[] }[];
      recordings: string;
    };
    const ws = srv.url.replace("http", "ws");
    assert.deepEqual(
      body.examples.flatMap((e) => e.endpoints.map((ep) => [e.name, ep.adapter, ep.url])),
      [
        ["tts", "ingest", `${ws}/examples/tts`],
        ["recorder", "egress", `${ws}/examples/recorder`],
        ["echo", "egress", `${ws}/examples/echo/in`],
        ["echo", "ingest", `${ws}/examples/echo/out`],
      ],
    );
    assert.equal(body.recordings, "/examples/recorder/files");
    for (const e of body.examples)
      for (const ep of e.endpoints) assert.equal(await tryHandshake(ep.url), "open");
  });

  test("a plain GET on a WebSocket endpoint answers 426; unknown example paths 404", async () => {
    const res = await fetch(`${srv.url}/examples/tts`);
    assert.equal(res.status, 426);
    assert.equal(((await res.json()) as { errorCode: string }).errorCode, "invalid_request");
    const ws = srv.url.replace("http", "ws");
    assert.equal(await tryHandshake(`${ws}/examples/nope`), "HTTP 404");
    assert.equal(await tryHandshake(`${ws}/examples/`), "HTTP 404");
  });

  test("upgrades outside /examples are refused, not left hanging; the API still works", async () => {
    const ws = srv.url.replace("http", "ws");
    assert.equal(await tryHandshake(`${ws}/v1/apps/x/sessions/new`), "HTTP 404");
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });

  test("a socket dropped in the middle of a handshake does not disturb the server", async () => {
    const { connect } = await import("node:net");
    const port = Number(new URL(srv.url).port);
    const sock = connect(port, "127.0.0.1");
    await once(sock, "connect");
    sock.write(
      `GET /examples/recorder HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    sock.destroy();
    sock.on("error", () => {});
    const bad = connect(port, "127.0.0.1");
    await once(bad, "connect");
    bad.write(
      `GET /examples/tts HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    );
    const [reply] = await once(bad, "data");
    assert.match(String(reply), /^HTTP\/1\.1 400/, "a handshake without a key is refused by ws");
    bad.destroy();
    assert.equal((await fetch(`${srv.url}/examples`)).status, 200);
  });
});

describe("--no-examples", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(["--no-examples"]);
  });
  after(async () => {
    await srv.close();
  });

  test("the example paths 404 and their upgrades are refused", async () => {
    for (const path of ["/examples", "/examples/recorder/files", "/examples/tts", "/examples/echo/rooms"]) {
      assert.equal((await fetch(`${srv.url}${path}`)).status, 404, path);
    }
    const ws = srv.url.replace("http", "ws");
    for (const path of ["/examples/tts", "/examples/recorder", "/examples/echo/in?room=r"]) {
      assert.notEqual(await tryHandshake(`${ws}${path}`), "open", path);
    }
  });

  test("an adapter pointed at a built-in example fails its handshake", async () => {
    const ws = srv.url.replace("http", "ws");
    const res = await srv.api.raw<{ tracks: { errorCode?: string }[] }>("POST", "adapters/websocket/new", {
      tracks: [{ location: "local", trackName: "tts", endpoint: `${ws}/examples/tts`, inputCodec: "pcm" }],
    });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.tracks[0].errorCode, "websocket_handshake_failed");
  });
});
