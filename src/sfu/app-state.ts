import type { PeerTransportFactory } from "../rtc/peer-transport.ts";
import { newId } from "./ids.ts";
import { Session, type SessionHost, type SessionTimings } from "./session.ts";
import type { Track } from "./track.ts";

export type SessionLookup = { ok: true; session: Session } | { ok: false; reason: "not_found" | "gone" };

export interface AppStateOptions {
  /** Makes the media transport of each session with a peer connection. */
  createTransport: PeerTransportFactory;
  timings: SessionTimings;
  onForwarded?(): void;
  onRetransmit?(): void;
  onError(err: unknown, context: string): void;
}

/** How many closed session ids an app remembers to answer 410 rather than 404. */
const TOMBSTONES = 100_000;

/**
 * Everything one app owns: its sessions (and, through them, tracks). Apps never see each other:
 * every lookup starts here.
 */
export class AppState implements SessionHost {
  private readonly sessions = new Map<string, Session>();
  private readonly tombstones = new Set<string>();
  onForwarded?: () => void;
  onRetransmit?: () => void;

  constructor(private readonly opts: AppStateOptions) {
    this.onForwarded = opts.onForwarded;
    this.onRetransmit = opts.onRetransmit;
  }

  /** A session with a peer connection (HTTP clients) or without one (adapters publish into it). */
  createSession(opts: { peer: boolean; thirdparty?: boolean } = { peer: true }): Session {
    const id = newId();
    const factory = this.opts.createTransport;
    const session = new Session(
      id,
      this,
      opts.peer ? () => factory({ iceLite: !opts.thirdparty }) : undefined,
      this.opts.timings,
    );
    this.sessions.set(id, session);
    session.closed.subscribe(() => {
      this.sessions.delete(id);
      this.tombstones.add(id);
      if (this.tombstones.size > TOMBSTONES) this.tombstones.delete(this.tombstones.values().next().value!);
    });
    return session;
  }

  lookup(sessionId: string): SessionLookup {
    const session = this.sessions.get(sessionId);
    if (session) return { ok: true, session };
    return { ok: false, reason: this.tombstones.has(sessionId) ? "gone" : "not_found" };
  }

  findTrack(sessionId: string, trackName: string): Track | undefined {
    return this.sessions.get(sessionId)?.localTrack(trackName);
  }

  onError(err: unknown, context: string): void {
    this.opts.onError(err, context);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  allSessions(): Iterable<Session> {
    return this.sessions.values();
  }

  close(reason: string): void {
    for (const s of [...this.sessions.values()]) s.close(reason);
  }
}
