import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  MediaScheduler,
  type MediaSchedulerOptions,
  type Registration,
  realClock,
  realTimers,
  type TimerHost,
} from "../../src/media/scheduler.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { seededRandom } from "../helpers/signals.ts";

interface TickRecord {
  slot: number;
  slotTime: number;
  now: number;
}

function recorder(): {
  ticks: TickRecord[];
  stream: { tick(slot: number, slotTime: number, now: number): void };
} {
  const ticks: TickRecord[] = [];
  return { ticks, stream: { tick: (slot, slotTime, now) => ticks.push({ slot, slotTime, now }) } };
}

function makeScheduler(clock: FakeClock, extra: Partial<MediaSchedulerOptions> = {}): MediaScheduler {
  return new MediaScheduler({ clock, timers: clock, ...extra });
}

describe("FakeClock", () => {
  it("fires timers in deadline order with now() = deadline, including timers added while advancing", () => {
    const clock = new FakeClock(0);
    const log: string[] = [];
    clock.setTimeout(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => {
      log.push(`a@${clock.now()}`);
      clock.setTimeout(() => log.push(`c@${clock.now()}`), 5);
    }, 10);
    clock.setTimeout(() => log.push(`d@${clock.now()}`), 20);
    const h = clock.setTimeout(() => log.push("never"), 15);
    clock.clearTimeout(h);
    assert.equal(clock.advance(100), 4);
    assert.deepEqual(log, ["a@10", "c@15", "b@20", "d@20"]);
    assert.equal(clock.now(), 100);
  });

  it("jump() moves time without firing; advance(0) then fires overdue timers late", () => {
    const clock = new FakeClock(0);
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 10);
    clock.jump(50);
    assert.deepEqual(seen, []);
    clock.advance(0);
    assert.deepEqual(seen, [50]);
  });
});

describe("MediaScheduler", () => {
  it("ticks slot n at exactly t0 + n × period (absolute deadlines)", () => {
    const clock = new FakeClock(1000);
    const scheduler = makeScheduler(clock);
    const { ticks, stream } = recorder();
    const reg = scheduler.register(stream);
    assert.equal(reg.startMs, 1000, "registering on a grid instant starts there");
    assert.equal(ticks.length, 0, "register() never ticks synchronously");
    clock.advance(1000);
    assert.equal(ticks.length, 51); // slots 0..50 are due in [1000, 2000]
    ticks.forEach((t, n) => {
      assert.equal(t.slot, n);
      assert.equal(t.slotTime, 1000 + n * 20);
      assert.equal(t.now, t.slotTime);
    });
    assert.equal(reg.nextSlot, 51);
    assert.equal(scheduler.stats.lateSlots, 0);
  });

  it("aligns a late registration to the scheduler's grid", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    clock.advance(47);
    const { ticks, stream } = recorder();
    const reg = scheduler.register(stream);
    assert.equal(reg.startMs, 60);
    clock.advance(13);
    assert.deepEqual(ticks, [{ slot: 0, slotTime: 60, now: 60 }]);
  });

  it("catches up after a late wake by ticking every missed slot, in order, then stays on the grid", () => {
    const clock = new FakeClock(0);
    const lateness: number[] = [];
    const scheduler = makeScheduler(clock, { onLateness: (ms) => lateness.push(ms) });
    const { ticks, stream } = recorder();
    scheduler.register(stream);
    clock.advance(40); // slots 0, 1, 2
    assert.equal(ticks.length, 3);
    clock.jump(95); // event loop blocked: now = 135; slot 3 was due at 60
    clock.advance(0);
    assert.deepEqual(
      ticks.slice(3).map((t) => [t.slot, t.slotTime, t.now]),
      [
        [3, 60, 135],
        [4, 80, 135],
        [5, 100, 135],
        [6, 120, 135],
      ],
    );
    assert.equal(lateness.at(-1), 75);
    assert.equal(scheduler.stats.lateSlots, 4, "75, 55, 35 and 15 ms late all exceed the 5 ms threshold");
    assert.equal(scheduler.stats.maxLatenessMs, 75);
    assert.equal(clock.nextDeadline, 140, "the next wake is the absolute slot 7 deadline, not now + 20");
    clock.advance(5);
    assert.deepEqual(ticks.at(-1), { slot: 7, slotTime: 140, now: 140 });
  });

  it("counts a slot as late only beyond lateThresholdMs", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock, { lateThresholdMs: 10 });
    scheduler.register({ tick() {} });
    clock.advance(0); // slot 0 on time
    clock.jump(30); // slot 1 (due 20) runs at 30: 10 ms late, not > 10
    clock.advance(0);
    assert.equal(scheduler.stats.lateSlots, 0);
    clock.jump(31); // now 61: slot 2 (due 40) 21 ms late, slot 3 (due 60) 1 ms late
    clock.advance(0);
    assert.equal(scheduler.stats.lateSlots, 1);
    assert.equal(scheduler.stats.slotsRun, 4);
  });

  it("serves many streams with one timer", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    const recs = Array.from({ length: 200 }, () => recorder());
    const random = seededRandom(1);
    for (const r of recs) {
      clock.advance(Math.floor(random() * 7)); // registrations scattered in time
      scheduler.register(r.stream);
      assert.ok(clock.pendingTimers <= 1);
    }
    const before = clock.timersCreated;
    clock.advance(1000);
    assert.equal(clock.pendingTimers, 1);
    const wakes = clock.timersCreated - before;
    assert.ok(wakes <= 51, `one timer per period for all streams, got ${wakes} timers for 1 s`);
    for (const r of recs) {
      assert.ok(r.ticks.length >= 50);
      r.ticks.forEach((t, n) => {
        assert.equal(t.slot, n);
        assert.equal(t.now, t.slotTime, "streams on the shared grid are never late with a punctual clock");
      });
    }
  });

  it("cancel() stops ticks, is idempotent, and disarms the timer when nothing is left", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    const a = recorder();
    const b = recorder();
    const regA = scheduler.register(a.stream);
    const regB = scheduler.register(b.stream);
    clock.advance(40);
    regA.cancel();
    regA.cancel();
    assert.equal(regA.cancelled, true);
    clock.advance(40);
    assert.equal(a.ticks.length, 3);
    assert.equal(b.ticks.length, 5);
    regB.cancel();
    assert.equal(clock.pendingTimers, 0);
    assert.equal(scheduler.stats.streams, 0);
    clock.advance(100);
    assert.equal(b.ticks.length, 5);
  });

  it("a stream can cancel itself, or another stream, from inside tick", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    const other = recorder();
    let self: Registration | undefined;
    let otherReg: Registration | undefined;
    let selfTicks = 0;
    self = scheduler.register({
      tick(slot) {
        selfTicks++;
        if (slot === 2) {
          self?.cancel();
          otherReg?.cancel();
        }
      },
    });
    otherReg = scheduler.register(other.stream);
    clock.jump(100); // catch-up: slots 0..5 due, but the cancel at slot 2 must stop the rest
    clock.advance(0);
    assert.equal(selfTicks, 3);
    assert.equal(other.ticks.length, 0, "cancelled before its turn in the same wake");
    assert.equal(clock.pendingTimers, 0);
  });

  it("a throwing stream is reported and does not stop other streams (or its own later slots)", () => {
    const clock = new FakeClock(0);
    const errors: Array<{ error: unknown; reg: Registration }> = [];
    const scheduler = makeScheduler(clock, { onError: (error, reg) => errors.push({ error, reg }) });
    let badTicks = 0;
    const bad = scheduler.register({
      tick() {
        badTicks++;
        throw new Error("boom");
      },
    });
    const good = recorder();
    scheduler.register(good.stream);
    clock.advance(100);
    assert.equal(good.ticks.length, 6);
    assert.equal(badTicks, 6);
    assert.equal(errors.length, 6);
    assert.equal(errors[0].reg, bad);
    assert.equal((errors[0].error as Error).message, "boom");
    assert.equal(scheduler.stats.errors, 6);
  });

  it("an onError or onLateness callback that throws does not stop media", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock, {
      onError: () => {
        throw new Error("reporter broke");
      },
      onLateness: () => {
        throw new Error("metrics broke");
      },
    });
    scheduler.register({
      tick() {
        throw new Error("boom");
      },
    });
    const good = recorder();
    scheduler.register(good.stream);
    clock.advance(100);
    assert.equal(good.ticks.length, 6);
    assert.equal(clock.pendingTimers, 1);
  });

  it("has no drift over 10 minutes of simulated time with jittery, late timers", () => {
    const clock = new FakeClock(0);
    const random = seededRandom(42);
    // Timers that fire 0–12 ms late, like a busy event loop.
    const jittery: TimerHost = {
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms + random() * 12),
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const scheduler = new MediaScheduler({ clock, timers: jittery });
    const recs = [recorder(), recorder(), recorder()];
    for (const r of recs) scheduler.register(r.stream);
    const tenMinutes = 10 * 60 * 1000;
    clock.advance(tenMinutes);
    for (const r of recs) {
      // Every slot due by the end ran exactly once, in order, at its absolute time.
      const last = r.ticks.at(-1)!;
      assert.ok(last.slot >= tenMinutes / 20 - 1, `reached slot ${last.slot}`);
      assert.equal(r.ticks.length, last.slot + 1);
      r.ticks.forEach((t, n) => {
        assert.equal(t.slot, n);
        assert.equal(t.slotTime, n * 20);
        assert.ok(
          t.now >= t.slotTime - 1 && t.now - t.slotTime < 13,
          `slot ${n} ran ${t.now - t.slotTime} ms late`,
        );
      });
    }
    assert.ok(scheduler.stats.lateSlots > 0, "the jitter did make some slots late");
  });

  it("streams registered from inside a tick start on a later grid instant without extra timers", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    const child = recorder();
    let childReg: Registration | undefined;
    scheduler.register({
      tick(slot) {
        if (slot === 1) childReg = scheduler.register(child.stream);
      },
    });
    clock.advance(20); // slot 1 at t=20 registers the child; t=20 is on the grid
    assert.ok(childReg);
    assert.equal(childReg.startMs, 20);
    assert.equal(clock.pendingTimers, 1);
    clock.advance(40);
    assert.deepEqual(
      child.ticks.map((t) => t.slotTime),
      [20, 40, 60],
    );
  });

  it("maxCatchUpSlots bounds a catch-up burst and reports the skipped slots", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock, { maxCatchUpSlots: 3 });
    const { ticks, stream } = recorder();
    scheduler.register(stream);
    clock.advance(0);
    clock.jump(200); // slots 1..10 due
    clock.advance(0);
    assert.deepEqual(
      ticks.map((t) => t.slot),
      [0, 8, 9, 10],
    );
    assert.equal(scheduler.stats.skippedSlots, 7);
  });

  it("tolerates a timer that fires slightly early", () => {
    const clock = new FakeClock(0);
    const earlyTimers: TimerHost = {
      setTimeout: (fn, ms) => clock.setTimeout(fn, Math.max(0, ms - 0.5)),
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const scheduler = new MediaScheduler({ clock, timers: earlyTimers });
    const { ticks, stream } = recorder();
    scheduler.register(stream);
    const created = clock.timersCreated;
    clock.advance(200);
    assert.equal(ticks.length, 11);
    assert.ok(clock.timersCreated - created <= 11, "no extra wake-up per slot for a 0.5 ms early fire");
  });

  it("close() cancels everything and refuses new streams", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock);
    const a = recorder();
    const reg = scheduler.register(a.stream);
    clock.advance(20);
    scheduler.close();
    scheduler.close();
    assert.equal(reg.cancelled, true);
    assert.equal(clock.pendingTimers, 0);
    clock.advance(100);
    assert.equal(a.ticks.length, 2);
    assert.throws(() => scheduler.register(a.stream), /closed/);
  });

  it("rejects invalid options", () => {
    const clock = new FakeClock(0);
    assert.throws(() => makeScheduler(clock, { periodMs: 0 }), RangeError);
    assert.throws(() => makeScheduler(clock, { periodMs: Number.NaN }), RangeError);
    assert.throws(() => makeScheduler(clock, { maxCatchUpSlots: 0 }), RangeError);
  });

  it("runs on the real clock and timers (smoke test)", async () => {
    const scheduler = new MediaScheduler({ clock: realClock, timers: realTimers });
    const { ticks, stream } = recorder();
    const reg = scheduler.register(stream);
    await sleep(230); // a ref'd timer keeps the test alive: the scheduler's own timer is unref'd
    const now = realClock.now();
    scheduler.close();
    // Slots due by now (with the 1 ms early tolerance); a wake may still have been pending under load.
    const due = Math.floor((now + 1 - reg.startMs) / 20) + 1;
    assert.ok(due >= 11, `${due} slots due after 230 ms`);
    assert.ok(ticks.length <= due && ticks.length >= due - 3, `${ticks.length} ticks for ${due} due slots`);
    ticks.forEach((t, n) => {
      assert.equal(t.slot, n);
      assert.equal(t.slotTime, reg.startMs + n * 20);
      assert.ok(t.now >= t.slotTime - 1);
    });
  });
});

describe("MediaScheduler phases", () => {
  it("spreads streams over evenly spaced phases, each still on its own absolute 20 ms clock", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock, { phases: 10 });
    const recs = Array.from({ length: 20 }, () => recorder());
    for (const r of recs) scheduler.register(r.stream);
    clock.advance(1000);
    const starts = recs.map((r) => r.ticks[0].slotTime);
    // Two streams per phase, phases 2 ms apart.
    const perPhase = new Map<number, number>();
    for (const t of starts) perPhase.set(t % 20, (perPhase.get(t % 20) ?? 0) + 1);
    assert.deepEqual(
      [...perPhase.entries()].sort((a, b) => a[0] - b[0]),
      [0, 2, 4, 6, 8, 10, 12, 14, 16, 18].map((p) => [p, 2]),
    );
    for (const r of recs) {
      r.ticks.forEach((t, i) => {
        assert.equal(t.slot, i, "every slot once, in order");
        assert.equal(t.slotTime, r.ticks[0].slotTime + i * 20, "absolute slot times");
        assert.ok(t.now - t.slotTime <= 1, "run on time");
      });
    }
    // A wake serves one phase only: at most two ticks per wake.
    assert.ok(scheduler.stats.wakes >= 480, `one wake per phase instant (${scheduler.stats.wakes})`);
    scheduler.close();
  });

  it("a cancelled stream frees its phase for the next registration", () => {
    const clock = new FakeClock(0);
    const scheduler = makeScheduler(clock, { phases: 4 });
    const regs = Array.from({ length: 4 }, () => scheduler.register(recorder().stream));
    regs[2].cancel();
    const r = recorder();
    scheduler.register(r.stream);
    clock.advance(100);
    assert.equal(r.ticks[0].slotTime % 20, regs[2].startMs % 20, "the freed phase is reused");
    scheduler.close();
  });
});
