import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackGenerator, type NackGeneratorOptions } from "../../src/media/nack-generator.ts";

/** Polls every `stepMs` from `fromMs` to `toMs` inclusive and returns [time, seqs] for non-empty polls. */
function pollEvery(g: NackGenerator, fromMs: number, toMs: number, stepMs = 10): Array<[number, number[]]> {
  const out: Array<[number, number[]]> = [];
  for (let t = fromMs; t <= toMs; t += stepMs) {
    const seqs = g.poll(t);
    if (seqs.length > 0) out.push([t, seqs]);
  }
  return out;
}

function withGap(options: NackGeneratorOptions = {}): NackGenerator {
  const g = new NackGenerator(options);
  g.onPacket(0, 0);
  g.onPacket(2, 0); // 1 missing from t = 0
  return g;
}

describe("NackGenerator", () => {
  it("has libwebrtc-like defaults and validates options", () => {
    const g = new NackGenerator();
    assert.deepEqual(
      [g.reorderDelayMs, g.retryIntervalMs, g.maxRetries, g.maxAgeMs, g.maxMissing, g.maxJump],
      [10, 100, 10, 1000, 500, 1000],
    );
    assert.throws(() => new NackGenerator({ reorderDelayMs: -1 }), RangeError);
    assert.throws(() => new NackGenerator({ retryIntervalMs: 0 }), RangeError);
    assert.throws(() => new NackGenerator({ maxRetries: 0 }), RangeError);
    assert.throws(() => new NackGenerator({ maxRetries: 1.5 }), RangeError);
    assert.throws(() => new NackGenerator({ maxAgeMs: 0 }), RangeError);
    assert.throws(() => new NackGenerator({ maxMissing: 0 }), RangeError);
    assert.throws(() => new NackGenerator({ maxJump: 0 }), RangeError);
    assert.throws(() => new NackGenerator({ maxJump: 32768 }), RangeError);
    assert.throws(() => g.onPacket(65536, 0), RangeError);
    assert.throws(() => g.onPacket(-1, 0), RangeError);
  });

  it("requests nothing for a complete stream", () => {
    const g = new NackGenerator();
    for (let s = 0; s < 100; s++) g.onPacket(s, s);
    assert.deepEqual(pollEvery(g, 0, 2000), []);
    assert.equal(g.missingCount, 0);
    assert.deepEqual(g.counters, { requested: 0, recovered: 0, reordered: 0, abandoned: 0, resets: 0 });
  });

  it("requests a gap only after the reordering delay, oldest first", () => {
    const g = new NackGenerator();
    g.onPacket(0, 100);
    g.onPacket(1, 100);
    g.onPacket(4, 100);
    assert.equal(g.missingCount, 2);
    assert.deepEqual(g.poll(109), []);
    assert.deepEqual(g.poll(110), [2, 3]);
    assert.equal(g.counters.requested, 2);
  });

  it("honours a configured reordering delay, including 0", () => {
    const g = withGap({ reorderDelayMs: 0 });
    assert.deepEqual(g.poll(0), [1]);
    const h = withGap({ reorderDelayMs: 30 });
    assert.deepEqual(pollEvery(h, 0, 50, 5)[0], [30, [1]]);
  });

  it("does not request a packet that arrives within the reordering delay", () => {
    const g = withGap();
    g.onPacket(1, 5);
    assert.deepEqual(g.poll(10), []);
    assert.equal(g.missingCount, 0);
    assert.deepEqual([g.counters.reordered, g.counters.recovered], [1, 0]);
  });

  it("retries every retry interval up to maxRetries, then abandons after one more interval", () => {
    const g = withGap({ maxRetries: 3, maxAgeMs: 10_000 });
    assert.deepEqual(pollEvery(g, 0, 2000), [
      [10, [1]],
      [110, [1]],
      [210, [1]],
    ]);
    assert.equal(g.missingCount, 0);
    assert.deepEqual([g.counters.requested, g.counters.abandoned], [3, 1]);
  });

  it("gives the last request its interval: an answer to it still counts as recovered", () => {
    const g = withGap({ maxRetries: 3, maxAgeMs: 10_000 });
    pollEvery(g, 0, 300);
    g.onPacket(1, 305);
    assert.deepEqual([g.counters.recovered, g.counters.abandoned], [1, 0]);
    // Abandoned at 310, not retained after that.
    const h = withGap({ maxRetries: 3, maxAgeMs: 10_000 });
    assert.deepEqual(h.poll(10), [1]);
    assert.deepEqual(h.poll(110), [1]);
    assert.deepEqual(h.poll(210), [1]);
    assert.deepEqual(h.poll(309), []);
    assert.equal(h.missingCount, 1);
    assert.deepEqual(h.poll(310), []);
    assert.equal(h.missingCount, 0);
  });

  it("with the defaults requests 10 times (10 ms, then every 100 ms) and forgets at 1000 ms", () => {
    const g = withGap();
    const times = pollEvery(g, 0, 1500).map(([t]) => t);
    assert.deepEqual(times, [10, 110, 210, 310, 410, 510, 610, 710, 810, 910]);
    assert.deepEqual([g.counters.requested, g.counters.abandoned, g.missingCount], [10, 1, 0]);
  });

  it("abandons a packet at maxAgeMs even with retries left", () => {
    const g = withGap({ maxAgeMs: 250 });
    assert.deepEqual(g.poll(10), [1]);
    assert.deepEqual(g.poll(110), [1]);
    assert.deepEqual(g.poll(210), [1]);
    assert.deepEqual(g.poll(249), []);
    assert.equal(g.missingCount, 1);
    assert.deepEqual(g.poll(250), []);
    assert.equal(g.missingCount, 0);
    assert.equal(g.counters.abandoned, 1);
  });

  it("stretches the retry interval to the RTT, never below the configured interval", () => {
    const g = withGap();
    g.setRtt(250);
    assert.equal(g.retryIntervalMs, 250);
    assert.deepEqual(
      pollEvery(g, 0, 1500).map(([t]) => t),
      [10, 260, 510, 760],
    );
    g.setRtt(40);
    assert.equal(g.retryIntervalMs, 100);
    g.setRtt(undefined);
    assert.equal(g.retryIntervalMs, 100);
    const h = withGap({ retryIntervalMs: 50 });
    h.setRtt(70);
    assert.deepEqual(
      pollEvery(h, 0, 200).map(([t]) => t),
      [10, 80, 150],
    );
  });

  it("stops requesting a packet once it arrives and counts it as recovered", () => {
    const g = new NackGenerator();
    g.onPacket(10, 0);
    g.onPacket(14, 0);
    assert.deepEqual(g.poll(10), [11, 12, 13]);
    g.onPacket(12, 50);
    assert.deepEqual(g.poll(110), [11, 13]);
    assert.deepEqual([g.counters.recovered, g.counters.requested], [1, 5]);
  });

  it("ignores duplicates and packets it was not waiting for", () => {
    const g = withGap();
    g.onPacket(2, 1); // duplicate of the newest
    g.onPacket(0, 1); // duplicate of an older one
    assert.equal(g.missingCount, 1);
    assert.deepEqual(g.poll(10), [1]);
    g.onPacket(1, 20);
    g.onPacket(1, 21); // duplicate recovery
    assert.deepEqual([g.counters.recovered, g.counters.reordered], [1, 0]);
  });

  it("handles the sequence number wrap", () => {
    const g = new NackGenerator();
    g.onPacket(65533, 0);
    g.onPacket(1, 0);
    assert.deepEqual(g.poll(10), [65534, 65535, 0]);
    g.onPacket(0, 20);
    assert.deepEqual(g.poll(110), [65534, 65535]);
    g.onPacket(2, 120);
    g.onPacket(65535, 120);
    assert.deepEqual(g.poll(210), [65534]);
    assert.equal(g.counters.recovered, 2);
  });

  it("gaps that arrive later are requested on their own schedule", () => {
    const g = new NackGenerator();
    g.onPacket(0, 0);
    g.onPacket(2, 0); // 1 missing since 0
    g.onPacket(5, 50); // 3, 4 missing since 50
    assert.deepEqual(pollEvery(g, 0, 200), [
      [10, [1]],
      [60, [3, 4]],
      [110, [1]],
      [160, [3, 4]],
    ]);
  });

  describe("keyframe fallback", () => {
    it("keeps at most maxMissing entries, dropping the oldest and asking for a keyframe", () => {
      const g = new NackGenerator({ maxMissing: 5 });
      g.onPacket(0, 0);
      g.onPacket(3, 0); // 1, 2
      g.onPacket(6, 0); // 4, 5
      assert.equal(g.keyframeNeeded, false);
      g.onPacket(9, 0); // 7, 8 → 6 entries, 1 dropped
      assert.equal(g.missingCount, 5);
      assert.equal(g.keyframeNeeded, true);
      assert.equal(g.counters.abandoned, 1);
      assert.deepEqual(g.poll(10), [2, 4, 5, 7, 8]);
    });

    it("tracks only the newest maxMissing of one wide gap", () => {
      const g = new NackGenerator();
      g.onPacket(0, 0);
      g.onPacket(600, 0); // 599 missing, 500 kept: 100..599
      assert.equal(g.missingCount, 500);
      assert.equal(g.counters.abandoned, 99);
      const seqs = g.poll(10);
      assert.equal(seqs.length, 500);
      assert.deepEqual([seqs[0], seqs[499]], [100, 599]);
      assert.equal(g.keyframeNeeded, true);
    });

    it("takeKeyframeNeeded reports a keyframe need once", () => {
      const g = new NackGenerator({ maxMissing: 1 });
      g.onPacket(0, 0);
      assert.equal(g.takeKeyframeNeeded(), false);
      g.onPacket(3, 0);
      assert.equal(g.takeKeyframeNeeded(), true);
      assert.equal(g.keyframeNeeded, false);
      assert.equal(g.takeKeyframeNeeded(), false);
    });

    it("does not ask for a keyframe when packets are abandoned for age or retries", () => {
      const g = withGap();
      pollEvery(g, 0, 2000);
      assert.equal(g.counters.abandoned, 1);
      assert.equal(g.keyframeNeeded, false);
    });

    it("resets instead of NACKing when the sequence jumps forward by more than maxJump", () => {
      const g = withGap({ maxMissing: 2000 });
      g.onPacket(1002, 5); // 1000 ahead of 2: still a gap of 999
      assert.equal(g.missingCount, 1000);
      assert.equal(g.keyframeNeeded, false);

      const h = withGap();
      h.onPacket(1003, 5); // 1001 ahead: reset
      assert.equal(h.missingCount, 0);
      assert.equal(h.keyframeNeeded, true);
      assert.deepEqual([h.counters.resets, h.counters.abandoned], [1, 1]);
      assert.deepEqual(h.poll(100), []);
      // The jump target is the new reference: the next packet continues without a gap.
      h.onPacket(1004, 10);
      assert.equal(h.missingCount, 0);
      h.onPacket(1006, 10);
      assert.deepEqual(h.poll(20), [1005]);
    });

    it("resets on a forward jump across the wrap", () => {
      const g = new NackGenerator({ maxJump: 100 });
      g.onPacket(65500, 0);
      g.onPacket(65, 0); // 101 ahead
      assert.deepEqual([g.missingCount, g.counters.resets], [0, 1]);
      g.onPacket(67, 0);
      assert.deepEqual(g.poll(10), [66]);
    });

    it("ignores a lone packet far behind, and restarts when the next one continues from it", () => {
      const g = new NackGenerator();
      g.onPacket(5000, 0);
      g.onPacket(5002, 0); // 5001 missing
      g.onPacket(100, 1); // stale straggler: ignored
      g.onPacket(5003, 2);
      assert.deepEqual([g.counters.resets, g.missingCount, g.keyframeNeeded], [0, 1, false]);
      g.onPacket(100, 3);
      g.onPacket(102, 3); // not consecutive: still no restart
      assert.equal(g.counters.resets, 0);
      g.onPacket(103, 4); // 102, 103: the sender restarted at 102
      assert.deepEqual([g.counters.resets, g.missingCount, g.keyframeNeeded], [1, 0, true]);
      g.onPacket(105, 5);
      assert.deepEqual(g.poll(20), [104]);
    });

    it("needs more than maxJump behind to suspect a restart", () => {
      const g = new NackGenerator({ maxJump: 100 });
      g.onPacket(500, 0);
      g.onPacket(400, 0); // exactly maxJump behind: an ordinary late packet
      g.onPacket(401, 0);
      assert.equal(g.counters.resets, 0);
      g.onPacket(399, 0); // maxJump + 1 behind: candidate, but 400 (maxJump behind) cannot confirm it
      g.onPacket(400, 0);
      assert.equal(g.counters.resets, 0);
      g.onPacket(398, 0); // maxJump + 2 behind: candidate
      g.onPacket(399, 0); // maxJump + 1 behind and continues it: restart
      assert.equal(g.counters.resets, 1);
    });

    it("forgets a restart candidate when the stream continues", () => {
      const g = new NackGenerator();
      g.onPacket(5000, 0);
      g.onPacket(100, 0); // candidate
      g.onPacket(5001, 0); // the stream goes on
      g.onPacket(101, 0); // continues the old candidate, but the stream came in between
      assert.equal(g.counters.resets, 0);
    });
  });
});
