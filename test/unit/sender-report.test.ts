import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  NTP_UNIX_OFFSET_S,
  ntpFromUnixMs,
  ntpMiddle32,
  RtcpIntervals,
  roundTripMs,
  SenderReportState,
} from "../../src/media/sender-report.ts";
import { seededRandom } from "../helpers/signals.ts";

describe("NTP helpers", () => {
  it("converts Unix milliseconds to 64-bit NTP", () => {
    assert.equal(NTP_UNIX_OFFSET_S, 2208988800);
    assert.equal(ntpFromUnixMs(0), 2208988800n << 32n);
    assert.equal(ntpFromUnixMs(1500), (2208988801n << 32n) | 0x8000_0000n);
    assert.equal(ntpFromUnixMs(1_700_000_000_250), (3908988800n << 32n) | 0x4000_0000n);
    // 0.5 ms = 2^32 / 2000 = 2147483.648 → truncated
    assert.equal(ntpFromUnixMs(0.5), (2208988800n << 32n) | 2147483n);
    assert.equal(ntpFromUnixMs(999.999999) >> 32n, 2208988800n);
  });

  it("takes the middle 32 bits for LSR", () => {
    // 3908988800 mod 65536 = 28544; high 16 bits of the fraction 0x4000_0000 = 0x4000.
    assert.equal(ntpMiddle32(ntpFromUnixMs(1_700_000_000_250)), 28544 * 65536 + 0x4000);
    assert.equal(ntpMiddle32(0xffff_ffff_ffff_ffffn), 0xffff_ffff);
  });

  it("computes the round trip from a report block (A − LSR − DLSR)", () => {
    const arrivalMs = 1_700_000_000_250;
    const a = ntpMiddle32(ntpFromUnixMs(arrivalMs));
    // SR sent 1.5 s before, held 1.25 s by the receiver → 250 ms.
    const lsr = a - 98304;
    assert.equal(roundTripMs(arrivalMs, lsr, 81920), 250);
    assert.equal(roundTripMs(arrivalMs, lsr, 98304 - 1), 1000 / 65536);
    assert.equal(roundTripMs(arrivalMs, 0, 0), undefined);
    // DLSR larger than the elapsed time: clamp to 0 instead of ~18 h.
    assert.equal(roundTripMs(arrivalMs, lsr, 98304 + 655), 0);
  });

  it("computes the round trip across the wrap of the 16.16 seconds", () => {
    // An arrival whose compact NTP is exactly 0, and an SR one second before it (0xffff0000).
    const arrivalMs = (65536 - 28544) * 1000 + 1_700_000_000_000; // NTP seconds ≡ 0 (mod 65536)
    assert.equal(ntpMiddle32(ntpFromUnixMs(arrivalMs)), 0);
    assert.equal(roundTripMs(arrivalMs, 0xffff_0000, 0), 1000);
  });
});

describe("SenderReportState", () => {
  it("has nothing to report before the first packet", () => {
    assert.equal(new SenderReportState().report(1000, 90000), undefined);
  });

  it("counts packets and payload octets and extrapolates the RTP timestamp", () => {
    const s = new SenderReportState();
    s.onPacketSent(1000, 100, 10_000);
    s.onPacketSent(4000, 50, 10_033);
    assert.deepEqual(s.report(10_133, 90000), {
      ntpTimestamp: ntpFromUnixMs(10_133),
      rtpTimestamp: 4000 + 100 * 90,
      packetCount: 2,
      octetCount: 150,
    });
    assert.deepEqual([s.packetCount, s.octetCount], [2, 150]);
    assert.throws(() => s.report(10_133, 0), RangeError);
  });

  it("anchors on the first packet of a timestamp, not on later packets of the same frame", () => {
    const s = new SenderReportState();
    s.onPacketSent(4000, 1000, 10_000);
    s.onPacketSent(4000, 1000, 10_020); // same frame, paced out later
    s.onPacketSent(4000, 1000, 10_040);
    assert.equal(s.report(10_100, 90000)?.rtpTimestamp, 4000 + 100 * 90);
    assert.equal(s.report(10_100, 90000)?.packetCount, 3);
  });

  it("does not move the anchor back for a retransmission with an older timestamp", () => {
    const s = new SenderReportState();
    s.onPacketSent(90_000, 100, 1000);
    s.onPacketSent(87_000, 100, 1050); // retransmission of an earlier frame
    assert.equal(s.report(1100, 90000)?.rtpTimestamp, 90_000 + 100 * 90);
    assert.equal(s.report(1100, 90000)?.packetCount, 2);
  });

  it("handles the 32-bit timestamp wrap, in extrapolation and in anchoring", () => {
    const s = new SenderReportState();
    s.onPacketSent(0xffff_ff00, 10, 0);
    // 0xffffff00 + 900 wraps to 644
    assert.equal(s.report(10, 90000)?.rtpTimestamp, 644);
    s.onPacketSent(0x10, 10, 20); // newer across the wrap: re-anchors
    assert.equal(s.report(30, 90000)?.rtpTimestamp, 0x10 + 900);
  });

  it("rounds fractional elapsed time to the nearest tick", () => {
    const s = new SenderReportState();
    s.onPacketSent(0, 0, 0);
    assert.equal(s.report(0.1, 8000)?.rtpTimestamp, 1); // 0.8 ticks
    assert.equal(s.report(0.05, 8000)?.rtpTimestamp, 0); // 0.4 ticks
    assert.equal(s.report(20, 48000)?.rtpTimestamp, 960);
  });

  it("wraps the octet count modulo 2^32", () => {
    const s = new SenderReportState();
    s.onPacketSent(0, 0xffff_ffff, 0);
    s.onPacketSent(0, 2, 0);
    assert.deepEqual([s.octetCount, s.packetCount], [1, 2]);
  });
});

describe("RtcpIntervals", () => {
  it("defaults to libwebrtc's intervals and validates options", () => {
    assert.equal(new RtcpIntervals().intervalMs, 1000);
    assert.equal(new RtcpIntervals({ media: "video" }).intervalMs, 1000);
    assert.equal(new RtcpIntervals({ media: "audio" }).intervalMs, 5000);
    assert.equal(new RtcpIntervals({ media: "audio", intervalMs: 2000 }).intervalMs, 2000);
    assert.throws(() => new RtcpIntervals({ intervalMs: 0 }), RangeError);
    assert.throws(() => new RtcpIntervals({ intervalMs: Number.POSITIVE_INFINITY }), RangeError);
  });

  it("starts on the first call, halves the first interval, then reports every interval", () => {
    const r = new RtcpIntervals({ random: () => 0.5 });
    assert.equal(r.nextDueMs, undefined);
    assert.equal(r.due(0), false);
    assert.equal(r.nextDueMs, 500);
    assert.equal(r.due(499), false);
    assert.equal(r.due(500), true);
    assert.equal(r.nextDueMs, 1500);
    assert.equal(r.due(500), false);
    assert.equal(r.due(1499), false);
    assert.equal(r.due(1500), true);
    assert.equal(r.nextDueMs, 2500);
  });

  it("randomises each interval to [0.5, 1.5] × the mean with the injected random", () => {
    const values = [0, 0.999, 0.25];
    let i = 0;
    const r = new RtcpIntervals({ media: "audio", random: () => values[i++] });
    r.due(0);
    assert.equal(r.nextDueMs, 1250); // first: 5000 × 0.5 / 2
    assert.equal(r.due(1250), true);
    assert.equal(r.nextDueMs, 1250 + 5000 * 1.499);
    assert.equal(r.due(8745), true);
    assert.equal(r.nextDueMs, 8745 + 3750);
  });

  it("clamps a misbehaving random source", () => {
    const r = new RtcpIntervals({ random: () => 7 });
    r.due(0);
    assert.equal(r.nextDueMs, 750);
    const s = new RtcpIntervals({ random: () => -1 });
    s.due(0);
    assert.equal(s.nextDueMs, 250);
  });

  it("schedules from the actual report time, so a late scheduler does not burst", () => {
    const r = new RtcpIntervals({ random: () => 0.5 });
    r.due(0);
    assert.equal(r.due(3000), true);
    assert.equal(r.nextDueMs, 4000);
    assert.equal(r.due(3001), false);
  });

  it("keeps the mean interval with a real random source", () => {
    const r = new RtcpIntervals({ random: seededRandom(42) });
    r.due(0);
    const times: number[] = [];
    for (let t = 0; t <= 1_000_000; t++) if (r.due(t)) times.push(t);
    const gaps = times.slice(1).map((t, k) => t - times[k]);
    assert.ok(gaps.every((g) => g >= 500 && g <= 1501));
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    assert.ok(mean > 980 && mean < 1020, `mean interval ${mean}`);
    assert.ok(times[0] >= 250 && times[0] <= 751);
  });
});
