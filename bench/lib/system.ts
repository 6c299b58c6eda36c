// Machine-wide facts and counters shared by the benchmark orchestrators: CPU model and load, busy CPU time
// over all cores, kernel UDP counters, the git commit, and the timestamp used in result file names.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { ROOT } from "./children.ts";

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  availableParallelism: number;
  totalMemGB: number;
  platform: string;
  node: string;
  loadavgAtStart: number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    totalMemGB: os.totalmem() / 2 ** 30,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadavgAtStart: os.loadavg(),
  };
}

/** Busy and total CPU time over all cores, ms (os.cpus(); includes other processes). */
export function machineCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

/** System-wide UDP counters from /proc/net/snmp (Linux); empty elsewhere. */
export function udpCounters(): Record<string, number> {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Udp:"));
    const names = lines[0].split(/\s+/).slice(1);
    const values = lines[1].split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(names.map((n, i) => [n, values[i]]));
  } catch {
    return {};
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync("git", args, {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

/** Short commit and whether `src` has uncommitted changes (read-only git commands). */
export function gitInfo(): { commit: string | undefined; srcDirty: boolean } {
  const commit = git(["rev-parse", "--short", "HEAD"]);
  const dirty =
    (git(["--no-optional-locks", "status", "--porcelain", "--untracked-files=all", "--", "src"]) ?? "") !==
    "";
  return { commit, srcDirty: dirty };
}

/** ISO time usable in a file name: 2026-11-26T03-37-10Z. */
export function fileStamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replaceAll(":", "-");
}

/** Wall-clock ms with sub-ms resolution, comparable across processes of this machine (±10 µs). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
