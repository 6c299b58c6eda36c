import type { PeerTransportFactory } from "../rtc/peer-transport.ts";
import { newId } from "./ids.ts";
import { Session, type SessionHost, type SessionState, type SessionTimings } from "./session.ts";
import type { Track } from "./track.ts";

export type SessionLookup = { ok: true; session: Session } | { ok: false; reason: "not_found" | "gone" };

/** The quotas an app enforces (config.limits; each refusal names its flag). */
export interface AppLimits {
  /** Open sessions with a peer connection in this app (--max-sessions-per-app). */
  readonly sessionsPerApp: number;
  /** Open sessions with a peer connection in the whole server, every app together (--max-sessions). */
  readonly sessions: number;
  /** Items in the `tracks` array of tracks/new, tracks/update, tracks/close (--max-tracks-per-request). */
  readonly tracksPerRequest: number;
  /** Open tracks of one session (--max-tracks-per-session); offers may carry twice as many m-lines. */
  readonly tracksPerSession: number;
}

const UNLIMITED: AppLimits = {
  sessionsPerApp: Number.POSITIVE_INFINITY,
  sessions: Number.POSITIVE_INFINITY,
  tracksPerRequest: Number.POSITIVE_INFINITY,
  tracksPerSession: Number.POSITIVE_INFINITY,
};

/**
 * Sessions open in every app of one server: what --max-sessions counts. One instance is shared by the
 * AppStates of a server (servers in one process, as in tests, each have their own).
 */
export class SessionCensus {
  /** Open sessions with a peer connection (created by sessions/new). */
  peer = 0;
  /** Open sessions without one (ingest adapters; bounded by the adapter quotas, not counted by the limits above). */
  adapter = 0;
}

/** A session refused by a quota; the message names the limit and its flag. */
export class QuotaExceededError extends Error {
  override readonly name = "QuotaExceededError";
}

/** A session's life cycle, once per event: for the log. */
export type SessionEvent =
  | { kind: "created"; session: Session; peer: boolean }
  | { kind: "connected" | "disconnected"; session: Session; previous: SessionState }
  | { kind: "closed"; session: Session; reason: string };

export interface AppStateOptions {
  /** For descriptions and logs. */
  appId?: string;
  /** Makes the media transport of each session with a peer connection. */
  createTransport: PeerTransportFactory;
  timings: SessionTimings;
  /** Default: no limit. */
  limits?: AppLimits;
  /** Shared by every app of the server; default: this app's own (the global limit then counts this app only). */
  census?: SessionCensus;
  onForwarded?(): void;
  onRetransmit?(): void;
  onError(err: unknown, context: string): void;
  onSessionEvent?(event: SessionEvent): void;
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
  private peerSessions = 0;
  readonly limits: AppLimits;
  private readonly census: SessionCensus;
  onForwarded?: () => void;
  onRetransmit?: () => void;

  constructor(private readonly opts: AppStateOptions) {
    this.onForwarded = opts.onForwarded;
    this.onRetransmit = opts.onRetransmit;
    this.limits = opts.limits ?? UNLIMITED;
    this.census = opts.census ?? new SessionCensus();
  }

  /**
   * A session with a peer connection (HTTP clients) or without one (adapters publish into it). A session
   * with a peer connection counts against --max-sessions-per-app and --max-sessions: over either, this
   * throws QuotaExceededError and creates nothing.
   */
  createSession(opts: { peer: boolean; thirdparty?: boolean } = { peer: true }): Session {
    if (opts.peer) {
      const refused = this.sessionQuotaError();
      if (refused) throw new QuotaExceededError(refused);
    }
    const id = newId();
    const factory = this.opts.createTransport;
    const session = new Session(
      id,
      this,
      opts.peer ? () => factory({ iceLite: !opts.thirdparty }) : undefined,
      this.opts.timings,
      { tracksPerSession: this.limits.tracksPerSession },
    );
    this.sessions.set(id, session);
    if (opts.peer) {
      this.peerSessions++;
      this.census.peer++;
    } else this.census.adapter++;
    this.opts.onSessionEvent?.({ kind: "created", session, peer: opts.peer });
    session.closed.subscribe((reason) => {
      this.sessions.delete(id);
      if (opts.peer) {
        this.peerSessions--;
        this.census.peer--;
      } else this.census.adapter--;
      this.tombstones.add(id);
      if (this.tombstones.size > TOMBSTONES) this.tombstones.delete(this.tombstones.values().next().value!);
      this.opts.onSessionEvent?.({ kind: "closed", session, reason });
    });
    return session;
  }

  /** Why one more session with a peer connection would be refused now, or undefined when it fits. */
  sessionQuotaError(): string | undefined {
    const { sessionsPerApp, sessions } = this.limits;
    if (this.peerSessions >= sessionsPerApp) {
      const app = this.opts.appId ? `app ${this.opts.appId}` : "this app";
      return `${app} has ${this.peerSessions} open sessions, the limit (--max-sessions-per-app ${sessionsPerApp})`;
    }
    if (this.census.peer >= sessions)
      return `the server has ${this.census.peer} open sessions in all apps, the limit (--max-sessions ${sessions})`;
    return undefined;
  }

  /**
   * Open sessions in the whole server (every app): by default those the session limits count (with a peer
   * connection, from sessions/new); `{ all: true }` adds the adapters' sessions.
   */
  openSessionCount(opts: { all?: boolean } = {}): number {
    return this.census.peer + (opts.all ? this.census.adapter : 0);
  }

  /** Open sessions with a peer connection in this app (what --max-sessions-per-app counts). */
  get peerSessionCount(): number {
    return this.peerSessions;
  }

  /** The app's id (undefined for an AppState built without one, in unit tests). */
  get appId(): string | undefined {
    return this.opts.appId;
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

  onSessionState(session: Session, state: "connected" | "disconnected", previous: SessionState): void {
    this.opts.onSessionEvent?.({ kind: state, session, previous });
  }

  /** Open sessions of this app, adapters' included. */
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
