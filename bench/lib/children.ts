// Child processes of a benchmark orchestrator: fork with an IPC channel, prefix their output into the run's
// log, wait for a message, stop politely then SIGKILL. Every child forked here is killed when the
// orchestrator exits, whatever the reason (call installChildCleanup() once at start-up).

import { type ChildProcess, fork } from "node:child_process";
import type { WriteStream } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "../protocol.ts";

/** bench/ */
export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The repository root. */
export const ROOT = join(BENCH_DIR, "..");

const live = new Set<ChildProcess>();

/** Runs a benchmark's main: exit code from it (0 when it returns nothing), children killed either way. */
export function runBenchMain(name: string, main: () => Promise<unknown>): void {
  main().then(
    (code) => {
      killAll();
      process.exit(typeof code === "number" ? code : 0);
    },
    (err: unknown) => {
      process.stderr.write(`${name} benchmark failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      killAll();
      process.exit(1);
    },
  );
}

export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

let installed = false;

/** Kill every live child on exit, Ctrl-C or SIGTERM. Idempotent. */
export function installChildCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping children\n`);
      killAll();
      process.exit(130);
    });
  }
}

/** Fork `bench/<script>` under tsx with an IPC channel; its stdout/stderr go to `log`, prefixed. */
export function spawnChild(script: string, log: WriteStream, tag: string, args: string[] = []): ChildProcess {
  const child = fork(join(BENCH_DIR, script), args, {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...process.env, NODE_ENV: "production" },
  });
  live.add(child);
  child.on("exit", () => live.delete(child));
  child.on("error", (err) => log.write(`[${tag} ${child.pid}] child process error: ${err.message}\n`));
  const prefix = (chunk: Buffer) =>
    chunk
      .toString()
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => `[${tag} ${child.pid}] ${l}\n`)
      .join("");
  child.stdout?.on("data", (c: Buffer) => log.write(prefix(c)));
  child.stderr?.on("data", (c: Buffer) => log.write(prefix(c)));
  return child;
}

export function waitMessage<T>(
  child: ChildProcess,
  match: (m: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: nothing after ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      if (!match(m as T)) return;
      done();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`${what}: child exited with code ${code} (see the log)`));
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

/** Ask politely, then SIGKILL; resolves once the child is gone. */
export async function stopChild(
  child: ChildProcess,
  message: { type: string },
  graceMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    if (child.connected) await request(child, message, graceMs).catch(() => {});
  } finally {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}
