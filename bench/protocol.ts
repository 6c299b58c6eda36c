// Messages exchanged over the Node IPC channel between the benchmark orchestrators (bench/forwarding.ts,
// bench/ingest.ts, bench/egress.ts) and their children (bench/server-process.ts, bench/load-generator.ts,
// bench/adapter-load.ts), plus a small request/reply helper. Every request carries an id; the child
// answers with `{ type: "reply", id, ... }`. The adapter benchmarks' own messages are in
// bench/lib/adapter-protocol.ts.

import type { ChildProcess } from "node:child_process";
import type { GridInfo, ProbeOptions, ProbeReport } from "./lib/adapter-protocol.ts";

/** The app every benchmark server is started with (PATCHBAY_APPS); loopback only, never a real secret. */
export const BENCH_APP = { appId: "be".repeat(16), secret: "bench-secret-0123456789abcdef" } as const;

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface ServerSnapshot {
  /** process.cpuUsage() of the server process, µs. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** process.hrtime.bigint() of the server process, converted to µs. */
  wallUs: number;
  /** patchbay_forwarded_packets_total read from the server's own metrics registry at the same instant. */
  forwarded: number;
  /** Event-loop delay since the previous snapshot (monitorEventLoopDelay, resolution subtracted). */
  eventLoopLag: LatencySummary;
  rssBytes: number;
  heapUsedBytes: number;
}

export type ServerRequest =
  | { type: "snapshot"; id: number }
  | { type: "profile-start"; id: number; samplingIntervalUs: number }
  | { type: "profile-stop"; id: number; path: string }
  /** Adapter benchmarks: the scheduler's slot grid, and per-frame probes over a window. */
  | { type: "grid"; id: number }
  | { type: "probe-start"; id: number; options: ProbeOptions }
  | { type: "probe-stop"; id: number }
  | { type: "shutdown"; id: number };

export type ServerMessage =
  | { type: "ready"; url: string; pid: number }
  | {
      type: "reply";
      id: number;
      snapshot?: ServerSnapshot;
      error?: string;
      path?: string;
      grid?: GridInfo;
      probe?: ProbeReport;
    };

export interface SetupRequest {
  type: "setup";
  id: number;
  url: string;
  appId: string;
  secret: string;
  publishers: number;
  subscribersPerPublisher: number;
  /** Peers negotiated in parallel. */
  concurrency: number;
  /** Per-peer connect timeout. */
  peerTimeoutMs: number;
  /** Bound for the whole setup phase. */
  setupTimeoutMs: number;
}

export interface RunRequest {
  type: "run";
  id: number;
  warmupMs: number;
  measureMs: number;
  /** Packets keep flowing this long after the window so late packets of the window can still arrive. */
  tailMs: number;
}

export type LoadRequest = SetupRequest | RunRequest | { type: "close"; id: number };

export interface SetupResult {
  setupMs: number;
  publishers: number;
  subscribers: number;
  failures: string[];
}

export interface RunReport {
  /** Subscriber streams (publishers × subscribers per publisher). */
  streams: number;
  windowPackets: number;
  expected: number;
  received: number;
  lost: number;
  duplicates: number;
  /** Packets that arrived after a packet with a higher index of the same stream. */
  reordered: number;
  /** Packets whose payload did not match what the stream's publisher sent at that index (misrouting/corruption). */
  mismatched: number;
  /** Streams that received nothing at all. */
  deadStreams: number;
  /** Worst single stream, in lost packets. */
  worstStreamLost: number;
  /** Scheduled send time → receive time, both in the generator's clock (includes generator lateness). */
  latency: LatencySummary;
  generator: {
    cpuUserUs: number;
    cpuSystemUs: number;
    wallUs: number;
    /** How late the single pacer timer fired relative to t0 + n × 20 ms. */
    pacerLateness: LatencySummary;
    eventLoopLag: LatencySummary;
    packetsSent: number;
    meanPayloadBytes: number;
  };
}

export type LoadMessage =
  | { type: "hello"; pid: number }
  | { type: "event"; name: "window-start" | "window-end"; at: number }
  | { type: "reply"; id: number; setup?: SetupResult; report?: RunReport; error?: string };

let nextId = 1;

/** Send a request and wait for the matching reply, bounded by `timeoutMs`. */
export function request<R extends { id: number; error?: string }>(
  child: ChildProcess,
  message: Record<string, unknown> & { type: string },
  timeoutMs: number,
): Promise<R> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${message.type}: no reply after ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      const msg = m as { type?: string; id?: number; error?: string };
      if (msg.type !== "reply" || msg.id !== id) return;
      cleanup();
      if (msg.error) reject(new Error(`${message.type}: ${msg.error}`));
      else resolve(msg as R);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`${message.type}: child exited (code ${code}, signal ${signal})`));
    };
    if (!child.connected) {
      clearTimeout(timer);
      reject(new Error(`${message.type}: the child's IPC channel is closed`));
      return;
    }
    child.on("message", onMessage);
    child.on("exit", onExit);
    // With a callback a failed send is reported here instead of as an 'error' event on the child.
    child.send({ ...message, id }, (err) => {
      if (!err) return;
      cleanup();
      reject(new Error(`${message.type}: ${err.message}`));
    });
  });
}

/** Summarise a perf_hooks histogram recorded in nanoseconds, minus a fixed offset (timer resolution). */
export function summarizeNs(
  h: { count: number; min: number; max: number; mean: number; percentile(p: number): number },
  offsetNs = 0,
): LatencySummary {
  if (h.count === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
  const ms = (ns: number) => Math.max(0, (ns - offsetNs) / 1e6);
  return {
    count: h.count,
    p50Ms: ms(h.percentile(50)),
    p99Ms: ms(h.percentile(99)),
    maxMs: ms(h.max),
    meanMs: ms(h.mean),
  };
}

/** Send to the parent, ignoring a closed channel (the parent is gone; exitWithParent ends us). */
export function sendToParent(message: unknown): void {
  if (process.send && process.connected) process.send(message, undefined, undefined, () => {});
}

/** Children exit when the orchestrator goes away, whatever the reason (crash, SIGKILL, Ctrl-C). */
export function exitWithParent(onExit: () => void = () => {}): void {
  process.on("disconnect", () => {
    try {
      onExit();
    } finally {
      process.exit(0);
    }
  });
}
