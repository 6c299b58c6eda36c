// Continuity of one stream of numbered units (PCM Packets by sequence number or RTP timestamp, RTP packets
// by sequence number), for the soak benchmark. Wrapping counters (16 or 32 bits) are extended; `unit` is the
// step between consecutive units (1 for sequence numbers, 960 for 20 ms of 48 kHz RTP timestamps). A window
// of the last 1 024 indexes tells duplicates from late units that fill a hole. reset() starts a new count at
// the next index (the previous window's holes are not carried over).

import type { SeqCounts } from "./soak-protocol.ts";

const WINDOW = 1024;

export class SeqChecker {
  private readonly seen = new Float64Array(WINDOW).fill(-1);
  private maxRaw = 0;
  /** Extended index of the highest unit; NaN before the first. */
  maxExt = Number.NaN;
  private first = 0;
  received = 0;
  duplicates = 0;
  reordered = 0;
  misaligned = 0;
  /** Units older than the window or than the last reset (not counted). */
  stale = 0;
  /** performance.now() of the last unit. */
  lastAt = Number.NaN;

  constructor(
    private readonly bits: 16 | 32,
    private readonly unit = 1,
  ) {}

  /** Returns the unit's extended index (0 = the first unit ever seen), or undefined when it was not counted. */
  push(raw: number, now: number): number | undefined {
    this.lastAt = now;
    if (Number.isNaN(this.maxExt)) {
      this.maxRaw = raw;
      this.maxExt = 0;
      this.first = 0;
      this.mark(0);
      this.received++;
      return 0;
    }
    const span = this.bits === 16 ? 0x10000 : 0x100000000;
    let d = (raw - this.maxRaw) % span;
    if (d >= span / 2) d -= span;
    else if (d < -span / 2) d += span;
    if (d % this.unit !== 0) this.misaligned++;
    const k = this.maxExt + Math.round(d / this.unit);
    if (k > this.maxExt) {
      this.maxExt = k;
      this.maxRaw = raw;
      this.mark(k);
      this.received++;
      return k;
    }
    if (k < this.first || this.maxExt - k >= WINDOW) {
      this.stale++;
      return undefined;
    }
    if (this.seen[k % WINDOW] === k) {
      this.duplicates++;
      return undefined;
    }
    this.reordered++;
    this.mark(k);
    this.received++;
    return k;
  }

  private mark(k: number): void {
    this.seen[k % WINDOW] = k;
  }

  get started(): boolean {
    return !Number.isNaN(this.maxExt);
  }

  /** Units expected from the first counted index to the highest one seen. */
  get expected(): number {
    return this.started ? Math.max(0, this.maxExt - this.first + 1) : 0;
  }

  /** A new count from the next index on. */
  reset(): void {
    if (this.started) this.first = this.maxExt + 1;
    this.received = 0;
    this.duplicates = 0;
    this.reordered = 0;
    this.misaligned = 0;
    this.stale = 0;
  }

  counts(): SeqCounts {
    const expected = this.expected;
    return {
      expected,
      received: this.received,
      lost: expected - this.received,
      duplicates: this.duplicates,
      reordered: this.reordered,
      misaligned: this.misaligned,
    };
  }
}

export const emptyCounts = (): SeqCounts => ({
  expected: 0,
  received: 0,
  lost: 0,
  duplicates: 0,
  reordered: 0,
  misaligned: 0,
});

export function addCounts(into: SeqCounts, c: SeqCounts): void {
  into.expected += c.expected;
  into.received += c.received;
  into.lost += c.lost;
  into.duplicates += c.duplicates;
  into.reordered += c.reordered;
  into.misaligned += c.misaligned;
}
