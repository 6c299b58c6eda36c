// Egress reconnect (SPEC §2.6): a dropped socket is redialed with backoff (100 ms doubling to 1 s) for up
// to 15 s; the last 2 s of frames wait for the new connection and go first; sequence numbers continue.
// A normal close (1000) by the endpoint is its way of saying it is done: the adapter ends, no redial
// (documented in egress.ts).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { encodeOpus } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { concatPcm, speechLike } from "../helpers/signals.ts";
import {
  adapterStatus,
  assertEgressContinuous,
  closeOf,
  pollAdapter,
  receiver,
  rtpPackets,
  sendPaced,
  startEgress,
  startEndpoint,
} from "../helpers/ws-endpoints.ts";

const BACKLOG_FRAMES = 100; // 2 s

describe("egress reconnect", { timeout: 90_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  /**
   * The endpoint goes away for `outageMs` (connection terminated, port closed) and comes back on the same
   * port. Expects: "reconnecting" meanwhile; on the new connection the backlog (everything since the drop,
   * at most the last 2 s) first as one burst, then live frames; numbers continuing without duplicates.
   */
  async function outage(outageMs: number, seed: number): Promise<void> {
    const clip = speechLike(5000, { seed });
    const packets = rtpPackets(encodeOpus(concatPcm(clip, clip, clip)), 7000, 123_456);
    const setup = await startEgress(srv.api, "/stt?token=t");
    const { pub, adapterId } = setup;
    let endpoint = setup.endpoint;
    const port = Number(new URL(endpoint.url).port);
    const stop = new AbortController();
    try {
      const rx1 = receiver(setup.ws);
      const adapter = srv.server.adapters(srv.api.appId)!.get(adapterId)!;
      const sending = sendPaced(pub, packets, { signal: stop.signal });
      await rx1.waitFor(50);

      // Outage: terminate the connection and stop listening.
      await endpoint.close();
      const droppedAt = performance.now();
      const during = await pollAdapter(srv.api, adapterId, (s) => s.state !== "open", { timeoutMs: 2000 });
      assert.equal(during.state, "reconnecting");
      const lastBefore = rx1.packets.at(-1)!;
      await new Promise((r) => setTimeout(r, outageMs - (performance.now() - droppedAt))); // the outage itself
      assert.equal(
        (await adapterStatus(srv.api, adapterId)).state,
        "reconnecting",
        "still reconnecting at the end of the outage",
      );

      // When the endpoint accepts the new connection, the adapter has not sent anything on it yet: the
      // newest frame it has produced is the newest the backlog can hold.
      let newestAtReconnect = Number.NaN;
      let reconnectedAt = Number.NaN;
      endpoint = await startEndpoint(
        () => {
          newestAtReconnect = (adapter as unknown as { sequence: number }).sequence;
          reconnectedAt = performance.now();
        },
        "/stt?token=t",
        { port },
      );
      const rx2 = receiver(await endpoint.nextConnection());
      await rx2.waitFor(BACKLOG_FRAMES + 50);
      const frames = rx2.packets;
      const status = await adapterStatus(srv.api, adapterId);
      assert.equal(status.state, "open");
      assert.equal(status.reconnects, 1);
      assert.equal(rx1.invalid + rx2.invalid, 0);
      assertEgressContinuous(rx1.packets, "first connection", { firstSeq: 1 });
      assertEgressContinuous(frames, "second connection");

      // No duplicates; the gap is exactly the frames dropped from the backlog (plus at most one frame
      // written into the socket as it died).
      const first = frames[0];
      const gap = first.sequenceNumber - lastBefore.sequenceNumber - 1;
      const outageFrames = (reconnectedAt - droppedAt) / 20;
      const backlog = newestAtReconnect - first.sequenceNumber + 1;
      console.log(
        `outage ${(reconnectedAt - droppedAt).toFixed(0)} ms: last seq before ${lastBefore.sequenceNumber}, ` +
          `first after ${first.sequenceNumber}, newest at reconnect ${newestAtReconnect}, ` +
          `${status.droppedFrames} dropped`,
      );
      assert.ok(gap >= 0, `no duplicates (${lastBefore.sequenceNumber} then ${first.sequenceNumber})`);
      if (outageFrames > BACKLOG_FRAMES + 10)
        assert.ok(status.droppedFrames > 0, "a long outage drops what is older than 2 s");
      if (outageFrames < BACKLOG_FRAMES - 10)
        assert.equal(status.droppedFrames, 0, "a short outage loses nothing");
      assert.ok(
        gap - status.droppedFrames >= 0 && gap - status.droppedFrames <= 1,
        `the gap (${gap}) is the dropped frames (${status.droppedFrames})`,
      );
      assert.equal(
        (first.timestamp - lastBefore.timestamp) >>> 0,
        960 * (first.sequenceNumber - lastBefore.sequenceNumber),
        "timestamps and sequence numbers skip the same frames",
      );
      assert.ok(
        backlog <= BACKLOG_FRAMES && backlog >= Math.min(BACKLOG_FRAMES, outageFrames) - 5,
        `the first frame is at most 100 frames behind the newest, and the backlog is everything since ` +
          `the drop up to 2 s (${backlog} frames for ${outageFrames.toFixed(0)} frames of outage)`,
      );

      // The backlog goes first, faster than real time; live frames follow at the 20 ms cadence.
      const backlogMs = rx2.times[backlog - 1] - rx2.times[0];
      assert.ok(backlogMs < 500, `${backlog} backlog frames delivered in ${backlogMs.toFixed(0)} ms`);
      const live = rx2.times.slice(backlog + 5, backlog + 45);
      const spread = live.at(-1)! - live[0];
      assert.ok(
        Math.abs(spread - 39 * 20) < 100,
        `then live frames every 20 ms (${spread.toFixed(0)} ms for 39 intervals)`,
      );
      stop.abort();
      await sending;
    } finally {
      stop.abort();
      await pub.close();
      await endpoint.close();
    }
  }

  test("a 3 s outage: reconnecting meanwhile, then the last 2 s first, then live frames; the older frames dropped", async () => {
    await outage(3000, 55);
  });

  test("a 1 s outage: the whole outage is sent first, nothing dropped, numbers continue exactly", async () => {
    await outage(1000, 57);
  });

  test("an endpoint closing with 1000 ends the adapter without redial; closing it again answers without bytesProcessed", async () => {
    const packets = rtpPackets(encodeOpus(speechLike(3000, { seed: 56 })));
    const { pub, endpoint, adapterId, ws } = await startEgress(srv.api, "/stt");
    const stop = new AbortController();
    try {
      const rx = receiver(ws);
      const sending = sendPaced(pub, packets, { signal: stop.signal });
      await rx.waitFor(10);
      ws.close(1000, "transcription done");
      const closed = await pollAdapter(srv.api, adapterId, (s) => s.state !== "open", { timeoutMs: 2000 });
      assert.equal(closed.state, "closed", "a normal close is final");
      assert.match(closed.closeReason ?? "", /1000/);
      assert.equal(closed.reconnects, 0);
      // No event tells that something did not happen: give the first redials (100, 200 ms) time to show.
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(endpoint.connections.length, 1, "no redial after a 1000 close");
      assert.equal((await adapterStatus(srv.api, adapterId)).state, "closed");

      const again = await srv.api.raw<{ tracks: Record<string, unknown>[] }>(
        "POST",
        "adapters/websocket/close",
        {
          tracks: [{ adapterId }, { adapterId: "f".repeat(32) }],
        },
      );
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body.tracks[0], { adapterId }, "already closed: no bytesProcessed");
      assert.equal(again.body.tracks[1].errorCode, "adapter_not_found");
      stop.abort();
      await sending;
    } finally {
      stop.abort();
      await pub.close();
      await endpoint.close();
    }
  });

  test("an endpoint that stays down: closed after 15 s of redials, with a reason saying so (takes ~16 s)", {
    timeout: 30_000,
  }, async () => {
    const { pub, endpoint, adapterId, ws } = await startEgress(srv.api, "/stt");
    try {
      const seen = closeOf(ws);
      await endpoint.close(); // terminate (no close frame: a drop, not a 1000) and stop listening
      assert.equal((await seen).code, 1006);
      const droppedAt = Date.now();
      const during = await pollAdapter(srv.api, adapterId, (s) => s.state !== "open", { timeoutMs: 2000 });
      assert.equal(during.state, "reconnecting");
      const closed = await pollAdapter(srv.api, adapterId, (s) => s.state === "closed", {
        timeoutMs: 20_000,
        intervalMs: 250,
        onPoll: (s) => {
          if (s.state !== "closed") assert.equal(s.state, "reconnecting", "reconnecting until it gives up");
        },
      });
      const afterMs = Date.parse(closed.closedAt!) - droppedAt;
      console.log(`gave up ${afterMs} ms after the drop: ${closed.closeReason}`);
      assert.match(closed.closeReason ?? "", /15 s/);
      assert.ok(afterMs >= 15_000 && afterMs <= 17_000, `gave up after 15 s (${afterMs} ms)`);
      assert.equal(closed.reconnects, 0);

      const again = await srv.api.raw<{ tracks: Record<string, unknown>[] }>(
        "POST",
        "adapters/websocket/close",
        {
          tracks: [{ adapterId }],
        },
      );
      assert.equal(again.status, 200);
      assert.deepEqual(again.body.tracks, [{ adapterId }], "closed by error: no bytesProcessed");
    } finally {
      await pub.close();
      await endpoint.close();
    }
  });
});
