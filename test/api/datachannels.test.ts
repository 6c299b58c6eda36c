import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// Data channels are not carried yet: Cloudflare's routes answer a precise 501 after the usual checks, so a
// client learns what is missing instead of reading "no such route".

describe("datachannels/* routes", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  for (const [method, route] of [
    ["POST", "establish"],
    ["POST", "new"],
    ["PUT", "update"],
    ["PUT", "close"],
  ] as const) {
    test(`${method} datachannels/${route}: 501 datachannels_unsupported naming the route`, async () => {
      const { sessionId } = await server.api.newSession();
      const body = { dataChannels: [{ location: "local", dataChannelName: "chat" }] };
      const res = await server.api.raw<{ errorCode: string; errorDescription: string }>(
        method,
        `sessions/${sessionId}/datachannels/${route}`,
        body,
      );
      assert.equal(res.status, 501);
      assert.equal(res.body.errorCode, "datachannels_unsupported");
      assert.match(
        res.body.errorDescription,
        new RegExp(`^datachannels/${route}: Patchbay does not carry data channels yet`),
      );
    });
  }

  test("the session and the token are checked first (404 session_error, 401)", async () => {
    const missing = await server.api.raw<{ errorCode: string }>(
      "POST",
      `sessions/${"0".repeat(32)}/datachannels/new`,
      {},
    );
    assert.equal(missing.status, 404);
    assert.equal(missing.body.errorCode, "session_error");
    const res = await fetch(
      `${server.url}/v1/apps/${"a".repeat(32)}/sessions/${"0".repeat(32)}/datachannels/new`,
      {
        method: "POST",
        headers: { Authorization: "Bearer wrong" },
      },
    );
    assert.equal(res.status, 401);
  });
});
