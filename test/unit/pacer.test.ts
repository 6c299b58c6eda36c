import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FRAME_VALUES } from "../../src/media/audio-format.ts";
import { Pacer } from "../../src/media/pacer.ts";
import { seededRandom } from "../helpers/signals.ts";

/** A frame tagged with its index so order and identity can be checked. */
function tagged(i: number): Int16Array {
  const f = new Int16Array(FRAME_VALUES);
  f[0] = i & 0x7fff;
  f[1] = (i >> 15) & 0x7fff;
  return f;
}

function tagOf(f: Int16Array): number {
  return f[0] | (f[1] << 15);
}

describe("Pacer", () => {
  it("has the SPEC defaults (60 s high water, low water half of it) and validates options", () => {
    const p = new Pacer();
    assert.equal(p.highWaterMs, 60_000);
    assert.equal(p.lowWaterMs, 30_000);
    assert.equal(new Pacer({ highWaterMs: 1000 }).lowWaterMs, 500);
    assert.equal(new Pacer({ highWaterMs: 1000, lowWaterMs: 900 }).lowWaterMs, 900);
    assert.throws(() => new Pacer({ highWaterMs: 0 }), RangeError);
    assert.throws(() => new Pacer({ highWaterMs: 100, lowWaterMs: 200 }), RangeError);
    assert.throws(() => new Pacer({ highWaterMs: 100, lowWaterMs: -1 }), RangeError);
  });

  it("rejects frames that are not exactly 20 ms of stereo", () => {
    const p = new Pacer();
    assert.throws(() => p.enqueue(new Int16Array(FRAME_VALUES - 1)), RangeError);
    assert.throws(() => p.enqueue(new Int16Array(960)), RangeError);
    assert.equal(p.queuedFrames, 0);
  });

  it("plays frames in order, one per slot, and returns null when empty", () => {
    const p = new Pacer();
    for (let i = 0; i < 3; i++) p.enqueue(tagged(i));
    assert.equal(p.queuedMs, 60);
    const out = [p.next(), p.next(), p.next(), p.next()];
    assert.deepEqual(
      out.map((o) => (o.frame ? tagOf(o.frame) : null)),
      [0, 1, 2, null],
    );
    assert.equal(p.queuedMs, 0);
  });

  it("returns the very frame objects enqueued (nothing copied, nothing altered)", () => {
    const p = new Pacer();
    const f = tagged(7);
    p.enqueue(f);
    assert.equal(p.next().frame, f);
  });

  describe("afterSilence (RTP marker)", () => {
    it("is true for the first frame at the very start, even without empty slots before it", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.enqueue(tagged(1));
      assert.deepEqual([p.next().afterSilence, p.next().afterSilence], [true, false]);
    });

    it("is true for the first frame after one or more empty slots, and only for it", () => {
      const p = new Pacer();
      const marks: Array<boolean | null> = [];
      const step = () => {
        const r = p.next();
        marks.push(r.frame ? r.afterSilence : null);
      };
      step(); // empty start
      step();
      p.enqueue(tagged(0));
      p.enqueue(tagged(1));
      step();
      step();
      step(); // empty
      p.enqueue(tagged(2));
      step();
      p.enqueue(tagged(3));
      step(); // continuous: no gap since the previous frame
      assert.deepEqual(marks, [null, null, true, false, null, true, false]);
    });

    it("is false for a new segment that follows the previous one without a gap", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.endSegment();
      p.enqueue(tagged(1));
      assert.equal(p.next().afterSilence, true);
      assert.equal(p.next().afterSilence, false);
    });

    it("empty slots report afterSilence false", () => {
      const p = new Pacer();
      assert.deepEqual(p.next(), { frame: null, afterSilence: false });
    });
  });

  describe("underruns", () => {
    it("does not count empty slots before any audio", () => {
      const p = new Pacer();
      for (let i = 0; i < 10; i++) p.next();
      const c = p.counters;
      assert.equal(c.silentSlots, 10);
      assert.equal(c.underruns, 0);
      assert.equal(c.underrunEpisodes, 0);
    });

    it("counts each empty slot inside an open segment, and each stall as one episode", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.next();
      p.next(); // underrun 1
      p.next(); // underrun 2
      p.enqueue(tagged(1));
      p.next();
      p.next(); // underrun 3, second episode
      const c = p.counters;
      assert.equal(c.underruns, 3);
      assert.equal(c.underrunEpisodes, 2);
      assert.equal(c.silentSlots, 3);
    });

    it("does not count the silence after an explicitly ended segment has played out", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.enqueue(tagged(1));
      p.endSegment(); // ended while audio is still queued: the queued audio still plays
      assert.ok(p.next().frame);
      assert.ok(p.next().frame);
      for (let i = 0; i < 5; i++) assert.equal(p.next().frame, null);
      assert.equal(p.counters.underruns, 0);
      assert.equal(p.counters.silentSlots, 5);
      assert.equal(p.segmentOpen, false);
    });

    it("counts an underrun when audio arrives after endSegment and then runs dry", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.endSegment();
      p.enqueue(tagged(1)); // a new segment opens
      p.next();
      p.next();
      p.next(); // empty inside the new, open segment
      assert.equal(p.counters.underruns, 1);
    });

    it("ending a segment during a stall ends the stall", () => {
      const p = new Pacer();
      p.enqueue(tagged(0));
      p.next();
      p.next(); // underrun
      p.endSegment();
      p.next(); // ordinary silence
      p.enqueue(tagged(1));
      p.next();
      p.next(); // underrun in a new episode
      assert.equal(p.counters.underruns, 2);
      assert.equal(p.counters.underrunEpisodes, 2);
    });
  });

  describe("flow control", () => {
    it("asks to pause once at high water and to resume once at low water, never dropping audio", () => {
      const p = new Pacer({ highWaterMs: 1000, lowWaterMs: 400 });
      const total = 120; // 2.4 s, more than twice the high-water mark
      const pausedAt: number[] = [];
      for (let i = 0; i < total; i++) {
        p.enqueue(tagged(i));
        if (p.wantsPause()) pausedAt.push(p.queuedMs);
      }
      assert.deepEqual(pausedAt, [1000], "edge-triggered: exactly one pause at 1000 ms");
      assert.equal(p.readingPaused, true);
      assert.equal(p.queuedMs, 2400, "the pacer itself never discards");

      const resumedAt: number[] = [];
      const played: number[] = [];
      for (let slot = 0; slot < total + 5; slot++) {
        const { frame } = p.next();
        if (frame) played.push(tagOf(frame));
        if (p.wantsResume()) resumedAt.push(p.queuedMs);
      }
      assert.deepEqual(resumedAt, [400]);
      assert.equal(p.readingPaused, false);
      assert.deepEqual(
        played,
        Array.from({ length: total }, (_, i) => i),
      );
      const c = p.counters;
      assert.equal(c.framesEnqueued, total);
      assert.equal(c.framesPlayed, total);
      assert.equal(c.maxQueuedMs, 2400);
      assert.equal(c.pauses, 1);
    });

    it("does not ask to resume when it never paused, nor to pause twice", () => {
      const p = new Pacer({ highWaterMs: 100, lowWaterMs: 40 });
      assert.equal(p.wantsResume(), false);
      for (let i = 0; i < 5; i++) p.enqueue(tagged(i));
      assert.equal(p.wantsPause(), true);
      assert.equal(p.wantsPause(), false);
      p.next(); // 80 ms queued: still above low water
      assert.equal(p.wantsResume(), false);
      p.next();
      p.next(); // 40 ms
      assert.equal(p.wantsResume(), true);
      assert.equal(p.wantsResume(), false);
      p.enqueue(tagged(5));
      p.enqueue(tagged(6));
      p.enqueue(tagged(7)); // 100 ms again
      assert.equal(p.wantsPause(), true);
      assert.equal(p.counters.pauses, 2);
    });

    it("pauses at the default 60 s", () => {
      const p = new Pacer();
      let pausedAtFrames = -1;
      for (let i = 0; i < 4000 && pausedAtFrames < 0; i++) {
        p.enqueue(tagged(i));
        if (p.wantsPause()) pausedAtFrames = p.queuedFrames;
      }
      assert.equal(pausedAtFrames, 3000);
    });
  });

  it("matches a reference model under random interleavings (nothing lost, reordered or duplicated)", () => {
    const random = seededRandom(99);
    const p = new Pacer({ highWaterMs: 2000, lowWaterMs: 500 });
    const model: number[] = [];
    let nextTag = 0;
    let expectUnderruns = 0;
    let open = false;
    let lastSilent = true;
    let maxQueued = 0;
    let paused = false;
    let underrunSeen = false;
    for (let step = 0; step < 50_000; step++) {
      const r = random();
      if (r < 0.15) {
        // Mostly a frame or two, sometimes a burst far above the high-water mark.
        const burst = 1 + Math.floor(random() * (random() < 0.01 ? 200 : 3));
        for (let k = 0; k < burst; k++) {
          p.enqueue(tagged(nextTag));
          model.push(nextTag++);
          open = true;
        }
        maxQueued = Math.max(maxQueued, model.length * 20);
        const shouldPause: boolean = !paused && model.length * 20 >= 2000;
        assert.equal(p.wantsPause(), shouldPause);
        if (shouldPause) paused = true;
      } else if (r < 0.17) {
        p.endSegment();
        open = false;
      } else {
        const { frame, afterSilence } = p.next();
        const expected = model.shift();
        if (expected === undefined) {
          assert.equal(frame, null);
          if (open) {
            expectUnderruns++;
            underrunSeen = true;
          }
          lastSilent = true;
        } else {
          assert.ok(frame);
          assert.equal(tagOf(frame), expected);
          assert.equal(afterSilence, lastSilent);
          lastSilent = false;
        }
        const shouldResume: boolean = paused && model.length * 20 <= 500;
        assert.equal(p.wantsResume(), shouldResume);
        if (shouldResume) paused = false;
      }
      assert.equal(p.queuedFrames, model.length);
      assert.equal(p.readingPaused, paused);
    }
    assert.ok(underrunSeen && nextTag > 5000 && p.counters.pauses > 0, "the walk exercised every path");
    const c = p.counters;
    assert.equal(c.framesEnqueued, nextTag);
    assert.equal(c.framesPlayed + p.queuedFrames, nextTag);
    assert.equal(c.underruns, expectUnderruns);
    assert.equal(c.maxQueuedMs, maxQueued);
  });
});
