// PlayoutMarks: barge-in bookkeeping for an ingest track (control: "json"). An endpoint places a mark after the
// audio it has sent so far and wants to hear back when that audio has left as RTP ("played") or was thrown
// away by a clear ("cleared"). Sans-IO: positions are counts of frames, time is whatever the caller ticks.
//
// A mark completes when the pacer has played every frame queued before it, plus the partial frame the framer
// still holds (those bytes were sent before the mark; they play once completed or padded). Frames play in
// order unless a clear drops the queue, which clears every pending mark at once.

export interface MarkResult {
  name: string;
  status: "played" | "cleared";
}

export class PlayoutMarks {
  /** Pending marks, in order, with the played-frame count that completes each. */
  #pending: { name: string; at: number }[] = [];

  constructor(readonly maxPending = 1000) {}

  get pending(): number {
    return this.#pending.length;
  }

  /**
   * A mark after everything sent so far: `played` frames played, `queued` frames waiting, `partial` whether the
   * framer holds an incomplete frame. False (nothing added) when `maxPending` marks already wait.
   */
  add(name: string, played: number, queued: number, partial: boolean): boolean {
    if (this.#pending.length >= this.maxPending) return false;
    this.#pending.push({ name, at: played + queued + (partial ? 1 : 0) });
    return true;
  }

  /** After a frame was played (`played` = frames played so far): the marks that are now done, in order. */
  onPlayed(played: number): MarkResult[] {
    let n = 0;
    while (n < this.#pending.length && this.#pending[n].at <= played) n++;
    if (n === 0) return [];
    return this.#pending.splice(0, n).map((m) => ({ name: m.name, status: "played" as const }));
  }

  /** The queue was dropped: every pending mark is cleared, in order. */
  clear(): MarkResult[] {
    const out = this.#pending.map((m) => ({ name: m.name, status: "cleared" as const }));
    this.#pending = [];
    return out;
  }
}
