import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MediaScheduler } from "../../src/media/scheduler.ts";
import { RtcpDriver, type RtcpTickable } from "../../src/rtc/rtcp-driver.ts";
import { FakeClock } from "../helpers/fake-clock.ts";

// One scheduler registration drives every transport's RTCP: a coarse 100 ms cadence for all, the 20 ms
// cadence only while a transport asks for it (loss being recovered). Fake clock, no real timers.

function setup() {
  const clock = new FakeClock(0);
  const scheduler = new MediaScheduler({ clock, timers: clock });
  const driver = new RtcpDriver(scheduler);
  const tickable = (name: string, hotFor = 0) => {
    const calls: number[] = [];
    let remaining = hotFor;
    const t: RtcpTickable & { calls: number[]; heat(n: number): void } = {
      calls,
      rtcpTick(now) {
        calls.push(now);
        return remaining-- > 0;
      },
      heat(n) {
        remaining = n;
      },
    };
    return Object.assign(t, { name });
  };
  return { clock, scheduler, driver, tickable };
}

describe("RtcpDriver", () => {
  it("runs every transport every fifth 20 ms slot, with one scheduler registration", () => {
    const { clock, scheduler, driver, tickable } = setup();
    const a = tickable("a");
    const b = tickable("b");
    driver.add(a);
    driver.add(b);
    assert.equal(scheduler.stats.streams, 1);
    clock.advance(1000);
    assert.equal(a.calls.length, 11, "slots 0, 5, 10 … 50");
    assert.equal(b.calls.length, 11);
    for (let i = 1; i < a.calls.length; i++) assert.equal(a.calls[i] - a.calls[i - 1], 100);
  });

  it("a woken transport gets every slot until it says it is done, then back to the coarse cadence", () => {
    const { clock, driver, tickable } = setup();
    const quiet = tickable("quiet");
    const busy = tickable("busy");
    driver.add(quiet);
    driver.add(busy);
    clock.advance(100);
    const before = busy.calls.length;
    busy.heat(3);
    driver.wake(busy);
    clock.advance(200);
    // Woken: one call per 20 ms slot while it returns true (3 times), then the call that returns false,
    // then only the coarse ones.
    const during = busy.calls.slice(before);
    const fine = during.filter((t, i) => i > 0 && t - during[i - 1] === 20).length;
    assert.ok(fine >= 3, `fine-cadence calls: ${JSON.stringify(during)}`);
    assert.deepEqual(quiet.calls, [0, 100, 200, 300], "the quiet one stayed on 100 ms");
  });

  it("unregisters from the scheduler when the last transport leaves; a throwing transport harms no other", () => {
    const { clock, scheduler, driver, tickable } = setup();
    const errors: unknown[] = [];
    const d2 = new RtcpDriver(scheduler, (e) => errors.push(e));
    const ok = tickable("ok");
    d2.add({
      rtcpTick() {
        throw new Error("boom");
      },
    });
    d2.add(ok);
    clock.advance(200);
    assert.deepEqual(ok.calls, [0, 100, 200]);
    assert.equal(errors.length, 3);
    const t = tickable("t");
    driver.add(t);
    driver.remove(t);
    assert.equal(driver.size, 0);
    assert.equal(scheduler.stats.streams, 1, "only d2's registration remains");
  });
});
