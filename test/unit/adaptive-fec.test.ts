import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AdaptiveFec } from "../../src/media/adaptive-fec.ts";

// Fake clock: reports arrive every second (browsers send RTCP RR about that often), poll() on a 20 ms grid.

/** Runs 20 ms slots from `from` to `to`; `report(t)` gives subscriber → loss for reports sent at whole seconds. */
function run(
  fec: AdaptiveFec,
  from: number,
  to: number,
  report: (t: number) => Record<string, number>,
): { t: number; percent: number }[] {
  const changes: { t: number; percent: number }[] = [];
  let last = fec.percent;
  for (let t = from; t < to; t += 20) {
    if (t % 1000 === 0) for (const [who, loss] of Object.entries(report(t))) fec.onReport(who, loss, t);
    const p = fec.poll(t);
    if (p !== last) changes.push({ t, percent: p });
    last = p;
  }
  return changes;
}

describe("AdaptiveFec (fake clock)", () => {
  test("clean reports: FEC never turns on", () => {
    const fec = new AdaptiveFec();
    assert.deepEqual(
      run(fec, 0, 60_000, () => ({ a: 0, b: 0.004 })),
      [],
    );
    assert.equal(fec.switchesOn, 0);
  });

  test("5 % loss from one subscriber: on at once at 10 %, off 10 s after the last lossy report", () => {
    const fec = new AdaptiveFec();
    const changes = run(fec, 0, 40_000, (t) => ({ clean: 0, lossy: t >= 5000 && t < 15_000 ? 13 / 256 : 0 }));
    assert.deepEqual(changes, [
      { t: 5000, percent: 10 },
      // The lossy report of 14 000 stands until the clean one of 15 000 replaces it (last seen at 14 980).
      { t: 24_980, percent: 0 },
    ]);
    assert.equal(fec.switchesOn, 1);
  });

  test("heavier loss raises the expected loss (capped), and it follows the worst fresh report down", () => {
    const fec = new AdaptiveFec();
    const changes = run(fec, 0, 8000, (t) => ({ a: t < 3000 ? 0.2 : 0.02, b: t === 0 ? 0.9 : 0 }));
    assert.deepEqual(changes, [
      { t: 0, percent: 30 }, // 90 % capped at 30
      { t: 1000, percent: 20 },
      { t: 3000, percent: 10 },
    ]);
  });

  test("a subscriber that stops reporting stops counting after staleMs", () => {
    const fec = new AdaptiveFec({ staleMs: 5000, offAfterMs: 2000 });
    fec.onReport("gone", 0.1, 0);
    assert.equal(fec.poll(0), 10);
    assert.equal(fec.poll(4980), 10);
    // Stale at 5 000 (no more loss counted); off 2 s after the last time loss was seen (4 980).
    assert.equal(fec.poll(5020), 10);
    assert.equal(fec.poll(6980), 0);
  });

  test("flapping loss does not toggle FEC on every report (hysteresis)", () => {
    const fec = new AdaptiveFec();
    const changes = run(fec, 0, 30_000, (t) => ({ a: (t / 1000) % 2 === 0 ? 0.05 : 0 }));
    assert.deepEqual(changes, [{ t: 0, percent: 10 }]);
  });

  test("rejects impossible settings; ignores NaN reports", () => {
    assert.throws(() => new AdaptiveFec({ minOnPercent: 0 }), RangeError);
    assert.throws(() => new AdaptiveFec({ minOnPercent: 20, maxPercent: 10 }), RangeError);
    const fec = new AdaptiveFec();
    fec.onReport("x", Number.NaN, 0);
    assert.equal(fec.poll(0), 0);
  });
});
