// The start every server-backed benchmark shares: child cleanup, a results directory, the run's log, the
// machine and commit, and the server in its own process (bench/server-process.ts) with an API client on it.

import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { ApiClient } from "../../src/client/api-client.ts";
import { BENCH_APP, type ServerMessage } from "../protocol.ts";
import { BENCH_DIR, installChildCleanup, spawnChild, waitMessage } from "./children.ts";
import { fileStamp, gitInfo, type MachineInfo, machineInfo } from "./system.ts";

export interface BenchRun {
  stamp: string;
  resultsDir: string;
  /** bench/results/<name>-<stamp>.log: the children's output. */
  log: WriteStream;
  machine: MachineInfo;
  git: ReturnType<typeof gitInfo>;
}

export function benchRun(name: string): BenchRun {
  installChildCleanup();
  const stamp = fileStamp();
  const resultsDir = join(BENCH_DIR, "results");
  mkdirSync(resultsDir, { recursive: true });
  return {
    stamp,
    resultsDir,
    log: createWriteStream(join(resultsDir, `${name}-${stamp}.log`)),
    machine: machineInfo(),
    git: gitInfo(),
  };
}

/** Starts bench/server-process.ts and waits until it serves; the API client speaks for the bench app. */
export async function startBenchServer(
  run: BenchRun,
  args: string[] = [],
): Promise<{ server: ChildProcess; api: ApiClient; url: string }> {
  const server = spawnChild("server-process.ts", run.log, "server", args);
  const ready = await waitMessage<ServerMessage>(server, (m) => m.type === "ready", 60_000, "server start");
  if (ready.type !== "ready") throw new Error("unreachable");
  return { server, api: new ApiClient(`${ready.url}/v1`, BENCH_APP.appId, BENCH_APP.secret), url: ready.url };
}
