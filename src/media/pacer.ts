// Pacer: the ingest queue between a bursty producer (an endpoint may send a whole clip at once, SPEC §2.5)
// and the real-time consumer (one scheduler slot = one 20 ms frame). It never drops audio; memory is
// bounded instead by asking the IO layer to stop reading the socket.
//
// Flow control (edge-triggered, no events): after enqueuing, the IO layer calls `wantsPause()`; true means
// "queued ≥ highWaterMs, pause reading now" and is returned once per pause. After each `next()` it calls
// `wantsResume()`; true means "queued ≤ lowWaterMs, resume reading now", once per resume. `readingPaused`
// is the current state. The gap between the marks keeps the socket from flapping every 20 ms.
//
// Marker semantics: `afterSilence` is true for the first frame returned by next() at the very start and
// for the first frame after one or more slots in which next() returned null (the caller sent silence). It
// is what the RTP marker bit needs (RFC 3551 §4.1: first packet after a silence period).
//
// Segments and underruns, precisely:
// - A segment is open from the first `enqueue()` after construction or after `endSegment()`, until the
//   next `endSegment()` (SPEC: an empty WebSocket message; also call it when the socket closes).
// - `underruns` counts slots (calls to next()) that found the queue empty while a segment was open —
//   i.e. the producer had started audio, it has all been played, and the producer had not said the
//   segment is over. The audio has a hole there. Empty slots before any audio, or after a segment was
//   ended and fully played, are ordinary silence (`silentSlots`), not underruns.
// - `underrunEpisodes` counts runs of consecutive underrun slots (one stall, however long).
// - Every underrun slot is also a silent slot.

import { FRAME_MS, FRAME_VALUES } from "./audio-format.ts";

export interface PacerOptions {
  /** Pause reading at or above this much queued audio. Default 60 000 ms (SPEC §2.5). */
  highWaterMs?: number;
  /** Resume reading at or below this much queued audio. Default highWaterMs / 2. */
  lowWaterMs?: number;
  /**
   * Length of one 20 ms frame in elements of the frame type: FRAME_VALUES (default) for wire frames, the
   * endpoint's frame size in bytes when the queue holds frames in the endpoint's format (converted as
   * they leave, so a minute-long burst costs no conversion CPU at arrival and less memory while queued).
   */
  frameLength?: number;
}

/** A 20 ms frame: wire samples, or the endpoint's bytes. */
export type PacerFrame = { readonly length: number };

export interface PacerNext<F extends PacerFrame = Int16Array> {
  /** The frame for this slot, or null when the queue is empty (send silence). */
  frame: F | null;
  /** True for the first real frame at the start or after ≥ 1 empty slot (set the RTP marker bit). */
  afterSilence: boolean;
}

export interface PacerCounters {
  framesEnqueued: number;
  framesPlayed: number;
  /** Slots that returned no frame. */
  silentSlots: number;
  /** Silent slots inside an open segment (see the file comment). */
  underruns: number;
  underrunEpisodes: number;
  maxQueuedMs: number;
  /** Times wantsPause() returned true. */
  pauses: number;
}

export class Pacer<F extends PacerFrame = Int16Array> {
  readonly highWaterMs: number;
  readonly lowWaterMs: number;
  readonly frameLength: number;
  // Array + head index instead of shift(): 60 s is 3 000 frames and shift() would be O(n) per slot.
  #queue: F[] = [];
  #head = 0;
  #lastSlotSilent = true;
  #segmentOpen = false;
  #inUnderrun = false;
  #paused = false;
  #counters: PacerCounters = {
    framesEnqueued: 0,
    framesPlayed: 0,
    silentSlots: 0,
    underruns: 0,
    underrunEpisodes: 0,
    maxQueuedMs: 0,
    pauses: 0,
  };

  constructor(options: PacerOptions = {}) {
    const high = options.highWaterMs ?? 60_000;
    const low = options.lowWaterMs ?? high / 2;
    if (!(high > 0) || !Number.isFinite(high)) throw new RangeError(`highWaterMs must be > 0, got ${high}`);
    if (!(low >= 0) || low > high) throw new RangeError(`lowWaterMs must be in [0, highWaterMs], got ${low}`);
    this.highWaterMs = high;
    this.lowWaterMs = low;
    this.frameLength = options.frameLength ?? FRAME_VALUES;
  }

  /** Frames played so far (counters.framesPlayed without copying the counters). */
  get framesPlayed(): number {
    return this.#counters.framesPlayed;
  }

  get queuedFrames(): number {
    return this.#queue.length - this.#head;
  }

  get queuedMs(): number {
    return this.queuedFrames * FRAME_MS;
  }

  get readingPaused(): boolean {
    return this.#paused;
  }

  /** True while a segment is open (audio enqueued and no endSegment() since). */
  get segmentOpen(): boolean {
    return this.#segmentOpen;
  }

  get counters(): Readonly<PacerCounters> {
    return { ...this.#counters };
  }

  /** Queues one 20 ms frame. The Pacer keeps the reference; do not mutate it after. */
  enqueue(frame: F): void {
    if (frame.length !== this.frameLength) {
      throw new RangeError(`Pacer.enqueue: frame must have length ${this.frameLength}, got ${frame.length}`);
    }
    this.#queue.push(frame);
    this.#segmentOpen = true;
    this.#counters.framesEnqueued++;
    const queuedMs = this.queuedMs;
    if (queuedMs > this.#counters.maxQueuedMs) this.#counters.maxQueuedMs = queuedMs;
  }

  /**
   * Marks the end of the current segment: once the frames already queued have played, the silence that
   * follows is expected, not an underrun. Never discards anything.
   */
  endSegment(): void {
    this.#segmentOpen = false;
  }

  /** Takes the frame for the current slot. Call exactly once per slot. */
  next(): PacerNext<F> {
    if (this.#head < this.#queue.length) {
      const frame = this.#queue[this.#head];
      this.#head++;
      this.#compact();
      const afterSilence = this.#lastSlotSilent;
      this.#lastSlotSilent = false;
      this.#inUnderrun = false;
      this.#counters.framesPlayed++;
      return { frame, afterSilence };
    }
    this.#lastSlotSilent = true;
    this.#counters.silentSlots++;
    if (this.#segmentOpen) {
      this.#counters.underruns++;
      if (!this.#inUnderrun) this.#counters.underrunEpisodes++;
      this.#inUnderrun = true;
    } else {
      this.#inUnderrun = false;
    }
    return { frame: null, afterSilence: false };
  }

  /** Call after enqueue(): true exactly when reading should pause now (queued ≥ high water). */
  wantsPause(): boolean {
    if (this.#paused || this.queuedMs < this.highWaterMs) return false;
    this.#paused = true;
    this.#counters.pauses++;
    return true;
  }

  /** Call after next(): true exactly when reading should resume now (queued ≤ low water). */
  wantsResume(): boolean {
    if (!this.#paused || this.queuedMs > this.lowWaterMs) return false;
    this.#paused = false;
    return true;
  }

  /** Drops everything queued (the adapter closed: its audio has nowhere to go). Returns the frames dropped. */
  clear(): number {
    const dropped = this.queuedFrames;
    this.#queue = [];
    this.#head = 0;
    this.#segmentOpen = false;
    return dropped;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
