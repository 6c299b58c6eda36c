// One step of an adapter benchmark (bench/ingest.ts, bench/egress.ts): fresh server and load-generator
// children, N ingest and/or M egress adapters set up through the HTTP API, then one or more measurement
// windows. Per window the orchestrator starts the generator's pacers (aligned to the server's scheduler
// grid), waits a warm-up, snapshots the server (CPU, event loop) and starts the server-side probes and the
// generator's window together, waits the window, snapshots and collects all three, and stops the pacers.
// Both children are stopped at the end of the step (SIGKILL if they do not stop).

import type { ChildProcess } from "node:child_process";
import type { WriteStream } from "node:fs";
import os from "node:os";
import { relative } from "node:path";
import { type ProfileSummary, summarizeProfile } from "../profile-summary.ts";
import {
  BENCH_APP,
  type LatencySummary,
  request,
  type ServerMessage,
  type ServerSnapshot,
} from "../protocol.ts";
import type {
  AdapterLoadMessage,
  AdapterSetupResult,
  GenWindowReport,
  GridInfo,
  ProbeOptions,
  ProbeReport,
} from "./adapter-protocol.ts";
import { errorText, sleep } from "./async.ts";
import { ROOT, spawnChild, stopChild, waitMessage } from "./children.ts";
import { machineCpu, udpCounters } from "./system.ts";

export interface WindowSpec {
  name: string;
  warmupMs: number;
  measureMs: number;
  ingestLeadMs: number;
  egressLeadMs: number;
}

export interface StepSpec {
  scenario: string;
  /** The ramp variable (adapters, agents) for tables. */
  n: number;
  label: string;
  serverArgs: string[];
  ingest: number;
  egress: number;
  windows: WindowSpec[];
  probe: Omit<ProbeOptions, "seriesAdapterId"> & { series: boolean };
}

export interface StepContext {
  log: WriteStream;
  concurrency: number;
  /** Generator CPU (% of one core) from which it counts as saturated. */
  genCpuLimitPct: number;
  /** Generator pacer lateness p99 (ms) from which it counts as saturated. */
  genLatenessLimitMs: number;
  /** Record the server's CPU profile over each step's first window. */
  profile?: boolean;
  /** Where profiles go: `<profilePrefix>-<scenario>-<label>.cpuprofile`. */
  profilePrefix?: string;
}

export interface WindowResult {
  name: string;
  ingestLeadMs: number;
  egressLeadMs: number;
  server: {
    windowSec: number;
    cpuPctOfOneCore: number;
    eventLoopLag: LatencySummary;
    rssMB: number;
  };
  probe: ProbeReport;
  generator: GenWindowReport & { cpuPctOfOneCore: number; saturated: boolean };
  machine: {
    busyCores: number;
    /** Busy cores not explained by the server and the generator (other processes, kernel). */
    otherCores: number;
    /** The machine was (nearly) CPU-bound, or the generator's timers were late while it was not busy. */
    contended: boolean;
    loadavg1: number;
    udpDeltas: Record<string, number>;
  };
  notes: string[];
}

export interface StepResult {
  scenario: string;
  n: number;
  label: string;
  ingest: number;
  egress: number;
  serverArgs: string[];
  setup?: AdapterSetupResult;
  grid?: GridInfo;
  windows: WindowResult[];
  /** --profile: the server's CPU profile over the first window. */
  profile?: { path: string; summary: ProfileSummary };
  error?: string;
}

type Snap = {
  server: ServerSnapshot;
  machine: { busy: number; total: number };
  udp: Record<string, number>;
  loadavg1: number;
};

export async function runAdapterStep(ctx: StepContext, spec: StepSpec): Promise<StepResult> {
  const result: StepResult = {
    scenario: spec.scenario,
    n: spec.n,
    label: spec.label,
    ingest: spec.ingest,
    egress: spec.egress,
    serverArgs: spec.serverArgs,
    windows: [],
  };
  ctx.log.write(`\n=== ${spec.scenario} ${spec.label} ${new Date().toISOString()}\n`);
  let server: ChildProcess | undefined;
  let gen: ChildProcess | undefined;
  try {
    server = spawnChild("server-process.ts", ctx.log, "server", spec.serverArgs);
    const ready = await waitMessage<ServerMessage>(server, (m) => m.type === "ready", 60_000, "server start");
    if (ready.type !== "ready") throw new Error("unreachable");
    const url = ready.url;
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`server is not on loopback: ${url}`);
    gen = spawnChild("adapter-load.ts", ctx.log, "gen");
    await waitMessage<AdapterLoadMessage>(gen, (m) => m.type === "hello", 60_000, "load generator start");

    const peers = spec.ingest * 2 + spec.egress * 2;
    const setupTimeoutMs = 60_000 + 1000 * peers;
    const setupReply = await request<{ id: number; setup: AdapterSetupResult }>(
      gen,
      {
        type: "setup",
        url,
        appId: BENCH_APP.appId,
        secret: BENCH_APP.secret,
        ingest: spec.ingest,
        egress: spec.egress,
        concurrency: ctx.concurrency,
        peerTimeoutMs: 20_000,
        setupTimeoutMs,
      },
      setupTimeoutMs + 30_000,
    );
    result.setup = setupReply.setup;
    const s = setupReply.setup;
    if (s.failures.length > 0 || s.ingest.length !== spec.ingest || s.egress.length !== spec.egress)
      throw new Error(`setup failed: ${s.failures.join("; ") || "not every adapter was created"}`);

    const srv = server;
    const g = gen;
    const grid = (await request<{ id: number; grid: GridInfo }>(srv, { type: "grid" }, 10_000)).grid;
    result.grid = grid;
    const probeOptions: ProbeOptions = {
      perFrame: spec.probe.perFrame,
      socketHook: spec.probe.socketHook,
      lateMs: spec.probe.lateMs,
      seriesAdapterId: spec.probe.series ? (s.ingest[0]?.adapterId ?? undefined) : undefined,
    };
    const snap = async (): Promise<Snap> => {
      const r = await request<{ id: number; snapshot: ServerSnapshot }>(srv, { type: "snapshot" }, 10_000);
      return { server: r.snapshot, machine: machineCpu(), udp: udpCounters(), loadavg1: os.loadavg()[0] };
    };

    const profilePath =
      ctx.profile && ctx.profilePrefix
        ? `${ctx.profilePrefix}-${spec.scenario}-${spec.label.replace(/[^A-Za-z0-9=._-]+/g, "_")}.cpuprofile`
        : undefined;
    for (const [i, w] of spec.windows.entries()) {
      const profiling = profilePath !== undefined && i === 0;
      await request(
        g,
        {
          type: "start",
          grid,
          ingestLeadMs: w.ingestLeadMs,
          egressLeadMs: w.egressLeadMs,
          maxDurationMs: w.warmupMs + w.measureMs + 30_000,
        },
        10_000,
      );
      await sleep(w.warmupMs);
      const [a] = await Promise.all([
        snap(),
        request(srv, { type: "probe-start", options: probeOptions }, 10_000),
        request(g, { type: "mark-start" }, 10_000),
        profiling ? request(srv, { type: "profile-start", samplingIntervalUs: 1000 }, 10_000) : undefined,
      ]);
      await sleep(w.measureMs);
      const [b, probeReply, genReply] = await Promise.all([
        snap(),
        request<{ id: number; probe: ProbeReport }>(srv, { type: "probe-stop" }, 30_000),
        request<{ id: number; report: GenWindowReport }>(g, { type: "mark-end" }, 30_000),
      ]);
      if (profiling) {
        await request(srv, { type: "profile-stop", path: profilePath }, 60_000);
        result.profile = { path: relative(ROOT, profilePath), summary: summarizeProfile(profilePath, 25) };
      }
      await request(g, { type: "stop" }, 10_000);
      result.windows.push(windowResult(ctx, w, a, b, probeReply.probe, genReply.report));
    }
    return result;
  } catch (err) {
    result.error = errorText(err);
    return result;
  } finally {
    if (gen) await stopChild(gen, { type: "close" }, 20_000);
    if (server) await stopChild(server, { type: "shutdown" }, 10_000);
  }
}

function windowResult(
  ctx: StepContext,
  w: WindowSpec,
  a: Snap,
  b: Snap,
  probe: ProbeReport,
  gen: GenWindowReport,
): WindowResult {
  const windowSec = (b.server.wallUs - a.server.wallUs) / 1e6;
  const serverCpuUs = b.server.cpuUserUs - a.server.cpuUserUs + (b.server.cpuSystemUs - a.server.cpuSystemUs);
  const serverCpuPct = (100 * serverCpuUs) / (windowSec * 1e6);
  const genCpuPct = (100 * (gen.cpuUserUs + gen.cpuSystemUs)) / Math.max(1, gen.windowMs * 1000);
  const busyCores = (b.machine.busy - a.machine.busy) / 1000 / windowSec;
  const otherCores = Math.max(0, busyCores - serverCpuPct / 100 - genCpuPct / 100);
  const cores = os.cpus().length;
  const machineFull = busyCores >= 0.9 * cores;
  const pacerLate = gen.pacerLateness.p99Ms > ctx.genLatenessLimitMs;
  // As in the forwarding benchmark: late timers with a mostly idle generator mean it was starved by other
  // work on the shared cores (contention), not that it was saturated itself.
  const saturated = genCpuPct >= ctx.genCpuLimitPct || (pacerLate && !machineFull && genCpuPct >= 50);
  const contended = machineFull || (pacerLate && !saturated);
  const udpDeltas: Record<string, number> = {};
  for (const k of Object.keys(b.udp)) udpDeltas[k] = b.udp[k] - (a.udp[k] ?? 0);
  const notes: string[] = [];
  if (saturated) notes.push("load generator saturated: results are generator-bound");
  if (contended)
    notes.push(
      `shared cores contended: ${busyCores.toFixed(2)} of ${cores} cores busy, generator pacer p99 late ` +
        `${gen.pacerLateness.p99Ms.toFixed(1)} ms`,
    );
  if (otherCores > 0.25)
    notes.push(
      `other load on the machine: ~${otherCores.toFixed(2)} cores busy outside server and generator`,
    );
  if ((udpDeltas.RcvbufErrors ?? 0) > 0 || (udpDeltas.SndbufErrors ?? 0) > 0)
    notes.push(
      `kernel UDP buffer drops (system-wide): rcvbuf ${udpDeltas.RcvbufErrors ?? 0}, sndbuf ${udpDeltas.SndbufErrors ?? 0}`,
    );
  if (probe.scheduler.errors > 0) notes.push(`${probe.scheduler.errors} scheduler tick errors`);
  const e = probe.egress;
  if (e && e.unmatchedFrames > 0) notes.push(`${e.unmatchedFrames} egress frames not matched to a packet`);
  return {
    name: w.name,
    ingestLeadMs: w.ingestLeadMs,
    egressLeadMs: w.egressLeadMs,
    server: {
      windowSec,
      cpuPctOfOneCore: serverCpuPct,
      eventLoopLag: b.server.eventLoopLag,
      rssMB: b.server.rssBytes / 2 ** 20,
    },
    probe,
    generator: { ...gen, cpuPctOfOneCore: genCpuPct, saturated },
    machine: { busyCores, otherCores, contended, loadavg1: b.loadavg1, udpDeltas },
    notes,
  };
}
