import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type WebSocket from "ws";
import { encodePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { OpusDecoder } from "../../src/media/opus-decoder.ts";
import { pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { rms, speechLike, toBytes } from "../helpers/signals.ts";
import { closeOf, startEndpoint } from "../helpers/ws-endpoints.ts";

// Barge-in on an ingest adapter created with control: "json" (proto/control.md): the endpoint queues a long
// TTS answer, marks a point after 2 s of it and another at its end, and clears 3 s in, as a voice agent does
// when the caller starts talking.

type Control = { event: string; mark?: { name: string }; status?: string; frames?: number; marks?: number };

function sendPcm(ws: WebSocket, pcm: Int16Array, seq: { n: number }): void {
  const bytes = toBytes(pcm);
  for (let i = 0; i < bytes.length; i += 16 * 1024)
    ws.send(
      encodePacket({ sequenceNumber: seq.n++, timestamp: 0, payload: bytes.subarray(i, i + 16 * 1024) }),
    );
}

async function ingest(srv: TestServer, control?: string) {
  const endpoint = await startEndpoint();
  const res = await srv.api.raw<{ tracks: { adapterId: string; sessionId: string }[] }>(
    "POST",
    "adapters/websocket/new",
    {
      tracks: [
        {
          location: "local",
          trackName: "tts",
          endpoint: endpoint.url,
          inputCodec: "pcm",
          ...(control ? { control } : {}),
        },
      ],
    },
  );
  return { endpoint, res };
}

describe("ingest barge-in (control: json)", { timeout: 90_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("a 20 s answer cleared at 3 s: audio stops within a frame or two; the mark before reports played, the one after cleared", async () => {
    const { endpoint, res } = await ingest(srv, "json");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { sessionId } = res.body.tracks[0];
    const ws = endpoint.connections[0];
    const control: (Control & { at: number })[] = [];
    ws.on("message", (data, isBinary) => {
      if (!isBinary) control.push({ ...(JSON.parse(data.toString()) as Control), at: performance.now() });
    });
    const sub = await pullAudio(srv.api, { sessionId, trackName: "tts" });
    try {
      const speech = speechLike(20_000, { seed: 21 });
      const seq = { n: 1 };
      sendPcm(ws, speech.subarray(0, 2 * 96_000), seq); // 2 s (48 kHz stereo: 96 000 values per second)
      ws.send(JSON.stringify({ event: "mark", mark: { name: "after-2s" } }));
      sendPcm(ws, speech.subarray(2 * 96_000), seq);
      ws.send(JSON.stringify({ event: "mark", mark: { name: "end" } }));

      // 3 s of audio out (canned silence packets are 3 bytes), then the caller barges in.
      const audioCount = () => sub.packets.filter((p) => p.payload.length > 3).length;
      const deadline = Date.now() + 15_000;
      while (audioCount() < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(audioCount() >= 150, "3 s of audio played");
      const clearAt = performance.now();
      ws.send(JSON.stringify({ event: "clear" }));
      const clearIndex = sub.packets.length;
      await sub.waitFor(clearIndex + 50, 5000); // one more second of the track

      // What the endpoint heard back.
      const played = control.find((c) => c.event === "mark" && c.mark?.name === "after-2s");
      assert.equal(played?.status, "played");
      assert.ok(played.at < clearAt, "the 2 s mark was reported when its audio had left, before the clear");
      const cleared = control.find((c) => c.event === "cleared");
      assert.ok(cleared, `a cleared event: ${JSON.stringify(control)}`);
      // Played before the clear: at least the 150 frames the subscriber had seen, at most what a busy machine
      // had sent on meanwhile.
      assert.ok(cleared.frames! >= 700 && cleared.frames! <= 850, `frames dropped: ${cleared.frames}`);
      assert.equal(cleared.marks, 1);
      assert.deepEqual(
        control.filter((c) => c.event === "mark").map((c) => [c.mark?.name, c.status]),
        [
          ["after-2s", "played"],
          ["end", "cleared"],
        ],
      );

      // On the wire, counted rather than timed (a loaded machine delays packets, not their order): every
      // frame not dropped was played, then one flush frame (the encoder's lookahead), then only canned silence.
      const encoded = (p: { payload: Uint8Array }) => p.payload.length > 3;
      const lastEncoded = sub.packets.findLastIndex(encoded);
      assert.equal(sub.packets.filter(encoded).length, 1000 - cleared.frames! + 1, "played + flush frames");
      assert.ok(sub.packets.length - lastEncoded > 40, "a second of canned silence after the clear");
      const dec = new OpusDecoder();
      const levels = sub.packets.map((p) => rms(dec.decode(p.payload)));
      dec.close();
      assert.ok(
        levels.slice(lastEncoded + 1).every((l) => l < 30),
        "silence after the clear",
      );
      const before = levels.slice(Math.max(0, clearIndex - 50), clearIndex);
      // Speech-like audio has syllables and pauses: measured ≈ 20 of the last 50 frames above 300.
      assert.ok(
        before.filter((l) => l > 300).length >= 10,
        `speech right before the clear: ${before.join(" ")}`,
      );
    } finally {
      await sub.close();
      await endpoint.close();
    }
  });

  test("without control: json, control text is ignored as before (counted), and audio plays on", async () => {
    const { endpoint, res } = await ingest(srv);
    assert.equal(res.status, 200);
    const ws = endpoint.connections[0];
    const replies: string[] = [];
    ws.on("message", (d, isBinary) => !isBinary && replies.push(d.toString()));
    ws.send(JSON.stringify({ event: "clear" }));
    sendPcm(ws, speechLike(500, { seed: 3 }), { n: 1 });
    await new Promise((r) => setTimeout(r, 300));
    const status = await srv.api.raw<{ textMessagesIgnored: number; state: string }>(
      "GET",
      `adapters/websocket/${res.body.tracks[0].adapterId}`,
    );
    assert.equal(status.body.textMessagesIgnored, 1);
    assert.equal(status.body.state, "open");
    assert.deepEqual(replies, []);
    await endpoint.close();
  });

  for (const [what, text, reason] of [
    ["not JSON", "{clear", /invalid control message: not JSON/],
    ["a mark without a name", JSON.stringify({ event: "mark", mark: {} }), /mark needs mark\.name/],
    [
      "a 257-character mark name",
      JSON.stringify({ event: "mark", mark: { name: "x".repeat(257) } }),
      /1 to 256/,
    ],
  ] as const) {
    test(`${what}: closed 1007 with the reason`, async () => {
      const { endpoint, res } = await ingest(srv, "json");
      assert.equal(res.status, 200);
      const ws = endpoint.connections[0];
      const closed = closeOf(ws);
      ws.send(text);
      const c = await closed;
      assert.equal(c.code, 1007);
      assert.match(c.reason, reason);
      await endpoint.close();
    });
  }

  test("more than 1000 marks pending: closed 1008", async () => {
    const { endpoint, res } = await ingest(srv, "json");
    assert.equal(res.status, 200);
    const ws = endpoint.connections[0];
    const closed = closeOf(ws);
    sendPcm(ws, speechLike(5000, { seed: 4 }), { n: 1 });
    for (let i = 0; i <= 1000; i++) ws.send(JSON.stringify({ event: "mark", mark: { name: `m${i}` } }));
    const c = await closed;
    assert.equal(c.code, 1008);
    assert.match(c.reason, /more than 1000 marks pending/);
    await endpoint.close();
  });

  test("control on an egress item, or another value: 406", async () => {
    const bad = await srv.api.raw<{ errorCode: string; errorDescription: string }>(
      "POST",
      "adapters/websocket/new",
      {
        tracks: [
          {
            location: "local",
            trackName: "t",
            endpoint: "ws://127.0.0.1:9/x",
            inputCodec: "pcm",
            control: "xml",
          },
        ],
      },
    );
    assert.equal(bad.status, 406);
    assert.match(bad.body.errorDescription, /tracks\[0\]\.control: only "json" on a local \(ingest\) item/);
  });
});
