// NackResponder: decides whether to honour a NACK from one subscriber. A client controls what it NACKs
// and how often, so without limits one hostile (or broken) subscriber could make the server resend its
// whole packet cache in a loop. Two limits, both checked per sequence number requested:
// - the same packet is not resent again within `minIntervalMs` (or the RTT, once known): a second
//   request that soon cannot have seen the first retransmission yet, so resending only duplicates it;
// - all retransmissions to the subscriber together stay under `maxPerSecond`, enforced as a token bucket
//   so a genuine loss burst is still repaired at once.
// Sans-IO; `nowMs` must come from one monotonic clock. Call shouldResend() only for packets you can
// actually resend (after the packet-cache lookup), or refused cache misses would spend tokens.

export interface NackResponderOptions {
  /** Minimum time between two resends of one sequence number while no RTT is known. Default 100 ms. */
  minIntervalMs?: number;
  /** Retransmissions per second allowed on average. Default 500. */
  maxPerSecond?: number;
  /** Retransmissions allowed back to back (bucket size). Default maxPerSecond, i.e. one second's worth. */
  burst?: number;
}

export interface NackResponderCounters {
  /** Calls to shouldResend(). */
  requests: number;
  /** Calls answered true. */
  resent: number;
  /** Refused: the same sequence number was resent too recently. */
  refusedRepeat: number;
  /** Refused: over the rate limit. */
  refusedRate: number;
}

export class NackResponder {
  readonly maxPerSecond: number;
  readonly burst: number;
  readonly #baseIntervalMs: number;
  #intervalMs: number;
  #tokens: number;
  #lastRefillMs: number | undefined;
  // outputSeq → time of its last resend. An entry is pruned before its sequence number can be resent
  // again, so every resend inserts a fresh key: iteration order is oldest first and pruning stops at the
  // first entry still inside the interval. Only accepted resends are stored, so the token bucket also
  // bounds the map's size.
  #lastResent = new Map<number, number>();
  #counters: NackResponderCounters = { requests: 0, resent: 0, refusedRepeat: 0, refusedRate: 0 };

  constructor(options: NackResponderOptions = {}) {
    const minIntervalMs = options.minIntervalMs ?? 100;
    const maxPerSecond = options.maxPerSecond ?? 500;
    const burst = options.burst ?? maxPerSecond;
    if (!(minIntervalMs >= 0) || !Number.isFinite(minIntervalMs)) {
      throw new RangeError(`minIntervalMs must be >= 0, got ${minIntervalMs}`);
    }
    if (!(maxPerSecond > 0) || !Number.isFinite(maxPerSecond)) {
      throw new RangeError(`maxPerSecond must be > 0, got ${maxPerSecond}`);
    }
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be >= 1, got ${burst}`);
    this.#baseIntervalMs = minIntervalMs;
    this.#intervalMs = minIntervalMs;
    this.maxPerSecond = maxPerSecond;
    this.burst = burst;
    this.#tokens = burst;
  }

  get counters(): Readonly<NackResponderCounters> {
    return { ...this.#counters };
  }

  /** Sequence numbers currently remembered as recently resent: the memory this subscriber costs. */
  get tracked(): number {
    return this.#lastResent.size;
  }

  /** The minimum time between resends of one sequence number now in use. */
  get minIntervalMs(): number {
    return this.#intervalMs;
  }

  /**
   * Uses the RTT to the subscriber as the per-packet interval: that is how long the previous
   * retransmission needs to arrive and stop the client's NACKs. Undefined returns to the default. The
   * rate limit bounds the damage of an RTT estimate the client has skewed.
   */
  setRtt(rttMs: number | undefined): void {
    this.#intervalMs =
      rttMs !== undefined && Number.isFinite(rttMs) && rttMs >= 0 ? rttMs : this.#baseIntervalMs;
  }

  /** True: resend the packet with this (subscriber-side) sequence number now. */
  shouldResend(outputSeq: number, nowMs: number): boolean {
    if (!Number.isInteger(outputSeq) || outputSeq < 0 || outputSeq > 0xffff) {
      throw new RangeError(`sequence number must be a uint16, got ${outputSeq}`);
    }
    this.#counters.requests++;
    this.#prune(nowMs);
    const last = this.#lastResent.get(outputSeq);
    if (last !== undefined && nowMs - last < this.#intervalMs) {
      this.#counters.refusedRepeat++;
      return false;
    }
    this.#refill(nowMs);
    if (this.#tokens < 1) {
      this.#counters.refusedRate++;
      return false;
    }
    this.#tokens--;
    this.#lastResent.set(outputSeq, nowMs);
    this.#counters.resent++;
    return true;
  }

  #refill(nowMs: number): void {
    if (this.#lastRefillMs !== undefined && nowMs > this.#lastRefillMs) {
      const added = ((nowMs - this.#lastRefillMs) * this.maxPerSecond) / 1000;
      this.#tokens = Math.min(this.burst, this.#tokens + added);
    }
    if (this.#lastRefillMs === undefined || nowMs > this.#lastRefillMs) this.#lastRefillMs = nowMs;
  }

  #prune(nowMs: number): void {
    for (const [seq, at] of this.#lastResent) {
      if (nowMs - at < this.#intervalMs) break;
      this.#lastResent.delete(seq);
    }
  }
}
