// Setup of an N-person call shaped like Cloudflare's clients make it (partytracks / Orange Meets): every
// participant has ONE session on which it publishes audio + video with its own offer, then pulls every
// other participant's two tracks in one batched tracks/new (server offer + PUT renegotiate), while each
// participant already there pulls the newcomer's two tracks the same way.
//
//   node --import tsx bench/call-setup.ts [--participants 10] [--server-root <checkout>] [--label name]
//
// Two phases, each against a fresh server process (bench/server-process.ts of --server-root, so the same
// script measures an older checkout as the "before" figure):
//   1. negotiation only: no media; per join, the wall time of its API calls + SDP work and the server's
//      CPU (user + system) spent meanwhile (ICE/DTLS handshakes included);
//   2. with media: every participant sends Opus (50 pkt/s) and fake VP8 (≈17 pkt/s) from the moment it has
//      published; per join, the time from its first offer until every stream it pulls and every stream
//      of it that others pull has delivered a packet, and the whole call's time to all N×(N−1)×2 streams.
// Clients are werift peers in this process. Prints a table and writes bench/results/call-setup-*.json.

import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ApiClient } from "../src/client/api-client.ts";
import { CallParticipant } from "./lib/call-participant.ts";
import { installChildCleanup, ROOT, waitMessage } from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";
import { fileStamp, gitInfo, machineInfo } from "./lib/system.ts";
import { BENCH_APP, request, type ServerMessage, type ServerSnapshot } from "./protocol.ts";

const { values } = parseArgs({
  options: {
    participants: { type: "string", default: "10" },
    "server-root": { type: "string", default: ROOT },
    label: { type: "string", default: "current" },
  },
});
const N = Number(values.participants);
const serverRoot = resolve(values["server-root"]!);

installChildCleanup();

async function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(join(serverRoot, "bench/server-process.ts"), [], {
    cwd: serverRoot,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, NODE_ENV: "production" },
  });
  const ready = await waitMessage<ServerMessage>(child, (m) => m.type === "ready", 30_000, "server start");
  return { child, url: (ready as { url: string }).url };
}

const snapshot = async (child: ChildProcess) =>
  (await request<{ id: number; snapshot?: ServerSnapshot }>(child, { type: "snapshot" }, 10_000)).snapshot!;
const cpuUs = (s: ServerSnapshot) => s.cpuUserUs + s.cpuSystemUs;

interface JoinFigure {
  participant: number;
  wallMs: number;
  serverCpuMs: number;
  /** Phase 2: first offer → every stream to and from the newcomer delivered. */
  mediaMs?: number;
}

async function phase(
  withMedia: boolean,
): Promise<{ joins: JoinFigure[]; allFlowingMs?: number; failures: string[] }> {
  const { child, url } = await startServer();
  const api = new ApiClient(`${url}/v1`, BENCH_APP.appId, BENCH_APP.secret);
  const people: CallParticipant[] = [];
  const joins: JoinFigure[] = [];
  const failures: string[] = [];
  let media: NodeJS.Timeout | undefined;
  if (withMedia) {
    // One pacer for every sender, on an absolute clock.
    const t0 = performance.now();
    let tick = 0;
    const step = () => {
      for (const p of people) p.sendTick(tick);
      tick++;
      media = setTimeout(step, Math.max(0, t0 + tick * 20 - performance.now()));
    };
    step();
  }
  const callStart = performance.now();
  try {
    for (let i = 0; i < N; i++) {
      const before = await snapshot(child);
      const started = performance.now();
      const p = new CallParticipant(`p${i}`, api);
      await p.publish();
      people.push(p);
      await p.pull(people.filter((o) => o !== p).flatMap((o) => o.tracks));
      for (const o of people) if (o !== p) await o.pull(p.tracks);
      const wallMs = performance.now() - started;
      const after = await snapshot(child);
      const figure: JoinFigure = {
        participant: i + 1,
        wallMs,
        serverCpuMs: (cpuUs(after) - cpuUs(before)) / 1000,
      };
      if (withMedia) {
        const others = people.filter((o) => o !== p);
        const ok = await Promise.all([
          p.waitFlowing(
            others.flatMap((o) => o.trackKeys),
            20_000,
          ),
          ...others.map((o) => o.waitFlowing(p.trackKeys, 20_000)),
        ]).then(
          () => true,
          (err: Error) => {
            failures.push(`join ${i + 1}: ${err.message}`);
            return false;
          },
        );
        if (ok) figure.mediaMs = performance.now() - started;
      }
      joins.push(figure);
      process.stderr.write(
        `${withMedia ? "media" : "signalling"} join ${i + 1}/${N}: ${f(figure.wallMs)} ms\n`,
      );
    }
    const allFlowingMs = withMedia && failures.length === 0 ? performance.now() - callStart : undefined;
    return { joins, allFlowingMs, failures };
  } finally {
    clearTimeout(media);
    for (const p of people) await p.close().catch(() => {});
    await request(child, { type: "shutdown" }, 10_000).catch(() => {});
    child.kill("SIGKILL");
  }
}

const signalling = await phase(false);
const withMedia = await phase(true);

const rows = signalling.joins.map((j, i) => [
  String(j.participant),
  f(j.wallMs),
  f(j.serverCpuMs),
  withMedia.joins[i]?.mediaMs === undefined ? "—" : f(withMedia.joins[i].mediaMs!),
]);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
rows.push([
  "mean",
  f(mean(signalling.joins.map((j) => j.wallMs))),
  f(mean(signalling.joins.map((j) => j.serverCpuMs))),
  f(mean(withMedia.joins.flatMap((j) => (j.mediaMs === undefined ? [] : [j.mediaMs])))),
]);
console.log(`\n${N}-person call setup (${values.label}, server ${serverRoot})`);
console.log(
  renderTable(
    ["join #", "join wall ms (no media)", "server CPU ms per join", "first offer → all media ms"],
    rows,
    1,
  ),
);
console.log(
  `whole call, first offer → all ${N * (N - 1) * 2} streams flowing: ${withMedia.allFlowingMs === undefined ? "not reached" : `${f(withMedia.allFlowingMs)} ms`}`,
);
if (withMedia.failures.length) console.log(`failures:\n  ${withMedia.failures.join("\n  ")}`);

const outDir = join(ROOT, "bench/results");
mkdirSync(outDir, { recursive: true });
const out = join(outDir, `call-setup-${values.label}-${fileStamp()}.json`);
writeFileSync(
  out,
  JSON.stringify(
    {
      label: values.label,
      participants: N,
      serverRoot,
      machine: machineInfo(),
      git: gitInfo(),
      signalling,
      withMedia,
    },
    null,
    2,
  ),
);
console.log(`wrote ${out}`);
process.exit(0);
