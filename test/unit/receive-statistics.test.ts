import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReceiveStatistics, type ReportBlock } from "../../src/media/receive-statistics.ts";

const SSRC = 0x11223344;

/** Feeds sequence numbers with perfect 20 ms / 160-tick spacing at 8 kHz, so jitter stays 0. */
function feed(stats: ReceiveStatistics, seqs: number[], startMs = 0): void {
  for (const seq of seqs) {
    // Timestamp and arrival follow the sequence number, so reordered packets carry consistent timing.
    stats.onPacket(seq, seq * 160, startMs + seq * 20, 8000, 100);
  }
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let s = from; s <= to; s++) out.push(s);
  return out;
}

/** Only the loss-related fields, to keep assertions about sequence accounting focused. */
function loss(block: ReportBlock | undefined) {
  assert.ok(block);
  return {
    fractionLost: block.fractionLost,
    packetsLost: block.packetsLost,
    highestSequence: block.highestSequence,
  };
}

describe("ReceiveStatistics", () => {
  it("validates its arguments", () => {
    assert.throws(() => new ReceiveStatistics(-1), RangeError);
    assert.throws(() => new ReceiveStatistics(2 ** 32), RangeError);
    assert.throws(() => new ReceiveStatistics(1, { maxMisorder: 0 }), RangeError);
    assert.throws(() => new ReceiveStatistics(1, { maxDropout: 0 }), RangeError);
    assert.throws(() => new ReceiveStatistics(1, { maxDropout: 65500, maxMisorder: 100 }), RangeError);
    const s = new ReceiveStatistics(1);
    assert.equal(s.maxDropout, 3000);
    assert.equal(s.maxMisorder, 100);
    assert.throws(() => s.onPacket(65536, 0, 0, 8000), RangeError);
    assert.throws(() => s.onPacket(-1, 0, 0, 8000), RangeError);
    assert.throws(() => s.onPacket(1.5, 0, 0, 8000), RangeError);
    assert.throws(() => s.onPacket(1, 0, 0, 0), RangeError);
  });

  it("has no report block before the first packet", () => {
    const s = new ReceiveStatistics(SSRC);
    s.onSenderReport(0x12345678, 0);
    assert.equal(s.reportBlock(100), undefined);
  });

  it("reports a clean in-order stream as lossless, with zero jitter and no SR", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, range(100, 109));
    assert.deepEqual(s.reportBlock(1000), {
      ssrc: SSRC,
      fractionLost: 0,
      packetsLost: 0,
      highestSequence: 109,
      jitter: 0,
      lsr: 0,
      dlsr: 0,
    });
  });

  it("computes fraction lost per interval and cumulative loss (RFC 3550 A.3)", () => {
    const s = new ReceiveStatistics(SSRC);
    // 0..9 without 3, 4, 7: expected 10, received 7 → 3 × 256 / 10 = 76.8 → 76.
    feed(
      s,
      range(0, 9).filter((q) => q !== 3 && q !== 4 && q !== 7),
    );
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 76, packetsLost: 3, highestSequence: 9 });
    // 10..29 without 15: this interval expected 20, lost 1 → 256 / 20 = 12.8 → 12; cumulative 4.
    feed(
      s,
      range(10, 29).filter((q) => q !== 15),
    );
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 12, packetsLost: 4, highestSequence: 29 });
    // Nothing new: empty interval.
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 4, highestSequence: 29 });
    // A late arrival of 3 (26 behind, within the reorder window) with the new 30: this interval has
    // 2 received of 1 expected; that is reported as 0, never negative. Cumulative loss drops to 3.
    feed(s, [3, 30]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 3, highestSequence: 30 });
    // Fraction is over the interval only: 31..34 with 31 lost → 1/4 → 64.
    feed(s, [32, 33, 34]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 64, packetsLost: 4, highestSequence: 34 });
  });

  it("extends the highest sequence number across the 16-bit wrap", () => {
    const s = new ReceiveStatistics(SSRC);
    // 65530..65535, 0..5 without 65534 and 2: extended highest 65536 + 5, expected 12, lost 2.
    const seqs = [...range(65530, 65535), ...range(0, 5)].filter((q) => q !== 65534 && q !== 2);
    for (const [i, seq] of seqs.entries()) s.onPacket(seq, i * 160, i * 20, 8000);
    // 2 × 256 / 12 = 42.67 → 42
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 42, packetsLost: 2, highestSequence: 65541 });
    // A second wrap adds another cycle.
    let t = 1000;
    for (let q = 6; q <= 65535; q += 1000) s.onPacket(q, 0, t++, 8000);
    s.onPacket(1, 0, t++, 8000);
    assert.equal(s.reportBlock(0)?.highestSequence, 2 * 65536 + 1);
  });

  it("accepts packets reordered across the wrap and counts each once", () => {
    const s = new ReceiveStatistics(SSRC);
    for (const seq of [65534, 1, 65535, 0, 2]) s.onPacket(seq, 0, 0, 8000);
    // extended: 65534, 65537, 65535, 65536, 65538 → expected 5, received 5.
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 65538 });
    assert.equal(s.counters.reordered, 2);
  });

  it("ignores duplicates instead of letting them offset real loss", () => {
    const s = new ReceiveStatistics(SSRC);
    // 3 is lost; 2 and 1 arrive twice. RFC A.1 would count 7 received of 6 expected (lost −1).
    feed(s, [0, 1, 2, 2, 1, 4, 5]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 42, packetsLost: 1, highestSequence: 5 });
    assert.equal(s.counters.duplicates, 2);
    assert.equal(s.counters.packets, 7);
    assert.equal(s.counters.bytes, 700);
  });

  it("recognises a duplicate of a reordered packet", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [0, 2, 1, 1, 3]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 3 });
    assert.deepEqual(
      { duplicates: s.counters.duplicates, reordered: s.counters.reordered },
      { duplicates: 1, reordered: 1 },
    );
  });

  it("forgets which packets arrived once they leave the reorder window", () => {
    const s = new ReceiveStatistics(SSRC, { maxMisorder: 4 });
    // With a window of 4, 0 is 4 behind 4 → treated as a (discarded) jump, not as a duplicate.
    feed(s, [0, 1, 2, 3, 4, 0]);
    assert.equal(s.counters.duplicates, 0);
    assert.equal(s.counters.discarded, 1);
    // 2 is 2 behind → duplicate of the one received.
    feed(s, [2]);
    assert.equal(s.counters.duplicates, 1);
    // A jump of 10 clears the window: 11 (3 behind 14) was never received, so it counts.
    feed(s, [14, 11]);
    assert.equal(s.counters.duplicates, 1);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 136, packetsLost: 8, highestSequence: 14 });
  });

  it("moves the base back when a packet older than the first arrives", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [10, 8, 11]);
    // base 8 → expected 4 (8..11), received 3 → 9 is lost.
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 64, packetsLost: 1, highestSequence: 11 });
    feed(s, [9]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 11 });
  });

  it("treats a gap below maxDropout as loss and a larger jump as suspect (RFC A.1)", () => {
    const gap = new ReceiveStatistics(SSRC);
    feed(gap, [0, 2999]);
    assert.deepEqual(loss(gap.reportBlock(0)), {
      fractionLost: 255,
      packetsLost: 2998,
      highestSequence: 2999,
    });

    const jump = new ReceiveStatistics(SSRC);
    feed(jump, [0, 3000]);
    assert.deepEqual(loss(jump.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 0 });
    assert.equal(jump.counters.discarded, 1);
  });

  it("accepts packets up to maxMisorder − 1 behind and discards older ones", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [...range(0, 98), 200]);
    assert.equal(s.reportBlock(0)?.packetsLost, 101); // 99..199
    feed(s, [101]); // 99 behind: reordered
    feed(s, [100]); // 100 behind: not believable, discarded
    assert.deepEqual(
      { reordered: s.counters.reordered, discarded: s.counters.discarded },
      { reordered: 1, discarded: 1 },
    );
    assert.equal(s.reportBlock(0)?.packetsLost, 100);
  });

  it("ignores a lone stray sequence number and keeps the stream's accounting", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [0, 1, 2, 3, 4, 20000, 5, 6]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 6 });
    assert.deepEqual(
      { discarded: s.counters.discarded, restarts: s.counters.restarts },
      { discarded: 1, restarts: 0 },
    );
  });

  it("does not let a stray packet's successor, arriving much later, pass as a confirmed jump", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [0, 1, 2, 20000, 3, 4, 20001, 5]);
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 0, packetsLost: 0, highestSequence: 5 });
    assert.deepEqual(
      { discarded: s.counters.discarded, restarts: s.counters.restarts },
      { discarded: 2, restarts: 0 },
    );
  });

  it("restarts the accounting when two consecutive packets confirm a jump", () => {
    const s = new ReceiveStatistics(SSRC);
    feed(s, [0, 1, 3]);
    assert.equal(s.reportBlock(0)?.packetsLost, 1);
    feed(s, [20000, 20001, 20003]);
    // New base 20001: expected 3, received 2; the pre-restart loss and interval are gone.
    assert.deepEqual(loss(s.reportBlock(0)), { fractionLost: 85, packetsLost: 1, highestSequence: 20003 });
    assert.deepEqual(
      { discarded: s.counters.discarded, restarts: s.counters.restarts },
      { discarded: 1, restarts: 1 },
    );
  });

  it("clamps cumulative loss to the 24-bit signed maximum", () => {
    const s = new ReceiveStatistics(SSRC);
    // 2800 packets, each 2999 after the previous (a permitted gap): 2799 × 2998 = 8 391 402 lost.
    for (let k = 0; k < 2800; k++) s.onPacket((k * 2999) & 0xffff, 0, k, 8000);
    assert.deepEqual(loss(s.reportBlock(0)), {
      fractionLost: 255,
      packetsLost: 0x7fffff,
      highestSequence: 2799 * 2999,
    });
  });

  describe("interarrival jitter (RFC 3550 A.8, integer variant)", () => {
    it("matches hand-computed values", () => {
      const s = new ReceiveStatistics(SSRC);
      const jitter: number[] = [];
      // 8 kHz, 20 ms packets (160 ticks). Arrivals 1000, 1020, 1050, 1060, 1080 ms.
      // D: −, 0, |240−160| = 80, |80−160| = 80, 0.
      // J16: 0 → 0 − ((0+8)>>4) = 0 → 0 + 80 − 0 = 80 → 80 + 80 − ((80+8)>>4 = 5) = 155
      //      → 155 + 0 − ((155+8)>>4 = 10) = 145.  J = J16 >> 4: 0, 0, 5, 9, 9.
      // Then three on time (D = 0), where the +8 rounding of A.8 shows in the decay:
      //      145 − ((145+8)>>4 = 9) = 136 → 136 − 9 = 127 → 127 − ((127+8)>>4 = 8) = 119.  J: 8, 7, 7.
      const arrivals = [1000, 1020, 1050, 1060, 1080, 1100, 1120, 1140];
      for (const [i, at] of arrivals.entries()) {
        s.onPacket(i, 5000 + i * 160, at, 8000);
        jitter.push(s.reportBlock(at)?.jitter ?? -1);
      }
      assert.deepEqual(jitter, [0, 0, 5, 9, 9, 8, 7, 7]);
    });

    it("handles the 32-bit timestamp wrap (90 kHz video)", () => {
      const s = new ReceiveStatistics(SSRC);
      s.onPacket(0, 0xffffff00, 0, 90000);
      // Timestamp +3000 (wrapping to 2744), arrival +40 ms = 3600 ticks: D = 600 → J16 600 → J 37.
      s.onPacket(1, (0xffffff00 + 3000) >>> 0, 40, 90000);
      assert.equal(s.reportBlock(40)?.jitter, 37);
    });

    it("uses arrival order, not sequence order, for reordered packets", () => {
      const s = new ReceiveStatistics(SSRC);
      s.onPacket(0, 0, 0, 8000);
      s.onPacket(2, 320, 40, 8000); // D = |320 − 320| = 0
      s.onPacket(1, 160, 41, 8000); // D = |8 − (−160)| = 168 → J16 168 → J 10
      assert.equal(s.reportBlock(41)?.jitter, 10);
    });

    it("converts fractional arrival times to the RTP clock", () => {
      const s = new ReceiveStatistics(SSRC);
      s.onPacket(0, 0, 0, 48000);
      // 20.5 ms = 984 ticks vs 960 → D = 24 → J16 24 → J 1.
      s.onPacket(1, 960, 20.5, 48000);
      assert.equal(s.reportBlock(21)?.jitter, 1);
      // Rounded to the nearest tick: 21.9375 ms at 8 kHz = 175.5 → 176, D = 16 → J16 16 → J 1.
      const t = new ReceiveStatistics(SSRC);
      t.onPacket(0, 0, 0, 8000);
      t.onPacket(1, 160, 21.9375, 8000);
      assert.equal(t.reportBlock(22)?.jitter, 1);
    });

    it("skips a transit jump of 5 s or more (sender timestamp discontinuity) but re-anchors on it", () => {
      const s = new ReceiveStatistics(SSRC);
      s.onPacket(0, 0, 0, 8000);
      // D = |160 − 40160| = 40000 = 5 s at 8 kHz → skipped.
      s.onPacket(1, 40160, 20, 8000);
      assert.equal(s.reportBlock(20)?.jitter, 0);
      // Against the new reference: D = |160 − 240| = 80 → J 5. (Against the old one D would be 40080.)
      s.onPacket(2, 40400, 40, 8000);
      assert.equal(s.reportBlock(40)?.jitter, 5);
    });

    it("ignores duplicates and discarded packets, and does not compare across a restart", () => {
      const s = new ReceiveStatistics(SSRC);
      s.onPacket(0, 0, 0, 8000);
      s.onPacket(0, 0, 500, 8000); // duplicate: would give D = 4000
      s.onPacket(30000, 99999, 600, 8000); // stray: discarded
      s.onPacket(1, 160, 20, 8000);
      assert.equal(s.reportBlock(20)?.jitter, 0);
      // Restart at 20000/20001 with a timestamp step of 800 ticks: compared across the restart, 20001
      // would give D = |320 − 1120| = 800 (J 50); instead it only sets the reference.
      s.onPacket(20000, 777_777, 40, 8000);
      s.onPacket(20001, 1280, 60, 8000);
      s.onPacket(20002, 1440, 80, 8000);
      assert.equal(s.reportBlock(80)?.jitter, 0);
      assert.equal(s.counters.restarts, 1);
    });
  });

  describe("LSR / DLSR", () => {
    it("reports the last SR's middle 32 bits and the delay since it in 1/65536 s", () => {
      const s = new ReceiveStatistics(SSRC);
      feed(s, [0]);
      s.onSenderReport(0x12345678, 1000);
      const a = s.reportBlock(1500);
      assert.deepEqual([a?.lsr, a?.dlsr], [0x12345678, 32768]);
      // 1 ms = 65.536 units → 66
      const b = s.reportBlock(1001);
      assert.deepEqual([b?.lsr, b?.dlsr], [0x12345678, 66]);
      s.onSenderReport(0xdeadbeef, 2000);
      const c = s.reportBlock(4000);
      assert.deepEqual([c?.lsr, c?.dlsr], [0xdeadbeef, 131072]);
    });

    it("never reports a negative DLSR", () => {
      const s = new ReceiveStatistics(SSRC);
      feed(s, [0]);
      s.onSenderReport(1, 1000);
      assert.equal(s.reportBlock(999)?.dlsr, 0);
    });
  });
});
