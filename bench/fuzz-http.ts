// Long HTTP fuzz runs (issue 9 item 12a): the generator and checks of test/helpers/http-fuzz.ts, against a
// real server in a child process so a crash shows up as a crash (the test runs a bounded 1500 requests
// in-process).
//
//   node --import tsx bench/fuzz-http.ts [--requests 20000] [--seed 20261205] [--concurrency 4]
//                                        [--only 17,512] [--label name]
//
// The cases are a function of the seed (and of the ids the setup gets from the server), so a violation
// printed as `#<index>` replays alone with `--seed <seed> --only <index>`. Adapter requests only ever dial
// dead loopback ports (or addresses the endpoint policy refuses before dialling); SDP candidates point at
// 127.0.0.1. Prints a table of requests by route and status and writes bench/results/fuzz-http-*.json.
// The child is started with --ws-connect-timeout-ms 200 and --session-connect-timeout-ms 3000.

import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ApiClient } from "../src/client/api-client.ts";
import {
  type FuzzReport,
  type FuzzViolation,
  prototypePollution,
  runFuzz,
  setupFuzzTarget,
} from "../test/helpers/http-fuzz.ts";
import { startTestServer, TEST_APPS } from "../test/helpers/server.ts";
import { BENCH_DIR, installChildCleanup, ROOT, waitMessage } from "./lib/children.ts";
import { renderTable } from "./lib/format.ts";
import { fileStamp, gitInfo, machineInfo } from "./lib/system.ts";

const SERVER_FLAGS = ["--ws-connect-timeout-ms", "200", "--session-connect-timeout-ms", "3000"];

type ChildMessage =
  | { type: "ready"; url: string }
  | { type: "check"; pollution: string[]; rssBytes: number; heapUsedBytes: number };

// ---------------------------------------------------------------------------------------------------------
// Child: the server under fuzz.

if (process.argv.includes("--serve")) {
  const srv = await startTestServer(SERVER_FLAGS);
  process.on("message", (m: { type: string }) => {
    if (m.type === "check") {
      const mem = process.memoryUsage();
      process.send?.({
        type: "check",
        pollution: prototypePollution(),
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
      } satisfies ChildMessage);
    }
  });
  process.on("disconnect", () => {
    void srv.close().finally(() => process.exit(0));
  });
  process.send?.({ type: "ready", url: srv.url } satisfies ChildMessage);
} else {
  await main();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: "string", default: "20000" },
      seed: { type: "string", default: "20261205" },
      concurrency: { type: "string", default: "4" },
      only: { type: "string" },
      label: { type: "string", default: "" },
    },
  });
  const requests = Number(values.requests);
  const seed = Number(values.seed);
  const concurrency = Number(values.concurrency);
  const only = values.only?.split(",").map(Number);
  if (!(requests > 0) || !Number.isInteger(seed) || !(concurrency > 0)) {
    console.error("usage: bench/fuzz-http.ts [--requests N] [--seed S] [--concurrency C] [--only i,j]");
    process.exit(2);
  }
  installChildCleanup();

  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--serve"], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, NODE_ENV: "production" },
  });
  let exit: string | undefined;
  child.on("exit", (code, signal) => {
    exit = `server process exited (code ${code}, signal ${signal})`;
  });
  const ready = await waitMessage<ChildMessage>(child, (m) => m.type === "ready", 30_000, "server start");
  const url = (ready as { url: string }).url;
  const clients = {
    url,
    api: new ApiClient(`${url}/v1`, TEST_APPS[0].appId, TEST_APPS[0].secret),
    apiB: new ApiClient(`${url}/v1`, TEST_APPS[1].appId, TEST_APPS[1].secret),
  };
  const fixture = await setupFuzzTarget(clients, { examples: true });

  console.log(
    `fuzzing ${url}: ${only ? `cases ${only.join(",")}` : `${requests} requests`}, seed ${seed}, concurrency ${concurrency}`,
  );
  let lastPrint = performance.now();
  // When a fixture session (the clients that stay connected) is first found closed: later cases on it
  // test less. The last case before that touched it is the first suspect.
  const fixtureSessions = {
    publisher: fixture.target.sessions.publisher,
    peer: fixture.target.sessions.peer,
  };
  const lastTouch = new Map<string, number>();
  const lost: Record<string, { atCase: number; afterMs: number; lastCaseBefore?: number }> = {};
  const t0 = performance.now();
  const report = await runFuzz({
    target: fixture.target,
    requests,
    seed,
    concurrency,
    only,
    onResult(c, o) {
      for (const [name, id] of Object.entries(fixtureSessions)) {
        if (lost[name] || !(c.path.includes(id) || c.body?.includes(id))) continue;
        if (o.status === 410 && c.path.includes(id))
          lost[name] = {
            atCase: c.index,
            afterMs: Math.round(performance.now() - t0),
            lastCaseBefore: lastTouch.get(name),
          };
        else lastTouch.set(name, c.index);
      }
    },
    onProgress(done, total) {
      if (performance.now() - lastPrint < 5000) return;
      lastPrint = performance.now();
      console.log(`  ${done}/${total}${exit ? ` — ${exit}` : ""}`);
    },
  });

  // Afterwards: the server process, its health, its Object.prototype.
  let healthStatus: number | string;
  try {
    healthStatus = (await fetch(`${url}/healthz`)).status;
  } catch (err) {
    healthStatus = (err as Error).message;
  }
  const check = exit
    ? undefined
    : ((await new Promise<ChildMessage>((resolve) => {
        child.once("message", (m: ChildMessage) => resolve(m));
        child.send({ type: "check" });
      })) as Extract<ChildMessage, { type: "check" }>);
  await fixture.close();
  const crashed = exit;
  child.disconnect();

  printReport(report);
  for (const [name, l] of Object.entries(lost))
    console.log(
      `fixture session "${name}" found closed at case #${l.atCase} (${(l.afterMs / 1000).toFixed(1)} s in); ` +
        `last case on it before: #${l.lastCaseBefore ?? "-"}`,
    );
  console.log(
    `\nserver: ${crashed ?? "alive"}; /healthz after the run: ${healthStatus}; ` +
      `Object.prototype pollution: ${check ? (check.pollution.length ? check.pollution.join(", ") : "none") : "?"}; ` +
      `rss ${check ? (check.rssBytes / 2 ** 20).toFixed(0) : "?"} MiB`,
  );
  // One example per kind of problem, with its count.
  const kinds = new Map<string, FuzzViolation[]>();
  for (const v of report.violations) {
    const key = `${v.route}: ${v.problem.replace(/[0-9a-f]{32}/g, "<id>").slice(0, 120)}`;
    kinds.set(key, [...(kinds.get(key) ?? []), v]);
  }
  for (const [key, list] of kinds) {
    console.log(`\n${list.length}× ${key}`);
    printViolation(list[0], seed);
  }

  const out = join(
    BENCH_DIR,
    "results",
    `fuzz-http${values.label ? `-${values.label}` : ""}-${fileStamp()}.json`,
  );
  mkdirSync(join(BENCH_DIR, "results"), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        bench: "fuzz-http",
        date: new Date().toISOString(),
        machine: machineInfo(),
        git: gitInfo(),
        serverFlags: SERVER_FLAGS,
        seed,
        requests: report.requests,
        concurrency,
        only,
        durationMs: Math.round(report.durationMs),
        latencyMs: { p50: report.p50Ms, p99: report.p99Ms, max: report.maxMs },
        byStatus: report.byStatus,
        byRoute: report.byRoute,
        server: {
          crashed: crashed ?? null,
          healthAfter: healthStatus,
          prototypePollution: check?.pollution ?? null,
          rssBytes: check?.rssBytes ?? null,
        },
        fixtureSessionsLost: lost,
        violations: report.violations.slice(0, 200),
        violationCount: report.violations.length,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${out}`);
  const failed =
    crashed || healthStatus !== 200 || report.violations.length > 0 || (check?.pollution.length ?? 0) > 0;
  process.exit(failed ? 1 : 0);
}

function printReport(r: FuzzReport): void {
  const statuses = Object.keys(r.byStatus).sort();
  const routes = Object.keys(r.byRoute).sort();
  const rows = routes.map((route) => {
    const row = r.byRoute[route];
    const total = Object.values(row).reduce((a, b) => a + b, 0);
    return [route, String(total), ...statuses.map((s) => (row[s] ? String(row[s]) : ""))];
  });
  rows.push([
    "all",
    String(Object.values(r.byStatus).reduce((a, b) => a + b, 0)),
    ...statuses.map((s) => String(r.byStatus[s])),
  ]);
  console.log(`\n${renderTable(["route", "n", ...statuses], rows, 1)}`);
  console.log(
    `\n${r.requests} cases in ${(r.durationMs / 1000).toFixed(1)} s ` +
      `(${(r.requests / (r.durationMs / 1000)).toFixed(0)}/s; p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ` +
      `max ${r.maxMs.toFixed(0)} ms); ${r.unsent} not sendable by Node's client; ${r.violations.length} violations`,
  );
}

function printViolation(v: FuzzViolation, seed: number): void {
  console.log(`\n#${v.index} ${v.route} [${v.mutation}] → ${v.problem}`);
  console.log(`  replay: node --import tsx bench/fuzz-http.ts --seed ${seed} --only ${v.index}`);
  console.log(`  request:\n${indent(v.request.slice(0, 800))}`);
  console.log(`  response:\n${indent(v.response.slice(0, 400))}`);
}

function indent(s: string): string {
  return s
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}
