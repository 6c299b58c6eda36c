// A fixed-resolution histogram of millisecond values that may be negative (interval errors, drift) or
// positive (latency). By default 10 µs bins over [−200 ms, +2000 ms]; values outside are clamped into the
// end bins for percentiles, while min, max and mean stay exact. Deterministic, no sampling, O(1) per record.

export interface Summary {
  count: number;
  minMs: number;
  p1Ms: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export const EMPTY_SUMMARY: Summary = {
  count: 0,
  minMs: Number.NaN,
  p1Ms: Number.NaN,
  p50Ms: Number.NaN,
  p99Ms: Number.NaN,
  p999Ms: Number.NaN,
  maxMs: Number.NaN,
  meanMs: Number.NaN,
};

export class MsHistogram {
  #bins: Uint32Array | undefined;
  readonly #size: number;
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  sum = 0;

  constructor(
    private readonly resMs = 0.01,
    private readonly lowMs = -200,
    highMs = 2000,
  ) {
    this.#size = Math.round((highMs - lowMs) / resMs) + 1;
  }

  record(ms: number): void {
    if (!Number.isFinite(ms)) return;
    this.#bins ??= new Uint32Array(this.#size); // allocated on first use: unused histograms cost nothing
    const i = Math.min(this.#size - 1, Math.max(0, Math.round((ms - this.lowMs) / this.resMs)));
    this.#bins[i]++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  reset(): void {
    this.#bins?.fill(0);
    this.count = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
    this.sum = 0;
  }

  /** Values strictly above `ms` (bin resolution). */
  countAbove(ms: number): number {
    if (!this.#bins || this.count === 0) return 0;
    const from = Math.min(this.#size, Math.max(0, Math.floor((ms - this.lowMs) / this.resMs) + 1));
    let n = 0;
    for (let i = from; i < this.#size; i++) n += this.#bins[i];
    return n;
  }

  percentile(p: number): number {
    if (!this.#bins || this.count === 0) return Number.NaN;
    if (p <= 0) return this.min;
    if (p >= 100) return this.max;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.#size; i++) {
      seen += this.#bins[i];
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, this.lowMs + i * this.resMs));
    }
    return this.max;
  }

  summary(): Summary {
    if (this.count === 0) return { ...EMPTY_SUMMARY };
    return {
      count: this.count,
      minMs: this.min,
      p1Ms: this.percentile(1),
      p50Ms: this.percentile(50),
      p99Ms: this.percentile(99),
      p999Ms: this.percentile(99.9),
      maxMs: this.max,
      meanMs: this.sum / this.count,
    };
  }
}

/**
 * Drift of a paced stream. offset(n) = t(n) − n × period, where t(n) is when frame n (its index on the
 * stream's media clock) actually left or arrived. A perfect stream has a constant offset; drift is how the
 * offset moves. Reported relative to the median offset of the first second (`blockFrames` frames), so one
 * late first frame does not skew everything:
 *   cumulativeMs = median offset of the last second − median offset of the first second (what accumulated),
 *   minMs/maxMs  = extremes of offset − first-second median,
 *   slopePpm     = least-squares growth of the offset, in ppm of elapsed media time (0 = no accumulation),
 *   series       = per second, the median offset of that second − first-second median (when asked).
 */
export class DriftTracker {
  private base = Number.NaN;
  private n = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private minOff = Number.POSITIVE_INFINITY;
  private maxOff = Number.NEGATIVE_INFINITY;
  private firstIndex = 0;
  private first: number[] = [];
  private block: number[] = [];
  private blockStartK = 0;
  private blocks: { k: number; median: number }[] = [];
  private last: number[] = [];

  constructor(
    private readonly periodMs: number,
    private readonly keepSeries = false,
    private readonly blockFrames = 50,
  ) {}

  record(index: number, t: number): void {
    if (Number.isNaN(this.base)) {
      this.base = t;
      this.firstIndex = index;
    }
    const k = index - this.firstIndex;
    const off = t - this.base - k * this.periodMs;
    this.n++;
    this.sx += k;
    this.sy += off;
    this.sxx += k * k;
    this.sxy += k * off;
    if (off < this.minOff) this.minOff = off;
    if (off > this.maxOff) this.maxOff = off;
    if (this.first.length < this.blockFrames) this.first.push(off);
    this.last.push(off);
    if (this.last.length > this.blockFrames) this.last.shift();
    if (this.keepSeries) {
      if (k - this.blockStartK >= this.blockFrames) {
        if (this.block.length) this.blocks.push({ k: this.blockStartK, median: median(this.block) });
        this.block = [];
        this.blockStartK = k - (k % this.blockFrames);
      }
      this.block.push(off);
    }
  }

  report(): DriftReport {
    if (this.n === 0)
      return {
        frames: 0,
        cumulativeMs: Number.NaN,
        minMs: Number.NaN,
        maxMs: Number.NaN,
        slopePpm: Number.NaN,
      };
    const anchor = median(this.first);
    const den = this.n * this.sxx - this.sx * this.sx;
    const perFrame = this.n >= 3 && den !== 0 ? (this.n * this.sxy - this.sx * this.sy) / den : Number.NaN;
    const r: DriftReport = {
      frames: this.n,
      cumulativeMs: median(this.last) - anchor,
      minMs: this.minOff - anchor,
      maxMs: this.maxOff - anchor,
      slopePpm: (perFrame / this.periodMs) * 1e6,
    };
    if (this.keepSeries) {
      const blocks = this.block.length
        ? [...this.blocks, { k: this.blockStartK, median: median(this.block) }]
        : this.blocks;
      r.series = blocks.map((b) => ({
        tSec: Math.round((b.k * this.periodMs) / 10) / 100,
        driftMs: Math.round((b.median - anchor) * 1000) / 1000,
      }));
    }
    return r;
  }
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export interface DriftReport {
  frames: number;
  /** Median offset of the last second − median offset of the first second. */
  cumulativeMs: number;
  minMs: number;
  maxMs: number;
  slopePpm: number;
  /** Per second: median offset − first-second median. */
  series?: { tSec: number; driftMs: number }[];
}
