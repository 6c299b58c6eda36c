import type WebSocket from "ws";
import { Signal } from "../../util/signal.ts";

export type AdapterDirection = "ingest" | "egress";
export type AdapterState = "connecting" | "open" | "reconnecting" | "closed";

/** What GET adapters/websocket[/{id}] reports (a Patchbay extension). */
export interface AdapterStatus {
  adapterId: string;
  direction: AdapterDirection;
  state: AdapterState;
  closeReason?: string;
  trackName: string;
  sessionId: string;
  endpoint: string;
  createdAt: string;
  closedAt?: string;
  bytesProcessed: number;
  messages: number;
  textMessagesIgnored: number;
  frames: number;
  queuedMs: number;
  maxQueuedMs: number;
  underruns: number;
  droppedFrames: number;
  reconnects: number;
}

/** Shared life cycle of both directions: one WebSocket, one track, an idempotent close. */
export abstract class Adapter {
  abstract readonly direction: AdapterDirection;
  state: AdapterState = "connecting";
  closeReason: string | undefined;
  readonly closed = new Signal<string>();
  readonly createdAt = new Date();
  closedAt: Date | undefined;
  bytesProcessed = 0;
  messages = 0;
  textMessagesIgnored = 0;
  protected ws: WebSocket | undefined;
  /** Liveness: set on pong, cleared on ping; a peer that misses a whole ping interval is dropped. */
  alive = true;
  /** Set when the keepalive gave up on the peer, so the close reason says so rather than "1006". */
  protected silentPeer = false;

  constructor(
    readonly id: string,
    readonly trackName: string,
    readonly endpoint: string,
  ) {}

  abstract get sessionId(): string;
  abstract status(): AdapterStatus;

  protected baseStatus(): Omit<
    AdapterStatus,
    "frames" | "queuedMs" | "maxQueuedMs" | "underruns" | "droppedFrames" | "reconnects"
  > {
    const s: ReturnType<Adapter["baseStatus"]> = {
      adapterId: this.id,
      direction: this.direction,
      state: this.state,
      trackName: this.trackName,
      sessionId: this.sessionId,
      endpoint: this.endpoint,
      createdAt: this.createdAt.toISOString(),
      bytesProcessed: this.bytesProcessed,
      messages: this.messages,
      textMessagesIgnored: this.textMessagesIgnored,
    };
    if (this.closeReason !== undefined) s.closeReason = this.closeReason;
    if (this.closedAt) s.closedAt = this.closedAt.toISOString();
    return s;
  }

  /** Protocol keepalive, driven by the manager's one shared interval. */
  keepalive(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    if (!this.alive) {
      this.silentPeer = true;
      ws.terminate(); // half-open: no pong for a whole interval
      return;
    }
    this.alive = false;
    ws.ping();
  }

  /**
   * Ends the adapter: closes the socket with `code` (1000 by API, 1001 on shutdown, 1007/1009 on bad input)
   * and ends its track. Idempotent: returns false when it was already closed.
   */
  close(reason: string, code = 1000): boolean {
    if (this.state === "closed") return false;
    this.state = "closed";
    this.closeReason = reason;
    this.closedAt = new Date();
    const ws = this.ws;
    if (ws && (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING)) {
      ws.close(code, truncateReason(reason));
      // A peer that never answers the close handshake must not keep the socket forever.
      setTimeout(() => ws.terminate(), 2000).unref();
    }
    this.onClose(reason);
    this.closed.emit(reason);
    this.closed.clear();
    return true;
  }

  protected abstract onClose(reason: string): void;
}

/** Close reasons are limited to 123 bytes by RFC 6455. */
export function truncateReason(reason: string): string {
  const buf = Buffer.from(reason);
  return buf.length <= 123
    ? reason
    : `${buf
        .subarray(0, 120)
        .toString("utf8")
        .replace(/\uFFFD$/, "")}...`;
}
