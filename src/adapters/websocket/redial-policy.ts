// RedialPolicy: when an egress adapter dials its endpoint again, and when it gives up (sans-IO).
//
// A failure run starts at the first failure (a dropped connection or a failed dial) and ends only when a
// connection has stayed up for `stableMs`. A handshake that succeeds and is dropped at once does not end
// the run, so an endpoint that accepts and then closes every time is given up on `windowMs` after its
// first failure, with exponential backoff between attempts, instead of being redialled ~10 times a second
// forever (each success used to restart the window).

export interface RedialPolicyOptions {
  windowMs: number;
  /** A connection up this long ends the failure run. */
  stableMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export type RedialDecision = { kind: "retry"; delayMs: number } | { kind: "give-up"; failingForMs: number };

export class RedialPolicy {
  readonly #window: number;
  readonly #stable: number;
  readonly #base: number;
  readonly #max: number;
  #runStart: number | undefined;
  #connectedAt: number | undefined;
  #attempt = 0;

  constructor(opts: RedialPolicyOptions) {
    this.#window = opts.windowMs;
    this.#stable = opts.stableMs ?? 5_000;
    this.#base = opts.baseDelayMs ?? 100;
    this.#max = opts.maxDelayMs ?? 2_000;
  }

  /** The connection dropped, or a dial failed, at `now`. */
  failed(now: number): RedialDecision {
    const recovered = this.#connectedAt !== undefined && now - this.#connectedAt >= this.#stable;
    if (this.#runStart === undefined || recovered) {
      this.#runStart = now;
      this.#attempt = 0;
    }
    this.#connectedAt = undefined;
    const failingForMs = now - this.#runStart;
    if (failingForMs >= this.#window) return { kind: "give-up", failingForMs };
    const delayMs = Math.min(this.#base * 2 ** this.#attempt, this.#max, this.#window - failingForMs);
    this.#attempt++;
    return { kind: "retry", delayMs };
  }

  /** A handshake succeeded at `now`. */
  connected(now: number): void {
    this.#connectedAt = now;
  }
}
