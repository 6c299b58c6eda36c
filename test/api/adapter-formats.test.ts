import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startEndpoint } from "../helpers/ws-endpoints.ts";

// The request side of endpoint formats and the Twilio dialect (issue 14): every field combination the
// server cannot honour is refused before anything is dialed, with a description naming the field;
// Cloudflare-shaped items mean what they mean there.

type Body = { errorCode?: string; errorDescription?: string; tracks?: Record<string, unknown>[] };

describe("adapters/websocket/new: inputCodec/outputCodec formats and the twilio dialect", () => {
  let srv: TestServer;
  const url = "ws://127.0.0.1:9/never-dialed";
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  const ingest = (extra: Record<string, unknown>) => ({
    location: "local",
    trackName: "t",
    endpoint: url,
    inputCodec: "pcm",
    ...extra,
  });
  const egress = (extra: Record<string, unknown>) => ({
    location: "remote",
    sessionId: "s",
    trackName: "t",
    endpoint: url,
    outputCodec: "pcm",
    ...extra,
  });
  const twilio = (extra: Record<string, unknown>) => ({
    location: "remote",
    dialect: "twilio",
    sessionId: "s",
    trackName: "t",
    replyTrackName: "r",
    endpoint: url,
    ...extra,
  });

  const refused: [string, Record<string, unknown>, number, string, RegExp][] = [
    [
      "an unknown input codec",
      ingest({ inputCodec: "opus" }),
      406,
      "invalid_params",
      /inputCodec "opus" is not supported \(use "pcm", "pcmu" or "pcma"\)/,
    ],
    [
      "an unknown output codec",
      egress({ outputCodec: "flac" }),
      406,
      "invalid_params",
      /outputCodec "flac" is not supported/,
    ],
    [
      "44.1 kHz",
      ingest({ sampleRate: 44_100 }),
      406,
      "invalid_params",
      /tracks\[0\]\.sampleRate must be one of 8000, 16000, 24000, 48000, got 44100/,
    ],
    [
      "3 channels",
      egress({ channels: 3 }),
      406,
      "invalid_params",
      /tracks\[0\]\.channels must be 1 or 2, got 3/,
    ],
    [
      "µ-law at 16 kHz",
      ingest({ inputCodec: "pcmu", sampleRate: 16_000 }),
      406,
      "invalid_params",
      /"pcmu" is G\.711, 8000 Hz mono only/,
    ],
    [
      "A-law in stereo",
      egress({ outputCodec: "pcma", channels: 2 }),
      406,
      "invalid_params",
      /"pcma" is G\.711, 8000 Hz mono only/,
    ],
    ["a sample rate as a string", ingest({ sampleRate: "16000" }), 400, "decoding_error", /sampleRate/],
    [
      "a sample rate on a jpeg item",
      egress({ outputCodec: "jpeg", sampleRate: 8000 }),
      406,
      "invalid_params",
      /sampleRate and channels apply to audio output codecs/,
    ],
    [
      "an unknown dialect",
      twilio({ dialect: "vonage" }),
      406,
      "invalid_params",
      /dialect: only "twilio" is supported, got "vonage"/,
    ],
    [
      "a local twilio item",
      twilio({ location: "local" }),
      406,
      "invalid_params",
      /a "twilio" item is "remote"/,
    ],
    [
      "twilio without replyTrackName",
      twilio({ replyTrackName: undefined }),
      406,
      "invalid_params",
      /replyTrackName is required/,
    ],
    [
      "twilio with PCM",
      twilio({ outputCodec: "pcm" }),
      406,
      "invalid_params",
      /the twilio dialect is "pcmu"/,
    ],
    ["twilio at 16 kHz", twilio({ sampleRate: 16_000 }), 406, "invalid_params", /8000 Hz mono only/],
    [
      "twilio with control",
      twilio({ control: "json" }),
      406,
      "invalid_params",
      /control does not apply to the twilio dialect/,
    ],
    [
      "twilio with 33 custom parameters",
      twilio({ customParameters: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) }),
      406,
      "invalid_params",
      /at most 32 entries/,
    ],
    [
      "a custom parameter that is not a string",
      twilio({ customParameters: { a: 1 } }),
      400,
      "decoding_error",
      /customParameters/,
    ],
    [
      "replyTrackName on a plain item",
      egress({ replyTrackName: "r" }),
      406,
      "invalid_params",
      /replyTrackName applies to "dialect": "twilio" items only/,
    ],
    [
      "authToken on a plain item",
      egress({ authToken: "t" }),
      406,
      "invalid_params",
      /authToken applies to "dialect": "twilio" items only/,
    ],
    [
      "an empty authToken",
      twilio({ authToken: "" }),
      406,
      "invalid_params",
      /authToken must be 1 to 256 characters/,
    ],
  ];
  for (const [what, item, status, code, description] of refused) {
    test(`${what} → ${status} ${code}`, async () => {
      const res = await srv.api.raw<Body>("POST", "adapters/websocket/new", { tracks: [item] });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.errorCode, code);
      assert.match(res.body.errorDescription ?? "", description);
    });
  }

  test("a twilio item whose source track does not exist: a per-item not_found_track_error, nothing dialed", async () => {
    const ep = await startEndpoint();
    try {
      const res = await srv.api.raw<Body>("POST", "adapters/websocket/new", {
        tracks: [twilio({ sessionId: "0".repeat(32), endpoint: ep.url })],
      });
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.tracks?.[0].errorCode, "not_found_track_error");
      assert.equal(ep.connections.length, 0);
    } finally {
      await ep.close();
    }
  });

  test("a Cloudflare-style pcm item keeps 48 kHz stereo (no audioFormat in the status); 16 kHz mono is named", async () => {
    const pub = await publishAudio(srv.api, "caller");
    const ep = await startEndpoint();
    try {
      const res = await srv.api.raw<Body>("POST", "adapters/websocket/new", {
        tracks: [
          egress({ sessionId: pub.sessionId, trackName: "caller", endpoint: ep.url }),
          egress({
            sessionId: pub.sessionId,
            trackName: "caller",
            endpoint: ep.url,
            sampleRate: 16_000,
            channels: 1,
          }),
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const [plain, narrow] = await Promise.all(
        (res.body.tracks ?? []).map((t) =>
          srv.api.raw<{ audioFormat?: string }>("GET", `adapters/websocket/${t.adapterId}`),
        ),
      );
      assert.equal(plain.body.audioFormat, undefined);
      assert.equal(narrow.body.audioFormat, "pcm 16000 Hz mono");
    } finally {
      await ep.close();
      await pub.close();
    }
  });
});
