// LinkCore: the decisions an adapter makes about its WebSocket, without the socket (sans-IO).
//
// In: what was heard from the peer (`heard`: any message, ping or pong), each data message (`message`, for
// the rate limit), whether the owner's queue wants reading paused (`setQueueFull`), and time (`tick`).
// Out: commands — ping, pause-reading, resume-reading, drop — that the socket code carries out as given.
//
// Liveness, precisely (the rule the first release got wrong):
// - Anything heard from the peer proves it alive; a pong is only one kind of thing heard.
// - A peer is pinged when it has been quiet for one interval, and dropped when a further interval passes
//   in silence after that ping.
// - No verdict while WE paused reading (back-pressure or rate limit): the pong sits in TCP behind the
//   data we chose not to read. Pausing forgets the outstanding ping; resuming restarts the quiet clock, so
//   the peer always gets one whole interval of our reading before it can be judged.
//
// Rate limit: a token bucket of `maxMessagesPerSecond` with a one-second burst. An empty bucket pauses
// reading (the endpoint sees TCP back-pressure; nothing is dropped) until a tenth of it has refilled.

export type LinkCommand =
  | { kind: "ping" }
  | { kind: "pause-reading" }
  | { kind: "resume-reading" }
  | { kind: "drop"; reason: string };

export interface LinkCoreOptions {
  pingIntervalMs: number;
  /** Infinity disables the rate limit. */
  maxMessagesPerSecond: number;
}

export class LinkCore {
  readonly #interval: number;
  readonly #rate: number;
  #lastHeard: number;
  #pingSentAt: number | undefined;
  #queueFull = false;
  #rateLimited = false;
  #readingPaused = false;
  #tokens: number;
  #tokensAt: number;
  #dropped = false;
  #out: LinkCommand[] = [];
  /** Times the rate limit paused reading. */
  rateLimitPauses = 0;

  constructor(opts: LinkCoreOptions, now: number) {
    if (!(opts.pingIntervalMs > 0))
      throw new RangeError(`pingIntervalMs must be > 0, got ${opts.pingIntervalMs}`);
    if (!(opts.maxMessagesPerSecond > 0))
      throw new RangeError(`maxMessagesPerSecond must be > 0, got ${opts.maxMessagesPerSecond}`);
    this.#interval = opts.pingIntervalMs;
    this.#rate = opts.maxMessagesPerSecond;
    this.#lastHeard = now;
    this.#tokens = this.#rate;
    this.#tokensAt = now;
  }

  get readingPaused(): boolean {
    return this.#readingPaused;
  }

  /** A message, ping or pong arrived. */
  heard(now: number): void {
    this.#lastHeard = Math.max(this.#lastHeard, now);
    this.#pingSentAt = undefined;
  }

  /** A data message arrived (call `heard` too). Returns the commands it caused (a rate-limit pause). */
  message(now: number): readonly LinkCommand[] {
    this.heard(now);
    if (Number.isFinite(this.#rate)) {
      this.#refill(now);
      this.#tokens -= 1;
      if (this.#tokens < 0 && !this.#rateLimited) {
        this.#rateLimited = true;
        this.rateLimitPauses++;
        this.#update(now);
      }
    }
    return this.#drain();
  }

  /** The owner's queue is above its high-water mark (true) or back below its low-water mark (false). */
  setQueueFull(full: boolean, now: number): readonly LinkCommand[] {
    this.#queueFull = full;
    this.#update(now);
    return this.#drain();
  }

  tick(now: number): readonly LinkCommand[] {
    if (this.#dropped) return NONE;
    if (this.#rateLimited) {
      this.#refill(now);
      if (this.#tokens >= this.#rate / 10) {
        this.#rateLimited = false;
        this.#update(now);
      }
    }
    if (!this.#readingPaused) {
      if (this.#pingSentAt !== undefined) {
        if (now - this.#pingSentAt >= this.#interval) {
          this.#dropped = true;
          const quiet = Math.round((now - this.#lastHeard) / 1000);
          this.#out.push({
            kind: "drop",
            reason: `endpoint stopped answering pings: nothing heard for ${quiet} s while reading (half-open connection dropped)`,
          });
        }
      } else if (now - this.#lastHeard >= this.#interval) {
        this.#pingSentAt = now;
        this.#out.push({ kind: "ping" });
      }
    }
    return this.#drain();
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#tokensAt);
    this.#tokensAt = now;
    this.#tokens = Math.min(this.#rate, this.#tokens + (elapsed * this.#rate) / 1000);
  }

  #update(now: number): void {
    const paused = this.#queueFull || this.#rateLimited;
    if (paused === this.#readingPaused) return;
    this.#readingPaused = paused;
    if (paused) {
      this.#pingSentAt = undefined; // its pong may be queued behind what we stopped reading
      this.#out.push({ kind: "pause-reading" });
    } else {
      this.#lastHeard = Math.max(this.#lastHeard, now);
      this.#out.push({ kind: "resume-reading" });
    }
  }

  #drain(): readonly LinkCommand[] {
    if (this.#out.length === 0) return NONE;
    const out = this.#out;
    this.#out = [];
    return out;
  }
}

const NONE: readonly LinkCommand[] = Object.freeze([]);
