import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { WebSocket } from "ws";
import { encodePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { pullAudio, type Subscriber } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import {
  assertHeardClip,
  chunkPackets,
  closeOf,
  createIngest,
  EMPTY_PACKET,
  type Endpoint,
  type IngestCreated,
  type PacedResult,
  pacedSend,
  pollAdapter,
  startEndpoint,
  waitForAudio,
} from "../helpers/ws-endpoints.ts";

/**
 * Bad or departing endpoints end their own adapter, with the right close code and reason, while a healthy
 * adapter on the same server (same scheduler, same event loop) keeps every frame. The bad scenarios run
 * concurrently, all while the healthy endpoint streams in real time.
 */
describe("ingest: bad input and departing endpoints", () => {
  let srv: TestServer;
  const endpoints: Endpoint[] = [];
  const subs: Subscriber[] = [];
  const healthyClip = speechLike(3_000, { seed: 201 });
  let healthy: IngestCreated;
  let healthySub: Subscriber;
  let healthySent: Promise<PacedResult>;

  before(async () => {
    srv = await startTestServer();
    const ep = await startEndpoint();
    endpoints.push(ep);
    healthy = await createIngest(srv.api, ep.url, "healthy");
    healthySub = await pullAudio(srv.api, { sessionId: healthy.sessionId, trackName: "healthy" });
    subs.push(healthySub);
    healthySent = pacedSend(ep.connections[0], healthyClip);
    healthySent.catch(() => {}); // asserted in the last test
  });
  after(async () => {
    for (const s of subs) await s.close();
    for (const e of endpoints) await e.close();
    await srv.close();
  });

  async function open(trackName: string): Promise<{ ws: WebSocket; ad: IngestCreated }> {
    const ep = await startEndpoint();
    endpoints.push(ep);
    const ad = await createIngest(srv.api, ep.url, trackName);
    return { ws: ep.connections[0], ad };
  }

  const closed = (id: string) => pollAdapter(srv.api, id, (s) => s.state === "closed", { timeoutMs: 5_000 });

  describe("each scenario ends only its own adapter", { concurrency: true }, () => {
    test("a 40 000-byte message closes with 1009 and a reason", async () => {
      const { ws, ad } = await open("big");
      const big = encodePacket({ sequenceNumber: 1, timestamp: 0, payload: new Uint8Array(39_994) });
      assert.equal(big.length, 40_000);
      ws.send(big);
      const c = await closeOf(ws);
      assert.equal(c.code, 1009);
      assert.match(c.reason, /32768/, "the endpoint is told why");
      const s = await closed(ad.adapterId);
      assert.match(s.closeReason ?? "", /larger than 32768 bytes/);
      assert.equal(s.bytesProcessed, 0);
    });

    for (const [name, bytes] of [
      ["field 1 with the wrong wire type (0a ff ff)", [0x0a, 0xff, 0xff]],
      ["a payload length past the end (2a 10 + 3 bytes)", [0x2a, 0x10, 1, 2, 3]],
    ] as const) {
      test(`malformed protobuf, ${name}, closes with 1007`, async () => {
        const { ws, ad } = await open("bad");
        ws.send(Uint8Array.from(bytes));
        const c = await closeOf(ws);
        assert.equal(c.code, 1007);
        assert.match(c.reason, /^malformed Packet/);
        assert.ok(Buffer.byteLength(c.reason) <= 123);
        const s = await closed(ad.adapterId);
        assert.match(s.closeReason ?? "", /^malformed Packet \(\d+ bytes\): /);
        assert.equal(s.bytesProcessed, 0);
      });
    }

    test("text frames are ignored and counted; the adapter stays open and plays the audio around them", async () => {
      const { ws, ad } = await open("text");
      const clip = speechLike(500, { seed: 202 });
      const messages = chunkPackets(clip, 16 * 1024); // 96 000 bytes: 6 messages
      ws.send("hello");
      for (const [i, m] of messages.entries()) {
        ws.send(m);
        if (i === 2) ws.send(JSON.stringify({ event: "mark" }));
      }
      ws.send("bye");
      ws.send(EMPTY_PACKET);
      const s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= 25 && st.queuedMs === 0, {
        timeoutMs: 3_000,
      });
      assert.equal(s.state, "open");
      assert.equal(s.textMessagesIgnored, 3);
      assert.equal(s.messages, messages.length + 1 + 3);
      assert.equal(s.bytesProcessed, clip.length * 2);
      assert.equal(s.frames, 25);
      assert.equal(ws.readyState, ws.OPEN, "the endpoint's socket is still open");
      const res = await srv.api.raw("POST", "adapters/websocket/close", {
        tracks: [{ adapterId: ad.adapterId }],
      });
      assert.equal(res.status, 200);
      assert.equal((await closeOf(ws)).code, 1000);
    });

    for (const how of ["closes normally", "drops (terminate)"] as const) {
      test(`an endpoint that ${how} after 1 s of audio: the 1 s plays out, then the adapter closes`, async () => {
        const { ws, ad } = await open("bye");
        const sub = await pullAudio(srv.api, { sessionId: ad.sessionId, trackName: "bye" });
        subs.push(sub);
        const clip = speechLike(1_000, { seed: how === "closes normally" ? 203 : 204 });
        const messages = chunkPackets(clip, 16 * 1024);
        if (how === "closes normally") {
          for (const m of messages) ws.send(m);
          ws.close(1000, "done");
        } else {
          // Every byte handed to the kernel first, then the TCP connection is torn down without a close frame.
          await Promise.all(messages.map((m) => new Promise((r) => ws.send(m, r))));
          ws.terminate();
        }
        const c = await closeOf(ws);
        const endpointGoneAt = Date.now();
        assert.equal(c.code, how === "closes normally" ? 1000 : 1006);

        // After a normal close the server has read everything (the close frame came last); after a drop the
        // endpoint knows at once, but the server may still be reading what the kernel holds.
        const during = await pollAdapter(
          srv.api,
          ad.adapterId,
          (st) => st.bytesProcessed === clip.length * 2,
          {
            timeoutMs: 1_000,
          },
        );
        assert.equal(during.state, "open", "the queued audio is still playing");
        // How much is left depends on how fast this machine got here; that something is, is the point.
        assert.ok(
          during.queuedMs > 0,
          `audio is still queued after the endpoint left (${during.queuedMs} ms)`,
        );

        const s = await closed(ad.adapterId);
        assert.match(
          s.closeReason ?? "",
          how === "closes normally"
            ? /^endpoint closed the WebSocket \(1000 done\)$/
            : /^endpoint closed the WebSocket \(1006\)$/,
        );
        assert.equal(s.bytesProcessed, clip.length * 2);
        assert.equal(s.frames, 50);
        const closedAt = Date.parse(s.closedAt!);
        assert.ok(
          closedAt - endpointGoneAt >= during.queuedMs - 40,
          `closed ${closedAt - endpointGoneAt} ms after the endpoint left, with ${during.queuedMs} ms still queued: only after the playout`,
        );

        await waitForAudio(sub, 50, 2_000, { ended: true });
        const { audio } = assertHeardClip(sub, clip, how, { ended: true });
        const lastArrival = performance.timeOrigin + sub.times[sub.packets.indexOf(audio[audio.length - 1])];
        assert.ok(
          Math.abs(lastArrival - closedAt) < 200,
          `the adapter closed right after its last frame (${(closedAt - lastArrival).toFixed(0)} ms)`,
        );
        const view = await srv.api.getSession(sub.sessionId);
        assert.equal(view.tracks[0].status, "inactive", "the subscriber sees the track ended");
      });
    }
  });

  test("the healthy adapter running alongside lost no frame", async () => {
    const sent = await healthySent;
    assert.equal(sent.messages, 150);
    await waitForAudio(healthySub, 150, 5_000);
    const s = await pollAdapter(srv.api, healthy.adapterId, (st) => st.frames >= 150, { timeoutMs: 2_000 });
    const { gapSlots } = assertHeardClip(healthySub, healthyClip, "healthy");
    assert.equal(gapSlots, s.underruns, "silent slots inside the clip = the adapter's underruns");
    assert.equal(s.state, "open");
    assert.equal(s.closeReason, undefined);
    assert.equal(s.bytesProcessed, healthyClip.length * 2);
    assert.equal(s.frames, 150);
  });
});
