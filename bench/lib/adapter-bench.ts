// What bench/ingest.ts and bench/egress.ts share: the run's log and result files, machine and git facts,
// common options, the capacity ramp, and table cells.

import { createWriteStream, mkdirSync, type WriteStream, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import {
  runAdapterStep,
  type StepContext,
  type StepResult,
  type StepSpec,
  type WindowResult,
} from "./adapter-step.ts";
import { BENCH_DIR, installChildCleanup, killAll, ROOT } from "./children.ts";
import { f } from "./format.ts";
import type { Summary } from "./histogram.ts";
import { fileStamp, gitInfo, type MachineInfo, machineInfo } from "./system.ts";

export interface Run {
  name: string;
  stamp: string;
  log: WriteStream;
  logPath: string;
  outPath: string;
  machine: MachineInfo;
  git: { commit: string | undefined; srcDirty: boolean };
  caveat: string;
  out(text: string): void;
}

export function openRun(name: string, outOverride: string | undefined, dryRun: boolean, title: string): Run {
  installChildCleanup();
  const resultsDir = join(BENCH_DIR, "results");
  mkdirSync(resultsDir, { recursive: true });
  const stamp = fileStamp();
  const logPath = join(resultsDir, `${name}-${stamp}.log`);
  const machine = machineInfo();
  const git = gitInfo();
  const caveat =
    `This machine has ${machine.cores} logical cores (${machine.cpuModel}). The server and the load generator ` +
    "are one Node thread each and share these cores with the kernel's loopback work and anything else running; " +
    "per-adapter server CPU is the most portable number, capacity N is a property of this box. " +
    `Load average at start: ${machine.loadavgAtStart.map((x) => x.toFixed(2)).join(" ")}.`;
  const run: Run = {
    name,
    stamp,
    log: createWriteStream(logPath),
    logPath,
    outPath: outOverride ?? join(resultsDir, `${name}-${stamp}.json`),
    machine,
    git,
    caveat,
    out: (text) => process.stdout.write(text),
  };
  run.out(
    `${title}${dryRun ? " (DRY RUN: short windows, small N — proves the harness, not capacity numbers)" : ""}\n` +
      `commit ${git.commit ?? "?"}${git.srcDirty ? " (src has uncommitted changes)" : ""}, node ${machine.node}, ${machine.platform}\n` +
      `${caveat}\nlog: ${relative(ROOT, logPath)}\n\n`,
  );
  return run;
}

export async function finishRun(run: Run, json: Record<string, unknown>): Promise<void> {
  mkdirSync(dirname(run.outPath), { recursive: true });
  writeFileSync(
    run.outPath,
    `${JSON.stringify({ benchmark: run.name, date: new Date().toISOString(), git: run.git, machine: run.machine, caveat: run.caveat, ...json }, null, 2)}\n`,
  );
  run.out(`\nJSON: ${relative(ROOT, run.outPath)}\n`);
  await new Promise<void>((r) => run.log.end(() => r()));
}

/** Runs `main`, then exits with its code; children are killed either way. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      killAll();
      process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`${name} benchmark failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      killAll();
      process.exit(1);
    },
  );
}

// ---- options -----------------------------------------------------------------------------------

export const COMMON_OPTIONS = {
  "dry-run": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  scenarios: { type: "string" },
  warmup: { type: "string" },
  measure: { type: "string" },
  "late-threshold": { type: "string" },
  "late-ms": { type: "string" },
  "no-per-frame": { type: "boolean" },
  "no-socket-hook": { type: "boolean" },
  "keep-going": { type: "boolean" },
  "late-by": { type: "string" },
  concurrency: { type: "string" },
  "gen-cpu-limit": { type: "string" },
  "gen-lateness-limit": { type: "string" },
  profile: { type: "boolean" },
  out: { type: "string" },
} as const;

export const COMMON_HELP = `  --warmup <s>              Warm-up before each capacity window (default 3; dry run 2).
  --measure <s>             Capacity window (default 10; dry run 5).
  --late-threshold <pct>    Late-frame budget of a passing step (default 0.1).
  --late-ms <ms>            A frame is late when it leaves more than this after its slot (default 5).
  --late-by <frame|scheduler>
                            What decides "late" for the pass/fail verdicts (default frame): frame = each frame's
                            own departure (ingest: the UDP send, egress: ws.send), scheduler = the media
                            scheduler's lateSlots / slotsRun, judged when the timer wakes, before any encoding.
  --no-per-frame            Do not wrap the adapters (implies --late-by scheduler).
  --no-socket-hook          Time ingest departures at track.write instead of the UDP send.
  --keep-going              Run every step of a ramp even after one fails (default in a dry run); the result
                            is still the largest N before the first failing step.
  --concurrency <n>         Adapters/peers set up in parallel (default 4).
  --gen-cpu-limit <pct>     Generator CPU (% of one core) counted as saturated (default 85).
  --gen-lateness-limit <ms> Generator pacer lateness p99 counted as saturated (default 10).
  --profile                 Also record the server's CPU profile over each step's (first) window, written next to
                            the JSON as <name>-<date>-<scenario>-<step>.cpuprofile and summarized in the output.
  --out <file>              JSON output (default bench/results/<name>-<date>.json).
  --help                    This text.
`;

export type ParsedValues = Record<string, string | boolean | undefined>;

export function parse(
  argv: string[],
  extra: Record<string, { type: "string" | "boolean" }>,
  help: string,
): ParsedValues {
  const { values } = parseArgs({
    args: argv,
    options: { ...COMMON_OPTIONS, ...extra },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(help);
    process.exit(0);
  }
  return values as ParsedValues;
}

export function num(v: ParsedValues, k: string, def: number, min: number, max: number): number {
  const raw = v[k];
  const x = typeof raw === "string" ? Number(raw) : def;
  if (!(x >= min && x <= max)) throw new Error(`--${k}: expected a number from ${min} to ${max}`);
  return x;
}

export function list(v: ParsedValues, k: string, def: string, min: number, max: number): number[] {
  const raw = typeof v[k] === "string" ? (v[k] as string) : def;
  const out = raw.split(",").map((x) => Number(x.trim()));
  if (out.length === 0 || out.some((x) => !(x >= min && x <= max)))
    throw new Error(
      `--${k}: expected a comma-separated list of numbers ${min}..${max}, got ${JSON.stringify(raw)}`,
    );
  return out;
}

export function scenarios(v: ParsedValues, all: string[]): string[] {
  const wanted = (typeof v.scenarios === "string" ? v.scenarios : all.join(","))
    .split(",")
    .map((s) => s.trim());
  for (const w of wanted)
    if (!all.includes(w)) throw new Error(`--scenarios: unknown ${w} (${all.join(", ")})`);
  return all.filter((s) => wanted.includes(s));
}

export interface CommonOptions {
  dryRun: boolean;
  warmupMs: number;
  measureMs: number;
  lateThresholdPct: number;
  lateMs: number;
  perFrame: boolean;
  socketHook: boolean;
  keepGoing: boolean;
  lateBy: "frame" | "scheduler";
  ctx: Omit<StepContext, "log">;
  out: string | undefined;
}

export function common(v: ParsedValues): CommonOptions {
  const dryRun = v["dry-run"] === true;
  const lateBy = v["late-by"] ?? "frame";
  if (lateBy !== "frame" && lateBy !== "scheduler") throw new Error("--late-by: frame or scheduler");
  return {
    lateBy: v["no-per-frame"] === true ? "scheduler" : lateBy,
    dryRun,
    warmupMs: num(v, "warmup", dryRun ? 2 : 3, 1, 60) * 1000,
    measureMs: num(v, "measure", dryRun ? 5 : 10, 1, 600) * 1000,
    lateThresholdPct: num(v, "late-threshold", 0.1, 0, 100),
    lateMs: num(v, "late-ms", 5, 0.1, 1000),
    perFrame: v["no-per-frame"] !== true,
    socketHook: v["no-socket-hook"] !== true,
    keepGoing: v["keep-going"] === true || dryRun,
    ctx: {
      concurrency: num(v, "concurrency", 4, 1, 64),
      genCpuLimitPct: num(v, "gen-cpu-limit", 85, 1, 100),
      genLatenessLimitMs: num(v, "gen-lateness-limit", 10, 0.1, 1000),
      profile: v.profile === true,
    },
    out: typeof v.out === "string" ? v.out : undefined,
  };
}

/** The `method` fields of the JSON output that come from the common options. */
export function commonMethod(o: CommonOptions) {
  return {
    lateMs: o.lateMs,
    lateThresholdPct: o.lateThresholdPct,
    lateBy: o.lateBy,
    warmupMs: o.warmupMs,
    measureMs: o.measureMs,
  };
}

// ---- ramps -------------------------------------------------------------------------------------

export type Verdict = "ok" | "late" | "dropped" | "generator-saturated" | "error";

export interface RampStep {
  step: StepResult;
  verdict: Verdict;
  reasons: string[];
}

export interface RampResult {
  scenario: string;
  steps: RampStep[];
  largestPassingN: number | undefined;
  stoppedBecause: string;
  statement: string;
}

/**
 * Runs `spec(n)` for each n until a step fails `judge` (or errors, or saturates the generator); with
 * `keepGoing` every step runs (except after an error). The result is the largest N before the first failing
 * step, written "≥ N" when the ramp ended (or the generator saturated) before the server failed.
 */
export async function ramp(
  keepGoing: boolean,
  ctx: StepContext,
  scenario: string,
  what: string,
  ns: number[],
  spec: (n: number) => StepSpec,
  judge: (w: WindowResult) => { verdict: Verdict; reasons: string[] },
  progress: (s: RampStep) => void,
): Promise<RampResult> {
  const steps: RampStep[] = [];
  for (const n of ns) {
    const step = await runAdapterStep(ctx, spec(n));
    const w = step.windows[0];
    const j: { verdict: Verdict; reasons: string[] } =
      step.error || !w ? { verdict: "error", reasons: [step.error ?? "no window"] } : judge(w);
    if (j.verdict === "ok" && w?.generator.saturated) j.verdict = "generator-saturated";
    const r = { step, verdict: j.verdict, reasons: j.reasons };
    steps.push(r);
    progress(r);
    if (j.verdict === "error" || (j.verdict !== "ok" && !keepGoing)) break;
  }
  const firstFail = steps.findIndex((s) => s.verdict !== "ok");
  const upTo = firstFail < 0 ? steps : steps.slice(0, firstFail + 1);
  const passing = upTo.filter((s) => s.verdict === "ok" || s.verdict === "generator-saturated");
  const largest = passing.length ? Math.max(...passing.map((s) => s.step.n)) : undefined;
  const last = upTo[upTo.length - 1];
  let stopped: string;
  if (!last) stopped = "not run";
  else if (last.verdict === "ok")
    stopped = `end of ramp (not saturated at N=${last.step.n}; capacity is higher)`;
  else if (last.verdict === "generator-saturated")
    stopped = `load generator saturated at N=${last.step.n} (the server's capacity is at least this)`;
  else stopped = `${last.verdict} at N=${last.step.n}: ${last.reasons.join("; ")}`;
  const bound = last?.verdict === "ok" || last?.verdict === "generator-saturated" ? "≥ " : "";
  const statement =
    largest === undefined
      ? `${scenario}: no step passed (${stopped})`
      : `${scenario}: largest N = ${bound}${largest} ${what}; stopped: ${stopped}`;
  return { scenario, steps, largestPassingN: largest, stoppedBecause: stopped, statement };
}

// ---- cells -------------------------------------------------------------------------------------

export const pct = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : Number.NaN);

/** The scheduler's late slots in % of slots run (all streams of the process, judged at the timer wake). */
export const schedulerLatePct = (w: WindowResult): number =>
  pct(w.probe.scheduler.lateSlots, w.probe.scheduler.slotsRun);

/** Late % of one direction by the chosen criterion. */
export function latePct(
  w: WindowResult,
  direction: "ingest" | "egress",
  lateBy: "frame" | "scheduler",
): number {
  const d = w.probe[direction];
  if (lateBy === "frame" && w.probe.options.perFrame && d && d.frames > 0) return pct(d.lateFrames, d.frames);
  return schedulerLatePct(w);
}

export const ms3 = (s: Summary | undefined, d = 2): string =>
  s && s.count > 0 ? `${f(s.p50Ms, d)}/${f(s.p99Ms, d)}/${f(s.maxMs, d)}` : "-";

export const ms2 = (s: Summary | undefined, d = 2): string =>
  s && s.count > 0 ? `${f(s.p50Ms, d)}/${f(s.p99Ms, d)}` : "-";

export function eld(w: WindowResult | undefined): string {
  if (!w) return "-";
  const l = w.server.eventLoopLag;
  return `${f(l.p50Ms)}/${f(l.p99Ms)}/${f(l.maxMs)}`;
}

export function verdictCell(r: RampStep): string {
  const w = r.step.windows[0];
  return r.verdict + (w?.machine.contended ? " (contended)" : "");
}

export function printNotes(run: Run, w: WindowResult | undefined): void {
  for (const n of w?.notes ?? []) run.out(`    note: ${n}\n`);
}

/** Server CPU (% of a core) per extra adapter between consecutive measured steps. */
export function marginalCpu(steps: RampStep[]): string | undefined {
  const m = steps.filter((s) => s.step.windows[0]);
  const parts: string[] = [];
  for (let i = 1; i < m.length; i++) {
    const a = m[i - 1].step;
    const b = m[i].step;
    const d = (b.windows[0].server.cpuPctOfOneCore - a.windows[0].server.cpuPctOfOneCore) / (b.n - a.n);
    parts.push(`${f(d, 2)} % (N ${a.n}→${b.n})`);
  }
  return parts.length ? parts.join(", ") : undefined;
}
