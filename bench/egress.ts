// Egress adapter benchmark (orchestrator). See docs/BENCHMARKS.md, section "Egress adapter".
//
//   node --import tsx bench/egress.ts [--dry-run] [options]      (--help lists them)
//
// Scenarios (each step runs in fresh children: bench/server-process.ts and bench/adapter-load.ts):
//   latency   one werift publisher (real Opus, 50 packets/s) → one egress adapter → a WebSocket endpoint;
//             per frame, inside the server: UDP datagram arrival → ws.send of its PCM frame returned, with
//             the reorder buffer at its default target and with --no-egress-reorder; one window per lead
//             (how long before a scheduler slot each packet is sent).
//   capacity  ramp N egress adapters (one publisher and one endpoint each): dropped frames (server counters
//             and holes in the RTP-timestamp sequence at the endpoints), late frames (sent more than 5 ms
//             after the slot of the tick that produced them), server CPU per adapter; the largest N with no
//             dropped frames and < 0.1 % late frames.
//   mixed     ramp N bidirectional agents (N ingest + N egress adapters); the largest N meeting both the
//             ingest criterion (≤ 0.1 % late frames) and the egress one.
// Before the scenarios the Opus decoder's per-frame cost is measured in this process.
// Output: tables on stdout, JSON in bench/results/egress-<date>.json, children's output in the .log next to it.

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
  type Verdict,
  verdictCell,
} from "./lib/adapter-bench.ts";
import { runAdapterStep, type StepResult, type StepSpec, type WindowResult } from "./lib/adapter-step.ts";
import { type CodecCost, codecCostTable, ingestPackets, measureDecoder } from "./lib/codec-cost.ts";
import { f, renderTable } from "./lib/format.ts";
import { encodeOpusLoop } from "./lib/opus-loop.ts";
import { formatProfileSummary } from "./profile-summary.ts";

const HELP = `Egress adapter benchmark for Patchbay (werift publisher → egress adapter → PCM over WebSocket).

Usage: node --import tsx bench/egress.ts [options]

  --dry-run                 Short run: leads 2,10,18 × 3 s per reorder mode; capacity N=2,5; mixed N=2;
                            5 s windows (implies --keep-going).
  --scenarios <list>        From latency,capacity,mixed (default: all).
  --leads <ms list>         Latency: how long before a slot each packet is sent (default 2,6,10,14,18).
  --latency-window <s>      Latency: window per lead (default 10; dry run 3).
  --ramp <list>             Capacity: egress adapter counts (default 10,25,50,75,100,150,200; dry run 2,5).
  --ramp-mixed <list>       Mixed: agent counts, each 1 ingest + 1 egress (default 5,10,15,20,25,30,40; dry run 2).
  --lead <ms>               Capacity/mixed: packets and ingest frames are sent this long before their slot (default 10).
${COMMON_HELP}`;

type Opts = {
  scenarios: string[];
  leads: number[];
  latencyWindowMs: number;
  ramp: number[];
  rampMixed: number[];
  leadMs: number;
};

function main(): Promise<number> {
  const v = parse(
    process.argv.slice(2),
    {
      leads: { type: "string" },
      "latency-window": { type: "string" },
      ramp: { type: "string" },
      "ramp-mixed": { type: "string" },
      lead: { type: "string" },
    },
    HELP,
  );
  const o = common(v);
  const dry = o.dryRun;
  return run(o, {
    scenarios: scenarios(v, ["latency", "capacity", "mixed"]),
    leads: list(v, "leads", dry ? "2,10,18" : "2,6,10,14,18", 0, 19),
    latencyWindowMs: num(v, "latency-window", dry ? 3 : 10, 1, 600) * 1000,
    ramp: list(v, "ramp", dry ? "2,5" : "10,25,50,75,100,150,200", 1, 2000),
    rampMixed: list(v, "ramp-mixed", dry ? "2" : "5,10,15,20,25,30,40", 1, 1000),
    leadMs: num(v, "lead", 10, 0, 19),
  });
}

async function run(o: ReturnType<typeof common>, opts: Opts): Promise<number> {
  lateBy = o.lateBy;
  const r = openRun("egress", o.out, o.dryRun, "Patchbay egress adapter benchmark");
  const ctx = { ...o.ctx, log: r.log, profilePrefix: r.outPath.replace(/\.json$/, "") };
  const probe = { perFrame: o.perFrame, socketHook: o.socketHook, lateMs: o.lateMs, series: false };
  let failed = false;

  // ---- decoder cost, in this process ----
  r.out("Opus decoder cost (src/media/opus-decoder.ts, 10 s of packets × 5 runs, each packet timed):\n");
  const decoder: CodecCost[] = [
    measureDecoder(
      "benchmark publishers' stream (32 kb/s VBR, voip)",
      encodeOpusLoop(10_000, 20240611, Number(process.env.BENCH_OPUS_BITRATE ?? 32_000)),
    ),
    measureDecoder("ingest encoder's stream (48 kb/s, FEC)", ingestPackets()),
  ];
  r.out(`${codecCostTable("decoder input", decoder)}\n\n`);

  const json: Record<string, unknown> = {
    dryRun: o.dryRun,
    method: {
      publisher:
        "werift peer per egress adapter, pre-encoded 10 s speech-like Opus loop (32 kb/s VBR), 50 packets/s on an absolute clock aligned to the server's scheduler grid",
      endpoint:
        "WebSocket server in the load generator; checks sequence numbers, RTP timestamps, frame sizes",
      departure: "ws.send of the PCM frame returned (the adapter's onFrame point)",
      ...commonMethod(o),
      options: opts,
    },
    decoder,
  };

  // ---- latency ----
  if (opts.scenarios.includes("latency")) {
    const steps: StepResult[] = [];
    for (const [mode, args] of [
      ["reorder", []],
      ["no-reorder", ["--no-egress-reorder"]],
    ] as const) {
      r.out(
        `latency (${mode}): 1 adapter, leads ${opts.leads.join(", ")} ms, ${opts.latencyWindowMs / 1000} s per lead`,
      );
      const step = await runAdapterStep(ctx, {
        scenario: `latency ${mode}`,
        n: 1,
        label: mode,
        serverArgs: [...args],
        ingest: 0,
        egress: 1,
        windows: opts.leads.map((lead) => ({
          name: `lead ${lead} ms`,
          warmupMs: 2000,
          measureMs: opts.latencyWindowMs,
          ingestLeadMs: 0,
          egressLeadMs: lead,
        })),
        probe,
      });
      steps.push(step);
      if (step.error) failed = true;
      r.out(step.error ? `: error: ${step.error}\n` : ": done\n");
      for (const w of step.windows) printNotes(r, w);
    }
    r.out(`\n${latencyTable(steps)}\n`);
    r.out(
      "\nms, p50/p99/max. total = UDP datagram delivered to the server's socket listener → ws.send of its PCM frame " +
        "returned (the frame is in the kernel: 'buffered' counts sends that left bytes in user space). udp→adapter = " +
        "werift receive path (DTLS/SRTP, RTP) up to the adapter's onPacket; adapter = onPacket → ws.send, what " +
        "patchbay_adapter_queue_seconds (jitter buffer wait) and patchbay_adapter_latency_seconds (decode + send) " +
        "report together; after slot = send − slot due; " +
        "target/depth = the jitter buffer's adaptive target and depth at the end.\n",
    );
    json.latency = steps;
  }

  // ---- capacity ----
  if (opts.scenarios.includes("capacity")) {
    r.out(`\ncapacity: ramp ${opts.ramp.join(", ")} egress adapters, ${o.measureMs / 1000} s windows\n`);
    const result = await ramp(
      o.keepGoing,
      ctx,
      "egress capacity",
      `concurrent egress adapters with no dropped frames and < ${o.lateThresholdPct} % late frames`,
      opts.ramp,
      (n) => capacitySpec("capacity", n, 0, n, o, opts, probe),
      (w) => judgeEgress(w, o.lateThresholdPct),
      (s) => progress(r, s.step, s.verdict, s.step.windows[0]),
    );
    if (result.steps.some((s) => s.verdict === "error")) failed = true;
    r.out(`\n${capacityTable(result, "egress")}\n`);
    r.out(`\n${result.statement}\n`);
    const marginal = marginalCpu(result.steps);
    if (marginal) r.out(`marginal server CPU per adapter: ${marginal}\n`);
    json.capacity = result;
  }

  // ---- mixed ----
  if (opts.scenarios.includes("mixed")) {
    r.out(`\nmixed: ramp ${opts.rampMixed.join(", ")} agents (1 ingest + 1 egress adapter each)\n`);
    const result = await ramp(
      o.keepGoing,
      ctx,
      "mixed",
      `bidirectional agents (ingest ≤ ${o.lateThresholdPct} % late; egress no drops, < ${o.lateThresholdPct} % late)`,
      opts.rampMixed,
      (n) => capacitySpec("mixed", n, n, n, o, opts, probe),
      (w) => {
        const e = judgeEgress(w, o.lateThresholdPct);
        const late = ingestLatePct(w);
        const reasons = [...e.reasons];
        let verdict = e.verdict;
        if (late > o.lateThresholdPct) {
          reasons.push(`ingest ${f(late, 3)} % late frames (by ${lateBy})`);
          if (verdict === "ok") verdict = "late";
        }
        return { verdict, reasons };
      },
      (s) => progress(r, s.step, s.verdict, s.step.windows[0]),
    );
    if (result.steps.some((s) => s.verdict === "error")) failed = true;
    r.out(`\n${capacityTable(result, "mixed")}\n`);
    r.out(`\n${result.statement}\n`);
    const marginal = marginalCpu(result.steps);
    if (marginal) r.out(`marginal server CPU per agent (2 adapters): ${marginal}\n`);
    json.mixed = result;
  }
  if (opts.scenarios.includes("capacity") || opts.scenarios.includes("mixed"))
    r.out(
      "\nlate % = frames sent more than 5 ms after their slot / frames sent (per frame; ingest: at the UDP send); " +
        "sched late % = the scheduler's lateSlots / slotsRun; drops = server (send-queue drops + jitter-buffer overflow/" +
        "trim) / endpoint (frames missing from the RTP-timestamp sequence); conceal = frames made by FEC/PLC, late pkts = " +
        "packets that arrived after their slot was concealed (no hole in the PCM); " +
        "CPU/adapter = server CPU % of a core ÷ adapters; ELD = server event-loop delay p50/p99/max ms. " +
        `Verdicts use --late-by ${lateBy}.\n`,
    );

  await finishRun(r, json);
  return failed ? 1 : 0;
}

function capacitySpec(
  scenario: string,
  n: number,
  ingest: number,
  egress: number,
  o: ReturnType<typeof common>,
  opts: Opts,
  probe: StepSpec["probe"],
): StepSpec {
  return {
    scenario,
    n,
    label: `N=${n}`,
    serverArgs: [],
    ingest,
    egress,
    windows: [
      {
        name: scenario,
        warmupMs: o.warmupMs,
        measureMs: o.measureMs,
        ingestLeadMs: opts.leadMs,
        egressLeadMs: opts.leadMs,
      },
    ],
    probe,
  };
}

function progress(
  r: ReturnType<typeof openRun>,
  step: StepResult,
  verdict: Verdict,
  w: WindowResult | undefined,
) {
  r.out(
    `  N=${step.n}: ${verdict}` +
      (w
        ? `, server ${f(w.server.cpuPctOfOneCore)} % of a core, egress late ${f(egressLatePct(w), 3)} %, drops ${serverDrops(w)}/${endpointMissing(w)}, gen ${f(w.generator.cpuPctOfOneCore)} %`
        : "") +
      (step.error ? `, error: ${step.error}` : "") +
      "\n",
  );
  printNotes(r, w);
  if (step.profile) r.out(`${formatProfileSummary(step.profile.summary)}\n`);
}

// ---- criteria ----------------------------------------------------------------------------------

/**
 * Frames that never reached the endpoint because the server discarded them: send-queue drops (slow endpoint)
 * and packets the jitter buffer threw away without concealing (overflow past its 200 ms cap, trimming).
 * Late packets are not counted: their slot was already concealed (FEC/PLC), the PCM stream has no hole.
 */
function serverDrops(w: WindowResult): number {
  const c = w.probe.egress?.counters;
  return c ? c.droppedFrames + c.jitterOverflowDrops + c.jitterTrimmed : 0;
}

function endpointMissing(w: WindowResult): number {
  const e = w.generator.egress;
  return e ? e.tsGapFrames + e.badMessages : 0;
}

/** Set from --late-by before any step runs. */
let lateBy: "frame" | "scheduler" = "frame";
const egressLatePct = (w: WindowResult): number => latePct(w, "egress", lateBy);
const ingestLatePct = (w: WindowResult): number => latePct(w, "ingest", lateBy);

function judgeEgress(w: WindowResult, threshold: number): { verdict: Verdict; reasons: string[] } {
  const reasons: string[] = [];
  let verdict: Verdict = "ok";
  const drops = serverDrops(w);
  const missing = endpointMissing(w);
  const dead = w.generator.egress?.deadEndpoints ?? 0;
  if (drops > 0 || missing > 0 || dead > 0) {
    verdict = "dropped";
    reasons.push(
      `${drops} frames dropped in the server, ${missing} missing at endpoints, ${dead} dead endpoints`,
    );
  }
  const late = egressLatePct(w);
  if (!(late < threshold)) {
    if (verdict === "ok") verdict = "late";
    reasons.push(`egress ${f(late, 3)} % late frames (by ${lateBy})`);
  }
  return { verdict, reasons };
}

// ---- tables ------------------------------------------------------------------------------------

function latencyTable(steps: StepResult[]): string {
  const rows: string[][] = [];
  for (const s of steps)
    for (const w of s.windows) {
      const e = w.probe.egress;
      rows.push([
        s.label,
        w.name,
        String(e?.frames ?? 0),
        ms3(e?.latency.total),
        ms2(e?.latency.udpToAdapter, 3),
        ms3(e?.latency.adapterMetric),
        ms2(e?.departureLateness),
        e ? `${f(e.counters.meanTargetMs, 0)}/${f(e.counters.meanDepthMs, 0)}` : "-",
        String(e?.counters.concealedFrames ?? "-"),
        e ? String(serverDrops(w)) : "-",
        String(e?.bufferedAfterSend ?? "-"),
        String(e?.lateFrames ?? "-"),
      ]);
    }
  return renderTable(
    [
      "mode",
      "window",
      "frames",
      "total",
      "udp→adapter",
      "adapter",
      "after slot",
      "target/depth",
      "conceal",
      "drops",
      "buffered",
      "late",
    ],
    rows,
    2,
  );
}

function capacityTable(result: RampResult, kind: "egress" | "mixed"): string {
  const rows = result.steps.map((r) => {
    const w = r.step.windows[0];
    const e = w?.probe.egress;
    const g = w?.generator;
    const adapters = r.step.ingest + r.step.egress;
    const row = [
      String(r.step.n),
      w ? f(w.server.cpuPctOfOneCore) : "-",
      w ? f(w.server.cpuPctOfOneCore / adapters, 2) : "-",
      e ? f(pct(e.lateFrames, e.frames), 3) : "-",
    ];
    const i = w?.probe.ingest;
    if (kind === "mixed") row.push(i ? f(pct(i.lateFrames, i.frames), 3) : "-");
    row.push(
      w ? f(schedulerLatePct(w), 3) : "-",
      ms3(e?.departureLateness, 1),
      w ? `${serverDrops(w)}/${endpointMissing(w)}` : "-",
      e ? `${e.counters.concealedFrames}/${e.counters.jitterLate}` : "-",
      eld(w),
      g ? f(g.cpuPctOfOneCore) : "-",
      g ? f(g.pacerLateness.p99Ms) : "-",
      w ? f(w.machine.otherCores, 2) : "-",
      verdictCell(r),
    );
    return row;
  });
  const head = ["N", "srv CPU%", "CPU%/adapter", kind === "mixed" ? "egress late %" : "late %"];
  if (kind === "mixed") head.push("ingest late %");
  head.push(
    "sched late %",
    "egress after slot p50/p99/max",
    "drops srv/endpoint",
    "conceal/late pkts",
    "ELD p50/p99/max",
    "gen CPU%",
    "gen late p99",
    "other cores",
    "verdict",
  );
  return renderTable(head, rows, 1);
}

runMain("egress", main);
