// Forwarding-capacity benchmark (orchestrator). See docs/BENCHMARKS.md, section "Forwarding".
//
//   node --import tsx bench/forwarding.ts [--dry-run] [options]      (--help lists them)
//
// For every step of every scenario it starts two fresh child processes — the Patchbay server
// (bench/server-process.ts) and the load generator (--generator native: bench/native-load-generator.ts,
// the addon's transport as client, the default; werift: bench/load-generator.ts) — sets up N
// publishers with S subscribers each, lets the single-timer pacer run a warm-up, then measures a window:
// server CPU per forwarded packet, server CPU % of one core, server event-loop lag, loss / duplicates /
// reordering seen by the subscribers, and the generator's own CPU and pacer lateness (so a saturated
// generator is visible). A ramp stops at the first step with loss ≥ the threshold, a saturated generator
// or a failed setup. Results: a table on stdout and JSON in bench/results/forwarding-<date>.json.
//
// Bounded by construction: finite ramps, every wait has a timeout, only 127.0.0.1 is used, and both
// children are killed at the end of each step (and on error, Ctrl-C, or exit).

import type { ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { createWriteStream, existsSync, mkdirSync, type WriteStream, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, relative } from "node:path";
import {
  BENCH_DIR,
  installChildCleanup,
  ROOT,
  runBenchMain,
  spawnChild,
  stopChild,
  waitMessage,
} from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";
import { fileStamp, gitInfo, machineCpu, machineInfo, udpCounters } from "./lib/system.ts";
import { formatProfileSummary, type ProfileSummary, summarizeProfile } from "./profile-summary.ts";
import {
  BENCH_APP,
  type LatencySummary,
  type LoadMessage,
  type RunReport,
  request,
  type ServerMessage,
  type ServerSnapshot,
  type SetupResult,
} from "./protocol.ts";
import { floorTable, measureUdpFloor, type UdpFloorRow } from "./udp-floor.ts";

const HERE = BENCH_DIR;

// ---- options ---------------------------------------------------------------------------------

/** native-shared: the native plane with every session on one UDP port (--rtc-shared-port). */
type MediaPlane = "native" | "native-shared" | "werift";
const PLANES: readonly MediaPlane[] = ["native", "native-shared", "werift"];
/** The load generator's peers: the addon's transport in client mode, or werift RTCPeerConnections. */
type Generator = "native" | "werift";

const GENERATOR_SCRIPT: Record<Generator, string> = {
  native: "native-load-generator.ts",
  werift: "load-generator.ts",
};
const GENERATOR_PEERS: Record<Generator, string> = {
  native:
    "native client peers (the addon's transport: controlling ICE toward the ICE-lite server, DTLS client, SRTP; one UDP socket each; SDP text from bench/lib/native-sdp.ts)",
  werift: "werift RTCPeerConnection",
};

const MEDIA_TEXT = {
  audio: "Opus stereo 48 kHz, 20 ms frames, 50 packets/s per stream, pre-encoded 10 s speech-like loop",
  video:
    "VP8-shaped RTP (RFC 7741 descriptor and payload header, seeded noise after them), 1.5 Mb/s per stream: " +
    "one frame per 20 ms in 4 packets of 938 bytes (200 packets/s), keyframe every 2 s",
} as const;

interface Scenario {
  /** "<fan-out>@<plane>", e.g. 1x10@native. */
  name: string;
  plane: MediaPlane;
  subscribersPerPublisher: number;
  ramp: number[];
}

interface Options {
  scenarios: Scenario[];
  warmupMs: number;
  measureMs: number;
  tailMs: number;
  lossThresholdPct: number;
  /** Generator CPU (% of one core) from which the generator counts as saturated. */
  genCpuLimitPct: number;
  /** Pacer lateness p99 (ms) from which the generator counts as saturated. */
  genLatenessLimitMs: number;
  concurrency: number;
  /** "auto" = a mid-size passed step of the first scenario; "none"; or "<scenario>:<N>". */
  profile: string;
  profileIntervalUs: number;
  out: string | undefined;
  dryRun: boolean;
  generator: Generator;
  media: "audio" | "video";
}

const HELP = `Forwarding-capacity benchmark for Patchbay (publishers → SFU → subscribers, Opus 50 pkt/s or
VP8-shaped video at 1.5 Mb/s, 200 pkt/s).

Usage: node --import tsx bench/forwarding.ts [options]

  --dry-run                 Short run: 1x1 N=10,25 and 1x10 N=5, 5 s measurement (proves the harness works).
  --scenarios <list>        Scenarios to run, from 1x1,1x10 (default: both).
  --media-planes <list>     Server media planes to compare, from native,native-shared,werift (default: all three,
                            in one run; native-shared = the native plane with --rtc-shared-port).
  --media <audio|video>     What every publisher sends (default audio). video: 1.5 Mb/s VP8-shaped packets,
                            4 × 938 bytes every 20 ms (native generator only).
  --ramp-1x1 <list>         Publisher counts for fan-out 1→1 (default 25,50,100,200,300,400,600,800;
                            video 10,25,50,100,150,200,250,300).
  --ramp-1x10 <list>        Publisher counts for fan-out 1→10 (default 5,10,20,40,60,80,100; video 2,5,10,15,20,25).
  --warmup <s>              Warm-up before each measurement (default 3).
  --measure <s>             Measurement window (default 10; dry run 5).
  --loss-threshold <pct>    Stop a ramp at this loss (default 0.1).
  --gen-cpu-limit <pct>     Generator CPU (% of one core) counted as saturated (default 85).
  --gen-lateness-limit <ms> Generator pacer lateness p99 counted as saturated (default 10).
  --concurrency <n>         Peers negotiated in parallel during setup (default 4).
  --generator <native|werift>
                            Load generator peers: the addon's transport as client (default; a few µs of
                            CPU per packet) or werift RTCPeerConnections (~100 µs per packet).
  --profile <auto|none|scenario@plane:N>
                            Extra run with the server's CPU profiled during the window (default auto:
                            a mid-size passing step of the first scenario).
  --out <file>              JSON output (default bench/results/forwarding-<date>.json).
  --help                    This text.
`;

function parseList(s: string, what: string): number[] {
  const list = s.split(",").map((x) => Number(x.trim()));
  if (list.length === 0 || list.some((x) => !Number.isInteger(x) || x <= 0 || x > 2000))
    throw new Error(`${what}: expected a comma-separated list of integers 1..2000, got ${JSON.stringify(s)}`);
  return list;
}

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string>();
  const bools = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      process.stdout.write(HELP);
      process.exit(0);
    }
    if (a === "--dry-run") {
      bools.add(a);
      continue;
    }
    if (!a.startsWith("--") || i + 1 >= argv.length) throw new Error(`unexpected argument ${a} (see --help)`);
    flags.set(a, argv[++i]);
  }
  const known = [
    "--scenarios",
    "--media-planes",
    "--ramp-1x1",
    "--ramp-1x10",
    "--warmup",
    "--measure",
    "--loss-threshold",
    "--gen-cpu-limit",
    "--gen-lateness-limit",
    "--concurrency",
    "--profile",
    "--out",
    "--generator",
    "--media",
  ];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown option ${k} (see --help)`);
  const dryRun = bools.has("--dry-run");
  const num = (k: string, def: number, min: number, max: number) => {
    const v = flags.has(k) ? Number(flags.get(k)) : def;
    if (!(v >= min && v <= max)) throw new Error(`${k}: expected a number from ${min} to ${max}`);
    return v;
  };
  const media = flags.get("--media") ?? "audio";
  if (media !== "audio" && media !== "video")
    throw new Error(`--media: expected audio or video, got ${JSON.stringify(media)}`);
  const video = media === "video";
  const ramp1 = parseList(
    flags.get("--ramp-1x1") ??
      (dryRun ? "10,25" : video ? "10,25,50,100,150,200,250,300" : "25,50,100,200,300,400,600,800"),
    "--ramp-1x1",
  );
  const ramp10 = parseList(
    flags.get("--ramp-1x10") ??
      (dryRun ? (video ? "2" : "5") : video ? "2,5,10,15,20,25" : "5,10,20,40,60,80,100"),
    "--ramp-1x10",
  );
  const shapes = [
    { name: "1x1", subscribersPerPublisher: 1, ramp: ramp1 },
    { name: "1x10", subscribersPerPublisher: 10, ramp: ramp10 },
  ];
  const wanted = (flags.get("--scenarios") ?? "1x1,1x10").split(",").map((s) => s.trim());
  for (const w of wanted)
    if (!shapes.some((s) => s.name === w)) throw new Error(`--scenarios: unknown scenario ${w} (1x1, 1x10)`);
  const planes = (flags.get("--media-planes") ?? "native,native-shared,werift")
    .split(",")
    .map((s) => s.trim());
  for (const p of planes)
    if (!PLANES.includes(p as MediaPlane))
      throw new Error(`--media-planes: unknown plane ${p} (${PLANES.join(", ")})`);
  // Planes alternate within a fan-out so that both see the machine in the same state.
  const scenarios: Scenario[] = shapes
    .filter((s) => wanted.includes(s.name))
    .flatMap((s) => (planes as MediaPlane[]).map((plane) => ({ ...s, name: `${s.name}@${plane}`, plane })));
  const generator = flags.get("--generator") ?? "native";
  if (generator !== "native" && generator !== "werift")
    throw new Error(`--generator: unknown generator ${generator} (native, werift)`);
  if (video && generator !== "native") throw new Error("--media video needs --generator native");
  const warmupMs = num("--warmup", 3, 1, 30) * 1000;
  const measureMs = num("--measure", dryRun ? 5 : 10, 1, 60) * 1000;
  return {
    scenarios,
    warmupMs,
    measureMs,
    tailMs: 1000,
    lossThresholdPct: num("--loss-threshold", 0.1, 0, 100),
    genCpuLimitPct: num("--gen-cpu-limit", 85, 1, 100),
    genLatenessLimitMs: num("--gen-lateness-limit", 10, 0.1, 1000),
    concurrency: num("--concurrency", 4, 1, 64),
    profile: flags.get("--profile") ?? "auto",
    profileIntervalUs: 1000,
    out: flags.get("--out"),
    dryRun,
    generator,
    media,
  };
}

// ---- children ----------------------------------------------------------------------------------

installChildCleanup();

/** A UDP port free on 127.0.0.1 right now (for --rtc-shared-port). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

// ---- machine-wide counters --------------------------------------------------------------------

async function scrapeForwarded(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const m = /^patchbay_forwarded_packets_total\s+([0-9.e+]+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// ---- one step ---------------------------------------------------------------------------------

type Verdict = "ok" | "loss" | "generator-saturated" | "setup-failed" | "error";

interface StepResult {
  scenario: string;
  publishers: number;
  subscribersPerPublisher: number;
  streams: number;
  profiled: boolean;
  verdict: Verdict;
  notes: string[];
  setup?: SetupResult;
  server?: {
    cpuPctOfOneCore: number;
    cpuUsPerForwardedPacket: number;
    forwardedPerSecond: number;
    forwardedInWindow: number;
    /** forwarded in the window / (streams × window packets); ≈ 1 when the server kept up. */
    forwardedVsExpected: number;
    eventLoopLag: LatencySummary;
    rssMB: number;
    metricsForwardedTotal?: number;
  };
  loss?: {
    expected: number;
    received: number;
    lost: number;
    lossPct: number;
    duplicates: number;
    reordered: number;
    mismatched: number;
    deadStreams: number;
    worstStreamLost: number;
  };
  latency?: LatencySummary;
  generator?: {
    cpuPctOfOneCore: number;
    /** Generator CPU in the window / (packets it sent + packets its subscribers received in the window). */
    cpuUsPerPacket: number;
    pacerLateness: LatencySummary;
    eventLoopLag: LatencySummary;
    packetsSent: number;
    meanPayloadBytes: number;
    saturated: boolean;
  };
  machine?: {
    busyCores: number;
    /** Busy cores not explained by the server and the generator (other processes, kernel). */
    otherCores: number;
    /** The machine was (nearly) CPU-bound or the generator's timer was starved: numbers are box-bound. */
    contended: boolean;
    loadavg1: number;
    udpDeltas: Record<string, number>;
  };
  profile?: { path: string; summary: ProfileSummary };
  error?: string;
}

interface StepContext {
  opts: Options;
  log: WriteStream;
  resultsDir: string;
  stamp: string;
}

async function runStep(
  ctx: StepContext,
  scenario: Scenario,
  n: number,
  profile: boolean,
): Promise<StepResult> {
  const { opts } = ctx;
  const s = scenario.subscribersPerPublisher;
  const result: StepResult = {
    scenario: scenario.name,
    publishers: n,
    subscribersPerPublisher: s,
    streams: n * s,
    profiled: profile,
    verdict: "error",
    notes: [],
  };
  ctx.log.write(
    `\n=== step ${scenario.name} N=${n}${profile ? " (profiled)" : ""} ${new Date().toISOString()}\n`,
  );
  let server: ChildProcess | undefined;
  let gen: ChildProcess | undefined;
  try {
    const planeArgs =
      scenario.plane === "native-shared"
        ? ["--media-plane", "native", "--rtc-shared-port", String(await freeUdpPort())]
        : ["--media-plane", scenario.plane];
    server = spawnChild("server-process.ts", ctx.log, "server", planeArgs);
    const ready = await waitMessage<ServerMessage>(server, (m) => m.type === "ready", 60_000, "server start");
    if (ready.type !== "ready") throw new Error("unreachable");
    const url = ready.url;
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`server is not on loopback: ${url}`);

    gen = spawnChild(GENERATOR_SCRIPT[opts.generator], ctx.log, "gen");
    await waitMessage<LoadMessage>(gen, (m) => m.type === "hello", 60_000, "load generator start");

    const peers = n * (1 + s);
    const setupTimeoutMs = 60_000 + 1000 * peers;
    const setupReply = await request<{ id: number; setup: SetupResult }>(
      gen,
      {
        type: "setup",
        url,
        appId: BENCH_APP.appId,
        secret: BENCH_APP.secret,
        publishers: n,
        subscribersPerPublisher: s,
        concurrency: opts.concurrency,
        peerTimeoutMs: 20_000,
        setupTimeoutMs,
      },
      setupTimeoutMs + 30_000,
    );
    result.setup = setupReply.setup;
    if (setupReply.setup.failures.length > 0 || setupReply.setup.subscribers !== n * s) {
      result.verdict = "setup-failed";
      result.error = setupReply.setup.failures.join("; ") || "not every peer connected";
      return result;
    }

    // Snapshots at the generator's window edges: server (CPU, forwarded, event loop), machine, UDP.
    const gch = gen;
    const srv = server;
    const snap = async () => {
      const r = await request<{ id: number; snapshot: ServerSnapshot }>(srv, { type: "snapshot" }, 10_000);
      return { server: r.snapshot, machine: machineCpu(), udp: udpCounters(), loadavg1: os.loadavg()[0] };
    };
    const profilePath = join(
      ctx.resultsDir,
      `forwarding-${ctx.stamp}-server-${scenario.name}-N${n}.cpuprofile`,
    );
    let startSnap: Promise<Awaited<ReturnType<typeof snap>>> | undefined;
    let endSnap: Promise<Awaited<ReturnType<typeof snap>>> | undefined;
    let profileDone: Promise<unknown> | undefined;
    const onEvent = (m: unknown) => {
      const msg = m as LoadMessage;
      if (msg.type !== "event") return;
      // Each promise also gets a no-op catch: if the run fails first they are never awaited.
      if (msg.name === "window-start") {
        startSnap = snap();
        if (profile)
          startSnap = startSnap.then(async (x) => {
            await request(srv, { type: "profile-start", samplingIntervalUs: opts.profileIntervalUs }, 10_000);
            return x;
          });
        startSnap.catch(() => {});
      } else {
        endSnap = snap();
        endSnap.catch(() => {});
        if (profile) {
          profileDone = endSnap.then(() => request(srv, { type: "profile-stop", path: profilePath }, 60_000));
          profileDone.catch(() => {});
        }
      }
    };
    gch.on("message", onEvent);
    let report: RunReport;
    try {
      const runReply = await request<{ id: number; report: RunReport }>(
        gch,
        { type: "run", warmupMs: opts.warmupMs, measureMs: opts.measureMs, tailMs: opts.tailMs },
        opts.warmupMs + opts.measureMs + opts.tailMs + 60_000,
      );
      report = runReply.report;
    } finally {
      gch.off("message", onEvent);
    }
    if (!startSnap || !endSnap) throw new Error("the generator never reported its measurement window");
    const a = await startSnap;
    const b = await endSnap;
    if (profileDone) await profileDone;

    const windowSec = (b.server.wallUs - a.server.wallUs) / 1e6;
    const serverCpuUs =
      b.server.cpuUserUs - a.server.cpuUserUs + (b.server.cpuSystemUs - a.server.cpuSystemUs);
    const forwarded = b.server.forwarded - a.server.forwarded;
    const expectedForwarded = report.streams * report.windowPackets;
    const genCpuUs = report.generator.cpuUserUs + report.generator.cpuSystemUs;
    const genCpuPct = (100 * genCpuUs) / Math.max(1, report.generator.wallUs);
    const serverCpuPct = (100 * serverCpuUs) / (windowSec * 1e6);
    const machineBusyCores = (b.machine.busy - a.machine.busy) / 1000 / windowSec;
    const lossPct = report.expected > 0 ? (100 * report.lost) / report.expected : 100;
    const otherCores = Math.max(0, machineBusyCores - serverCpuPct / 100 - genCpuPct / 100);
    const cores = os.cpus().length;
    const machineFull = machineBusyCores >= 0.9 * cores;
    const pacerLate = report.generator.pacerLateness.p99Ms > opts.genLatenessLimitMs;
    // Late timers with a mostly idle generator mean it was starved by other work on the machine (the
    // server, other processes): that is contention of the shared cores, not a saturated generator.
    const saturated = genCpuPct >= opts.genCpuLimitPct || (pacerLate && !machineFull && genCpuPct >= 50);
    const contended = machineFull || (pacerLate && !saturated);

    result.server = {
      cpuPctOfOneCore: serverCpuPct,
      cpuUsPerForwardedPacket: forwarded > 0 ? serverCpuUs / forwarded : Number.NaN,
      forwardedPerSecond: forwarded / windowSec,
      forwardedInWindow: forwarded,
      forwardedVsExpected: expectedForwarded > 0 ? forwarded / expectedForwarded : 0,
      eventLoopLag: b.server.eventLoopLag,
      rssMB: b.server.rssBytes / 2 ** 20,
      metricsForwardedTotal: await scrapeForwarded(url),
    };
    result.loss = {
      expected: report.expected,
      received: report.received,
      lost: report.lost,
      lossPct,
      duplicates: report.duplicates,
      reordered: report.reordered,
      mismatched: report.mismatched,
      deadStreams: report.deadStreams,
      worstStreamLost: report.worstStreamLost,
    };
    result.latency = report.latency;
    const genPackets = n * report.windowPackets + report.received;
    result.generator = {
      cpuPctOfOneCore: genCpuPct,
      cpuUsPerPacket: genPackets > 0 ? genCpuUs / genPackets : Number.NaN,
      pacerLateness: report.generator.pacerLateness,
      eventLoopLag: report.generator.eventLoopLag,
      packetsSent: report.generator.packetsSent,
      meanPayloadBytes: report.generator.meanPayloadBytes,
      saturated,
    };
    const udpDeltas: Record<string, number> = {};
    for (const k of Object.keys(b.udp)) udpDeltas[k] = b.udp[k] - (a.udp[k] ?? 0);
    result.machine = {
      busyCores: machineBusyCores,
      otherCores,
      contended,
      loadavg1: b.loadavg1,
      udpDeltas,
    };

    if (report.mismatched > 0)
      result.notes.push(`${report.mismatched} packets with a wrong payload (misrouted?)`);
    if (report.duplicates > 0) result.notes.push(`${report.duplicates} duplicates`);
    if (report.deadStreams > 0) result.notes.push(`${report.deadStreams} streams received nothing`);
    if ((udpDeltas.RcvbufErrors ?? 0) > 0 || (udpDeltas.SndbufErrors ?? 0) > 0)
      result.notes.push(
        `kernel UDP buffer drops (system-wide): rcvbuf ${udpDeltas.RcvbufErrors ?? 0}, sndbuf ${udpDeltas.SndbufErrors ?? 0}`,
      );
    if (report.lost > 0 && result.server.forwardedVsExpected >= 0.999)
      result.notes.push(
        "server forwarded ~everything: the loss happened after the server's send (kernel/generator)",
      );
    if (saturated) result.notes.push("load generator saturated: results are generator-bound");
    if (contended)
      result.notes.push(
        `shared cores contended: ${machineBusyCores.toFixed(2)} of ${cores} cores busy, generator pacer p99 late ` +
          `${report.generator.pacerLateness.p99Ms.toFixed(1)} ms; server and generator compete for CPU`,
      );
    if (otherCores > 0.25)
      result.notes.push(
        `other load on the machine: ~${otherCores.toFixed(2)} cores busy outside server and generator`,
      );

    if (lossPct >= opts.lossThresholdPct) result.verdict = "loss";
    else if (saturated) result.verdict = "generator-saturated";
    else result.verdict = "ok";

    if (profile && existsSync(profilePath)) {
      result.profile = { path: relative(ROOT, profilePath), summary: summarizeProfile(profilePath, 25) };
    }
    return result;
  } catch (err) {
    result.verdict = "error";
    result.error = err instanceof Error ? err.message : String(err);
    return result;
  } finally {
    if (gen) await stopChild(gen, { type: "close" }, 20_000);
    if (server) await stopChild(server, { type: "shutdown" }, 10_000);
  }
}

// ---- output -----------------------------------------------------------------------------------

function table(steps: StepResult[]): string {
  const head = [
    "scenario",
    "N",
    "streams",
    "srv CPU%",
    "µs/fwd pkt",
    "fwd pkt/s",
    "ELD p50/p99/max ms",
    "loss %",
    "dup",
    "reord",
    "lat p50/p99 ms",
    "gen CPU%",
    "gen late p99",
    "other cores",
    "verdict",
  ];
  const rows = steps.map((r) => [
    r.scenario + (r.profiled ? "*" : ""),
    String(r.publishers),
    String(r.streams),
    f(r.server?.cpuPctOfOneCore),
    f(r.server?.cpuUsPerForwardedPacket),
    f(r.server?.forwardedPerSecond, 0),
    r.server
      ? `${f(r.server.eventLoopLag.p50Ms)}/${f(r.server.eventLoopLag.p99Ms)}/${f(r.server.eventLoopLag.maxMs)}`
      : "-",
    f(r.loss?.lossPct, 3),
    r.loss ? String(r.loss.duplicates) : "-",
    r.loss ? String(r.loss.reordered) : "-",
    r.latency ? `${f(r.latency.p50Ms)}/${f(r.latency.p99Ms)}` : "-",
    f(r.generator?.cpuPctOfOneCore),
    f(r.generator?.pacerLateness.p99Ms),
    f(r.machine?.otherCores, 2),
    r.verdict + (r.machine?.contended ? " (contended)" : ""),
  ]);
  return renderTable(head, rows, 3);
}

interface ScenarioSummary {
  scenario: string;
  subscribersPerPublisher: number;
  largestPassingN: number | undefined;
  stoppedBecause: string;
  /**
   * Server CPU per extra forwarded packet between consecutive steps (Δ CPU µs/s ÷ Δ packets/s). Unlike the
   * per-step ratio it excludes fixed costs (timers, ICE consent, RTCP, metrics) that dominate small steps.
   */
  marginalUsPerPacket: { fromN: number; toN: number; us: number }[];
  statement: string;
}

function summarizeScenario(scenario: Scenario, steps: StepResult[], opts: Options): ScenarioSummary {
  const mine = steps.filter((s) => s.scenario === scenario.name && !s.profiled);
  const passing = mine.filter(
    (s) => s.loss && s.loss.lossPct < opts.lossThresholdPct && s.verdict !== "error",
  );
  const largest = passing.length ? Math.max(...passing.map((s) => s.publishers)) : undefined;
  const last = mine[mine.length - 1];
  let stopped: string;
  if (!last) stopped = "not run";
  else if (last.verdict === "ok")
    stopped = `end of ramp (server not saturated at N=${last.publishers}; capacity is higher)`;
  else if (last.verdict === "loss") stopped = `loss ${f(last.loss?.lossPct, 3)} % at N=${last.publishers}`;
  else if (last.verdict === "generator-saturated")
    stopped = `load generator saturated at N=${last.publishers} (capacity of the server is at least this)`;
  else stopped = `${last.verdict} at N=${last.publishers}: ${last.error ?? ""}`;
  const bound = last?.verdict === "ok" || last?.verdict === "generator-saturated" ? "≥ " : "";
  const statement =
    largest === undefined
      ? `${scenario.name} (fan-out 1→${scenario.subscribersPerPublisher}): no step passed (${stopped})`
      : `${scenario.name} (fan-out 1→${scenario.subscribersPerPublisher}): largest N with < ${opts.lossThresholdPct} % loss = ${bound}${largest} ` +
        `(${largest * scenario.subscribersPerPublisher} subscriber streams); stopped: ${stopped}`;
  const measured = mine.filter((s) => s.server);
  const marginal: ScenarioSummary["marginalUsPerPacket"] = [];
  for (let i = 1; i < measured.length; i++) {
    const a = measured[i - 1].server!;
    const b = measured[i].server!;
    const dPkt = b.forwardedPerSecond - a.forwardedPerSecond;
    if (dPkt > 0)
      marginal.push({
        fromN: measured[i - 1].publishers,
        toN: measured[i].publishers,
        us: ((b.cpuPctOfOneCore - a.cpuPctOfOneCore) * 1e4) / dPkt,
      });
  }
  const marginalText = marginal.length
    ? `; marginal server CPU ${marginal.map((m) => `${f(m.us)} µs/pkt (N ${m.fromN}→${m.toN})`).join(", ")}`
    : "";
  return {
    scenario: scenario.name,
    subscribersPerPublisher: scenario.subscribersPerPublisher,
    largestPassingN: largest,
    stoppedBecause: stopped,
    marginalUsPerPacket: marginal,
    statement: statement + marginalText,
  };
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  // The generator children read it (bench/lib/forwarding-load.ts); the server needs nothing.
  process.env.BENCH_MEDIA = opts.media;
  const resultsDir = join(HERE, "results");
  mkdirSync(resultsDir, { recursive: true });
  const stamp = fileStamp();
  const base = opts.media === "video" ? "forwarding-video" : "forwarding";
  const outPath = opts.out ?? join(resultsDir, `${base}-${stamp}.json`);
  const logPath = join(resultsDir, `${base}-${stamp}.log`);
  const log = createWriteStream(logPath);
  const machine = machineInfo();
  const { commit, srcDirty: dirty } = gitInfo();
  const ctx: StepContext = { opts, log, resultsDir, stamp };

  const caveat =
    `This machine has ${machine.cores} logical cores (${machine.cpuModel}). The server and the load generator ` +
    "are one Node thread each and share these cores with the kernel's UDP/loopback work and anything else " +
    "running. Server CPU µs per forwarded packet is the most portable number; the capacity N is a property " +
    "of this box, and only a lower bound of the server's capacity whenever the generator is saturated or " +
    `'other cores' is high. Load average at start: ${machine.loadavgAtStart.map((x) => x.toFixed(2)).join(" ")}.`;
  process.stdout.write(
    `Patchbay forwarding benchmark${opts.dryRun ? " (DRY RUN: short ramps, not capacity numbers)" : ""}\n` +
      `commit ${commit ?? "?"}${dirty ? " (src has uncommitted changes)" : ""}, node ${machine.node}, ${machine.platform}\n` +
      `${caveat}\n` +
      `load generator: ${opts.generator} (${GENERATOR_PEERS[opts.generator]}); media: ${MEDIA_TEXT[opts.media]}\n` +
      `warm-up ${opts.warmupMs / 1000} s, measure ${opts.measureMs / 1000} s, loss threshold ${opts.lossThresholdPct} %; log: ${relative(ROOT, logPath)}\n\n`,
  );

  // The kernel's share first, on an idle machine: what any media plane pays per datagram here.
  let udpFloor: UdpFloorRow[] | { error: string };
  try {
    udpFloor = measureUdpFloor();
    process.stdout.write(
      "UDP floor (bench/floor/udp-floor.c: bare C, loopback to 100 sockets of a process asleep in epoll, " +
        `5000 packets/s):\n${floorTable(udpFloor)}\n\n`,
    );
  } catch (err) {
    udpFloor = { error: (err as Error).message };
    process.stdout.write(`UDP floor not measured: ${udpFloor.error}\n\n`);
  }

  const steps: StepResult[] = [];
  const progress = (r: StepResult) => {
    const bits = [
      `${r.scenario}${r.profiled ? " (profiled)" : ""} N=${r.publishers} streams=${r.streams}: ${r.verdict}`,
      r.setup ? `setup ${f(r.setup.setupMs / 1000)} s` : "",
      r.server ? `srv ${f(r.server.cpuPctOfOneCore)} % ${f(r.server.cpuUsPerForwardedPacket)} µs/pkt` : "",
      r.loss ? `loss ${f(r.loss.lossPct, 3)} %` : "",
      r.generator
        ? `gen ${f(r.generator.cpuPctOfOneCore)} % ${f(r.generator.cpuUsPerPacket)} µs/pkt (sent+received)`
        : "",
      r.error ? `error: ${r.error}` : "",
    ];
    process.stdout.write(`${bits.filter(Boolean).join(", ")}\n`);
    for (const n of r.notes) process.stdout.write(`    note: ${n}\n`);
  };

  for (const scenario of opts.scenarios) {
    for (const n of scenario.ramp) {
      const r = await runStep(ctx, scenario, n, false);
      steps.push(r);
      progress(r);
      if (r.verdict !== "ok") break;
    }
  }

  // The profiled run is an extra step (profiling costs CPU), so it never distorts the ramp numbers.
  let profileTarget: { scenario: Scenario; n: number } | undefined;
  if (opts.profile === "auto") {
    const first = opts.scenarios[0];
    const passed = steps.filter(
      (s) => s.scenario === first?.name && s.verdict !== "error" && s.verdict !== "setup-failed",
    );
    const pick = passed[Math.floor(passed.length / 2)] ?? passed[0];
    if (first && pick) profileTarget = { scenario: first, n: pick.publishers };
  } else if (opts.profile !== "none") {
    const [name, nText] = opts.profile.split(":");
    const scenario = opts.scenarios.find((s) => s.name === name) ?? undefined;
    const n = Number(nText);
    if (!scenario || !(Number.isInteger(n) && n > 0))
      throw new Error(`--profile: expected auto, none or <scenario>@<plane>:<N>, e.g. 1x10@native:10`);
    profileTarget = { scenario, n };
  }
  let profileText: string | undefined;
  if (profileTarget) {
    const r = await runStep(ctx, profileTarget.scenario, profileTarget.n, true);
    steps.push(r);
    progress(r);
    if (r.profile) profileText = formatProfileSummary(r.profile.summary);
  }

  const summaries = opts.scenarios.map((s) => summarizeScenario(s, steps, opts));
  process.stdout.write(`\n${table(steps)}\n`);
  process.stdout.write(
    "\nColumns: srv CPU% = server process CPU (user+sys) as % of one core; µs/fwd pkt = server CPU time / " +
      "patchbay_forwarded_packets_total increase (includes receiving, decrypting and fanning out); ELD = server " +
      "event-loop delay; lat = scheduled send → receive in the generator; gen late = pacer timer lateness; " +
      "other cores = machine busy cores not used by server or generator. * = profiled run (slower, not in the ramp).\n\n",
  );
  for (const s of summaries) process.stdout.write(`${s.statement}\n`);
  if (profileText) process.stdout.write(`\n${profileText}\n`);

  const json = {
    benchmark: "forwarding",
    dryRun: opts.dryRun,
    date: new Date().toISOString(),
    git: { commit, srcDirty: dirty },
    machine,
    caveat,
    method: {
      media: opts.media,
      codec: MEDIA_TEXT[opts.media],
      pacing: "one timer for all streams on an absolute clock t0 + n × 20 ms, catch-up when late",
      generator: opts.generator,
      generatorPeers: GENERATOR_PEERS[opts.generator],
      publishers: `${GENERATOR_PEERS[opts.generator]}, push with the client's offer (tracks/new, location local)`,
      subscribers: `${GENERATOR_PEERS[opts.generator]}, pull via tracks/new (location remote) + PUT renegotiate`,
      warmupMs: opts.warmupMs,
      measureMs: opts.measureMs,
      lossThresholdPct: opts.lossThresholdPct,
      genCpuLimitPct: opts.genCpuLimitPct,
      genLatenessLimitMs: opts.genLatenessLimitMs,
      processes: "server and load generator in separate child processes, fresh for every step",
      mediaPlanes:
        "each fan-out runs once per server media plane (native: the C++ addon receives, decrypts, rewrites, encrypts and sends, a UDP port per session; native-shared: the same with every session on one port, so a fan-out leaves in one sendmmsg; werift: the TypeScript stack of earlier releases); the same generator serves all",
    },
    udpFloor,
    summaries,
    steps,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`\nJSON: ${relative(ROOT, outPath)}\n`);
  await new Promise<void>((r) => log.end(() => r()));
  return steps.some((s) => s.verdict === "error") ? 1 : 0;
}

runBenchMain("forwarding", main);
