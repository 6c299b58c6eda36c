/**
 * Plays scheduler slots after this event-loop turn's I/O (setImmediate runs after the poll phase): after a
 * stall the timer fires first, and the packets that arrived meanwhile must be in the jitter buffer, not
 * concealed. A late wake delivers every missed slot, in order, each with its own due time (the jitter
 * buffer grants one frame per distinct time).
 */
export class SlotsAfterIo {
  private due: number[] = [];

  constructor(
    private readonly play: (slotMs: number) => void,
    private readonly alive: () => boolean,
    private readonly afterAll: () => void,
  ) {}

  add(slotMs: number): void {
    this.due.push(slotMs);
    if (this.due.length > 1) return;
    setImmediate(() => {
      const due = this.due;
      this.due = [];
      for (const t of due) if (this.alive()) this.play(t);
      if (this.alive()) this.afterAll();
    });
  }

  clear(): void {
    this.due = [];
  }
}
