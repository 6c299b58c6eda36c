// Server samples and tables of the soak benchmark (bench/soak.ts): the server's /metrics (Prometheus text:
// RSS, heap, active handles by type, open fds, sessions, adapters, adapter counters) together with its CPU
// and event-loop figures from bench/server-process.ts's IPC snapshot.

import type { ChildProcess } from "node:child_process";
import os from "node:os";
import { request, type ServerSnapshot } from "../protocol.ts";
import { errorText } from "./async.ts";
import { f, renderTable } from "./format.ts";
import type { SoakPeek, SoakRole, SoakWindowReport } from "./soak-protocol.ts";
import { machineCpu } from "./system.ts";

/** Series → value; the key is the name followed by its label set as written (`name{a="b"}`). */
export type Prom = Map<string, number>;

export function parseProm(text: string): Prom {
  const out: Prom = new Map();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out.set(m[1] + (m[2] ?? ""), Number(m[3]));
  }
  return out;
}

function labelsOf(key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]] = m[2];
  return out;
}

/** Values of `name` by the value of `label` (summed over the other labels). */
export function promBy(p: Prom, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, v] of p) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    const l = labelsOf(key)[label] ?? "";
    out[l] = (out[l] ?? 0) + v;
  }
  return out;
}

export const promSum = (p: Prom, name: string): number =>
  Object.values(promBy(p, name, "")).reduce((a, b) => a + b, 0);

export interface ServerSample {
  label: string;
  /** Seconds since the "start" sample (negative before it). */
  tSec: number;
  rssMB: number;
  heapUsedMB: number;
  handles: number;
  handlesByType: Record<string, number>;
  openFds: number;
  sessions: Record<string, number>;
  adapters: Record<string, number>;
  adaptersLive: number;
  tracks: number;
  /** Server CPU (% of one core) and event-loop delay since the previous sample. */
  cpuPctSincePrev: number;
  eldP99Ms: number;
  eldMaxMs: number;
  /** Busy cores of the whole machine since the previous sample, and the 1-minute load average. */
  machineBusyCores: number;
  loadavg1: number;
  counters: {
    egressFramesNotConcealed: number;
    ingestFramesPlayed: number;
    ingestUnderruns: number;
    egressDrops: number;
    forwardedPackets: number;
  };
  generators: Partial<Record<SoakRole, SoakPeek>>;
  /** Undefined when the server did not answer the IPC snapshot in time. */
  snapshot: ServerSnapshot | undefined;
  /** What the server did not answer (the figures are NaN then). */
  errors: string[];
}

/** Takes samples of one server; CPU and machine load are relative to the previous sample. */
export class Sampler {
  private prev: { snap: ServerSnapshot; machine: { busy: number; total: number } } | undefined;
  private zeroAt = Number.NaN;

  constructor(
    private readonly server: ChildProcess,
    private readonly url: string,
    private readonly timeoutMs = 60_000,
  ) {}

  /** Sample times are counted from now on. */
  markZero(): void {
    this.zeroAt = performance.now();
  }

  async take(label: string, generators: Partial<Record<SoakRole, SoakPeek>> = {}): Promise<ServerSample> {
    // An overloaded server may not answer at all: the sample then says so instead of ending the run.
    const [metrics, reply] = await Promise.allSettled([
      fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(this.timeoutMs) }).then((r) => r.text()),
      request<{ id: number; snapshot: ServerSnapshot }>(this.server, { type: "snapshot" }, this.timeoutMs),
    ]);
    const errors: string[] = [];
    if (metrics.status === "rejected") errors.push(`/metrics: ${errorText(metrics.reason)}`);
    if (reply.status === "rejected") errors.push(`snapshot: ${errorText(reply.reason)}`);
    const snap = reply.status === "fulfilled" ? reply.value.snapshot : undefined;
    const machine = machineCpu();
    const p = parseProm(metrics.status === "fulfilled" ? metrics.value : "");
    const prev = this.prev;
    if (snap) this.prev = { snap, machine };
    const wallSec = prev && snap ? (snap.wallUs - prev.snap.wallUs) / 1e6 : Number.NaN;
    const cpuUs =
      prev && snap
        ? snap.cpuUserUs - prev.snap.cpuUserUs + (snap.cpuSystemUs - prev.snap.cpuSystemUs)
        : Number.NaN;
    const adapters: Record<string, number> = {};
    for (const [key, v] of p) {
      if (!key.startsWith("patchbay_adapters{")) continue;
      const l = labelsOf(key);
      adapters[`${l.direction}/${l.state}`] = v;
    }
    const dir = (name: string, d: string) => promBy(p, name, "direction")[d] ?? 0;
    return {
      label,
      tSec: Number.isNaN(this.zeroAt) ? Number.NaN : (performance.now() - this.zeroAt) / 1000,
      rssMB: (p.get("process_resident_memory_bytes") ?? Number.NaN) / 2 ** 20,
      heapUsedMB: (p.get("nodejs_heap_size_used_bytes") ?? Number.NaN) / 2 ** 20,
      handles: p.get("nodejs_active_handles_total") ?? Number.NaN,
      handlesByType: promBy(p, "nodejs_active_handles", "type"),
      openFds: p.get("process_open_fds") ?? Number.NaN,
      sessions: promBy(p, "patchbay_sessions", "state"),
      adapters,
      adaptersLive: Object.entries(adapters)
        .filter(([k]) => !k.endsWith("/closed"))
        .reduce((a, [, v]) => a + v, 0),
      tracks: promSum(p, "patchbay_tracks"),
      cpuPctSincePrev: (100 * cpuUs) / (wallSec * 1e6),
      eldP99Ms: snap?.eventLoopLag.p99Ms ?? Number.NaN,
      eldMaxMs: snap?.eventLoopLag.maxMs ?? Number.NaN,
      machineBusyCores: prev ? (machine.busy - prev.machine.busy) / 1000 / wallSec : Number.NaN,
      loadavg1: os.loadavg()[0],
      counters: {
        egressFramesNotConcealed: dir("patchbay_adapter_frames_total", "egress"),
        ingestFramesPlayed: dir("patchbay_adapter_frames_total", "ingest"),
        ingestUnderruns: dir("patchbay_adapter_underruns_total", "ingest"),
        egressDrops: dir("patchbay_adapter_drops_total", "egress"),
        forwardedPackets: p.get("patchbay_forwarded_packets_total") ?? 0,
      },
      generators,
      snapshot: snap,
      errors,
    };
  }
}

const sessionsCell = (s: Record<string, number>) =>
  Object.entries(s)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ") || "0";

const handleTypes = (h: Record<string, number>) =>
  Object.entries(h)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

export function samplesTable(samples: ServerSample[]): string {
  const rows = samples.map((s) => {
    const g = Object.values(s.generators);
    const sum = (k: keyof SoakPeek) => (g.length ? String(g.reduce((a, x) => a + (x?.[k] ?? 0), 0)) : "-");
    return [
      s.label,
      Number.isNaN(s.tSec) ? "-" : f(s.tSec, 0),
      f(s.rssMB, 1),
      f(s.heapUsedMB, 1),
      s.errors.length ? `no answer` : String(s.handles),
      handleTypes(s.handlesByType),
      String(s.openFds),
      sessionsCell(s.sessions),
      String(s.adaptersLive),
      f(s.cpuPctSincePrev, 1),
      `${f(s.eldP99Ms, 1)}/${f(s.eldMaxMs, 0)}`,
      `${f(s.machineBusyCores, 2)}/${f(s.loadavg1, 1)}`,
      sum("churnOps"),
      sum("churnInFlight"),
      sum("lost"),
    ];
  });
  return renderTable(
    [
      "sample",
      "t s",
      "RSS MB",
      "heap MB",
      "handles",
      "handles by type",
      "fds",
      "sessions",
      "adapters",
      "srv CPU%",
      "ELD p99/max",
      "busy cores/load",
      "churn ops",
      "in flight",
      "lost",
    ],
    rows,
    1,
  );
}

export interface ClassRow {
  name: string;
  report: SoakWindowReport | undefined;
  /** Concealed egress frames over the whole run (pairs only). */
  concealed?: number;
}

export function classTable(rows: ClassRow[]): string {
  return renderTable(
    [
      "class",
      "live/target",
      "churn ops (failed)",
      "API calls (errors)",
      "expected",
      "received",
      "lost",
      "dup",
      "reord",
      "dead/stalled",
      "details",
      "gen CPU%",
      "gen late p99/max",
    ],
    rows.map(({ name, report: r, concealed }) => {
      if (!r) return [name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "no report", "-", "-"];
      const lost = r.units.lost + (r.streams?.tailLost ?? 0);
      const details = r.pairs
        ? `seq gaps ${r.pairs.seqGaps}, bad msgs ${r.pairs.badMessages}, egress dropped ${r.pairs.egressDroppedFrames}, ` +
          `egress underruns ${r.pairs.egressUnderruns}, ingest underruns ${r.pairs.ingestUnderruns}` +
          (concealed === undefined ? "" : `, concealed (run) ${concealed}`)
        : r.streams
          ? `tail lost ${r.streams.tailLost}, mismatched ${r.streams.mismatched}`
          : "";
      return [
        name,
        `${r.live}/${r.target}`,
        `${r.churn.ops} (${r.churn.failed})`,
        `${r.api.calls} (${r.api.errors})`,
        String(r.units.expected),
        String(r.units.received),
        String(lost),
        String(r.units.duplicates),
        String(r.units.reordered),
        `${r.dead}/${r.stalled}`,
        details,
        f(r.cpuPctOfOneCore, 1),
        `${f(r.pacerLateness.p99Ms, 1)}/${f(r.pacerLateness.maxMs, 0)}`,
      ];
    }),
    1,
  );
}
