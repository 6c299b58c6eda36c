import { readFileSync } from "node:fs";
import type WebSocket from "ws";
import { ApiError } from "../../api/errors.ts";
import type { Config } from "../../config.ts";
import { type Logger, redactUrl } from "../../log.ts";
import type { AdapterAudioFormat } from "../../media/audio-format.ts";
import type { MediaScheduler } from "../../media/scheduler.ts";
import type { Metrics } from "../../metrics.ts";
import type { AppState } from "../../sfu/app-state.ts";
import { newId } from "../../sfu/ids.ts";
import type { Adapter, AdapterStatus } from "./adapter.ts";
import { type DialResult, dial } from "./dial.ts";
import { EgressAdapter } from "./egress.ts";
import { checkEndpoint, publicDialFailure } from "./endpoint-policy.ts";
import { FfmpegSnapshots, snapshotCodec } from "./ffmpeg-snapshots.ts";
import { IngestAdapter, type IngestOptions } from "./ingest.ts";
import { JpegEgressAdapter } from "./jpeg-egress.ts";
import { TwilioAdapter } from "./twilio.ts";

export type AdapterItemError = {
  errorCode:
    | "websocket_handshake_failed"
    | "websocket_connection_timeout"
    | "websocket_endpoint_not_allowed"
    | "not_found_track_error"
    | "invalid_params"
    | "quota_exceeded"
    | "video_decoder_unavailable";
  errorDescription: string;
};

export interface AdapterCreated {
  adapterId: string;
  sessionId: string;
}

/**
 * A closed adapter leaves only its status record (a few hundred bytes: no queue, socket or codec), for
 * idempotent close and the state endpoint: at most this many per app, for at most this long.
 */
const KEEP_CLOSED = 1_000;
const KEEP_CLOSED_MS = 60 * 60_000;

/** Open (and dialing) adapters across every app, for the server-wide quota. */
export class AdapterCount {
  open = 0;
}

export interface AdapterDeps {
  config: Config["adapter"];
  limits: Pick<Config["limits"], "adaptersPerApp" | "adapters">;
  count: AdapterCount;
  scheduler: MediaScheduler;
  logger: Logger;
  metrics: Metrics;
  now: () => number;
}

export type CloseResult =
  | { kind: "closed"; bytesProcessed: number }
  | { kind: "already-closed" }
  | { kind: "unknown" };

/** The WebSocket adapters of one app. */
export class AdapterManager {
  private readonly adapters = new Map<string, Adapter>();
  /** Insertion order = closing order, so the oldest record is the first key. */
  private readonly closedRecords = new Map<string, { status: AdapterStatus; expiresAt: number }>();
  private readonly ca: Buffer | undefined;
  /** Aborted on shutdown: pending dials end at once instead of holding the process. */
  private readonly shutdown = new AbortController();
  private dialing = 0;
  private shuttingDown = false;

  constructor(
    private readonly app: AppState,
    private readonly deps: AdapterDeps,
  ) {
    this.ca = deps.config.caFile ? readFileSync(deps.config.caFile) : undefined;
  }

  get(id: string): Adapter | undefined {
    return this.adapters.get(id);
  }

  /** Live adapters. */
  list(): Adapter[] {
    return [...this.adapters.values()];
  }

  /** The status of a live adapter or the record of a closed one. */
  status(id: string): AdapterStatus | undefined {
    return this.adapters.get(id)?.status() ?? this.closedRecord(id);
  }

  /** Live adapters, then the records of closed ones. */
  statuses(): AdapterStatus[] {
    this.expireRecords();
    return [...this.list().map((a) => a.status()), ...[...this.closedRecords.values()].map((r) => r.status)];
  }

  close(id: string, reason: string, code = 1000): CloseResult {
    const adapter = this.adapters.get(id);
    if (!adapter) return this.closedRecord(id) ? { kind: "already-closed" } : { kind: "unknown" };
    const bytesProcessed = adapter.bytesProcessed;
    adapter.close(reason, code);
    return { kind: "closed", bytesProcessed };
  }

  private closedRecord(id: string): AdapterStatus | undefined {
    this.expireRecords();
    return this.closedRecords.get(id)?.status;
  }

  private expireRecords(): void {
    const now = this.deps.now();
    for (const [id, r] of this.closedRecords) {
      if (r.expiresAt > now && this.closedRecords.size <= KEEP_CLOSED) break;
      this.closedRecords.delete(id);
    }
  }

  /** A quota error, or undefined when one more adapter fits (it is then counted until released). */
  private reserve(): AdapterItemError | undefined {
    const { limits, count } = this.deps;
    if (this.shuttingDown)
      return { errorCode: "websocket_handshake_failed", errorDescription: "the server is shutting down" };
    if (this.adapters.size + this.dialing >= limits.adaptersPerApp)
      return {
        errorCode: "quota_exceeded",
        errorDescription: `this app has ${this.adapters.size + this.dialing} open adapters, the limit (--max-adapters-per-app ${limits.adaptersPerApp})`,
      };
    if (count.open >= limits.adapters)
      return {
        errorCode: "quota_exceeded",
        errorDescription: `the server has ${count.open} open adapters, the limit (--max-adapters ${limits.adapters})`,
      };
    this.dialing++;
    count.open++;
    return undefined;
  }

  /** Ends a reservation that did not become an adapter (an adapter releases its own on close). */
  private release(): void {
    this.dialing--;
    this.deps.count.open--;
  }

  /** Policy check, then the handshake (pinned to the checked address), all within one absolute deadline. */
  private async connect(
    endpoint: URL,
    pauseOnOpen: boolean,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<DialResult | AdapterItemError> {
    const cfg = this.deps.config;
    const started = this.deps.now();
    const abort = signal ? AbortSignal.any([signal, this.shutdown.signal]) : this.shutdown.signal;
    const check = await withDeadline(
      checkEndpoint(endpoint, cfg.endpointPolicy),
      cfg.connectTimeoutMs,
      abort,
    );
    if (check === "timeout")
      return {
        errorCode: "websocket_connection_timeout",
        errorDescription: `resolving ${endpoint.hostname} took longer than ${cfg.connectTimeoutMs} ms`,
      };
    if (check === "aborted")
      return { errorCode: "websocket_handshake_failed", errorDescription: "dial abandoned" };
    if (!check.ok) {
      return {
        errorCode:
          check.reason === "denied" ? "websocket_endpoint_not_allowed" : "websocket_handshake_failed",
        errorDescription: check.description,
      };
    }
    const result = await dial(endpoint, {
      timeoutMs: Math.max(1, cfg.connectTimeoutMs - (this.deps.now() - started)),
      signal: abort,
      address: check.address,
      family: check.family,
      maxPayload: cfg.maxMessageBytes,
      ca: this.ca,
      pauseOnOpen,
      headers,
    });
    if (result.ok) return result;
    if (result.code === "websocket_connection_timeout")
      result.description = `no WebSocket handshake from ${endpoint.origin} within ${cfg.connectTimeoutMs} ms (--ws-connect-timeout-ms)`;
    // The operator sees the detail; under strict the API client does not (it would be a port scanner).
    this.deps.logger.info(
      { appId: this.app.appId, endpoint: endpoint.origin, code: result.code, detail: result.description },
      "adapter dial failed",
    );
    return { ...result, description: publicDialFailure(cfg.endpointPolicy, result.description) };
  }

  /**
   * Takes a quota slot and dials; on failure the slot is given back. The socket is paused at open: the
   * adapter resumes reading once its message listener is attached.
   */
  private async reserveAndDial(
    endpoint: URL,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<{ ws: WebSocket } | AdapterItemError> {
    const quota = this.reserve();
    if (quota) return quota;
    const dialed = await this.connect(endpoint, true, signal, headers);
    if ("ok" in dialed && dialed.ok) return dialed;
    this.release();
    return "ok" in dialed ? { errorCode: dialed.code, errorDescription: dialed.description } : dialed;
  }

  private linkOptions() {
    const cfg = this.deps.config;
    return {
      now: this.deps.now,
      pingIntervalMs: cfg.pingIntervalMs,
      maxMessagesPerSecond: cfg.maxMessagesPerSecond,
      maxMessageBytes: cfg.maxMessageBytes,
    };
  }

  /** Subscribes an egress adapter to an existing track (media or not yet), after the handshake. */
  async createEgress(
    item: {
      sessionId: string;
      trackName: string;
      endpoint: URL;
      headers?: Record<string, string>;
      speechEvents?: boolean;
      format?: AdapterAudioFormat;
    },
    signal?: AbortSignal,
  ): Promise<AdapterCreated | AdapterItemError> {
    const track = this.app.findTrack(item.sessionId, item.trackName);
    if (track?.kind !== "audio") {
      return {
        errorCode: "not_found_track_error",
        errorDescription: track
          ? `track ${item.trackName} is ${track.kind}; PCM egress needs audio`
          : `no track ${item.trackName} in session ${item.sessionId}`,
      };
    }
    const dialed = await this.reserveAndDial(item.endpoint, signal, item.headers);
    if (!("ws" in dialed)) return dialed;
    if (track.ended || this.shuttingDown) {
      this.release();
      dialed.ws.close(1000, "source track ended");
      return { errorCode: "not_found_track_error", errorDescription: `track ${item.trackName} ended` };
    }
    const id = newId();
    const m = this.deps.metrics;
    const adapter = new EgressAdapter(id, item.trackName, item.endpoint.href, track, {
      ...this.linkOptions(),
      reorder: this.deps.config.egressReorder,
      speechEvents: item.speechEvents,
      format: item.format,
      reconnectWindowMs: this.deps.config.egressReconnectWindowMs,
      shuttingDown: () => this.shuttingDown,
      redial: async () => {
        const r = await this.connect(item.endpoint, true, this.shutdown.signal, item.headers);
        return "ok" in r
          ? r
          : { ok: false, code: "websocket_handshake_failed", description: r.errorDescription };
      },
      onFrame: (arrivalMs, startMs, sentMs) => {
        m.adapterFrames.inc({ direction: "egress" });
        m.adapterQueue.observe({ direction: "egress" }, (startMs - arrivalMs) / 1000);
        m.adapterLatency.observe({ direction: "egress" }, (sentMs - startMs) / 1000);
      },
      onDrop: (n) => m.adapterDrops.inc({ direction: "egress" }, n),
      onDisconnect: (reason) =>
        this.deps.logger.warn(
          {
            appId: this.app.appId,
            adapterId: id,
            reason,
            reconnectWindowMs: this.deps.config.egressReconnectWindowMs,
          },
          "adapter endpoint lost, reconnecting",
        ),
      onRedialFailed: (reason, retryInMs) =>
        this.deps.logger.debug({ adapterId: id, reason, retryInMs }, "adapter redial failed"),
      onReconnect: (downMs) => {
        m.adapterReconnects.inc({ direction: "egress" });
        this.deps.logger.info(
          {
            appId: this.app.appId,
            adapterId: id,
            downMs: Math.round(downMs),
            reconnects: adapter.reconnects,
          },
          "adapter reconnected",
        );
      },
      onError: (err) => this.deps.logger.warn({ err, adapterId: id }, "egress redial failed"),
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: item.sessionId };
  }

  /**
   * Why `outputCodec: "jpeg"` cannot serve this track (406: an audio track, a codec the decoder has no RTP
   * input for), or undefined (also when there is no such track: that is a per-item not_found_track_error).
   */
  jpegSourceProblem(sessionId: string, trackName: string): string | undefined {
    const track = this.app.findTrack(sessionId, trackName);
    if (!track) return undefined;
    if (track.kind !== "video")
      return `track ${trackName} is ${track.kind}; outputCodec "jpeg" needs a video track`;
    if (track.codec && !snapshotCodec(track.codec.mimeType))
      return `track ${trackName} is ${track.codec.mimeType}; outputCodec "jpeg" decodes VP8, VP9 and H.264`;
    return undefined;
  }

  /** Starts the video decoder, dials the endpoint, then streams the track's images to it as JPEG. */
  async createJpegEgress(
    item: { sessionId: string; trackName: string; endpoint: URL; headers?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<AdapterCreated | AdapterItemError> {
    const track = this.app.findTrack(item.sessionId, item.trackName);
    if (track?.kind !== "video")
      return {
        errorCode: "not_found_track_error",
        errorDescription: `no video track ${item.trackName} in session ${item.sessionId}`,
      };
    // A track published before its first packet may not know its codec yet: VP8 is what browsers send first.
    const codec = snapshotCodec(track.codec?.mimeType ?? "video/VP8");
    if (!codec)
      return {
        errorCode: "invalid_params",
        errorDescription: this.jpegSourceProblem(item.sessionId, item.trackName) ?? "unsupported codec",
      };
    const cfg = this.deps.config;
    let adapter: JpegEgressAdapter | undefined;
    let decoder: FfmpegSnapshots;
    try {
      decoder = await FfmpegSnapshots.start({
        ffmpegPath: cfg.ffmpegPath,
        codec,
        fps: cfg.jpegFps,
        onImage: (jpeg) => adapter?.deliver(jpeg),
        onExit: (reason) => {
          if (adapter) adapter.close(reason, 1011);
          else this.deps.logger.warn({ reason }, "video decoder exited before its adapter started");
        },
      });
    } catch (err) {
      return { errorCode: "video_decoder_unavailable", errorDescription: (err as Error).message };
    }
    const dialed = await this.reserveAndDial(item.endpoint, signal, item.headers);
    if (!("ws" in dialed)) {
      decoder.close();
      return dialed;
    }
    if (track.ended || this.shuttingDown || !decoder.running) {
      this.release();
      decoder.close();
      dialed.ws.close(1000, "source track ended");
      return {
        errorCode: decoder.running ? "not_found_track_error" : "video_decoder_unavailable",
        errorDescription: decoder.running
          ? `track ${item.trackName} ended`
          : "the video decoder exited at start",
      };
    }
    const id = newId();
    const m = this.deps.metrics;
    adapter = new JpegEgressAdapter(id, item.trackName, item.endpoint.href, track, decoder, {
      ...this.linkOptions(),
      fps: cfg.jpegFps,
      shuttingDown: () => this.shuttingDown,
      onImage: () => m.adapterFrames.inc({ direction: "egress" }),
      onDrop: () => m.adapterDrops.inc({ direction: "egress" }, 1),
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: item.sessionId };
  }

  /** Dials the endpoint, then creates the ingest session and track. */
  async createIngest(
    item: {
      trackName: string;
      endpoint: URL;
      control?: "json";
      headers?: Record<string, string>;
      format?: AdapterAudioFormat;
    },
    signal?: AbortSignal,
  ): Promise<AdapterCreated | AdapterItemError> {
    const dialed = await this.reserveAndDial(item.endpoint, signal, item.headers);
    if (!("ws" in dialed)) return dialed;
    const session = this.adapterSession(dialed.ws);
    if ("errorCode" in session) return session;
    const id = newId();
    const adapter = new IngestAdapter(id, item.trackName, item.endpoint.href, session, {
      ...this.ingestOptions(id),
      control: item.control,
      format: item.format,
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: session.id };
  }

  /**
   * The Twilio dialect: one socket, the source track's audio to the endpoint and the endpoint's audio
   * into a reply track of a new session (like ingest). Answers the reply session's id.
   */
  async createTwilio(
    item: {
      sessionId: string;
      trackName: string;
      replyTrackName: string;
      endpoint: URL;
      headers?: Record<string, string>;
      customParameters: Record<string, string>;
    },
    signal?: AbortSignal,
  ): Promise<AdapterCreated | AdapterItemError> {
    const source = this.app.findTrack(item.sessionId, item.trackName);
    if (source?.kind !== "audio")
      return {
        errorCode: "not_found_track_error",
        errorDescription: source
          ? `track ${item.trackName} is ${source.kind}; the twilio dialect needs audio`
          : `no track ${item.trackName} in session ${item.sessionId}`,
      };
    const dialed = await this.reserveAndDial(item.endpoint, signal, item.headers);
    if (!("ws" in dialed)) return dialed;
    if (source.ended) {
      this.release();
      dialed.ws.close(1000, "source track ended");
      return { errorCode: "not_found_track_error", errorDescription: `track ${item.trackName} ended` };
    }
    const session = this.adapterSession(dialed.ws);
    if ("errorCode" in session) return session;
    const id = newId();
    const m = this.deps.metrics;
    const adapter = new TwilioAdapter(id, item.replyTrackName, item.endpoint.href, session, {
      ...this.ingestOptions(id),
      source,
      reorder: this.deps.config.egressReorder,
      customParameters: item.customParameters,
      onIgnored: (what) =>
        this.deps.logger.warn(
          { appId: this.app.appId, adapterId: id, what },
          "twilio endpoint sent a message the protocol does not allow; ignored (as Twilio does), counted in textMessagesIgnored",
        ),
      onDrop: (n) => m.adapterDrops.inc({ direction: "bidirectional" }, n),
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: session.id };
  }

  /** The session an ingest-like adapter publishes into; on failure the reservation and socket are given up. */
  private adapterSession(ws: WebSocket): ReturnType<AppState["createSession"]> | AdapterItemError {
    try {
      if (this.shuttingDown) throw new ApiError("websocket_handshake_failed", "the server is shutting down");
      return this.app.createSession({ peer: false });
    } catch (err) {
      this.release();
      ws.close(1013, "try again later");
      if (
        err instanceof ApiError &&
        (err.code === "quota_exceeded" || err.code === "websocket_handshake_failed")
      )
        return { errorCode: err.code, errorDescription: err.message };
      throw err;
    }
  }

  private ingestOptions(id: string): IngestOptions {
    const cfg = this.deps.config;
    const m = this.deps.metrics;
    return {
      ...this.linkOptions(),
      highWaterMs: cfg.ingestHighWaterMs,
      lowWaterMs: cfg.ingestLowWaterMs,
      opusFec: cfg.ingestOpusFec,
      opusComplexity: cfg.ingestOpusComplexity,
      onFrame: (arrivalMs, startMs, sentMs) => {
        m.adapterFrames.inc({ direction: "ingest" });
        m.adapterQueue.observe({ direction: "ingest" }, (startMs - arrivalMs) / 1000);
        m.adapterLatency.observe({ direction: "ingest" }, (sentMs - startMs) / 1000);
      },
      onUnderrun: () => m.adapterUnderruns.inc({ direction: "ingest" }),
      onTextMessage: (a) =>
        this.deps.logger.warn({ adapterId: a.id }, "ingest endpoint sent a text message; text is ignored"),
      onEndpointGone: (reason, queuedMs) =>
        this.deps.logger.info(
          { appId: this.app.appId, adapterId: id, reason, queuedMs },
          "adapter endpoint gone, playing out queued audio",
        ),
    };
  }

  /** Takes over the reservation made by reserve(). */
  private track(adapter: Adapter): void {
    this.dialing--;
    this.adapters.set(adapter.id, adapter);
    const ids = {
      appId: this.app.appId,
      adapterId: adapter.id,
      direction: adapter.direction,
      sessionId: adapter.sessionId,
    };
    this.deps.logger.info(
      { ...ids, trackName: adapter.trackName, endpoint: redactUrl(adapter.endpoint) },
      "adapter created",
    );
    adapter.closed.subscribe((reason) => {
      const status = adapter.status();
      this.deps.count.open--;
      this.adapters.delete(adapter.id);
      this.closedRecords.set(adapter.id, { status, expiresAt: this.deps.now() + KEEP_CLOSED_MS });
      this.expireRecords();
      this.deps.metrics.adaptersClosed.inc({ direction: adapter.direction });
      this.deps.logger.info(
        {
          ...ids,
          reason,
          frames: status.frames,
          messages: status.messages,
          bytesProcessed: status.bytesProcessed,
        },
        "adapter closed",
      );
    });
  }

  /**
   * Shutdown: pending dials are abandoned, egress adapters close first (1001: their source tracks would
   * otherwise end under them and say 1000), then ingest.
   */
  closeAll(reason: string, code: number): void {
    this.shuttingDown = true;
    this.shutdown.abort(new Error(reason));
    const all = this.list();
    for (const a of all) if (a.direction !== "ingest") a.close(reason, code);
    for (const a of all) a.close(reason, code);
  }
}

/** Races `p` against a deadline and an abort signal. */
async function withDeadline<T>(
  p: Promise<T>,
  ms: number,
  signal: AbortSignal,
): Promise<T | "timeout" | "aborted"> {
  if (signal.aborted) return "aborted";
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), ms);
      }),
      new Promise<"aborted">((resolve) => {
        onAbort = () => resolve("aborted");
        signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}
