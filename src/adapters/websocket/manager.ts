import { readFileSync } from "node:fs";
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import type { MediaScheduler } from "../../media/scheduler.ts";
import type { Metrics } from "../../metrics.ts";
import type { AppState } from "../../sfu/app-state.ts";
import { newId } from "../../sfu/ids.ts";
import type { Adapter } from "./adapter.ts";
import { type DialResult, dial } from "./dial.ts";
import { EgressAdapter } from "./egress.ts";
import { checkEndpoint } from "./endpoint-policy.ts";
import { IngestAdapter } from "./ingest.ts";

export type AdapterItemError = {
  errorCode:
    | "websocket_handshake_failed"
    | "websocket_connection_timeout"
    | "websocket_endpoint_not_allowed"
    | "not_found_track_error"
    | "invalid_params";
  errorDescription: string;
};

export interface AdapterCreated {
  adapterId: string;
  sessionId: string;
}

/** Closed adapters are remembered (for idempotent close and the state endpoint), up to this many per app. */
const KEEP_CLOSED = 10_000;
const KEEPALIVE_MS = 10_000;

export interface AdapterDeps {
  config: Config["adapter"];
  scheduler: MediaScheduler;
  logger: Logger;
  metrics: Metrics;
  now: () => number;
}

/** The WebSocket adapters of one app. */
export class AdapterManager {
  private readonly adapters = new Map<string, Adapter>();
  private readonly closedOrder: string[] = [];
  private readonly ca: Buffer | undefined;
  private readonly keepaliveTimer: NodeJS.Timeout;

  constructor(
    private readonly app: AppState,
    private readonly deps: AdapterDeps,
  ) {
    this.ca = deps.config.caFile ? readFileSync(deps.config.caFile) : undefined;
    // One interval for every adapter's protocol pings (not media: media runs on the scheduler).
    this.keepaliveTimer = setInterval(() => {
      for (const a of this.adapters.values()) a.keepalive();
    }, KEEPALIVE_MS);
    this.keepaliveTimer.unref();
  }

  get(id: string): Adapter | undefined {
    return this.adapters.get(id);
  }

  list(): Adapter[] {
    return [...this.adapters.values()];
  }

  /** Policy check, then the handshake (pinned to the checked address). */
  private async connect(endpoint: URL, pauseOnOpen: boolean): Promise<DialResult | AdapterItemError> {
    const cfg = this.deps.config;
    const check = await checkEndpoint(endpoint, cfg.endpointPolicy);
    if (!check.ok) {
      return {
        errorCode:
          check.reason === "denied" ? "websocket_endpoint_not_allowed" : "websocket_handshake_failed",
        errorDescription: check.description,
      };
    }
    return dial(endpoint, {
      timeoutMs: cfg.connectTimeoutMs,
      address: check.address,
      family: check.family,
      maxPayload: cfg.maxMessageBytes,
      ca: this.ca,
      pauseOnOpen,
    });
  }

  /** Subscribes an egress adapter to an existing track (media or not yet), after the handshake. */
  async createEgress(item: {
    sessionId: string;
    trackName: string;
    endpoint: URL;
  }): Promise<AdapterCreated | AdapterItemError> {
    const track = this.app.findTrack(item.sessionId, item.trackName);
    if (track?.kind !== "audio") {
      return {
        errorCode: "not_found_track_error",
        errorDescription: track
          ? `track ${item.trackName} is ${track.kind}; PCM egress needs audio`
          : `no track ${item.trackName} in session ${item.sessionId}`,
      };
    }
    const dialed = await this.connect(item.endpoint, true);
    if (!("ok" in dialed)) return dialed;
    if (!dialed.ok) return { errorCode: dialed.code, errorDescription: dialed.description };
    if (track.ended) {
      dialed.ws.close(1000, "source track ended");
      return { errorCode: "not_found_track_error", errorDescription: `track ${item.trackName} ended` };
    }
    const id = newId();
    const m = this.deps.metrics;
    const adapter = new EgressAdapter(id, item.trackName, item.endpoint.href, track, {
      now: this.deps.now,
      reorder: this.deps.config.egressReorder,
      redial: async () => {
        const r = await this.connect(item.endpoint, true);
        return "ok" in r
          ? r
          : { ok: false, code: "websocket_handshake_failed", description: r.errorDescription };
      },
      onFrame: (ms) => {
        m.adapterFrames.inc({ direction: "egress" });
        m.adapterLatency.observe({ direction: "egress" }, ms / 1000);
      },
      onDrop: (n) => m.adapterDrops.inc({ direction: "egress" }, n),
      onReconnect: () => m.adapterReconnects.inc({ direction: "egress" }),
      onError: (err) => this.deps.logger.warn({ err, adapterId: id }, "egress redial failed"),
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: item.sessionId };
  }

  /** Dials the endpoint, then creates the ingest session and track. */
  async createIngest(item: { trackName: string; endpoint: URL }): Promise<AdapterCreated | AdapterItemError> {
    const cfg = this.deps.config;
    // IngestAdapter.start() resumes reading once its message listener is attached.
    const dialed = await this.connect(item.endpoint, true);
    if (!("ok" in dialed)) return dialed;
    if (!dialed.ok) return { errorCode: dialed.code, errorDescription: dialed.description };
    const session = this.app.createSession({ peer: false });
    const id = newId();
    const m = this.deps.metrics;
    const adapter = new IngestAdapter(id, item.trackName, item.endpoint.href, session, {
      highWaterMs: cfg.ingestHighWaterMs,
      lowWaterMs: cfg.ingestLowWaterMs,
      maxMessageBytes: cfg.maxMessageBytes,
      opusFec: cfg.ingestOpusFec,
      opusComplexity: cfg.ingestOpusComplexity,
      now: this.deps.now,
      onFrame: (ms) => {
        m.adapterFrames.inc({ direction: "ingest" });
        m.adapterLatency.observe({ direction: "ingest" }, ms / 1000);
      },
      onUnderrun: () => m.adapterUnderruns.inc({ direction: "ingest" }),
      onTextMessage: (a) =>
        this.deps.logger.warn({ adapterId: a.id }, "ingest endpoint sent a text message; text is ignored"),
    });
    this.track(adapter);
    adapter.start(dialed.ws, this.deps.scheduler);
    return { adapterId: id, sessionId: session.id };
  }

  private track(adapter: Adapter): void {
    this.adapters.set(adapter.id, adapter);
    adapter.closed.subscribe((reason) => {
      this.deps.logger.info(
        { adapterId: adapter.id, direction: adapter.direction, reason },
        "adapter closed",
      );
      this.closedOrder.push(adapter.id);
      if (this.closedOrder.length > KEEP_CLOSED) this.adapters.delete(this.closedOrder.shift()!);
    });
  }

  closeAll(reason: string, code: number): void {
    clearInterval(this.keepaliveTimer);
    for (const a of this.adapters.values()) a.close(reason, code);
  }
}
