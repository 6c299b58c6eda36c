import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** bidirectional: one socket both ways (the Twilio dialect). */
export type AdapterDirection = "ingest" | "egress" | "bidirectional";

/** Reports current counts at scrape time: call `add` once per object (or with a count). */
export type CountSource<L extends string> = (
  add: (labels: Record<L, string>, count?: number) => void,
) => void;

/**
 * A gauge that can mirror object state: register sources and the value is computed at scrape time from the
 * live objects, so it can never drift from them. Without sources it behaves as a plain gauge (set/inc/dec).
 */
export type SourcedGauge<L extends string> = Gauge<L> & {
  /** Returns a function that removes the source (call it when the owner closes). */
  addSource(source: CountSource<L>): () => void;
};

/**
 * A counter for per-packet paths: `add` bumps a plain number, folded into the prom-client counter when
 * /metrics is scraped (prom-client's inc() costs microseconds, a budget a forwarded packet does not have).
 */
export type PulledCounter = Counter & { add(n?: number): void };

export interface Metrics {
  /** Per server instance, so several servers can run in one process (tests). Serve it at /metrics. */
  readonly registry: Registry;
  readonly sessions: SourcedGauge<"state">;
  readonly tracks: SourcedGauge<"kind">;
  readonly forwardedPackets: PulledCounter;
  readonly nackRetransmits: PulledCounter;
  readonly adapters: SourcedGauge<"direction" | "state">;
  readonly adapterFrames: Counter<"direction">;
  readonly adapterUnderruns: Counter<"direction">;
  readonly adapterDrops: Counter<"direction">;
  readonly adapterReconnects: Counter<"direction">;
  /** Adapters closed (any reason); the `adapters` gauge counts live ones only. */
  readonly adaptersClosed: Counter<"direction">;
  /** Seconds a frame waited for its turn (arrival → its slot), observed per frame, by direction. */
  readonly adapterQueue: Histogram<"direction">;
  /** Seconds from a frame's turn to its send (wake delay + codec + write), observed per frame, by direction. */
  readonly adapterLatency: Histogram<"direction">;
  /** prom-client's default `nodejs_eventloop_lag_seconds`, registered with the process CPU/memory metrics. */
  readonly eventLoopLag: Gauge;
}

// Processing: from 0.1 ms (encode or decode and a write) to 500 ms (a stalled event loop).
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5,
];
// Queueing: from the wait for a 20 ms slot (≤ 20 ms when the endpoint keeps pace) and the egress reorder
// buffer (20–40 ms) to a whole clip sent at once to an ingest adapter (up to --ingest-high-water-ms, 60 s
// by default, plus what the socket held): 120 s.
const QUEUE_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 20,
  30, 60, 90, 120,
];

/** The states of live adapters (a closed adapter is counted by patchbay_adapters_closed_total instead). */
const ADAPTER_STATES = ["connecting", "open", "reconnecting"] as const;
const DIRECTIONS: readonly AdapterDirection[] = ["ingest", "egress", "bidirectional"];

function sourcedGauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  initial: readonly Record<L, string>[] = [],
): SourcedGauge<L> {
  const sources = new Set<CountSource<L>>();
  // Label sets reported once stay exported as 0 afterwards, so a state that empties reads 0 instead of vanishing.
  const seen = new Map<string, Record<L, string>>();
  const keyOf = (labels: Record<L, string>) => labelNames.map((l) => labels[l]).join("\u0000");
  for (const labels of initial) seen.set(keyOf(labels), labels);
  const gauge = new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      if (sources.size === 0) return;
      const totals = new Map<string, number>();
      for (const key of seen.keys()) totals.set(key, 0);
      const add = (labels: Record<L, string>, count = 1) => {
        const key = keyOf(labels);
        if (!seen.has(key)) seen.set(key, { ...labels });
        totals.set(key, (totals.get(key) ?? 0) + count);
      };
      for (const source of sources) source(add);
      for (const [key, value] of totals) this.set(seen.get(key)!, value);
    },
  });
  for (const labels of initial) gauge.set(labels, 0);
  return Object.assign(gauge, {
    addSource(source: CountSource<L>): () => void {
      sources.add(source);
      return () => {
        sources.delete(source);
      };
    },
  });
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const eventLoopLag = registry.getSingleMetric("nodejs_eventloop_lag_seconds");
  if (!(eventLoopLag instanceof Gauge))
    throw new Error("prom-client no longer provides nodejs_eventloop_lag_seconds");
  const registers = [registry];
  const byDirection = DIRECTIONS.map((direction) => ({ direction }));
  const pulledCounter = (name: string, help: string): PulledCounter => {
    let pending = 0;
    const c = new Counter({
      name,
      help,
      registers,
      collect() {
        if (pending > 0) this.inc(pending);
        pending = 0;
      },
    });
    return Object.assign(c, {
      add(n = 1) {
        pending += n;
      },
    });
  };
  const directionCounter = (name: string, help: string) => {
    const c = new Counter({ name, help, labelNames: ["direction"] as const, registers });
    for (const labels of byDirection) c.inc(labels, 0);
    return c;
  };
  const adapterQueue = new Histogram({
    name: "patchbay_adapter_queue_seconds",
    help:
      "Time a frame waits in an adapter for its turn, by direction: ingest, from its arrival on the WebSocket " +
      "to its 20 ms slot (pacer queue); egress, from its RTP packet's arrival to the slot that sends it " +
      "(jitter buffer, send backlog). Plus patchbay_adapter_latency_seconds: arrival to send.",
    labelNames: ["direction"] as const,
    buckets: QUEUE_BUCKETS,
    registers,
  });
  const adapterLatency = new Histogram({
    name: "patchbay_adapter_latency_seconds",
    help:
      "Time an adapter takes to send a frame once its turn came (its slot's due time), by direction: the " +
      "timer's lateness, other streams of the same wake, Opus encode and RTP write (ingest) or decode and " +
      "WebSocket send (egress). Queueing before that is patchbay_adapter_queue_seconds.",
    labelNames: ["direction"] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  for (const labels of byDirection) {
    adapterQueue.zero(labels);
    adapterLatency.zero(labels);
  }
  return {
    registry,
    sessions: sourcedGauge(registry, "patchbay_sessions", "Sessions by state.", ["state"]),
    tracks: sourcedGauge(
      registry,
      "patchbay_tracks",
      "Published tracks by kind.",
      ["kind"],
      [{ kind: "audio" }, { kind: "video" }],
    ),
    forwardedPackets: pulledCounter(
      "patchbay_forwarded_packets_total",
      "RTP packets forwarded to subscribers.",
    ),
    nackRetransmits: pulledCounter(
      "patchbay_nack_retransmits_total",
      "RTP packets retransmitted from the cache on NACK.",
    ),
    adapters: sourcedGauge(
      registry,
      "patchbay_adapters",
      "Live WebSocket adapters by direction and state (closed ones: patchbay_adapters_closed_total).",
      ["direction", "state"],
      DIRECTIONS.flatMap((direction) => ADAPTER_STATES.map((state) => ({ direction, state }))),
    ),
    adapterFrames: directionCounter("patchbay_adapter_frames_total", "20 ms audio frames moved by adapters."),
    adapterUnderruns: directionCounter(
      "patchbay_adapter_underruns_total",
      "Frames an adapter had to fill with silence or concealment because no audio was ready.",
    ),
    adapterDrops: directionCounter(
      "patchbay_adapter_drops_total",
      "Frames dropped by adapters (egress back-pressure, late packets).",
    ),
    adapterReconnects: directionCounter(
      "patchbay_adapter_reconnects_total",
      "Adapter WebSocket reconnections.",
    ),
    adaptersClosed: directionCounter(
      "patchbay_adapters_closed_total",
      "WebSocket adapters closed, for any reason (by API, by the endpoint, on errors, on shutdown).",
    ),
    adapterQueue,
    adapterLatency,
    eventLoopLag,
  };
}
