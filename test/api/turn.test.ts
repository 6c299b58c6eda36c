import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";

// Cloudflare's TURN credential routes: shapes, authentication, ttl limits and the credential formula coturn
// checks (test/browser/turn.test.ts proves a real coturn accepts them and Chromium relays media through it).

const SECRET = "turn-shared-secret-for-tests-0123";
const TURN_URLS = "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp";
const APP = TEST_APPS[0];

async function post(
  server: TestServer,
  path: string,
  body?: unknown,
  secret = APP.secret,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const generate = (keyId = APP.appId, prefix = "/v1") =>
  `${prefix}/turn/keys/${keyId}/credentials/generate-ice-servers`;

describe("TURN credentials: configured", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer([
      "--turn-secret",
      SECRET,
      "--turn-urls",
      TURN_URLS,
      "--stun-urls",
      "stun:127.0.0.1:3478",
    ]);
  });
  after(() => server.close());

  test("generate-ice-servers: 201, Cloudflare's shape, a credential coturn's use-auth-secret accepts", async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await post(server, generate(), { ttl: 3600 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const servers = res.body.iceServers as { urls: string[]; username?: string; credential?: string }[];
    assert.equal(servers.length, 2);
    assert.deepEqual(servers[0], { urls: ["stun:127.0.0.1:3478"] });
    assert.deepEqual(servers[1].urls, TURN_URLS.split(","));
    const [expiry, keyId] = servers[1].username!.split(":");
    assert.equal(keyId, APP.appId);
    const ttl = Number(expiry) - before;
    assert.ok(ttl >= 3599 && ttl <= 3601, `expiry ${ttl} s from now`);
    const expected = createHmac("sha1", SECRET).update(servers[1].username!).digest("base64");
    assert.equal(servers[1].credential, expected);
  });

  test("without a body the ttl is 86400 s; without /v1 the route is the same", async () => {
    const res = await post(server, generate(APP.appId, ""));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const turn = (res.body.iceServers as { username: string }[])[1];
    const ttl = Number(turn.username.split(":")[0]) - Math.floor(Date.now() / 1000);
    assert.ok(ttl >= 86_399 && ttl <= 86_400, `ttl ${ttl}`);
  });

  test("generate: the older one-object shape with every URL", async () => {
    const res = await post(server, `/v1/turn/keys/${APP.appId}/credentials/generate`, { ttl: 60 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ice = res.body.iceServers as { urls: string[]; username: string; credential: string };
    assert.deepEqual(ice.urls, ["stun:127.0.0.1:3478", ...TURN_URLS.split(",")]);
    assert.equal(ice.credential, createHmac("sha1", SECRET).update(ice.username).digest("base64"));
  });

  for (const [ttl, status, code, pattern] of [
    [0, 406, "invalid_params", /ttl must be an integer number of seconds from 1 to 172800, got 0/],
    [172_801, 406, "invalid_params", /from 1 to 172800, got 172801/],
    [1.5, 406, "invalid_params", /got 1.5/],
    ["60", 400, "decoding_error", /ttl/],
  ] as const) {
    test(`ttl ${JSON.stringify(ttl)}: ${status} ${code}`, async () => {
      const res = await post(server, generate(), { ttl });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.errorCode, code);
      assert.match(String(res.body.errorDescription), pattern);
    });
  }

  test("a body that is not JSON: 400 decoding_error", async () => {
    const res = await post(server, generate(), "{ttl:");
    assert.equal(res.status, 400);
    assert.equal(res.body.errorCode, "decoding_error");
  });

  test("the wrong secret: 401; another app's secret: 401; an unknown key id: 404", async () => {
    const wrong = await post(server, generate(), { ttl: 60 }, "nope");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.errorCode, "unauthorized");
    const other = await post(server, generate(), { ttl: 60 }, TEST_APPS[1].secret);
    assert.equal(other.status, 401);
    const unknown = await post(server, generate("f".repeat(32)), { ttl: 60 });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errorCode, "not_found");
    assert.match(String(unknown.body.errorDescription), /no TURN key f+ \(TURN keys are app ids\)/);
  });

  test("revoke: authenticated, then 501 turn_revoke_unsupported saying why", async () => {
    const issued = await post(server, generate(), { ttl: 60 });
    const username = (issued.body.iceServers as { username: string }[])[1].username;
    const path = `/v1/turn/keys/${APP.appId}/credentials/${encodeURIComponent(username)}/revoke`;
    assert.equal((await post(server, path, undefined, "nope")).status, 401);
    const res = await post(server, path);
    assert.equal(res.status, 501);
    assert.equal(res.body.errorCode, "turn_revoke_unsupported");
    assert.match(String(res.body.errorDescription), /cannot be revoked before they expire/);
  });
});

describe("TURN credentials: not configured", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test("503 turn_not_configured naming the flags; authentication still comes first", async () => {
    const res = await post(server, generate(), { ttl: 60 });
    assert.equal(res.status, 503);
    assert.equal(res.body.errorCode, "turn_not_configured");
    assert.match(String(res.body.errorDescription), /--turn-secret .*--turn-urls/);
    assert.equal((await post(server, generate(), { ttl: 60 }, "nope")).status, 401);
  });
});
