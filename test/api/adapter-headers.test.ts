import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startEndpoint } from "../helpers/ws-endpoints.ts";

// Per-adapter dial headers (issue 14): an endpoint that authenticates with a header gets it on the handshake;
// the value appears nowhere else (adapter status and list, the console's adapter API, logs); bad headers are
// refused before anything is dialed.

const SECRET = "Bearer sekrit-header-value-5e1d";
const raw: string[] = [];
const logger = pino({ level: "debug" }, { write: (chunk: string) => void raw.push(chunk) });

type Item = { adapterId?: string; errorCode?: string; errorDescription?: string };

describe("adapters/websocket/new: headers for the endpoint dial", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer([], { logger });
  });
  after(() => srv.close());

  test("sent on the handshake, kept out of status, lists and logs", async () => {
    const endpoint = await startEndpoint(() => {}, "/tts");
    try {
      const res = await srv.api.raw<{ tracks: Item[] }>("POST", "adapters/websocket/new", {
        tracks: [
          {
            location: "local",
            trackName: "tts",
            endpoint: endpoint.url,
            inputCodec: "pcm",
            headers: { Authorization: SECRET, "X-Agent-Id": "agent-7" },
          },
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const req = endpoint.requests[0];
      assert.equal(req.headers.authorization, SECRET);
      assert.equal(req.headers["x-agent-id"], "agent-7");
      const id = res.body.tracks[0].adapterId!;
      const one = await srv.api.raw("GET", `adapters/websocket/${id}`);
      const all = await srv.api.raw("GET", "adapters/websocket");
      for (const body of [JSON.stringify(res.body), JSON.stringify(one.body), JSON.stringify(all.body)])
        assert.ok(!body.includes("sekrit"), `no header value in ${body.slice(0, 200)}`);
      await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId: id }] });
      assert.ok(raw.length > 0, "the server logged");
      assert.ok(!raw.join("").includes("sekrit"), "no header value in any log line");
    } finally {
      await endpoint.close();
    }
  });

  for (const [what, headers, pattern] of [
    ["not an object", "Authorization: x", /headers must be an object/],
    ["a name that is not a token", { "Bad Name": "x" }, /"Bad Name" is not a header name/],
    [
      "a value with CR LF (header injection)",
      { "X-A": "a\r\nX-Injected: 1" },
      /X-A has a control or non-ASCII character/,
    ],
    [
      "a handshake header",
      { "Sec-WebSocket-Key": "x" },
      /Sec-WebSocket-Key is set by the WebSocket handshake itself/,
    ],
    ["Host", { host: "evil.example" }, /host is set by the WebSocket handshake itself/],
    ["a non-string value", { "X-A": 1 }, /X-A must be a string/],
    [
      "17 headers",
      Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`X-${i}`, "v"])),
      /17 headers, at most 16/,
    ],
    ["a 4097-byte value", { "X-A": "v".repeat(4097) }, /longer than 4096 bytes/],
  ] as const) {
    test(`${what}: 406 invalid_params, nothing dialed`, async () => {
      const endpoint = await startEndpoint(() => {}, "/tts");
      try {
        const res = await srv.api.raw<{ errorCode: string; errorDescription: string }>(
          "POST",
          "adapters/websocket/new",
          {
            tracks: [
              { location: "local", trackName: "t", endpoint: endpoint.url, inputCodec: "pcm", headers },
            ],
          },
        );
        assert.equal(res.status, 406, JSON.stringify(res.body));
        assert.equal(res.body.errorCode, "invalid_params");
        assert.match(res.body.errorDescription, pattern);
        assert.ok(!res.body.errorDescription.includes("a\r\n"), "the value is never echoed");
        assert.equal(endpoint.connections.length, 0);
      } finally {
        await endpoint.close();
      }
    });
  }
});
