import type WebSocket from "ws";
import { Signal } from "../../util/signal.ts";
import { type LinkCommand, LinkCore, type LinkCoreOptions } from "./link-core.ts";

/** bidirectional: one socket carries both (the Twilio dialect). */
export type AdapterDirection = "ingest" | "egress" | "bidirectional";
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
  /** PCM payload bytes: received from the endpoint (ingest), sent to it (egress). */
  bytesProcessed: number;
  /** WebSocket messages: received from the endpoint (ingest), Packets sent to it (egress). */
  messages: number;
  /** Text messages the endpoint sent (ignored: Packets are binary). */
  textMessagesIgnored: number;
  /** 20 ms frames: played into the track (ingest), sent to the endpoint (egress; = messages). */
  frames: number;
  queuedMs: number;
  maxQueuedMs: number;
  underruns: number;
  droppedFrames: number;
  reconnects: number;
  /** Times reading paused because the endpoint sent more than --ws-max-messages-per-second. */
  rateLimitPauses: number;
  /** Ingest: the Opus encoder currently adds in-band FEC (--ingest-opus-fec; adaptive follows subscribers' loss). */
  fecActive?: boolean;
  /** The endpoint's audio format when it is not Cloudflare's 48 kHz stereo PCM, e.g. "pcmu 8000 Hz mono". */
  audioFormat?: string;
  /** "twilio": one socket both ways, Twilio Media Streams messages. */
  dialect?: "twilio";
  /** Twilio dialect: the track the endpoint hears (sessionId/trackName name the reply track it speaks into). */
  sourceSessionId?: string;
  sourceTrackName?: string;
  /** Twilio dialect: 20 ms media messages sent to the endpoint (`frames` counts those played from it). */
  framesToEndpoint?: number;
}

export interface AdapterLinkOptions extends LinkCoreOptions {
  now(): number;
  /** The socket's maxPayload, named in the close reason of an oversize message. */
  maxMessageBytes: number;
}

const noop = () => {};

/**
 * Shared life cycle of both directions: one WebSocket, one track, an idempotent close. What to do with the
 * socket (ping, pause, resume, drop) is decided by the sans-IO LinkCore; this class only carries it out.
 */
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
  protected link: LinkCore | undefined;
  /** Why the current socket is going away when it is not the endpoint's own close (drop, protocol error). */
  protected socketFault: string | undefined;
  #rateLimitPauses = 0;

  constructor(
    readonly id: string,
    readonly trackName: string,
    readonly endpoint: string,
    protected readonly linkOptions: AdapterLinkOptions,
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
      rateLimitPauses: this.#rateLimitPauses + (this.link?.rateLimitPauses ?? 0),
    };
    if (this.closeReason !== undefined) s.closeReason = this.closeReason;
    if (this.closedAt) s.closedAt = this.closedAt.toISOString();
    return s;
  }

  /**
   * Takes over a socket: every frame heard feeds the link core, and the socket's close is reported to
   * `onSocketClosed` with the reason the core or a protocol error gave, if any.
   */
  protected attachSocket(ws: WebSocket, onMessage: (data: Buffer, isBinary: boolean) => void): void {
    if (this.link) this.#rateLimitPauses += this.link.rateLimitPauses;
    const link = new LinkCore(this.linkOptions, this.linkOptions.now());
    this.ws = ws;
    this.link = link;
    this.socketFault = undefined;
    const heard = () => link.heard(this.linkOptions.now());
    ws.on("pong", heard);
    ws.on("ping", heard);
    ws.on("message", (data, isBinary) => {
      if (this.state === "closed" || ws !== this.ws) return;
      this.apply(link.message(this.linkOptions.now()));
      onMessage(data as Buffer, isBinary);
    });
    ws.on("error", (err) => {
      // ws closes the socket itself after a protocol error (1009 oversize, 1008 too many fragments, 1002);
      // remember why, or the close would read "endpoint closed the WebSocket (1006)".
      if (ws === this.ws) this.socketFault ??= describeSocketError(err, this.linkOptions.maxMessageBytes);
    });
    ws.on("close", (code, reason) => {
      if (ws === this.ws) this.onSocketClosed(ws, code, reason.toString());
    });
  }

  /** Runs the link core's clock; called on every media tick (the shared scheduler), not by a timer. */
  protected tickLink(now: number): void {
    if (this.link && this.ws) this.apply(this.link.tick(now));
  }

  /** Tells the link core whether our queue is full (ingest back-pressure). */
  protected setQueueFull(full: boolean): void {
    if (this.link) this.apply(this.link.setQueueFull(full, this.linkOptions.now()));
  }

  private apply(commands: readonly LinkCommand[]): void {
    const ws = this.ws;
    if (!ws) return;
    for (const c of commands) {
      if (c.kind === "ping") {
        if (ws.readyState === ws.OPEN) ws.ping();
      } else if (c.kind === "pause-reading") {
        ws.pause();
      } else if (c.kind === "resume-reading") {
        ws.resume();
      } else {
        this.socketFault = c.reason;
        ws.terminate(); // half-open: no close handshake is possible
      }
    }
  }

  protected abstract onSocketClosed(ws: WebSocket, code: number, reason: string): void;

  /**
   * Ends the adapter: closes the socket with `code` (1000 by API, 1001 on shutdown, 1007/1008/1009 on bad
   * input), ends its track and frees everything it held. Idempotent: returns false when it was already closed.
   */
  close(reason: string, code = 1000): boolean {
    if (this.state === "closed") return false;
    this.state = "closed";
    this.closeReason = reason;
    this.closedAt = new Date();
    const ws = this.ws;
    if (ws) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
        if (ws.readyState === ws.OPEN) this.farewell(ws, reason);
        ws.close(code, truncateReason(reason));
        // A peer that never answers the close handshake must not keep the socket forever.
        setTimeout(() => ws.terminate(), 2000).unref();
      }
      ws.removeAllListeners("message");
      ws.removeAllListeners("pong");
      ws.removeAllListeners("ping");
      ws.on("error", noop);
      if (ws.isPaused) ws.resume(); // let the close handshake be read
    }
    this.onClose(reason);
    this.closed.emit(reason);
    this.closed.clear();
    return true;
  }

  protected abstract onClose(reason: string): void;

  /** A dialect's last message before the close frame (Twilio's `stop`); none by default. */
  protected farewell(_ws: WebSocket, _reason: string): void {}
}

function describeSocketError(err: Error, maxMessageBytes: number): string {
  const code = (err as { code?: string }).code;
  if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH")
    return `message larger than ${maxMessageBytes} bytes (closed 1009)`;
  if (code === "WS_ERR_TOO_MANY_BUFFERED_PARTS") return `${err.message.toLowerCase()} (closed 1008)`;
  if (code?.startsWith("WS_ERR_")) return `WebSocket protocol error: ${err.message} (closed 1002)`;
  return `WebSocket error: ${err.message}`;
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
