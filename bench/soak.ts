// Soak benchmark (issue 9, "keep them closed"). See docs/BENCHMARKS.md, section "Soak".
//
//   node --import tsx bench/soak.ts [--short] [--pairs N] [--streams N] [--minutes M] [--churn-pct P] ...
//
// One server (bench/server-process.ts) and two load generators (bench/lib/soak-load.ts: "pairs" and
// "streams"), each in its own process. After set-up and a warm-up, the server is sampled ("start"), then for
// --minutes a fraction of the pairs and streams is closed and recreated through the HTTP API every
// --churn-every seconds, with a sample every minute; churn stops, the server is sampled again after a quiet
// spell ("end": the same number of live items as at "start"), every item is closed, and a last sample is
// taken once the server is empty. Verdicts: no frame or packet lost, RSS end − start within a bound, the
// same active handles at end as at start, and no handle, session or adapter left behind by the teardown.
// Output: tables on stdout, JSON in bench/results/soak-<mode>-<date>.json, the children's output in the
// .log next to it.

import type { ChildProcess } from "node:child_process";
import os from "node:os";
import { parseArgs } from "node:util";
import { finishRun, num, openRun, type ParsedValues, runMain } from "./lib/adapter-bench.ts";
import type { GridInfo } from "./lib/adapter-protocol.ts";
import { errorText, sleep } from "./lib/async.ts";
import { spawnChild, stopChild, waitMessage } from "./lib/children.ts";
import { f } from "./lib/format.ts";
import type {
  ChurnResult,
  SoakMessage,
  SoakPeek,
  SoakRole,
  SoakSetupResult,
  SoakTeardownReport,
  SoakWindowReport,
} from "./lib/soak-protocol.ts";
import { classTable, Sampler, type ServerSample, samplesTable } from "./lib/soak-report.ts";
import { udpCounters } from "./lib/system.ts";
import { BENCH_APP, request, type ServerMessage } from "./protocol.ts";

const HELP = `Soak benchmark for Patchbay: adapter pairs (ingest → egress) and forwarded streams under churn.

Usage: node --import tsx bench/soak.ts [options]

  --pairs <n>            Adapter pairs: ingest adapter (endpoint sends PCM) + egress adapter pulling it
                         to a checking endpoint (default 100).
  --streams <n>          Forwarded streams: werift publisher (Opus, 50 packets/s) + werift subscriber
                         (default 50).
  --minutes <m>          Soak window: churn and samples from "start" to "end" (default 60).
  --short                A 10-minute window (the issue's short mode).
  --churn-pct <p>        Every --churn-every seconds, close and recreate this % of the pairs and of the
                         streams through the HTTP API (default 5; fractions carry over; 0 = no churn).
  --churn-every <s>      Seconds between churn rounds (default 10).
  --sample-every <s>     Seconds between server samples (default 60).
  --warmup <s>           After set-up, before the "start" sample (default 20; at least --quiet).
  --quiet <s>            No churn for this long before the "end" sample and before the last sample, so
                         that HTTP keep-alive connections (5 s server idle timeout) are gone (default 10).
  --settle-max <s>       After churn and after the teardown, wait at most this long for the server's
                         sessions and adapters to come back to their count at "start" / to 0 (default 120;
                         closed werift peers send no close_notify: their sessions end after 30 + 30 s).
  --lead <ms>            Frames/packets are sent this long before their slot of the server's grid (default 10).
  --concurrency <n>      Items set up / churned in parallel per generator (default 4).
  --rss-bound-mb <mb>    RSS end − start must be ≤ max(this, --rss-bound-pct of start) (default 30).
  --rss-bound-pct <p>    (default 10)
  --handle-slack <n>     |handles end − start| and |after teardown − before set-up| allowed (default 2).
  --server-arg <flag>    Extra server flag (repeat for each word, e.g. --server-arg=--no-ingest-opus-fec).
  --out <file>           JSON output (default bench/results/soak-<mode>-<date>.json).
  --help                 This text.
`;

/** Quotas high enough that only the machine limits the load (defaults: 500/1000 sessions, 200/400 adapters). */
const SERVER_ARGS = [
  "--max-sessions-per-app",
  "2000",
  "--max-sessions",
  "2000",
  "--max-adapters-per-app",
  "1000",
  "--max-adapters",
  "1000",
];

interface Options {
  pairs: number;
  streams: number;
  minutes: number;
  short: boolean;
  churnPct: number;
  churnEverySec: number;
  sampleEverySec: number;
  warmupSec: number;
  quietSec: number;
  settleMaxSec: number;
  leadMs: number;
  concurrency: number;
  rssBoundMB: number;
  rssBoundPct: number;
  handleSlack: number;
  serverArgs: string[];
  out: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      pairs: { type: "string" },
      streams: { type: "string" },
      minutes: { type: "string" },
      short: { type: "boolean" },
      "churn-pct": { type: "string" },
      "churn-every": { type: "string" },
      "sample-every": { type: "string" },
      warmup: { type: "string" },
      quiet: { type: "string" },
      "settle-max": { type: "string" },
      lead: { type: "string" },
      concurrency: { type: "string" },
      "rss-bound-mb": { type: "string" },
      "rss-bound-pct": { type: "string" },
      "handle-slack": { type: "string" },
      "server-arg": { type: "string", multiple: true },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const v = values as ParsedValues;
  if (v.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const short = v.short === true;
  if (short && v.minutes !== undefined) throw new Error("--short and --minutes exclude each other");
  const o: Options = {
    pairs: num(v, "pairs", 100, 0, 1000),
    streams: num(v, "streams", 50, 0, 1000),
    minutes: short ? 10 : num(v, "minutes", 60, 0.1, 24 * 60),
    short,
    churnPct: num(v, "churn-pct", 5, 0, 100),
    churnEverySec: num(v, "churn-every", 10, 1, 3600),
    sampleEverySec: num(v, "sample-every", 60, 5, 3600),
    warmupSec: num(v, "warmup", 20, 1, 600),
    quietSec: num(v, "quiet", 10, 0, 600),
    settleMaxSec: num(v, "settle-max", 120, 0, 3600),
    leadMs: num(v, "lead", 10, 0, 19),
    concurrency: num(v, "concurrency", 4, 1, 64),
    rssBoundMB: num(v, "rss-bound-mb", 30, 0, 100_000),
    rssBoundPct: num(v, "rss-bound-pct", 10, 0, 1000),
    handleSlack: num(v, "handle-slack", 2, 0, 100_000),
    serverArgs: [...SERVER_ARGS, ...(values["server-arg"] ?? [])],
    out: values.out,
  };
  if (o.pairs + o.streams === 0) throw new Error("nothing to soak: --pairs and --streams are both 0");
  o.warmupSec = Math.max(o.warmupSec, o.quietSec);
  return o;
}

const totalSessions = (x: ServerSample): number => Object.values(x.sessions).reduce((a, b) => a + b, 0);

interface Verdict {
  what: string;
  pass: boolean;
  detail: string;
}

async function main(): Promise<number> {
  const o = options();
  const mode = o.short ? "short" : o.minutes === 60 ? "1h" : `${o.minutes}min`;
  const run = openRun(
    `soak-${mode}`,
    o.out,
    false,
    `Patchbay soak: ${o.pairs} adapter pairs + ${o.streams} forwarded streams, ${o.minutes} min, churn ${o.churnPct} % every ${o.churnEverySec} s`,
  );
  run.out(`server flags: ${o.serverArgs.join(" ")}\n\n`);
  const t0 = Date.now();
  const elapsed = () => `${f((Date.now() - t0) / 1000, 0)} s`;
  let server: ChildProcess | undefined;
  const gens = new Map<SoakRole, ChildProcess>();
  const samples: ServerSample[] = [];
  const json: Record<string, unknown> = {
    options: o,
    method: {
      pairs:
        "ingest adapter (location local, endpoint sends 3 840-byte speech-like PCM Packets every 20 ms, 10 ms before the slot of the server's media grid) + egress adapter (location remote) pulling it to a second endpoint that checks sequence numbers, RTP timestamps (step 960) and sizes",
      streams:
        "werift publisher (pre-encoded 32 kb/s Opus loop, 50 packets/s) + werift subscriber in another session (sequence continuity, payload = what was sent at that index)",
      churn:
        "pairs: POST adapters/websocket/close (egress, then ingest after its endpoint ended the segment and the queue drained), GET status, POST adapters/websocket/new ×2; streams: publisher stops, 150 ms, PUT tracks/close force (subscriber, publisher), both peers closed (werift sends no DTLS close_notify: the server ends those sessions by liveness timeout + disconnect grace), new publish + pull",
      samples:
        "server /metrics (process_resident_memory_bytes, nodejs_active_handles_total / by type, nodejs_heap_size_used_bytes, process_open_fds, patchbay_sessions/adapters/tracks) + IPC snapshot (CPU, event-loop delay)",
    },
  };
  const udpStart = udpCounters();
  let failed = false;
  try {
    server = spawnChild("server-process.ts", run.log, "server", o.serverArgs);
    const ready = await waitMessage<ServerMessage>(server, (m) => m.type === "ready", 60_000, "server start");
    if (ready.type !== "ready") throw new Error("unreachable");
    const url = ready.url;
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`server is not on loopback: ${url}`);
    const srv = server;
    const sampler = new Sampler(srv, url);
    await sleep(2000);
    samples.push(await sampler.take("empty, before set-up"));

    const counts: Record<SoakRole, number> = { pairs: o.pairs, streams: o.streams };
    for (const role of ["pairs", "streams"] as const) {
      if (counts[role] === 0) continue;
      const g = spawnChild("lib/soak-load.ts", run.log, `gen-${role}`, [role]);
      gens.set(role, g);
      await waitMessage<SoakMessage>(g, (m) => m.type === "hello", 60_000, `${role} generator start`);
    }
    const ask = <T>(role: SoakRole, msg: Record<string, unknown> & { type: string }, ms: number) =>
      request<{ id: number } & T>(gens.get(role)!, msg, ms);
    const each = <T>(fn: (role: SoakRole) => Promise<T>) =>
      Promise.all([...gens.keys()].map(async (r) => [r, await fn(r)] as const)).then(
        (e) => Object.fromEntries(e) as Partial<Record<SoakRole, T>>,
      );

    const grid = (await request<{ id: number; grid: GridInfo }>(srv, { type: "grid" }, 10_000)).grid;
    await each((r) => ask(r, { type: "start", grid, leadMs: o.leadMs }, 10_000));

    // ---- set-up, one class after the other ----
    const setup: Partial<Record<SoakRole, SoakSetupResult>> = {};
    for (const role of gens.keys()) {
      const n = counts[role];
      const setupTimeoutMs = 120_000 + 2000 * n;
      const r = await ask<{ setup: SoakSetupResult }>(
        role,
        {
          type: "setup",
          url,
          appId: BENCH_APP.appId,
          secret: BENCH_APP.secret,
          count: n,
          concurrency: o.concurrency,
          peerTimeoutMs: 20_000,
          setupTimeoutMs,
        },
        setupTimeoutMs + 30_000,
      );
      setup[role] = r.setup;
      run.out(
        `[${elapsed()}] set-up ${role}: ${r.setup.created}/${n} in ${f(r.setup.setupMs / 1000, 1)} s` +
          (r.setup.failures.length
            ? `, ${r.setup.failures.length} failures: ${r.setup.failures.slice(0, 3).join("; ")}`
            : "") +
          "\n",
      );
    }
    json.setup = setup;
    // Items whose set-up failed get one more try (churn recreates empty slots first), so that "start" and
    // "end" hold the same number of items.
    const repair: Partial<Record<SoakRole, ChurnResult>> = {};
    for (const role of gens.keys()) {
      const missing = counts[role] - (setup[role]?.created ?? 0);
      if (missing === 0) continue;
      repair[role] = (
        await ask<{ churn: ChurnResult }>(role, { type: "churn", count: missing }, 600_000)
      ).churn;
      run.out(`[${elapsed()}] set-up ${role}, second try for ${missing}: ${repair[role]?.ops} created\n`);
    }
    json.setupRepair = repair;
    run.out(`[${elapsed()}] warm-up ${o.warmupSec} s\n`);
    await sleep(o.warmupSec * 1000);
    const peekAll = () =>
      each((r) => ask<{ peek: SoakPeek }>(r, { type: "peek" }, 30_000).then((x) => x.peek));
    /** Sessions + adapters the server holds for the live items: a pair = 2 adapters + the ingest adapter's session, a stream = 2 sessions. */
    const expectedOpen = (p: Partial<Record<SoakRole, SoakPeek>>) =>
      3 * (p.pairs?.live ?? 0) + 2 * (p.streams?.live ?? 0);
    const liveAtStart = await peekAll();
    const openCount = (x: ServerSample) => totalSessions(x) + x.adaptersLive;
    /** Samples until the server holds no more sessions + adapters than `target` (or settleMax passes). */
    const settle = async (target: number): Promise<{ sample: ServerSample; sec: number }> => {
      const t = performance.now();
      let x = await sampler.take("settling");
      while (openCount(x) > target && performance.now() - t < o.settleMaxSec * 1000) {
        await sleep(1000);
        x = await sampler.take("settling");
      }
      return { sample: x, sec: (performance.now() - t) / 1000 };
    };
    // Sessions of peers whose set-up failed linger until the connect timeout: none may count at "start".
    const pre = await settle(expectedOpen(liveAtStart));
    if (pre.sec > 1) {
      run.out(
        `[${elapsed()}] lingering sessions of the set-up gone after ${f(pre.sec, 0)} s; ${o.quietSec} s quiet\n`,
      );
      await sleep(o.quietSec * 1000);
    }

    // ---- the soak window ----
    sampler.markZero();
    const startSample = await sampler.take("start");
    samples.push(startSample);
    await each((r) => ask(r, { type: "mark-start" }, 600_000));
    run.out(`[${elapsed()}] soak window: ${o.minutes} min\n`);
    const churnTotals: Record<SoakRole, ChurnResult & { requestErrors: number }> = {
      pairs: { ops: 0, failed: 0, skipped: 0, requestErrors: 0 },
      streams: { ops: 0, failed: 0, skipped: 0, requestErrors: 0 },
    };
    const carry: Record<SoakRole, number> = { pairs: 0, streams: 0 };
    const inFlight = new Set<Promise<void>>();
    const start = performance.now();
    const windowEnd = start + o.minutes * 60_000;
    let nextChurn = start + o.churnEverySec * 1000;
    let nextSample = start + o.sampleEverySec * 1000;
    for (;;) {
      const now = performance.now();
      if (now >= windowEnd) break;
      await sleep(Math.max(0, Math.min(nextChurn, nextSample, windowEnd) - now));
      if (o.churnPct > 0 && performance.now() >= nextChurn && performance.now() < windowEnd) {
        nextChurn += o.churnEverySec * 1000;
        for (const role of gens.keys()) {
          carry[role] += (counts[role] * o.churnPct) / 100;
          const k = Math.floor(carry[role]);
          if (k === 0) continue;
          carry[role] -= k;
          const p = ask<{ churn: ChurnResult }>(role, { type: "churn", count: k }, 300_000).then(
            (r) => {
              churnTotals[role].ops += r.churn.ops;
              churnTotals[role].failed += r.churn.failed;
              churnTotals[role].skipped += r.churn.skipped;
            },
            (err: unknown) => {
              churnTotals[role].requestErrors++;
              run.log.write(`churn ${role}: ${errorText(err)}\n`);
            },
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
      }
      if (performance.now() >= nextSample && performance.now() < windowEnd) {
        nextSample += o.sampleEverySec * 1000;
        const s = await sampler.take(`${f((performance.now() - start) / 60_000, 1)} min`, await peekAll());
        samples.push(s);
        const g = Object.values(s.generators);
        run.out(
          `[${elapsed()}] ${s.label}: RSS ${f(s.rssMB)} MB, handles ${s.handles}, sessions ${totalSessions(s)}, ` +
            `adapters ${s.adaptersLive}, server CPU ${f(s.cpuPctSincePrev)} %, churn ops ${g.reduce((a, x) => a + (x?.churnOps ?? 0), 0)}, ` +
            `lost ${g.reduce((a, x) => a + (x?.lost ?? 0), 0)}, API errors ${g.reduce((a, x) => a + (x?.apiErrors ?? 0), 0)}\n`,
        );
      }
    }
    run.out(`[${elapsed()}] churn stops; waiting for ${inFlight.size} churn round(s)\n`);
    await Promise.all([...inFlight]);
    // Closed werift peers send no DTLS close_notify, so their server sessions end by the liveness timeout and
    // the disconnect grace (30 + 30 s by default): wait until the server holds only the live items' ones.
    const liveAtEnd = await peekAll();
    const target = expectedOpen(liveAtEnd);
    const post = await settle(target);
    json.settleSec = post.sec;
    run.out(
      `[${elapsed()}] sessions + adapters: ${openCount(post.sample)} after ${f(post.sec, 0)} s (expected for the live items: ${target}; at start: ${openCount(startSample)}); ${o.quietSec} s quiet\n`,
    );
    await sleep(o.quietSec * 1000);
    samples.push(await sampler.take("end", await peekAll()));
    const reports = await each((r) =>
      ask<{ report: SoakWindowReport }>(r, { type: "mark-end" }, 600_000).then((x) => x.report),
    );

    // ---- teardown ----
    run.out(`[${elapsed()}] closing every item\n`);
    const teardown = await each((r) =>
      ask<{ teardown: SoakTeardownReport }>(r, { type: "retire-all" }, 300_000).then((x) => x.teardown),
    );
    const drained = await settle(0);
    json.teardownDrainSec = drained.sec;
    run.out(
      `[${elapsed()}] sessions + adapters left: ${openCount(drained.sample)} after ${f(drained.sec, 0)} s; ${o.quietSec} s quiet\n`,
    );
    await sleep(o.quietSec * 1000);
    samples.push(await sampler.take("empty, after teardown"));
    const udpEnd = udpCounters();

    // ---- verdicts ----
    const s = (label: string) => samples.find((x) => x.label === label)!;
    const first = s("empty, before set-up");
    const a = s("start");
    const b = s("end");
    const z = s("empty, after teardown");
    const tp = teardown.pairs?.pairs;
    const concealed = tp ? tp.egressFramesSentByServer - z.counters.egressFramesNotConcealed : undefined;
    const lostPairs = reports.pairs ? reports.pairs.units.lost : 0;
    const lostStreams = reports.streams
      ? reports.streams.units.lost + (reports.streams.streams?.tailLost ?? 0)
      : 0;
    const rssBound = Math.max(o.rssBoundMB, (o.rssBoundPct / 100) * a.rssMB);
    const sa = a.snapshot;
    const sb = b.snapshot;
    const windowMin = sa && sb ? (sb.wallUs - sa.wallUs) / 6e7 : Number.NaN;
    const windowCpu =
      sa && sb
        ? (100 * (sb.cpuUserUs - sa.cpuUserUs + (sb.cpuSystemUs - sa.cpuSystemUs))) / (sb.wallUs - sa.wallUs)
        : Number.NaN;
    const openAfter = openCount(z);
    const liveText = (p: Partial<Record<SoakRole, SoakPeek>>) =>
      `${p.pairs?.live ?? 0} pairs + ${p.streams?.live ?? 0} streams`;
    const sameLive = liveText(liveAtStart) === liveText(liveAtEnd);
    const verdicts: Verdict[] = [
      {
        what: "frames lost == 0",
        pass: lostPairs === 0 && lostStreams === 0,
        detail: `pairs ${lostPairs} PCM frames, streams ${lostStreams} RTP packets`,
      },
      {
        what: `RSS end − start ≤ ${f(rssBound, 1)} MB (max of ${o.rssBoundMB} MB, ${o.rssBoundPct} % of start)`,
        pass: b.rssMB - a.rssMB <= rssBound,
        detail: `${f(a.rssMB, 1)} → ${f(b.rssMB, 1)} MB (${f(b.rssMB - a.rssMB, 1)}); heap ${f(a.heapUsedMB, 1)} → ${f(b.heapUsedMB, 1)} MB`,
      },
      {
        what: `active handles end == start ± ${o.handleSlack} (same live items; churn stopped, lingering sessions gone, ${o.quietSec} s quiet)`,
        pass: Math.abs(b.handles - a.handles) <= o.handleSlack && sameLive && openCount(a) === openCount(b),
        detail:
          `${a.handles} → ${b.handles}; fds ${a.openFds} → ${b.openFds}; sessions + adapters ${openCount(a)} → ${openCount(b)}` +
          (sameLive
            ? ""
            : `; NOT COMPARABLE: live items ${liveText(liveAtStart)} at start, ${liveText(liveAtEnd)} at end`),
      },
      {
        what: `after teardown: handles == before set-up ± ${o.handleSlack}, no session or adapter left`,
        pass: Math.abs(z.handles - first.handles) <= o.handleSlack && openAfter === 0,
        detail: `handles ${first.handles} → ${z.handles}, fds ${first.openFds} → ${z.openFds}, sessions/adapters left ${openAfter}, RSS ${f(first.rssMB, 1)} → ${f(z.rssMB, 1)} MB`,
      },
    ];
    if (tp)
      verdicts.push(
        {
          what: "ingest: every frame sent was played",
          pass: tp.ingestFramesSent === tp.ingestFramesPlayed && tp.ingestNotDrained === 0,
          detail: `${tp.ingestFramesSent} sent, ${tp.ingestFramesPlayed} played, ${tp.ingestNotDrained} closed before draining`,
        },
        {
          what: "egress: every frame the server wrote reached its endpoint",
          pass: tp.egressFramesSentByServer === tp.egressFramesReceived,
          detail: `${tp.egressFramesSentByServer} written, ${tp.egressFramesReceived} received; ${concealed} of them concealed (whole run)`,
        },
      );
    const churnFailed = churnTotals.pairs.failed + churnTotals.streams.failed;
    const apiErrors = (reports.pairs?.api.errors ?? 0) + (reports.streams?.api.errors ?? 0);
    verdicts.push({
      what: "churn without API errors",
      pass: churnFailed === 0 && apiErrors === 0,
      detail: `${churnTotals.pairs.ops} pair + ${churnTotals.streams.ops} stream recreations, ${churnFailed} failed, ${apiErrors} API errors`,
    });

    // ---- output ----
    run.out(
      "\nServer samples (RSS, heap, handles from /metrics; CPU % of one core, event-loop delay p99/max ms and the " +
        "machine's busy cores since the previous sample, 1-min load average; churn ops, in flight and lost: both " +
        "generators, lost counted from start):\n\n",
    );
    run.out(`${samplesTable(samples)}\n`);
    run.out(`\nWindow (start → end, ${f(windowMin, 1)} min), per class:\n\n`);
    run.out(
      `${classTable([
        { name: "adapter pairs (PCM frames)", report: reports.pairs, concealed },
        { name: "forwarded streams (RTP packets)", report: reports.streams },
      ])}\n`,
    );
    run.out(
      `\nserver CPU ${f(windowCpu, 1)} % of one core over the window; machine: ${os.cpus().length} cores. ` +
        `expected/received/lost: pairs by the RTP timestamps of the frames at the egress endpoints (a hole = a 20 ms ` +
        `slot that never arrived), streams by RTP sequence number at the subscribers plus the tail a closing stream ` +
        `never delivered. Kernel UDP (system-wide): RcvbufErrors +${(udpEnd.RcvbufErrors ?? 0) - (udpStart.RcvbufErrors ?? 0)}, ` +
        `SndbufErrors +${(udpEnd.SndbufErrors ?? 0) - (udpStart.SndbufErrors ?? 0)}.\n`,
    );
    for (const r of Object.values(reports))
      if (r?.api.firstErrors.length)
        run.out(`  first ${r.role} API errors: ${r.api.firstErrors.slice(0, 5).join(" | ")}\n`);
    run.out("\n");
    for (const v of verdicts) run.out(`${v.pass ? "PASS" : "FAIL"}  ${v.what}: ${v.detail}\n`);
    failed = verdicts.some((v) => !v.pass);
    Object.assign(json, {
      samples,
      windowCpuPctOfOneCore: windowCpu,
      reports,
      teardown,
      churn: churnTotals,
      concealedEgressFramesWholeRun: concealed,
      udpDeltas: Object.fromEntries(Object.keys(udpEnd).map((k) => [k, udpEnd[k] - (udpStart[k] ?? 0)])),
      verdicts,
    });
  } catch (err) {
    failed = true;
    json.error = errorText(err);
    json.samples = samples;
    run.out(`\nerror: ${errorText(err)}\n`);
  } finally {
    for (const g of gens.values()) await stopChild(g, { type: "close" }, 20_000);
    if (server) await stopChild(server, { type: "shutdown" }, 10_000);
  }
  await finishRun(run, json);
  return failed ? 1 : 0;
}

runMain("soak", main);
