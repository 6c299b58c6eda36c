// AdaptiveFec: whether an ingest track's Opus encoder should spend on in-band FEC, from what its subscribers'
// RTCP receiver reports say. Sans-IO: reports and time in, the encoder's expected-loss setting out.
//
// Why: libopus emits FEC (LBRR) only when told to expect loss, and then encodes in SILK/hybrid mode at about
// 3× the CPU (measured here: 200 vs 62 µs per 20 ms frame at complexity 5), while on a clean network FEC
// recovers nothing. So the encoder expects 0 % loss (no FEC, cheapest) until a subscriber reports loss, then
// `minOnPercent` or the reported loss if higher (below ≈ 10 % libopus stays mostly in CELT and adds no FEC),
// and goes back to 0 only after `offAfterMs` without loss (hysteresis: a burst of loss is rarely alone).
// A subscriber's report counts for `staleMs`; a subscriber that stops reporting (left, or its RTCP is lost)
// stops counting then.

export interface AdaptiveFecOptions {
  /** Loss (0..1) in a fresh report that turns FEC on. Default 0.01. */
  onThreshold?: number;
  /** Expected loss (%) set while FEC is on, at least. Default 10. */
  minOnPercent?: number;
  /** Upper bound of the expected loss (%). Default 30. */
  maxPercent?: number;
  /** FEC goes off after this long with every fresh report below onThreshold. Default 10 000 ms. */
  offAfterMs?: number;
  /** A subscriber's last report counts this long. Default 10 000 ms. */
  staleMs?: number;
}

export class AdaptiveFec {
  readonly onThreshold: number;
  readonly minOnPercent: number;
  readonly maxPercent: number;
  readonly offAfterMs: number;
  readonly staleMs: number;
  /** Times FEC was turned on. */
  switchesOn = 0;
  #reports = new Map<unknown, { loss: number; atMs: number }>();
  #percent = 0;
  #lastLossMs = Number.NEGATIVE_INFINITY;

  constructor(options: AdaptiveFecOptions = {}) {
    this.onThreshold = options.onThreshold ?? 0.01;
    this.minOnPercent = options.minOnPercent ?? 10;
    this.maxPercent = options.maxPercent ?? 30;
    this.offAfterMs = options.offAfterMs ?? 10_000;
    this.staleMs = options.staleMs ?? 10_000;
    if (!(this.minOnPercent > 0 && this.maxPercent >= this.minOnPercent && this.maxPercent <= 100))
      throw new RangeError(
        `expected 0 < minOnPercent ≤ maxPercent ≤ 100, got ${this.minOnPercent}, ${this.maxPercent}`,
      );
  }

  /** The encoder's expected loss now (%), 0 = no FEC. */
  get percent(): number {
    return this.#percent;
  }

  get active(): boolean {
    return this.#percent > 0;
  }

  /** One receiver report block about this track from subscriber `from`: `fractionLost` in 0..1. */
  onReport(from: unknown, fractionLost: number, nowMs: number): void {
    if (!(fractionLost >= 0)) return;
    this.#reports.set(from, { loss: Math.min(1, fractionLost), atMs: nowMs });
  }

  /** Re-evaluates; returns the expected loss (%) the encoder should use from now on. */
  poll(nowMs: number): number {
    let worst = 0;
    for (const [from, r] of this.#reports) {
      if (nowMs - r.atMs > this.staleMs) this.#reports.delete(from);
      else if (r.loss > worst) worst = r.loss;
    }
    if (worst >= this.onThreshold) {
      this.#lastLossMs = nowMs;
      const wanted = Math.min(this.maxPercent, Math.max(this.minOnPercent, Math.ceil(worst * 100)));
      if (this.#percent === 0) this.switchesOn++;
      // Follows the worst fresh report while there is loss (never below minOnPercent).
      this.#percent = wanted;
    } else if (this.#percent > 0 && nowMs - this.#lastLossMs >= this.offAfterMs) {
      this.#percent = 0;
    }
    return this.#percent;
  }
}
