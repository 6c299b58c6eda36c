import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackResponder } from "../../src/media/nack-responder.ts";

describe("NackResponder", () => {
  it("has the documented defaults and validates its arguments", () => {
    const r = new NackResponder();
    assert.deepEqual([r.minIntervalMs, r.maxPerSecond, r.burst], [100, 500, 500]);
    assert.equal(new NackResponder({ maxPerSecond: 50 }).burst, 50);
    assert.throws(() => new NackResponder({ minIntervalMs: -1 }), RangeError);
    assert.throws(() => new NackResponder({ maxPerSecond: 0 }), RangeError);
    assert.throws(() => new NackResponder({ burst: 0.5 }), RangeError);
    assert.throws(() => r.shouldResend(65536, 0), RangeError);
    assert.throws(() => r.shouldResend(-1, 0), RangeError);
    assert.throws(() => r.shouldResend(2.5, 0), RangeError);
  });

  it("refuses the same sequence number again within the minimum interval", () => {
    const r = new NackResponder();
    assert.equal(r.shouldResend(7, 1000), true);
    assert.equal(r.shouldResend(7, 1050), false);
    assert.equal(r.shouldResend(7, 1099), false);
    assert.equal(r.shouldResend(7, 1100), true);
    // The window restarts at the last resend, not at the first.
    assert.equal(r.shouldResend(7, 1199), false);
    assert.equal(r.shouldResend(7, 1200), true);
    assert.deepEqual(r.counters, { requests: 6, resent: 3, refusedRepeat: 3, refusedRate: 0 });
  });

  it("throttles each sequence number independently", () => {
    const r = new NackResponder();
    assert.deepEqual(
      [r.shouldResend(1, 0), r.shouldResend(2, 0), r.shouldResend(1, 10), r.shouldResend(3, 10)],
      [true, true, false, true],
    );
  });

  it("uses the RTT as the interval once known, and the default again when it is cleared", () => {
    const r = new NackResponder();
    r.setRtt(30);
    assert.equal(r.minIntervalMs, 30);
    assert.equal(r.shouldResend(5, 0), true);
    assert.equal(r.shouldResend(5, 29), false);
    assert.equal(r.shouldResend(5, 30), true);
    r.setRtt(250);
    assert.equal(r.shouldResend(5, 279), false);
    assert.equal(r.shouldResend(5, 280), true);
    r.setRtt(undefined);
    assert.equal(r.minIntervalMs, 100);
    r.setRtt(Number.NaN);
    assert.equal(r.minIntervalMs, 100);
    const s = new NackResponder({ minIntervalMs: 40 });
    s.setRtt(-5);
    assert.equal(s.minIntervalMs, 40);
  });

  it("caps the rate with a token bucket that starts full", () => {
    const r = new NackResponder({ maxPerSecond: 10 });
    const first = Array.from({ length: 11 }, (_, i) => r.shouldResend(i, 0));
    assert.deepEqual(first, [...Array(10).fill(true), false]);
    // 10/s = one token per 100 ms.
    assert.equal(r.shouldResend(20, 50), false);
    assert.equal(r.shouldResend(21, 100), true);
    assert.equal(r.shouldResend(22, 100), false);
    assert.equal(r.shouldResend(23, 150), false);
    assert.equal(r.shouldResend(24, 200), true);
    assert.deepEqual(r.counters, { requests: 16, resent: 12, refusedRepeat: 0, refusedRate: 4 });
  });

  it("limits a burst to its bucket size and refills no further than it", () => {
    const r = new NackResponder({ maxPerSecond: 500, burst: 2 });
    assert.deepEqual([r.shouldResend(1, 0), r.shouldResend(2, 0), r.shouldResend(3, 0)], [true, true, false]);
    assert.equal(r.shouldResend(3, 2), true); // 2 ms at 500/s = 1 token
    // A long idle period refills to 2, not to 500.
    const after = Array.from({ length: 3 }, (_, i) => r.shouldResend(100 + i, 10_000));
    assert.deepEqual(after, [true, true, false]);
  });

  it("does not charge the repeat window for a request refused by the rate limit", () => {
    const r = new NackResponder({ maxPerSecond: 10, burst: 1 });
    assert.equal(r.shouldResend(1, 0), true);
    assert.equal(r.shouldResend(2, 0), false); // rate
    assert.equal(r.shouldResend(2, 100), true); // not refused as a repeat
    assert.deepEqual(r.counters, { requests: 3, resent: 2, refusedRepeat: 0, refusedRate: 1 });
  });

  it("does not spend tokens on repeats", () => {
    const r = new NackResponder({ maxPerSecond: 10, burst: 2 });
    assert.equal(r.shouldResend(1, 0), true);
    for (let i = 0; i < 50; i++) assert.equal(r.shouldResend(1, 1), false);
    assert.equal(r.shouldResend(2, 1), true);
    assert.equal(r.counters.refusedRepeat, 50);
  });

  it("adds no tokens when time goes backwards", () => {
    const r = new NackResponder({ maxPerSecond: 10, burst: 1 });
    assert.equal(r.shouldResend(1, 1000), true);
    assert.equal(r.shouldResend(2, 500), false);
    assert.equal(r.shouldResend(3, 1099), false);
    assert.equal(r.shouldResend(3, 1100), true);
  });

  it("bounds a NACK storm: 1000 sequence numbers every 10 ms for a second", () => {
    const r = new NackResponder();
    for (let t = 0; t < 1000; t += 10) {
      for (let seq = 0; seq < 1000; seq++) r.shouldResend(seq, t);
    }
    // Resent: 500 from the full bucket, then 5 tokens per 10 ms in each of the 99 later rounds.
    // Repeats: rounds 1..9 see the 500 of round 0 plus 5 per round since (4500 + 5 × 36 = 4680); rounds
    // 10..99 see only the 45 resent in the previous 9 rounds (90 × 45 = 4050). The rest hit the rate.
    assert.deepEqual(r.counters, {
      requests: 100_000,
      resent: 995,
      refusedRepeat: 8730,
      refusedRate: 90_275,
    });
    // Only the resends of the last 100 ms are remembered: rounds 900..990, 5 each.
    assert.equal(r.tracked, 50);
  });

  it("forgets old resends but still refuses recent ones after many distinct sequence numbers", () => {
    const r = new NackResponder({ maxPerSecond: 100_000 });
    for (let seq = 0; seq < 65536; seq++) assert.equal(r.shouldResend(seq, seq / 1000), true);
    // Every sequence number was resent once, seq at seq/1000 ms: at 100 ms the last one (65.535 ms) is
    // still inside its window and the first one (0 ms) just left it.
    assert.equal(r.shouldResend(65535, 100), false);
    assert.equal(r.shouldResend(0, 100), true);
    assert.equal(r.shouldResend(0, 150), false);
  });
});
