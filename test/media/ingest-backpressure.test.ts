import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pullAudio, type Subscriber } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { sine, speechLike } from "../helpers/signals.ts";
import {
  assertHeardClip,
  chunkPackets,
  closeOf,
  createIngest,
  EMPTY_PACKET,
  type Endpoint,
  pollAdapter,
  startEndpoint,
  waitForAudio,
} from "../helpers/ws-endpoints.ts";

const HIGH_MS = 2_000;
const LOW_MS = 1_000;
const MESSAGE_BYTES = 16 * 1024;
/**
 * The most audio the queue may hold. The adapter checks the high-water mark after each message and then
 * pauses the socket, so the message that crosses the mark adds at most ⌈(16 384 + 3 839 carried) / 3 840⌉
 * = 5 frames (100 ms). But ws.pause() only stops further socket reads: ws still parses the rest of the
 * chunk it has already read (Node reads at most 64 KiB at a time), at most 65 536 more bytes ≈ 18 frames
 * (360 ms, carry included). Bound: 2 000 + 100 + 360 ms. Without back-pressure the queue would reach the
 * whole clip (20 s).
 */
const QUEUE_BOUND_MS = HIGH_MS + 100 + 360;

describe("ingest: back-pressure and keepalive", { concurrency: true }, () => {
  let srv: TestServer;
  const endpoints: Endpoint[] = [];
  const subs: Subscriber[] = [];
  before(async () => {
    srv = await startTestServer([
      "--ingest-high-water-ms",
      String(HIGH_MS),
      "--ingest-low-water-ms",
      String(LOW_MS),
    ]);
  });
  after(async () => {
    for (const s of subs) await s.close();
    for (const e of endpoints) await e.close();
    await srv.close();
  });

  test("a 20 s burst is held at the high-water mark, then plays out whole and in order", async (t) => {
    const clip = speechLike(20_000, { seed: 301 });
    const total = clip.length * 2; // 3 840 000 bytes = 1 000 frames
    const ep = await startEndpoint();
    endpoints.push(ep);
    const ad = await createIngest(srv.api, ep.url, "long");
    const sub = await pullAudio(srv.api, { sessionId: ad.sessionId, trackName: "long" });
    subs.push(sub);
    const ws = ep.connections[0];
    const messages = chunkPackets(clip, MESSAGE_BYTES);
    for (const m of messages) ws.send(m);
    ws.send(EMPTY_PACKET);
    const sentAt = performance.now();

    let maxPolled = 0;
    let polls = 0;
    let heldBack = false;
    const s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= 1_000, {
      timeoutMs: 26_000,
      intervalMs: 100,
      onPoll: (st) => {
        polls++;
        maxPolled = Math.max(maxPolled, st.queuedMs);
        assert.ok(st.queuedMs <= QUEUE_BOUND_MS, `queued ${st.queuedMs} ms > ${QUEUE_BOUND_MS} ms`);
        // The server reads only as fast as it plays (plus the queue): the rest waits in the kernel.
        const unplayed = st.bytesProcessed - st.frames * 3840;
        assert.ok(
          unplayed <= (QUEUE_BOUND_MS / 20 + 1) * 3840,
          `read ${unplayed} bytes ahead of the playout`,
        );
        if (performance.now() - sentAt > 5_000 && st.bytesProcessed < total) heldBack = true;
      },
    });
    t.diagnostic(
      `max queued: polled ${maxPolled} ms over ${polls} polls, adapter's own max ${s.maxQueuedMs} ms`,
    );
    assert.ok(heldBack, "5 s after the endpoint wrote everything, the server still had not read it all");
    assert.ok(s.maxQueuedMs >= HIGH_MS, `the queue reached the high-water mark (${s.maxQueuedMs} ms)`);
    assert.ok(s.maxQueuedMs <= QUEUE_BOUND_MS, `adapter's max queue ${s.maxQueuedMs} ms`);
    assert.equal(s.bytesProcessed, total, "nothing was discarded");
    assert.equal(s.frames, 1_000);
    assert.equal(s.underruns, 0, "reading resumed at the low-water mark in time: the queue never ran dry");

    await waitForAudio(sub, 1_000, 3_000);
    const { gapSlots } = assertHeardClip(sub, clip, "20 s burst");
    assert.equal(gapSlots, 0);
  });

  test("a 60 s burst: the endpoint's own socket backs up while the server reads at the playout rate", async () => {
    // Loopback kernel buffers absorb ~3.5–4 MB (measured), more than the 20 s clip above, so the endpoint
    // side only feels the back-pressure with more data: 60 s is 11.5 MB.
    const clip = sine(440, 60_000, 0.3);
    const ep = await startEndpoint();
    endpoints.push(ep);
    const ad = await createIngest(srv.api, ep.url, "flood");
    const ws = ep.connections[0];
    const messages = chunkPackets(clip, MESSAGE_BYTES);
    let acked = 0;
    for (const m of messages) ws.send(m, () => acked++);

    const at3s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= 150, { timeoutMs: 6_000 });
    assert.ok(
      ws.bufferedAmount > 1_000_000,
      `the endpoint's ws holds unsent data (${ws.bufferedAmount} bytes)`,
    );
    assert.ok(acked < messages.length / 2, `most send callbacks still pending after 3 s (${acked} done)`);
    assert.ok(at3s.queuedMs <= QUEUE_BOUND_MS);

    // Meanwhile the server keeps reading exactly as fast as it plays. (The endpoint's send callbacks do not
    // show this progress: Node flushes a backed-up socket's buffered writes as one writev, and their
    // callbacks all fire when it completes.)
    const at6s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= 300, { timeoutMs: 6_000 });
    const readMore = at6s.bytesProcessed - at3s.bytesProcessed;
    const playedMore = (at6s.frames - at3s.frames) * 3840;
    // read − played = the change of the queue (plus a partial frame), which stays within the bound.
    assert.ok(
      Math.abs(readMore - playedMore) <= (QUEUE_BOUND_MS / 20 + 1) * 3840,
      `read ${readMore} bytes while playing ${playedMore}`,
    );
    assert.ok(at6s.queuedMs <= QUEUE_BOUND_MS);
    assert.ok(ws.bufferedAmount > 0, "the endpoint is still backed up");

    const res = await srv.api.raw("POST", "adapters/websocket/close", {
      tracks: [{ adapterId: ad.adapterId }],
    });
    assert.equal(res.status, 200);
  });

  test("a half-open endpoint (no pongs) is dropped after two 10 s ping intervals of silence, not before", async () => {
    let pings = 0;
    const ep = await startEndpoint((w) => w.on("ping", () => pings++), "/tts?token=abc", { autoPong: false });
    endpoints.push(ep);
    const ad = await createIngest(srv.api, ep.url, "mute");
    const ws = ep.connections[0];
    for (const m of chunkPackets(speechLike(1_000, { seed: 302 }), MESSAGE_BYTES)) ws.send(m);
    ws.send(EMPTY_PACKET);
    const sentAt = Date.now(); // the server hears the last message after this
    const played = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= 50 && st.queuedMs === 0, {
      timeoutMs: 3_000,
    });
    assert.equal(played.state, "open", "an idle endpoint is not closed for being idle");

    // Pinged 10 s after it was last heard, dropped 10 s later. A loaded machine can only delay the drop;
    // the exact timing is asserted on a fake clock (test/unit/link-core.test.ts).
    const s = await pollAdapter(srv.api, ad.adapterId, (st) => st.state === "closed", {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const closedAt = Date.parse(s.closedAt!);
    assert.ok(closedAt >= sentAt + 19_900, `closed ${closedAt - sentAt} ms after last heard (rule: 20 s)`);
    assert.match(s.closeReason ?? "", /stopped answering pings/);
    assert.ok(pings >= 1, "the endpoint was pinged and did not answer");
    assert.equal(
      (await closeOf(ws)).code,
      1006,
      "the server dropped the TCP connection without a close frame",
    );
  });
});
