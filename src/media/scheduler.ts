// MediaScheduler is the one process-wide media clock (ARCHITECTURE "Time", SPEC §2.5).
//
// Why absolute deadlines: a chain of setTimeout(20) drifts by every wake-up's lateness, so after a few
// minutes the RTP stream runs measurably slower than real time and receivers' jitter buffers grow. Here
// slot n of a stream is due at t0 + n × period, computed by multiplication from the stream's start, so
// lateness never accumulates: a late wake simply finds several slots due and runs each one, in order
// (catch-up by frame count). What to send for a caught-up slot is the stream's decision.
//
// Why one timer: with hundreds of adapters, one timer per stream means hundreds of wake-ups per 20 ms.
// Start times are snapped up to the scheduler's grid (epoch + k × period), so every stream is due at the
// same instants and one wake serves them all. The single timer is always armed for the earliest deadline.
//
// Nothing here reads the wall clock or touches real timers except through the injected `clock` and
// `timers`, so tests drive it with a fake clock far faster than real time.

/** Monotonic milliseconds (fractional allowed). */
export interface Clock {
  now(): number;
}

export interface TimerHost {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ScheduledStream {
  /**
   * Called once for every slot, in slot order, no earlier than (about) its due time.
   * @param slot 0-based slot index since registration
   * @param slotTimeMs when the slot was due (clock time)
   * @param nowMs clock time of this wake (≥ slotTimeMs − early tolerance; may be much later on catch-up)
   */
  tick(slot: number, slotTimeMs: number, nowMs: number): void;
}

export interface Registration {
  /** Clock time of slot 0. */
  readonly startMs: number;
  /** Index of the next slot that will be ticked. */
  readonly nextSlot: number;
  readonly cancelled: boolean;
  /** Stops further ticks. Idempotent; safe to call from inside the stream's own tick. */
  cancel(): void;
}

export interface MediaSchedulerOptions {
  clock: Clock;
  timers: TimerHost;
  /** Slot length in ms. Default 20 (one Opus frame). */
  periodMs?: number;
  /** A slot run more than this many ms after its due time counts as late. Default 5. */
  lateThresholdMs?: number;
  /**
   * A slot is run if it is due within this many ms. Real timers round to whole milliseconds and can fire
   * a fraction of a ms before a fractional deadline; without tolerance that costs an extra 1 ms wake-up.
   * Default 1.
   */
  earlyToleranceMs?: number;
  /**
   * When a stream is more than this many slots behind, the oldest missed slots are skipped (counted in
   * stats.skippedSlots; the next tick's `slot` jumps) instead of run. Default Infinity: every slot is run,
   * as the media contract asks; set a bound to survive a process that was suspended for minutes.
   */
  maxCatchUpSlots?: number;
  /**
   * Number of evenly spaced phases inside a period that streams are spread over (each new stream takes
   * the least used phase). 1 (default) puts every stream on the same instant. With many streams, work
   * done in one wake delays the packets of the streams handled last in it; spreading them over phases
   * bounds that tail (e.g. 10 phases: a wake every 2 ms serving a tenth of the streams).
   */
  phases?: number;
  /** A stream's tick threw. The other streams, and this stream's later slots, still run. */
  onError?: (error: unknown, registration: Registration) => void;
  /** Called once per timer wake with how late the wake was relative to the deadline it was armed for. */
  onLateness?: (lateMs: number) => void;
}

export interface MediaSchedulerStats {
  /** Currently registered streams. */
  streams: number;
  /** Timer callbacks that ran. */
  wakes: number;
  /** Stream ticks called (one per stream per slot). */
  slotsRun: number;
  /** Ticks run more than lateThresholdMs after their due time. */
  lateSlots: number;
  /** Slots skipped because of maxCatchUpSlots. */
  skippedSlots: number;
  /** Ticks that threw. */
  errors: number;
  /** Worst wake lateness seen, ms. */
  maxLatenessMs: number;
}

export const realClock: Clock = {
  now: () => performance.now(),
};

/**
 * Node timers, unref'd: the scheduler alone must not keep a process alive (sockets and the HTTP server
 * do that), so a forgotten scheduler cannot hang a test run or a shutdown.
 */
export const realTimers: TimerHost = {
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

class StreamEntry implements Registration {
  nextSlot = 0;
  cancelled = false;

  readonly stream: ScheduledStream;
  readonly startMs: number;
  readonly phase: number;
  readonly #onCancel: (entry: StreamEntry) => void;

  constructor(
    stream: ScheduledStream,
    startMs: number,
    phase: number,
    onCancel: (entry: StreamEntry) => void,
  ) {
    this.stream = stream;
    this.startMs = startMs;
    this.phase = phase;
    this.#onCancel = onCancel;
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.#onCancel(this);
  }
}

export class MediaScheduler {
  readonly periodMs: number;
  readonly lateThresholdMs: number;
  readonly #clock: Clock;
  readonly #timers: TimerHost;
  readonly #earlyToleranceMs: number;
  readonly #maxCatchUpSlots: number;
  readonly #onError: (error: unknown, registration: Registration) => void;
  readonly #onLateness: ((lateMs: number) => void) | undefined;
  readonly #epochMs: number;
  readonly #streams = new Set<StreamEntry>();
  readonly #phaseLoad: number[];
  #timer: unknown = null;
  #timerDeadline = Number.POSITIVE_INFINITY;
  #running = false;
  #closed = false;
  #stats: MediaSchedulerStats = {
    streams: 0,
    wakes: 0,
    slotsRun: 0,
    lateSlots: 0,
    skippedSlots: 0,
    errors: 0,
    maxLatenessMs: 0,
  };

  constructor(options: MediaSchedulerOptions) {
    const periodMs = options.periodMs ?? 20;
    if (!(periodMs > 0) || !Number.isFinite(periodMs))
      throw new RangeError(`periodMs must be > 0, got ${periodMs}`);
    const maxCatchUp = options.maxCatchUpSlots ?? Number.POSITIVE_INFINITY;
    if (!(maxCatchUp >= 1)) throw new RangeError(`maxCatchUpSlots must be ≥ 1, got ${maxCatchUp}`);
    this.periodMs = periodMs;
    this.lateThresholdMs = options.lateThresholdMs ?? 5;
    this.#earlyToleranceMs = Math.max(0, options.earlyToleranceMs ?? 1);
    this.#maxCatchUpSlots = maxCatchUp;
    this.#clock = options.clock;
    this.#timers = options.timers;
    this.#onError =
      options.onError ??
      ((error) => {
        // No logger is injected at this layer; failing loudly beats swallowing a broken stream.
        console.error("MediaScheduler: stream tick threw", error);
      });
    this.#onLateness = options.onLateness;
    this.#epochMs = this.#clock.now();
    const phases = options.phases ?? 1;
    if (!Number.isInteger(phases) || phases < 1)
      throw new RangeError(`phases must be an integer ≥ 1, got ${phases}`);
    this.#phaseLoad = new Array(phases).fill(0);
  }

  get stats(): Readonly<MediaSchedulerStats> {
    return { ...this.#stats, streams: this.#streams.size };
  }

  /**
   * Starts ticking `stream`. Slot 0 is due at the first grid instant at or after now, so streams
   * registered at different times still share wake-ups. The first tick never runs synchronously inside
   * register().
   */
  register(stream: ScheduledStream): Registration {
    if (this.#closed) throw new Error("MediaScheduler is closed");
    const now = this.#clock.now();
    let phase = 0;
    for (let p = 1; p < this.#phaseLoad.length; p++)
      if (this.#phaseLoad[p] < this.#phaseLoad[phase]) phase = p;
    this.#phaseLoad[phase]++;
    const offset = this.#epochMs + (phase * this.periodMs) / this.#phaseLoad.length;
    const gridIndex = Math.max(0, Math.ceil((now - offset) / this.periodMs));
    const entry = new StreamEntry(stream, offset + gridIndex * this.periodMs, phase, (e) => this.#remove(e));
    this.#streams.add(entry);
    // Inside a wake, #run re-arms once at the end; arming here too would only be cancelled again.
    if (!this.#running) this.#armFor(entry.startMs);
    return entry;
  }

  /** Cancels every stream and the timer. Further register() calls throw. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of [...this.#streams]) entry.cancel();
    this.#disarm();
  }

  #remove(entry: StreamEntry): void {
    this.#streams.delete(entry);
    this.#phaseLoad[entry.phase]--;
    if (this.#streams.size === 0 && !this.#running) this.#disarm();
  }

  #dueTime(entry: StreamEntry, slot: number): number {
    return entry.startMs + slot * this.periodMs;
  }

  #armFor(deadline: number): void {
    if (this.#timer !== null && this.#timerDeadline <= deadline) return;
    this.#disarm();
    const delay = Math.max(0, Math.ceil(deadline - this.#clock.now()));
    this.#timerDeadline = deadline;
    this.#timer = this.#timers.setTimeout(() => this.#onTimer(), delay);
  }

  #disarm(): void {
    if (this.#timer !== null) this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerDeadline = Number.POSITIVE_INFINITY;
  }

  #onTimer(): void {
    const armedFor = this.#timerDeadline;
    this.#timer = null;
    this.#timerDeadline = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    this.#stats.wakes++;
    const lateMs = Math.max(0, now - armedFor);
    if (lateMs > this.#stats.maxLatenessMs) this.#stats.maxLatenessMs = lateMs;
    if (this.#onLateness) {
      try {
        this.#onLateness(lateMs);
      } catch {
        // A metrics callback must never stop media.
      }
    }
    this.#run(now);
  }

  #run(now: number): void {
    this.#running = true;
    const horizon = now + this.#earlyToleranceMs;
    try {
      // Snapshot: streams registered by a tick start on a later grid instant and are picked up when we
      // re-arm; streams cancelled by a tick are skipped via their flag.
      for (const entry of [...this.#streams]) {
        if (entry.cancelled) continue;
        const due = Math.floor((horizon - entry.startMs) / this.periodMs); // last due slot index
        if (due < entry.nextSlot) continue;
        if (due - entry.nextSlot + 1 > this.#maxCatchUpSlots) {
          const first = due - this.#maxCatchUpSlots + 1;
          this.#stats.skippedSlots += first - entry.nextSlot;
          entry.nextSlot = first;
        }
        while (entry.nextSlot <= due && !entry.cancelled) {
          const slot = entry.nextSlot++;
          const slotTime = this.#dueTime(entry, slot);
          this.#stats.slotsRun++;
          if (now - slotTime > this.lateThresholdMs) this.#stats.lateSlots++;
          try {
            entry.stream.tick(slot, slotTime, now);
          } catch (error) {
            this.#stats.errors++;
            try {
              this.#onError(error, entry);
            } catch {
              // The error reporter failing is not a reason to stop the other streams.
            }
          }
        }
      }
    } finally {
      this.#running = false;
      if (!this.#closed) this.#rearm();
    }
  }

  #rearm(): void {
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#streams) {
      const t = this.#dueTime(entry, entry.nextSlot);
      if (t < earliest) earliest = t;
    }
    if (earliest === Number.POSITIVE_INFINITY) this.#disarm();
    else this.#armFor(earliest);
  }
}
