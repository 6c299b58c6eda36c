import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { WebSocket } from "ws";
import { pullAudio, type Subscriber } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import {
  adapterStatus,
  assertHeardClip,
  chunkPackets,
  createIngest,
  EMPTY_PACKET,
  type Endpoint,
  pacedSend,
  pollAdapter,
  startEndpoint,
  waitForAudio,
} from "../helpers/ws-endpoints.ts";

const CLIP_MS = 3_000;
const FRAMES = CLIP_MS / 20; // 150
const CLIP_BYTES = FRAMES * 3840; // 576 000

describe("ingest: chunking and pacing of the endpoint's bytes", () => {
  let srv: TestServer;
  const endpoints: Endpoint[] = [];
  const subs: Subscriber[] = [];
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    for (const s of subs) await s.close();
    for (const e of endpoints) await e.close();
    await srv.close();
  });

  test("paced 3840-byte frames, 1001-byte bursts and bytes sent right behind the handshake all play out intact", async (t) => {
    // Three independent scenarios at once, each with its own clip so a mix-up between adapters shows.
    const pacedClip = speechLike(CLIP_MS, { seed: 101 });
    const oddClip = speechLike(CLIP_MS, { seed: 102 });
    const earlyClip = speechLike(CLIP_MS, { seed: 103 });

    const paced = async () => {
      const ep = await startEndpoint();
      endpoints.push(ep);
      const ad = await createIngest(srv.api, ep.url, "paced");
      const sub = await pullAudio(srv.api, { sessionId: ad.sessionId, trackName: "paced" });
      subs.push(sub);
      const sent = await pacedSend(ep.connections[0], pacedClip, { frameBytes: 3840 });
      assert.equal(sent.messages, FRAMES);
      await waitForAudio(sub, FRAMES, 5_000);
      const s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= FRAMES, { timeoutMs: 2_000 });
      const gapSlots = assertHeardClip(sub, pacedClip, "paced").gapSlots;
      // A real-time endpoint has no head start: when a send lands just after a slot boundary, that slot
      // goes out as silence (the ingest has no prebuffer). Whatever happened, the subscriber must have
      // seen exactly the silent slots the adapter counted, and no audio may be lost.
      assert.equal(gapSlots, s.underruns, "silent slots inside the clip = the adapter's underruns");
      assert.equal(s.bytesProcessed, CLIP_BYTES);
      assert.equal(s.frames, FRAMES);
      assert.equal(s.state, "open", "an empty packet ends a segment, not the adapter");
      return { adapterId: ad.adapterId, underruns: s.underruns, maxLateMs: sent.maxLateMs };
    };

    const oddChunks = async () => {
      const ep = await startEndpoint();
      endpoints.push(ep);
      const ad = await createIngest(srv.api, ep.url, "odd");
      const sub = await pullAudio(srv.api, { sessionId: ad.sessionId, trackName: "odd" });
      subs.push(sub);
      const ws = ep.connections[0];
      const messages = chunkPackets(oddClip, 1001); // odd: samples and frames split across messages
      for (const m of messages) ws.send(m);
      ws.send(EMPTY_PACKET);
      await waitForAudio(sub, FRAMES, 8_000);
      const s = await pollAdapter(srv.api, ad.adapterId, (st) => st.frames >= FRAMES, { timeoutMs: 2_000 });
      assert.equal(assertHeardClip(sub, oddClip, "1001-byte chunks").gapSlots, 0, "one unbroken talk-spurt");
      assert.equal(s.bytesProcessed, CLIP_BYTES, "every payload byte counted exactly once");
      assert.equal(s.messages, messages.length + 1);
      assert.equal(s.frames, FRAMES, "576 000 bytes = exactly 150 frames, no padding frame");
      assert.equal(s.underruns, 0, "a burst never underruns");
      return { adapterId: ad.adapterId };
    };

    const early = async () => {
      // The endpoint starts talking the moment the handshake completes, before the create call has even
      // returned: its first messages ride in the same TCP segment as the 101 answer.
      const messages = chunkPackets(earlyClip, 1001);
      const ep = await startEndpoint((ws: WebSocket) => {
        for (const m of messages) ws.send(m);
        ws.send(EMPTY_PACKET);
      });
      endpoints.push(ep);
      const ad = await createIngest(srv.api, ep.url, "early");
      // Everything arrives long before the 3 s playout ends, so "all messages in, or playout over" is
      // the moment to compare counts.
      const s = await pollAdapter(
        srv.api,
        ad.adapterId,
        (st) => st.messages >= messages.length + 1 || (st.frames > 0 && st.queuedMs === 0),
        { timeoutMs: 6_000 },
      );
      assert.equal(s.bytesProcessed, CLIP_BYTES, "no message sent right after the handshake is lost");
      assert.equal(s.messages, messages.length + 1);
      const done = await pollAdapter(srv.api, ad.adapterId, (st) => st.queuedMs === 0, { timeoutMs: 5_000 });
      assert.equal(done.frames, FRAMES);
      return { adapterId: ad.adapterId };
    };

    const [p] = await Promise.all([paced(), oddChunks(), early()]);
    t.diagnostic(
      `paced endpoint: ${p.underruns} underrun slot(s), worst send lateness ${p.maxLateMs.toFixed(1)} ms`,
    );
  });

  test("metrics: ingest frames counted, live adapters gauged by state, closed ones counted", async () => {
    const list = await srv.api.raw<{ adapters: { adapterId: string; state: string; frames: number }[] }>(
      "GET",
      "adapters/websocket",
    );
    assert.equal(list.status, 200);
    assert.equal(list.body.adapters.length, 3, "the three adapters of the previous test");
    // Close one: the gauge then has two open adapters, the counter one closed.
    const closed = await srv.api.raw<{ tracks: { adapterId: string; bytesProcessed?: number }[] }>(
      "POST",
      "adapters/websocket/close",
      { tracks: [{ adapterId: list.body.adapters[0].adapterId }] },
    );
    assert.equal(closed.status, 200);
    const states = await Promise.all(list.body.adapters.map((a) => adapterStatus(srv.api, a.adapterId)));
    const framesPlayed = states.reduce((sum, s) => sum + s.frames, 0);
    assert.equal(framesPlayed, 3 * FRAMES);

    const res = await fetch(`${srv.url}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const value = (series: string): number => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      assert.ok(line, `metric ${series} present`);
      return Number(line.slice(series.length + 1));
    };
    const ingestFrames = value('patchbay_adapter_frames_total{direction="ingest"}');
    assert.ok(ingestFrames > 0);
    assert.equal(ingestFrames, framesPlayed, "the counter matches the adapters' own frame counts");
    assert.equal(value('patchbay_adapter_frames_total{direction="egress"}'), 0);
    assert.equal(value('patchbay_adapters{direction="ingest",state="open"}'), 2);
    // Closed adapters are no longer adapters: counted, not gauged (the manager's closed records are bounded).
    assert.ok(!text.includes('patchbay_adapters{direction="ingest",state="closed"}'));
    assert.equal(value('patchbay_adapters_closed_total{direction="ingest"}'), 1);
    assert.equal(value('patchbay_adapters{direction="ingest",state="connecting"}'), 0);
    assert.equal(value('patchbay_adapters{direction="egress",state="open"}'), 0);
  });
});
