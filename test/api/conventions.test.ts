import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ERRORS } from "../../src/api/errors.ts";
import { assertError, buildTestApi, closePeers, type TestApi } from "../helpers/api-inject.ts";
import { clientPeer } from "../helpers/rtc-client.ts";

// SPEC §1.1: routes, auth, bodies, CORS, error shapes.

let api: TestApi;
const A = () => api.a;
const ID = /^[0-9a-f]{32}$/;
const peers: ReturnType<typeof clientPeer>[] = [];

before(async () => {
  api = await buildTestApi();
});
after(async () => {
  await closePeers(peers);
  await api.close();
});

async function newSession(): Promise<string> {
  const res = await A().request<{ sessionId: string }>("POST", "sessions/new");
  assert.equal(res.status, 201, res.text);
  return res.body.sessionId;
}

describe("routes", () => {
  test("sessions/new answers under /v1 and without it", async () => {
    for (const prefix of ["/v1", ""]) {
      const res = await A().request("POST", `${prefix}/apps/${A().appId}/sessions/new`);
      assert.equal(res.status, 201, `${prefix}: ${res.text}`);
      assert.deepEqual(Object.keys(res.body), ["sessionId"]);
      assert.match(String(res.body.sessionId), ID);
    }
  });

  test("GET sessions/{id} works under /v1 and without it, for the same session", async () => {
    const id = await newSession();
    for (const prefix of ["/v1", ""]) {
      const res = await A().request("GET", `${prefix}/apps/${A().appId}/sessions/${id}`);
      assert.equal(res.status, 200, `${prefix}: ${res.text}`);
      assert.deepEqual(res.body, { tracks: [], dataChannels: [] });
    }
  });

  test("unknown query parameters are ignored", async () => {
    const created = await A().request<{ sessionId: string }>(
      "POST",
      `sessions/new?correlationId=abc-123&streamDebug=true&foo=bar`,
    );
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.sessionId, ID);
    const got = await A().request(
      "GET",
      `/apps/${A().appId}/sessions/${created.body.sessionId}?correlationId=x&streamDebug=1`,
    );
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.body, { tracks: [], dataChannels: [] });
  });

  test("thirdparty=true is accepted on sessions/new (with and without /v1, with an offer)", async () => {
    for (const prefix of ["/v1", ""]) {
      const res = await A().request("POST", `${prefix}/apps/${A().appId}/sessions/new?thirdparty=true`);
      assert.equal(res.status, 201, res.text);
      assert.match(String(res.body.sessionId), ID);
    }
    const pc = clientPeer();
    peers.push(pc);
    pc.addTransceiver("audio", { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await A().request<{ sessionId: string; sessionDescription: { type: string } }>(
      "POST",
      "sessions/new?thirdparty=true&correlationId=c1",
      { body: { sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp } } },
    );
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.sessionDescription.type, "answer");
  });

  test("an unknown route is 404 not_found with the error shape", async () => {
    for (const [method, url] of [
      ["GET", "/nope"],
      ["GET", "/v1/nope"],
      ["POST", `/v1/apps/${A().appId}/sessions/x/tracks/unknown`],
      ["GET", `/v1/apps/${A().appId}`],
      ["DELETE", `/v1/apps/${A().appId}/sessions/new`],
      ["GET", `/v2/apps/${A().appId}/sessions/new`],
    ] as const) {
      const res = await api.inject({ method, url, headers: { authorization: `Bearer ${A().secret}` } });
      assertError(res, 404, "not_found");
      assert.match((res.body as { errorDescription: string }).errorDescription, /no route/);
    }
  });

  test("/healthz answers 200 without auth", async () => {
    for (const method of ["GET", "HEAD"]) {
      const res = await api.inject({ method, url: "/healthz" });
      assert.equal(res.status, 200, `${method}: ${res.text}`);
    }
    const res = await api.inject({ method: "GET", url: "/healthz" });
    assert.deepEqual(res.body, { status: "ok" });
  });

  test("/metrics answers 200 text with patchbay_sessions counting live sessions", async () => {
    await newSession();
    const res = await api.inject({ method: "GET", url: "/metrics" });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers["content-type"]), /^text\/plain/);
    assert.match(res.text, /^# TYPE patchbay_sessions gauge$/m);
    const live = /^patchbay_sessions\{state="new"\} (\d+)$/m.exec(res.text);
    assert.ok(live, `no patchbay_sessions{state="new"} sample in\n${res.text}`);
    assert.ok(Number(live[1]) >= 1, live[0]);
  });
});

describe("auth", () => {
  test("a missing Authorization header is 401 unauthorized", async () => {
    const res = await A().request("POST", "sessions/new", { auth: null });
    assertError(res, 401, "unauthorized");
  });

  test("a wrong secret is 401 unauthorized, on every route", async () => {
    const id = await newSession();
    const bad = { auth: "Bearer not-the-secret-0123456789" };
    const routes: [string, string, unknown?][] = [
      ["POST", "sessions/new"],
      ["GET", `sessions/${id}`],
      ["POST", `sessions/${id}/tracks/new`, { tracks: [] }],
      ["PUT", `sessions/${id}/renegotiate`, {}],
      ["PUT", `sessions/${id}/tracks/close`, { tracks: [{ mid: "0" }] }],
      ["GET", `/apps/${A().appId}/sessions/${id}`],
    ];
    for (const [method, path, body] of routes) {
      const res = await A().request(method, path, { ...bad, body });
      assertError(res, 401, "unauthorized");
    }
  });

  test("a secret that only shares a prefix, or has a suffix, is 401", async () => {
    for (const auth of [`Bearer ${A().secret.slice(0, -1)}`, `Bearer ${A().secret}x`, "Bearer "]) {
      assertError(await A().request("POST", "sessions/new", { auth }), 401, "unauthorized");
    }
  });

  test("a non-Bearer scheme is 401 unauthorized", async () => {
    for (const auth of [
      `Basic ${Buffer.from(`${A().appId}:${A().secret}`).toString("base64")}`,
      `Basic ${A().secret}`,
      `Token ${A().secret}`,
      A().secret,
    ]) {
      assertError(await A().request("POST", "sessions/new", { auth }), 401, "unauthorized");
    }
  });

  test("the right secret works whatever the case of the scheme", async () => {
    const res = await A().request("POST", "sessions/new", { auth: `bearer ${A().secret}` });
    assert.equal(res.status, 201, res.text);
  });

  test("an unknown app is 404 not_found (with or without a secret, with or without /v1)", async () => {
    const unknown = "c".repeat(32);
    for (const url of [`/v1/apps/${unknown}/sessions/new`, `/apps/${unknown}/sessions/new`]) {
      assertError(
        await api.inject({ method: "POST", url, headers: { authorization: `Bearer ${A().secret}` } }),
        404,
        "not_found",
      );
      assertError(await api.inject({ method: "POST", url }), 404, "not_found");
    }
    assertError(
      await api.inject({ method: "GET", url: `/v1/apps/not-an-app/sessions/${"0".repeat(32)}` }),
      404,
      "not_found",
    );
  });

  test("app B's secret on app A is 401 unauthorized", async () => {
    const id = await newSession();
    const auth = `Bearer ${api.b.secret}`;
    assertError(await A().request("POST", "sessions/new", { auth }), 401, "unauthorized");
    assertError(await A().request("GET", `sessions/${id}`, { auth }), 401, "unauthorized");
  });

  test("app B cannot see app A's session: 404 session_error on every session route", async () => {
    const id = await newSession();
    const path = (p: string) => `/v1/apps/${api.b.appId}/sessions/${id}${p}`;
    assertError(await api.b.request("GET", path("")), 404, "session_error");
    assertError(
      await api.b.request("POST", path("/tracks/new"), {
        body: { tracks: [{ location: "local", trackName: "x", kind: "audio" }] },
      }),
      404,
      "session_error",
    );
    assertError(
      await api.b.request("PUT", path("/tracks/close"), { body: { tracks: [{ mid: "0" }], force: true } }),
      404,
      "session_error",
    );
    // …and A still sees it.
    assert.equal((await A().request("GET", `sessions/${id}`)).status, 200);
  });
});

describe("request bodies", () => {
  const headersA = () => ({ authorization: `Bearer ${A().secret}` });

  test("malformed JSON is 400 decoding_error, whatever the Content-Type", async () => {
    for (const contentType of ["application/json", "text/plain", undefined]) {
      const headers: Record<string, string> = headersA();
      if (contentType) headers["content-type"] = contentType;
      for (const body of ["{bad", '{"sessionDescription":', "{'a':1}", "nul"]) {
        const res = await A().request("POST", "sessions/new", { body, headers });
        assertError(res, 400, "decoding_error");
      }
    }
  });

  test("malformed JSON on the other routes is 400 decoding_error", async () => {
    const id = await newSession();
    const headers = { ...headersA(), "content-type": "application/json" };
    for (const [method, path] of [
      ["POST", `sessions/${id}/tracks/new`],
      ["PUT", `sessions/${id}/renegotiate`],
      ["PUT", `sessions/${id}/tracks/close`],
    ]) {
      assertError(await A().request(method, path, { body: "{]", headers }), 400, "decoding_error");
    }
  });

  test("JSON that is not an object is 400 decoding_error", async () => {
    for (const body of ["[]", "42", '"offer"', "null", "true"]) {
      const res = await A().request("POST", "sessions/new", {
        body,
        headers: { ...headersA(), "content-type": "application/json" },
      });
      assertError(res, 400, "decoding_error");
    }
  });

  test("wrong field types are 400 decoding_error naming the field", async () => {
    const id = await newSession();
    const cases: [string, string, unknown, RegExp][] = [
      ["POST", "sessions/new", { sessionDescription: "offer" }, /sessionDescription/],
      ["POST", "sessions/new", { sessionDescription: { type: "offer", sdp: 5 } }, /sessionDescription\.sdp/],
      ["POST", "sessions/new", { sessionDescription: { type: "pranswer", sdp: "v=0" } }, /type/],
      ["POST", `sessions/${id}/tracks/new`, { tracks: "x" }, /tracks/],
      ["POST", `sessions/${id}/tracks/new`, { autoDiscover: "yes" }, /autoDiscover/],
      ["POST", `sessions/${id}/tracks/new`, { tracks: [{ location: "somewhere" }] }, /tracks\.0\.location/],
      ["POST", `sessions/${id}/tracks/new`, { tracks: [{ location: "local", kind: "text" }] }, /kind/],
      [
        "POST",
        `sessions/${id}/tracks/new`,
        { tracks: [{ location: "remote", sessionId: 7, trackName: "a" }] },
        /sessionId/,
      ],
      ["PUT", `sessions/${id}/renegotiate`, {}, /sessionDescription/],
      ["PUT", `sessions/${id}/renegotiate`, { sessionDescription: { type: "answer" } }, /sdp/],
      ["PUT", `sessions/${id}/tracks/close`, { tracks: [{ mid: 0 }] }, /tracks\.0\.mid/],
      ["PUT", `sessions/${id}/tracks/close`, { tracks: [{ mid: "0" }], force: "yes" }, /force/],
      ["PUT", `sessions/${id}/tracks/close`, {}, /tracks/],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await A().request(method, path, { body });
      assertError(res, 400, "decoding_error");
      assert.match(
        (res.body as { errorDescription: string }).errorDescription,
        field,
        `${JSON.stringify(body)}`,
      );
    }
  });

  test("an empty body on sessions/new is 201, whatever the Content-Type", async () => {
    for (const contentType of ["application/json", "text/plain", undefined]) {
      for (const body of ["", "  \n", undefined]) {
        const headers: Record<string, string> = headersA();
        if (contentType) headers["content-type"] = contentType;
        const res = await A().request<{ sessionId: string }>("POST", "sessions/new", { body, headers });
        assert.equal(res.status, 201, `${contentType} ${JSON.stringify(body)}: ${res.text}`);
        assert.match(res.body.sessionId, ID);
      }
    }
  });

  test("`{}` and unknown fields are accepted on sessions/new", async () => {
    for (const body of [{}, { correlationId: "x", extra: { nested: true } }]) {
      const res = await A().request("POST", "sessions/new", { body });
      assert.equal(res.status, 201, res.text);
    }
  });

  test("a body without Content-Type, or as text/plain, is still parsed as JSON", async () => {
    // Proof of parsing: a field of the wrong type is reported, and an offer is answered.
    for (const contentType of [
      undefined,
      "text/plain",
      "text/plain;charset=UTF-8",
      "application/x-whatever",
    ]) {
      const headers: Record<string, string> = headersA();
      if (contentType) headers["content-type"] = contentType;
      const bad = await A().request("POST", "sessions/new", {
        body: JSON.stringify({ sessionDescription: "nope" }),
        headers,
      });
      assertError(bad, 400, "decoding_error");

      const pc = clientPeer();
      peers.push(pc);
      pc.addTransceiver("audio", { direction: "sendonly" });
      await pc.setLocalDescription(await pc.createOffer());
      const res = await A().request<{ sessionDescription: { type: string; sdp: string } }>(
        "POST",
        "sessions/new",
        { body: JSON.stringify({ sessionDescription: pc.localDescription }), headers },
      );
      assert.equal(res.status, 201, `${contentType}: ${res.text}`);
      assert.equal(res.body.sessionDescription.type, "answer");
      await pc.close();
    }
  });
});

describe("CORS", () => {
  const origin = "http://console.example.test";

  test("a preflight echoes the Origin and allows Authorization, Content-Type and GET, POST, PUT, OPTIONS", async () => {
    for (const [url, method] of [
      [`/v1/apps/${A().appId}/sessions/new`, "POST"],
      [`/apps/${A().appId}/sessions/${"0".repeat(32)}/renegotiate`, "PUT"],
      [`/v1/apps/${A().appId}/sessions/${"0".repeat(32)}`, "GET"],
    ]) {
      const res = await api.inject({
        method: "OPTIONS",
        url,
        headers: {
          origin,
          "access-control-request-method": method,
          "access-control-request-headers": "authorization,content-type",
        },
      });
      assert.ok(res.status === 204 || res.status === 200, `${url}: ${res.status} ${res.text}`);
      assert.equal(res.headers["access-control-allow-origin"], origin);
      const list = (h: unknown) =>
        String(h ?? "")
          .split(",")
          .map((s) => s.trim().toLowerCase())
          .filter(Boolean);
      const headers = list(res.headers["access-control-allow-headers"]);
      assert.ok(headers.includes("authorization"), `allow-headers: ${headers}`);
      assert.ok(headers.includes("content-type"), `allow-headers: ${headers}`);
      const methods = list(res.headers["access-control-allow-methods"]);
      for (const m of ["get", "post", "put", "options"])
        assert.ok(methods.includes(m), `methods: ${methods}`);
    }
  });

  test("the Origin is echoed, not a wildcard, and varies with it", async () => {
    for (const o of ["http://127.0.0.1:5173", "https://app.example.test"]) {
      const res = await api.inject({
        method: "OPTIONS",
        url: `/v1/apps/${A().appId}/sessions/new`,
        headers: { origin: o, "access-control-request-method": "POST" },
      });
      assert.equal(res.headers["access-control-allow-origin"], o);
      assert.match(String(res.headers.vary ?? ""), /origin/i);
    }
  });

  test("simple requests echo the Origin too, on success and on errors", async () => {
    const ok = await A().request("POST", "sessions/new", {
      headers: { origin, authorization: `Bearer ${A().secret}` },
    });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.headers["access-control-allow-origin"], origin);

    const unauthorized = await A().request("POST", "sessions/new", { headers: { origin } });
    assertError(unauthorized, 401, "unauthorized");
    assert.equal(unauthorized.headers["access-control-allow-origin"], origin);

    const missing = await api.inject({ method: "GET", url: "/nope", headers: { origin } });
    assertError(missing, 404, "not_found");
    assert.equal(missing.headers["access-control-allow-origin"], origin);
  });
});

describe("error registry", () => {
  const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

  function sources(dir: string): { path: string; text: string }[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return e.name === "gen" ? [] : sources(path);
      return /\.(ts|js|mjs)$/.test(e.name) ? [{ path, text: readFileSync(path, "utf8") }] : [];
    });
  }

  test("every errorCode used in src/ exists in ERRORS", () => {
    const patterns = [
      /new ApiError\(\s*"([^"]+)"/g,
      /\bitemError\(\s*"([^"]+)"/g,
      // `fail(t, "code", …)`-style helpers in the SFU that build per-item errors.
      /\bfail\(\s*[\w.]+\s*,\s*"([^"]+)"/g,
    ];
    const used = new Map<string, string>();
    for (const { path, text } of sources(SRC)) {
      const where = path.slice(SRC.length);
      for (const re of patterns) for (const m of text.matchAll(re)) used.set(m[1], where);
      // `errorCode: "x"` values and `errorCode?: "x" | "y"` types.
      for (const m of text.matchAll(/errorCode\??\s*:\s*((?:"[^"]+"\s*\|?\s*)+)/g))
        for (const code of m[1].matchAll(/"([^"]+)"/g)) used.set(code[1], where);
    }
    // The scan must see the codes we know are used, or it proves nothing.
    for (const known of ["unauthorized", "not_found", "decoding_error", "session_error"])
      assert.ok(used.has(known), `scan missed ${known}`);
    for (const known of ["not_found_track_error", "close_track_error", "invalid_request"])
      assert.ok(used.has(known), `scan missed ${known}`);
    const missing = [...used].filter(([code]) => !Object.hasOwn(ERRORS, code));
    assert.deepEqual(missing, [], `error codes used in src/ but not in ERRORS: ${JSON.stringify(missing)}`);
  });

  test("every ERRORS entry has an HTTP status and a description", () => {
    for (const [code, entry] of Object.entries(ERRORS)) {
      assert.match(code, /^[a-z_]+$/);
      assert.ok(Number.isInteger(entry.status) && entry.status >= 200 && entry.status < 600, code);
      assert.ok(entry.description.length > 0, code);
    }
  });
});
