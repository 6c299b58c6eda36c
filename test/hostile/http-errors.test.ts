import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { ERRORS } from "../../src/api/errors.ts";
import { buildApi } from "../../src/api/http.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { createServer } from "../../src/server.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";
import { RawConnection, type RawResponse, rawExchange } from "../helpers/raw-http.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";

// Issue 9 item 12a: every error the HTTP layer produces — including the ones Fastify, @fastify/cors,
// @fastify/static and Node's HTTP parser answer by themselves — has Cloudflare's shape
// `{errorCode, errorDescription}` with a code from the registry (src/api/errors.ts).

const A = TEST_APPS[0];
const auth = `Authorization: Bearer ${A.secret}\r\n`;
const base = `/v1/apps/${A.appId}`;

let srv: TestServer;
before(async () => {
  srv = await startTestServer(["--ws-connect-timeout-ms", "200"]);
});
after(async () => {
  await srv.close();
});

function get(path: string, headers = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`;
}

function post(path: string, body: string, headers = auth): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`
  );
}

/** One request on its own connection; exactly one response expected. */
async function one(request: string, headOnly = false): Promise<RawResponse> {
  const { responses, received } = await rawExchange(srv.url, request, { headOnly });
  assert.equal(responses.length, 1, `expected one response, got: ${JSON.stringify(received.slice(0, 300))}`);
  return responses[0];
}

/** Cloudflare's error shape with a registered code; returns the description. */
function assertShape(res: RawResponse, status: number, errorCode: string, description?: RegExp): string {
  assert.equal(res.status, status, res.body);
  assert.match(res.headers["content-type"] ?? "", /^application\/json/, `content-type of ${res.body}`);
  const body = JSON.parse(res.body);
  assert.deepEqual(Object.keys(body).sort(), ["errorCode", "errorDescription"], res.body);
  assert.equal(body.errorCode, errorCode, res.body);
  assert.ok(body.errorCode in ERRORS);
  assert.equal(typeof body.errorDescription, "string");
  assert.ok(body.errorDescription.length > 0);
  if (description) assert.match(body.errorDescription, description);
  return body.errorDescription;
}

describe("URLs", () => {
  test("bad percent-encoding in the path: 400 invalid_request naming the problem", async () => {
    for (const path of [
      "/v1/apps/%E0%A4%A/sessions/x",
      `${base}/sessions/%E0%A4%A`,
      `/apps/${A.appId}/sessions/%ZZ/tracks/new`,
      `${base}/adapters/websocket/%`,
    ]) {
      assertShape(await one(get(path, auth)), 400, "invalid_request", /percent-encod/i);
    }
  });

  test("a path parameter over 100 characters: 414 uri_too_long", async () => {
    const long = "a".repeat(101);
    for (const path of [
      `${base}/sessions/${long}`,
      `/v1/apps/${long}/sessions/new`,
      `/apps/${A.appId}/sessions/${long}/tracks/close`,
      `${base}/adapters/websocket/${long}`,
    ]) {
      assertShape(await one(get(path, auth)), 414, "uri_too_long", /100 characters/);
    }
    // 100 characters is still a (wrong) id, not a URL problem.
    assertShape(await one(get(`${base}/sessions/${"a".repeat(100)}`, auth)), 404, "session_error");
  });

  test("duplicate slashes, NUL bytes, traversal and missing files: 404 not_found, not the static server's 403", async () => {
    for (const path of [
      `//v1/apps/${A.appId}/adapters/websocket`,
      `/v1//apps/${A.appId}/adapters/websocket`,
      `/v1/apps/${A.appId}//adapters/websocket`,
      "/%00",
      "/..%2f..%2fetc%2fpasswd",
      "/console/../../etc/passwd",
    ]) {
      const res = await one(get(path, auth));
      assertShape(res, 404, "not_found", /no route for GET/);
    }
    // Static files and console paths that do not exist.
    for (const path of ["/nope.js", "/console", "/console/x", "/.env", "/examples/nope"]) {
      assertShape(await one(get(path)), 404, "not_found");
    }
    // A NUL byte in an id is just an unknown id.
    assertShape(await one(get("/v1/apps/%00/sessions/new", auth)), 404, "not_found", /no app/);
  });
});

describe("bodies, methods and headers", () => {
  test("malformed JSON is 400 decoding_error, any media type is read as JSON, over 1 MiB is 413", async () => {
    assertShape(await one(post(`${base}/sessions/new`, "{x}")), 400, "decoding_error", /not valid JSON/);
    for (const type of ["application/xml", "text/plain", "multipart/form-data; boundary=x", "x/y; a=b"]) {
      const res = await one(post(`${base}/sessions/new`, "{}", `${auth}Content-Type: ${type}\r\n`));
      assert.equal(res.status, 201, `${type}: ${res.body}`);
    }
    // A Content-Type that is not a media type at all is refused by Fastify before any parser runs.
    for (const type of ["bogus", "/", "application/json; charset"]) {
      const res = await one(post(`${base}/sessions/new`, "{}", `${auth}Content-Type: ${type}\r\n`));
      if (res.status !== 201) assertShape(res, 415, "invalid_request", /Content-Type/);
    }
    assertShape(
      await one(post(`${base}/sessions/new`, '{"sessionDescription": 5}')),
      400,
      "decoding_error",
      /sessionDescription/,
    );
    const tooLarge = await one(
      `POST ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 2000000\r\nConnection: close\r\n\r\n`,
    );
    assertShape(tooLarge, 413, "invalid_request", /1 MiB/);
  });

  test("wrong and unknown methods, HEAD and OPTIONS", async () => {
    for (const method of ["PATCH", "DELETE", "PUT", "GET"]) {
      const res = await one(
        `${method} ${base}/sessions/x/tracks/new HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      assertShape(res, 404, "not_found", new RegExp(`no route for ${method}`));
    }
    // A method token Node's parser does not know never reaches Fastify.
    for (const method of ["FOO", "GETT", "BREW"]) {
      const res = await one(
        `${method} ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      );
      assertShape(res, 400, "invalid_request", /malformed HTTP request/);
    }
    // HEAD answers like GET without a body.
    const head = await one(
      `HEAD ${base}/adapters/websocket HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`,
      true,
    );
    assert.equal(head.status, 200);
    // A CORS preflight is answered 204 with the CORS headers, with or without the headers a browser sends.
    const preflight = await one(
      `OPTIONS ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n` +
        "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n",
    );
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], "https://app.example");
    for (const request of [
      `OPTIONS ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ]) {
      const res = await one(request);
      assert.ok(res.status === 204 || res.status >= 400, request);
      if (res.status >= 400) assertShape(res, res.status, "invalid_request");
      else assert.equal(res.body, "");
    }
  });

  test("requests Node's HTTP parser rejects get Cloudflare's shape too", async () => {
    const cases: [string, string, number][] = [
      ["header block over 16 KiB", get("/healthz", `X-Big: ${"a".repeat(20_000)}\r\n`), 431],
      [
        "Content-Length and Transfer-Encoding together",
        `POST ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        400,
      ],
      [
        "bad chunk size",
        `POST ${base}/sessions/new HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`,
        400,
      ],
      ["space in a header name", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", 400],
      ["garbage request line", "\x00\x01\x02 nonsense\r\n\r\n", 400],
      ["HTTP/2 preface on HTTP/1.1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400],
    ];
    for (const [what, request, status] of cases) {
      const { responses, received } = await rawExchange(srv.url, request);
      assert.equal(responses.length, 1, `${what}: ${JSON.stringify(received.slice(0, 200))}`);
      assert.equal(responses[0].headers.connection?.toLowerCase(), "close", what);
      assertShape(responses[0], status, "invalid_request", /malformed HTTP request|headers/);
    }
  });
});

describe("shutting down", () => {
  test("a request that arrives while the server closes gets 503 service_unavailable", async () => {
    const config = loadConfig(["--log-level", "warn", "--log-format", "json", "--no-examples"], {
      PATCHBAY_APPS: JSON.stringify(TEST_APPS),
    });
    const logger = createLogger(config, false);
    const { registry } = await AppRegistry.load(config, logger);
    const core = createServer({ config, logger, apps: registry });
    // A route that answers when told to: a request in flight while the server closes.
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const api = buildApi({
      apps: core.apps,
      logger,
      metrics: core.metrics,
      plugins: [
        (app) =>
          app.get("/hold", async () => {
            await released;
            return { held: true };
          }),
      ],
    });
    await api.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
    const conn = await RawConnection.open(url);
    try {
      conn.write(`GET /v1/apps/${A.appId}/hold HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 100));
      const closing = api.close();
      await new Promise((r) => setTimeout(r, 50));
      // Pipelined behind the held request on the same (busy, so not closed) connection.
      conn.write(`GET /v1/apps/${A.appId}/adapters/websocket HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`);
      await new Promise((r) => setTimeout(r, 100));
      release();
      const [held, late] = await conn.waitResponses(2, 5_000);
      assert.equal(held.status, 200);
      assertShape(late, 503, "service_unavailable", /shutting down/);
      await closing;
    } finally {
      conn.destroy();
      await core.close();
    }
  });
});
