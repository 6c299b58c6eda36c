// Ingest adapter benchmark (orchestrator). See docs/BENCHMARKS.md, section "Ingest adapter".
//
//   node --import tsx bench/ingest.ts [--dry-run] [options]      (--help lists them)
//
// Scenarios (each step runs in fresh children: bench/server-process.ts and bench/adapter-load.ts):
//   latency   one adapter, its endpoint sending one 20 ms frame every 20 ms on an absolute clock, a fixed
//             lead before the frame's slot (one window per lead); per frame, inside the server: WebSocket
//             message arrival → UDP send of the RTP packet carrying it, split into its parts.
//   pacing    1 and 100 adapters (each with a werift subscriber) for --duration seconds: RTP departure
//             interval error and drift inside the server (departure vs the slot's ideal time), and the
//             arrival intervals and drift at the first adapter's werift subscriber.
//   capacity  ramp N adapters with a subscriber each, real-time continuous speech: late frames (departure
//             more than 5 ms after the slot), server CPU per adapter, event-loop lag; the largest N with
//             ≤ 0.1 % late frames.
// Before the scenarios the Opus encoder's per-frame cost is measured in this process.
// Output: tables on stdout, JSON in bench/results/ingest-<date>.json, children's output in the .log next to it.

import {
  COMMON_HELP,
  common,
  commonMethod,
  eld,
  finishRun,
  latePct,
  list,
  marginalCpu,
  ms2,
  ms3,
  num,
  openRun,
  parse,
  pct,
  printNotes,
  type RampResult,
  ramp,
  runMain,
  scenarios,
  schedulerLatePct,
  verdictCell,
} from "./lib/adapter-bench.ts";
import { runAdapterStep, type StepResult, type StepSpec, type WindowResult } from "./lib/adapter-step.ts";
import { type CodecCost, codecCostTable, measureEncoder } from "./lib/codec-cost.ts";
import { f, renderTable } from "./lib/format.ts";
import { formatProfileSummary } from "./profile-summary.ts";

const HELP = `Ingest adapter benchmark for Patchbay (WebSocket endpoint → ingest adapter → Opus RTP → werift subscriber).

Usage: node --import tsx bench/ingest.ts [options]

  --dry-run                 Short run: leads 2,10,18 × 3 s; pacing N=1,10 × 5 s; capacity N=2,5 × 5 s
                            (implies --keep-going).
  --scenarios <list>        From latency,pacing,capacity (default: all).
  --leads <ms list>         Latency: how long before its slot each frame is sent (default 2,6,10,14,18).
  --latency-window <s>      Latency: window per lead (default 10; dry run 3).
  --duration <s>            Pacing: window length (default 60; e.g. 600 for 10 minutes).
  --pacing-n <list>         Pacing: adapter counts (default 1,100; dry run 1,10).
  --ramp <list>             Capacity: adapter counts (default 5,10,20,30,40,50,60,80,100; dry run 2,5).
  --lead <ms>               Pacing/capacity: frames are sent this long before their slot (default 10).
${COMMON_HELP}`;

function main(): Promise<number> {
  const v = parse(
    process.argv.slice(2),
    {
      leads: { type: "string" },
      "latency-window": { type: "string" },
      duration: { type: "string" },
      "pacing-n": { type: "string" },
      ramp: { type: "string" },
      lead: { type: "string" },
    },
    HELP,
  );
  const o = common(v);
  const dry = o.dryRun;
  const opts = {
    scenarios: scenarios(v, ["latency", "pacing", "capacity"]),
    leads: list(v, "leads", dry ? "2,10,18" : "2,6,10,14,18", 0, 19),
    latencyWindowMs: num(v, "latency-window", dry ? 3 : 10, 1, 600) * 1000,
    durationMs: num(v, "duration", dry ? 5 : 60, 1, 3600) * 1000,
    pacingN: list(v, "pacing-n", dry ? "1,10" : "1,100", 1, 1000),
    ramp: list(v, "ramp", dry ? "2,5" : "5,10,20,30,40,50,60,80,100", 1, 1000),
    leadMs: num(v, "lead", 10, 0, 19),
  };
  return run(o, opts);
}

type Opts = {
  scenarios: string[];
  leads: number[];
  latencyWindowMs: number;
  durationMs: number;
  pacingN: number[];
  ramp: number[];
  leadMs: number;
};

async function run(o: ReturnType<typeof common>, opts: Opts): Promise<number> {
  lateBy = o.lateBy;
  const r = openRun("ingest", o.out, o.dryRun, "Patchbay ingest adapter benchmark");
  const ctx = { ...o.ctx, log: r.log, profilePrefix: r.outPath.replace(/\.json$/, "") };
  const probe = { perFrame: o.perFrame, socketHook: o.socketHook, lateMs: o.lateMs };
  let failed = false;

  // ---- encoder cost, in this process ----
  r.out(
    "Opus encoder cost (src/media/opus-encoder.ts, 10 s speech-like audio × 5 runs, each frame timed):\n",
  );
  const encoder: CodecCost[] = [
    measureEncoder("server default: complexity 5, 48 kb/s VBR, FEC", { complexity: 5 }),
    measureEncoder("--no-ingest-opus-fec: complexity 5, no FEC", { complexity: 5, inbandFec: false }),
    measureEncoder("complexity 9, FEC (for comparison)", { complexity: 9 }),
  ];
  r.out(`${codecCostTable("encoder", encoder)}\n\n`);

  const json: Record<string, unknown> = {
    dryRun: o.dryRun,
    method: {
      endpoint:
        "WebSocket server in the load generator; one Packet per 20 ms frame (3 840 bytes of continuous speech-like PCM), one timer per direction on an absolute clock aligned to the server's scheduler grid",
      subscriber: "werift peer per adapter, pull via tracks/new (location remote) + PUT renegotiate",
      departure: o.socketHook
        ? "UDP send of the RTP packet (Node's UDP handle, hooked in the server process)"
        : "track.write returned (socket hook off)",
      ...commonMethod(o),
      options: opts,
    },
    encoder,
  };

  // ---- latency ----
  if (opts.scenarios.includes("latency")) {
    r.out(
      `latency: 1 adapter, leads ${opts.leads.join(", ")} ms, ${opts.latencyWindowMs / 1000} s per lead\n`,
    );
    const step = await runAdapterStep(ctx, {
      scenario: "latency",
      n: 1,
      label: "N=1",
      serverArgs: [],
      ingest: 1,
      egress: 0,
      windows: opts.leads.map((lead) => ({
        name: `lead ${lead} ms`,
        warmupMs: 1000,
        measureMs: opts.latencyWindowMs,
        ingestLeadMs: lead,
        egressLeadMs: 0,
      })),
      probe: { ...probe, series: false },
    });
    if (step.error) {
      failed = true;
      r.out(`  error: ${step.error}\n`);
    }
    r.out(`\n${latencyTable(step)}\n`);
    r.out(
      "\nms, p50/p99/max. total = WebSocket message arrival in the server → UDP send of its RTP packet; queue empty = " +
        "only frames that found the pacer queue empty on arrival. Parts: " +
        "wait = arrival → slot due (the frame waits for its 20 ms slot: ≈ lead minus transit); wake = slot → timer " +
        "wake; tick→write = pacer + Opus encode + RTP + SRTP + dgram.send call; →socket = until the UDP handle " +
        "sends (dgram defers it to process.nextTick); adapter = what patchbay_adapter_queue_seconds and " +
        "patchbay_adapter_latency_seconds report together (arrival → track.write returned). after slot = departure − slot due; queued % = frames that found another frame already " +
        "queued on arrival (after one missed slot a real-time sender stays a slot behind until it pauses).\n",
    );
    for (const w of step.windows) printNotes(r, w);
    json.latency = step;
  }

  // ---- pacing ----
  if (opts.scenarios.includes("pacing")) {
    const steps: StepResult[] = [];
    for (const n of opts.pacingN) {
      r.out(`\npacing: N=${n}, ${opts.durationMs / 1000} s window`);
      const step = await runAdapterStep(ctx, {
        scenario: "pacing",
        n,
        label: `N=${n}`,
        serverArgs: [],
        ingest: n,
        egress: 0,
        windows: [
          {
            name: `${opts.durationMs / 1000} s`,
            warmupMs: o.warmupMs,
            measureMs: opts.durationMs,
            ingestLeadMs: opts.leadMs,
            egressLeadMs: 0,
          },
        ],
        probe: { ...probe, series: true },
      });
      steps.push(step);
      if (step.error) failed = true;
      r.out(step.error ? `: error: ${step.error}\n` : ": done\n");
      printNotes(r, step.windows[0]);
    }
    r.out(`\n${pacingTable(steps, o.lateMs)}\n`);
    r.out(
      "\nms. server = departures (UDP sends) timed inside the server: interval = departure(n) − departure(n−1) − 20 ms " +
        "(|error| p50/p99/max); after slot = departure − slot due (the ideal departure on the absolute clock); drift: " +
        "offset(n) = departure(n) − n × 20 ms relative to its median over the first second, cum = last-second median " +
        "(what accumulated over the run), max|·| = largest excursion, worst adapter; ppm = least-squares growth of the " +
        "offset (median/worst adapter). sub = the same from arrival times at the first adapter's werift subscriber.\n",
    );
    json.pacing = steps;
  }

  // ---- capacity ----
  if (opts.scenarios.includes("capacity")) {
    r.out(`\ncapacity: ramp ${opts.ramp.join(", ")} adapters, ${o.measureMs / 1000} s windows\n`);
    const result = await ramp(
      o.keepGoing,
      ctx,
      "ingest capacity",
      `concurrent ingest adapters with ≤ ${o.lateThresholdPct} % late frames`,
      opts.ramp,
      (n): StepSpec => ({
        scenario: "capacity",
        n,
        label: `N=${n}`,
        serverArgs: [],
        ingest: n,
        egress: 0,
        windows: [
          {
            name: "capacity",
            warmupMs: o.warmupMs,
            measureMs: o.measureMs,
            ingestLeadMs: opts.leadMs,
            egressLeadMs: 0,
          },
        ],
        probe: { ...probe, series: false },
      }),
      (w) => {
        const late = lateFramesPct(w);
        return late <= o.lateThresholdPct
          ? { verdict: "ok", reasons: [] }
          : { verdict: "late", reasons: [`${f(late, 3)} % late frames (by ${lateBy})`] };
      },
      (s) => {
        const w = s.step.windows[0];
        r.out(
          `  N=${s.step.n}: ${s.verdict}` +
            (w
              ? `, server ${f(w.server.cpuPctOfOneCore)} % of a core, late ${f(lateFramesPct(w), 3)} %, gen ${f(w.generator.cpuPctOfOneCore)} %`
              : "") +
            (s.step.error ? `, error: ${s.step.error}` : "") +
            "\n",
        );
        printNotes(r, w);
        if (s.step.profile) r.out(`${formatProfileSummary(s.step.profile.summary)}\n`);
      },
    );
    if (result.steps.some((s) => s.verdict === "error")) failed = true;
    r.out(`\n${capacityTable(result)}\n`);
    r.out(
      "\nlate % = frames that left more than 5 ms after their slot (per frame, at the UDP send) / frames; sched late % = " +
        "the scheduler's lateSlots / slotsRun (judged at the wake, before encoding); write→socket p50/p99 = track.write " +
        "returned → UDP send (grows with N: every packet of a wake leaves after the last stream was encoded); " +
        "CPU/adapter = server CPU % of a " +
        "core ÷ N; ELD = server event-loop delay p50/p99/max ms; gaps = RTP packets missing at the subscribers. " +
        `Verdicts use --late-by ${lateBy}.\n\n` +
        `${result.statement}\n`,
    );
    const marginal = marginalCpu(result.steps);
    if (marginal) r.out(`marginal server CPU per adapter: ${marginal}\n`);
    json.capacity = result;
  }

  await finishRun(r, json);
  return failed ? 1 : 0;
}

// ---- tables ------------------------------------------------------------------------------------

/** Set from --late-by before any step runs. */
let lateBy: "frame" | "scheduler" = "frame";
const lateFramesPct = (w: WindowResult): number => latePct(w, "ingest", lateBy);

function latencyTable(step: StepResult): string {
  const rows = step.windows.map((w) => {
    const i = w.probe.ingest;
    const l = i?.latency;
    return [
      w.name,
      String(i?.audioFrames ?? 0),
      ms3(l?.total),
      ms3(l?.totalQueueEmpty),
      ms2(l?.waitForSlot),
      ms2(l?.wakeLateness),
      ms2(l?.tickToWrite, 3),
      ms2(l?.writeToSocket, 3),
      ms3(i?.departureLateness),
      ms2(l?.adapterMetric),
      String(i?.counters.underruns ?? "-"),
      String(i?.lateFrames ?? "-"),
      i ? f(pct(i.queuedBehind, i.audioFrames), 1) : "-",
    ];
  });
  return renderTable(
    [
      "window",
      "frames",
      "total",
      "total, queue empty",
      "wait",
      "wake",
      "tick→write",
      "→socket",
      "after slot",
      "adapter",
      "underruns",
      "late",
      "queued %",
    ],
    rows,
    1,
  );
}

function pacingTable(steps: StepResult[], lateMs: number): string {
  const rows = steps.map((s) => {
    const w = s.windows[0];
    const i = w?.probe.ingest;
    const sub = w?.generator.ingest?.probe;
    return [
      `N=${s.n}`,
      w ? f(w.server.windowSec, 0) : "-",
      String(i?.frames ?? "-"),
      ms3(i?.intervalErrorAbs),
      ms3(i?.departureLateness),
      i ? `${f(i.drift.cumulativeMsWorstAdapter, 2)}/${f(i.drift.maxAbsMsWorstAdapter, 2)}` : "-",
      i ? `${f(i.drift.slopePpmMedian, 1)}/${f(i.drift.slopePpmWorst, 1)}` : "-",
      ms3(sub?.intervalErrorAbs),
      sub ? `${f(sub.drift.cumulativeMs, 2)}/${f(sub.drift.minMs, 2)}/${f(sub.drift.maxMs, 2)}` : "-",
      sub ? f(sub.drift.slopePpm, 1) : "-",
      w ? f(lateFramesPct(w), 3) : "-",
      w ? f(w.server.cpuPctOfOneCore) : "-",
      s.error ? "error" : w?.machine.contended ? "contended" : "ok",
    ];
  });
  return renderTable(
    [
      "N",
      "s",
      "frames",
      "srv interval |err|",
      "srv after slot",
      "srv drift cum/max|·|",
      "srv ppm med/worst",
      "sub interval |err|",
      "sub drift cum/min/max",
      "sub ppm",
      `late>${lateMs}ms %`,
      "srv CPU%",
      "status",
    ],
    rows,
    1,
  );
}

function capacityTable(result: RampResult): string {
  const rows = result.steps.map((r) => {
    const w = r.step.windows[0];
    const i = w?.probe.ingest;
    const g = w?.generator;
    return [
      String(r.step.n),
      w ? f(w.server.cpuPctOfOneCore) : "-",
      w ? f(w.server.cpuPctOfOneCore / r.step.n, 2) : "-",
      i ? f(pct(i.lateFrames, i.frames), 3) : "-",
      w ? f(schedulerLatePct(w), 3) : "-",
      ms3(i?.departureLateness, 1),
      ms2(i?.latency.writeToSocket, 1),
      eld(w),
      String(i?.counters.underruns ?? "-"),
      String(g?.ingest?.gaps ?? "-"),
      g ? f(g.cpuPctOfOneCore) : "-",
      g ? f(g.pacerLateness.p99Ms) : "-",
      w ? f(w.machine.otherCores, 2) : "-",
      verdictCell(r),
    ];
  });
  return renderTable(
    [
      "N",
      "srv CPU%",
      "CPU%/adapter",
      "late %",
      "sched late %",
      "after slot p50/p99/max",
      "write→socket",
      "ELD p50/p99/max",
      "underruns",
      "gaps",
      "gen CPU%",
      "gen late p99",
      "other cores",
      "verdict",
    ],
    rows,
    1,
  );
}

runMain("ingest", main);
