import type { MediaScheduler, Registration } from "../media/scheduler.ts";

/** What the driver runs: a transport's RTCP housekeeping at time `now`. */
export interface RtcpTickable {
  /** Returns true while it wants the fine (20 ms) cadence: NACKs or deferred PLIs are waiting. */
  rtcpTick(now: number): boolean;
}

/** Every transport runs at least this often (RR/SR/REMB intervals are ≥ 500 ms; the liveness check is coarse). */
const COARSE_SLOTS = 5;

/**
 * RTCP housekeeping for every transport of the process on the one media clock, with ONE scheduler
 * registration: each 20 ms slot runs only the transports that asked for the fine cadence (loss being
 * recovered), every fifth slot runs them all. Per-transport registrations would cost a scheduler entry and
 * a call per transport every 20 ms even when nothing is due — the dominant fixed cost per session.
 */
export class RtcpDriver {
  private readonly all = new Set<RtcpTickable>();
  private hot = new Set<RtcpTickable>();
  private registration: Registration | undefined;

  constructor(
    private readonly scheduler: MediaScheduler,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  add(t: RtcpTickable): void {
    this.all.add(t);
    this.registration ??= this.scheduler.register({
      tick: (slot, _due, now) => this.tick(slot, now),
    });
  }

  remove(t: RtcpTickable): void {
    this.all.delete(t);
    this.hot.delete(t);
    if (this.all.size === 0) {
      this.registration?.cancel();
      this.registration = undefined;
    }
  }

  /** The transport has loss to recover (or a PLI to release): run it every slot until it says otherwise. */
  wake(t: RtcpTickable): void {
    if (this.all.has(t)) this.hot.add(t);
  }

  get size(): number {
    return this.all.size;
  }

  private tick(slot: number, now: number): void {
    const run = [...(slot % COARSE_SLOTS === 0 ? this.all : this.hot)];
    this.hot = new Set();
    for (const t of run) {
      try {
        if (t.rtcpTick(now)) this.hot.add(t);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
