// A deterministic Clock + TimerHost for driving MediaScheduler (and anything else that takes injected
// time) faster than real time. Timers fire in deadline order, ties in creation order, and the clock reads
// exactly the timer's deadline while its callback runs — like an idle, perfectly punctual event loop.
// `jump()` models the opposite: a blocked event loop during which time passes and nothing fires.

import type { Clock, TimerHost } from "../../src/media/scheduler.ts";

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock, TimerHost {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, FakeTimer>();
  /** setTimeout calls made so far (to assert on timer churn). */
  timersCreated = 0;

  constructor(startMs = 1_000) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    // Like Node: negative or NaN delays mean "as soon as possible".
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.#timers.set(id, { id, at: this.#now + delay, fn });
    this.timersCreated++;
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.#timers.delete(handle);
  }

  /** Timers currently armed. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Deadline of the earliest armed timer, or null. */
  get nextDeadline(): number | null {
    const next = this.#earliest();
    return next ? next.at : null;
  }

  /**
   * Moves time forward by `ms`, firing every timer whose deadline falls inside the window (including
   * timers created by callbacks during the advance) in deadline order, with now() = that deadline.
   * Returns the number of callbacks fired.
   */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`advance(${ms}): ms must be ≥ 0`);
    return this.advanceTo(this.#now + ms);
  }

  advanceTo(targetMs: number): number {
    if (targetMs < this.#now)
      throw new RangeError(`advanceTo(${targetMs}) is in the past (now ${this.#now})`);
    let fired = 0;
    for (;;) {
      const next = this.#earliest();
      if (!next || next.at > targetMs) break;
      this.#timers.delete(next.id);
      if (next.at > this.#now) this.#now = next.at;
      fired++;
      next.fn();
    }
    this.#now = targetMs;
    return fired;
  }

  /** Moves time forward without firing anything (a stalled event loop). Follow with advance(0). */
  jump(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`jump(${ms}): ms must be ≥ 0`);
    this.#now += ms;
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers.values()) {
      if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    }
    return best;
  }
}
