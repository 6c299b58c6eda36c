// NackGenerator: decides which sequence numbers of one inbound video stream to NACK, and when (modelled
// on libwebrtc's NackRequester and LiveKit's NACK queue). Sans-IO: the owner calls onPacket() for every
// RTP packet and poll() on its own timer (every 10-20 ms), and sends a generic NACK (RFC 4585 §6.2.1)
// for whatever poll() returns.
//
// Life of a missing sequence number: created when a later one arrives; first requested once it has been
// missing for `reorderDelayMs` (most "losses" seen the instant a gap appears are reordering, and a NACK
// for them only wastes the sender's bandwidth); then requested again every retry interval until it
// arrives (recovered), has been requested `maxRetries` times with no answer within the following
// interval, or is `maxAgeMs` old (abandoned: by then a decoder has given up on that frame anyway).
//
// Keyframes: when so much is missing that retransmission cannot realistically repair the stream (more
// than `maxMissing` outstanding, or a jump of more than `maxJump` sequence numbers) the generator gives up
// the oldest/all entries and raises `keyframeNeeded`; the owner then sends a PLI. A packet abandoned for
// age or retries does not raise it: the SFU cannot tell whether the packet mattered (padding, a
// discardable temporal layer), and subscribers that fail to decode ask for a keyframe themselves.

import { seqAdd, seqDiff } from "./rtp.ts";

export interface NackGeneratorOptions {
  /** How long a gap may be reordering before it is requested. Default 10 ms. */
  reorderDelayMs?: number;
  /** Time between requests for one packet; raised to the RTT by setRtt(). Default 100 ms. */
  retryIntervalMs?: number;
  /** Requests per packet before giving up. Default 10. */
  maxRetries?: number;
  /** A packet missing for this long is abandoned. Default 1000 ms. */
  maxAgeMs?: number;
  /** Most missing packets tracked; beyond it the oldest are abandoned and a keyframe is needed. Default 500. */
  maxMissing?: number;
  /** A jump of more sequence numbers than this resets the generator instead of NACKing. Default 1000. */
  maxJump?: number;
}

export interface NackGeneratorCounters {
  /** Sequence numbers returned by poll(), retries included. */
  requested: number;
  /** Missing packets that arrived after having been requested at least once. */
  recovered: number;
  /** Missing packets that arrived late, before their first request. */
  reordered: number;
  /** Missing packets given up on (retries, age, list overflow, reset). */
  abandoned: number;
  /** Jumps that reset the generator. */
  resets: number;
}

interface Missing {
  createdMs: number;
  lastRequestMs: number;
  retries: number;
}

export class NackGenerator {
  readonly reorderDelayMs: number;
  readonly maxRetries: number;
  readonly maxAgeMs: number;
  readonly maxMissing: number;
  readonly maxJump: number;
  readonly #baseRetryIntervalMs: number;
  #retryIntervalMs: number;
  #initialized = false;
  #newest = 0;
  // A sequence number far behind the newest: either a stale straggler or the first packet of a restarted
  // stream. Only the next packet continuing from it proves the restart.
  #restartCandidate: number | undefined;
  // Keyed by 16-bit sequence number. Entries are only ever inserted in increasing (wrapping) sequence
  // order after the newest, so Map iteration order is oldest first: eviction and poll need no sorting.
  #missing = new Map<number, Missing>();
  #keyframeNeeded = false;
  #counters: NackGeneratorCounters = { requested: 0, recovered: 0, reordered: 0, abandoned: 0, resets: 0 };

  constructor(options: NackGeneratorOptions = {}) {
    const reorderDelayMs = options.reorderDelayMs ?? 10;
    const retryIntervalMs = options.retryIntervalMs ?? 100;
    const maxRetries = options.maxRetries ?? 10;
    const maxAgeMs = options.maxAgeMs ?? 1000;
    const maxMissing = options.maxMissing ?? 500;
    const maxJump = options.maxJump ?? 1000;
    if (!(reorderDelayMs >= 0) || !Number.isFinite(reorderDelayMs)) {
      throw new RangeError(`reorderDelayMs must be >= 0, got ${reorderDelayMs}`);
    }
    if (!(retryIntervalMs > 0) || !Number.isFinite(retryIntervalMs)) {
      throw new RangeError(`retryIntervalMs must be > 0, got ${retryIntervalMs}`);
    }
    if (!Number.isInteger(maxRetries) || maxRetries < 1) {
      throw new RangeError(`maxRetries must be an integer >= 1, got ${maxRetries}`);
    }
    if (!(maxAgeMs > 0)) throw new RangeError(`maxAgeMs must be > 0, got ${maxAgeMs}`);
    if (!Number.isInteger(maxMissing) || maxMissing < 1) {
      throw new RangeError(`maxMissing must be an integer >= 1, got ${maxMissing}`);
    }
    if (!Number.isInteger(maxJump) || maxJump < 1 || maxJump > 0x7fff) {
      throw new RangeError(`maxJump must be an integer in [1, 32767], got ${maxJump}`);
    }
    this.reorderDelayMs = reorderDelayMs;
    this.#baseRetryIntervalMs = retryIntervalMs;
    this.#retryIntervalMs = retryIntervalMs;
    this.maxRetries = maxRetries;
    this.maxAgeMs = maxAgeMs;
    this.maxMissing = maxMissing;
    this.maxJump = maxJump;
  }

  get counters(): Readonly<NackGeneratorCounters> {
    return { ...this.#counters };
  }

  /** Number of sequence numbers currently tracked as missing. */
  get missingCount(): number {
    return this.#missing.size;
  }

  /** The interval between requests for one packet now in use. */
  get retryIntervalMs(): number {
    return this.#retryIntervalMs;
  }

  /** True once the stream needs a keyframe (see the file comment); stays true until takeKeyframeNeeded(). */
  get keyframeNeeded(): boolean {
    return this.#keyframeNeeded;
  }

  /** Returns keyframeNeeded and clears it, so one episode produces one PLI. */
  takeKeyframeNeeded(): boolean {
    const needed = this.#keyframeNeeded;
    this.#keyframeNeeded = false;
    return needed;
  }

  /**
   * A retransmission cannot arrive sooner than one round trip after the request, so asking again
   * earlier only duplicates traffic. Pass undefined to return to the configured interval.
   */
  setRtt(rttMs: number | undefined): void {
    const rtt = rttMs !== undefined && Number.isFinite(rttMs) ? rttMs : 0;
    this.#retryIntervalMs = Math.max(this.#baseRetryIntervalMs, rtt);
  }

  onPacket(seq: number, nowMs: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) {
      throw new RangeError(`sequence number must be a uint16, got ${seq}`);
    }
    if (!this.#initialized) {
      this.#initialized = true;
      this.#newest = seq;
      return;
    }
    const diff = seqDiff(seq, this.#newest);
    if (diff === 0) return;
    if (diff > 0) {
      this.#restartCandidate = undefined;
      if (diff > this.maxJump) {
        this.#reset(seq);
        return;
      }
      this.#addMissing(diff - 1, nowMs);
      this.#newest = seq;
      return;
    }
    if (-diff > this.maxJump) {
      if (this.#restartCandidate !== undefined && seq === seqAdd(this.#restartCandidate, 1)) {
        this.#reset(seq);
      } else {
        this.#restartCandidate = seq;
      }
      return;
    }
    this.#restartCandidate = undefined;
    const entry = this.#missing.get(seq);
    if (entry === undefined) return; // duplicate, or already abandoned
    this.#missing.delete(seq);
    if (entry.retries > 0) this.#counters.recovered++;
    else this.#counters.reordered++;
  }

  /** Sequence numbers to NACK now, oldest first. Also abandons entries that are too old or out of retries. */
  poll(nowMs: number): number[] {
    const out: number[] = [];
    for (const [seq, entry] of this.#missing) {
      if (nowMs - entry.createdMs >= this.maxAgeMs) {
        this.#abandon(seq);
        continue;
      }
      if (entry.retries === 0) {
        if (nowMs - entry.createdMs < this.reorderDelayMs) continue;
      } else {
        if (nowMs - entry.lastRequestMs < this.#retryIntervalMs) continue;
        // The last request got its full interval to be answered before giving up on it.
        if (entry.retries >= this.maxRetries) {
          this.#abandon(seq);
          continue;
        }
      }
      entry.retries++;
      entry.lastRequestMs = nowMs;
      out.push(seq);
    }
    this.#counters.requested += out.length;
    return out;
  }

  #addMissing(count: number, nowMs: number): void {
    // Only the newest maxMissing of a wide gap are worth tracking; the rest would be evicted at once.
    const skipped = Math.max(0, count - this.maxMissing);
    if (skipped > 0) {
      this.#counters.abandoned += skipped;
      this.#keyframeNeeded = true;
    }
    for (let i = skipped + 1; i <= count; i++) {
      this.#missing.set(seqAdd(this.#newest, i), { createdMs: nowMs, lastRequestMs: nowMs, retries: 0 });
    }
    while (this.#missing.size > this.maxMissing) {
      this.#abandon(this.#missing.keys().next().value as number);
      this.#keyframeNeeded = true;
    }
  }

  #abandon(seq: number): void {
    this.#missing.delete(seq);
    this.#counters.abandoned++;
  }

  #reset(seq: number): void {
    this.#counters.abandoned += this.#missing.size;
    this.#missing.clear();
    this.#counters.resets++;
    this.#keyframeNeeded = true;
    this.#newest = seq;
    this.#restartCandidate = undefined;
  }
}
