// LinkCore on a fake clock: the liveness and rate decisions of an adapter's socket, without the socket.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type LinkCommand, LinkCore } from "../../src/adapters/websocket/link-core.ts";

const kinds = (cmds: readonly LinkCommand[]) => cmds.map((c) => c.kind);

/** Ticks every 20 ms from `from` to `to` (exclusive), collecting every command. */
function run(core: LinkCore, from: number, to: number, each?: (now: number) => void): LinkCommand[] {
  const out: LinkCommand[] = [];
  for (let t = from; t < to; t += 20) {
    each?.(t);
    out.push(...core.tick(t));
  }
  return out;
}

describe("LinkCore liveness", () => {
  test("a quiet peer is pinged after one interval and dropped after a second silent one", () => {
    const core = new LinkCore({ pingIntervalMs: 10_000, maxMessagesPerSecond: Number.POSITIVE_INFINITY }, 0);
    assert.deepEqual(kinds(run(core, 0, 10_000)), []);
    assert.deepEqual(kinds(core.tick(10_000)), ["ping"]);
    assert.deepEqual(kinds(run(core, 10_020, 20_000)), [], "no second ping while one is outstanding");
    const drop = core.tick(20_000);
    assert.equal(drop.length, 1);
    assert.equal(drop[0].kind, "drop");
    assert.match((drop[0] as { reason: string }).reason, /stopped answering pings: nothing heard for 20 s/);
    assert.deepEqual(kinds(run(core, 20_020, 60_000)), [], "dropped once, then silent");
  });

  test("a pong, or any message, answers the ping", () => {
    const core = new LinkCore({ pingIntervalMs: 1000, maxMessagesPerSecond: Number.POSITIVE_INFINITY }, 0);
    assert.deepEqual(kinds(core.tick(1000)), ["ping"]);
    core.heard(1500); // pong
    assert.deepEqual(kinds(run(core, 1520, 2500)), []);
    assert.deepEqual(kinds(core.tick(2500)), ["ping"]);
    core.message(3000); // data instead of a pong
    assert.deepEqual(kinds(run(core, 3020, 4000)), []);
  });

  test("a peer that keeps sending is never pinged", () => {
    const core = new LinkCore({ pingIntervalMs: 1000, maxMessagesPerSecond: Number.POSITIVE_INFINITY }, 0);
    assert.deepEqual(kinds(run(core, 0, 120_000, (t) => core.message(t))), []);
  });

  // The first release's bug: reading paused for back-pressure for longer than the keepalive allows; the
  // pong waited in TCP behind the burst and the adapter was cut at 943 of 1000 frames.
  test("no verdict while reading is paused for back-pressure, however long", () => {
    const core = new LinkCore({ pingIntervalMs: 10_000, maxMessagesPerSecond: Number.POSITIVE_INFINITY }, 0);
    assert.deepEqual(kinds(core.tick(10_000)), ["ping"]);
    assert.deepEqual(kinds(core.setQueueFull(true, 15_000)), ["pause-reading"]);
    assert.deepEqual(kinds(run(core, 15_000, 200_000)), [], "185 s paused: no ping, no drop");
    assert.deepEqual(kinds(core.setQueueFull(false, 200_000)), ["resume-reading"]);
    // After resuming the peer gets a whole interval of our reading before the next ping.
    assert.deepEqual(kinds(run(core, 200_000, 210_000)), []);
    assert.deepEqual(kinds(core.tick(210_000)), ["ping"]);
    core.heard(210_500); // the burst behind the pong arrives
    assert.deepEqual(kinds(run(core, 210_520, 220_000)), []);
  });

  test("a peer that goes silent after reading resumes is still dropped", () => {
    const core = new LinkCore({ pingIntervalMs: 1000, maxMessagesPerSecond: Number.POSITIVE_INFINITY }, 0);
    core.setQueueFull(true, 0);
    run(core, 0, 5000);
    core.setQueueFull(false, 5000);
    assert.deepEqual(kinds(run(core, 5000, 7020)), ["ping", "drop"]);
  });
});

describe("LinkCore message rate", () => {
  test("a flood pauses reading once the one-second burst is spent, resumes after a tenth refills", () => {
    const core = new LinkCore({ pingIntervalMs: 10_000, maxMessagesPerSecond: 1000 }, 0);
    const out: LinkCommand[] = [];
    for (let i = 0; i < 1000; i++) out.push(...core.message(0));
    assert.deepEqual(kinds(out), [], "the burst allowance itself is not throttled");
    assert.deepEqual(kinds(core.message(0)), ["pause-reading"]);
    assert.deepEqual(kinds(core.message(0)), [], "messages already read while pausing are counted, once");
    assert.deepEqual(kinds(run(core, 20, 100)), [], "still paused at 80 ms");
    assert.deepEqual(kinds(run(core, 100, 120)), [], "tokens at 100 ms: 98 < 100");
    assert.deepEqual(kinds(core.tick(120)), ["resume-reading"]);
    assert.equal(core.rateLimitPauses, 1);
  });

  test("a sustained flood is held to the configured rate", () => {
    const core = new LinkCore({ pingIntervalMs: 10_000, maxMessagesPerSecond: 500 }, 0);
    let paused = false;
    let accepted = 0;
    for (let t = 0; t < 10_000; t += 20) {
      for (const c of core.tick(t))
        paused = c.kind === "pause-reading" ? true : c.kind === "resume-reading" ? false : paused;
      // The peer sends as fast as we read: 100 messages per tick while reading.
      for (let i = 0; i < 100 && !paused; i++) {
        accepted++;
        for (const c of core.message(t)) if (c.kind === "pause-reading") paused = true;
      }
    }
    // 500 burst + 500/s × 10 s, give or take one tick's worth.
    assert.ok(accepted >= 5300 && accepted <= 5600, `accepted ${accepted} messages in 10 s at 500/s`);
  });

  test("back-pressure and rate limit overlap: reading resumes only when both allow it", () => {
    const core = new LinkCore({ pingIntervalMs: 10_000, maxMessagesPerSecond: 10 }, 0);
    for (let i = 0; i < 10; i++) core.message(0);
    assert.deepEqual(kinds(core.message(0)), ["pause-reading"]);
    assert.deepEqual(kinds(core.setQueueFull(true, 0)), [], "already paused");
    assert.deepEqual(kinds(run(core, 0, 2000)), [], "tokens refilled but the queue is still full");
    assert.deepEqual(kinds(core.setQueueFull(false, 2000)), ["resume-reading"]);
  });
});
