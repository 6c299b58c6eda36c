// The kernel floor under "server CPU µs per forwarded packet" on this machine (see bench/floor/udp-floor.c):
// a bare C sender's CPU per UDP datagram delivered over loopback to 100 sockets of a process sleeping in
// epoll, at the load generator's 5000 packets/s, one packet per wake-up and in bursts of 10 (sendto each,
// or one sendmmsg). bench/forwarding.ts runs it at the start of every run and reports it beside the planes.
//
//   node --import tsx bench/udp-floor.ts          (prints a table, writes bench/results/udp-floor-<date>.json)

import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_DIR, ROOT } from "./lib/children.ts";
import { renderTable } from "./lib/format.ts";
import { fileStamp, gitInfo, machineInfo } from "./lib/system.ts";

export interface UdpFloorRow {
  burst: number;
  call: "sendto" | "sendmmsg";
  packets: number;
  received: number;
  senderUsPerPacket: number;
  receiverUsPerPacket: number;
}

/** Compiles (cc, else clang) and runs the floor program; throws with the compiler's message when it cannot. */
export function measureUdpFloor(): UdpFloorRow[] {
  const out = join(ROOT, "build", "bench", "udp-floor");
  mkdirSync(join(ROOT, "build", "bench"), { recursive: true });
  const src = join(BENCH_DIR, "floor", "udp-floor.c");
  let lastError: unknown;
  for (const compiler of ["cc", "clang"]) {
    try {
      execFileSync(compiler, ["-O2", "-o", out, src], { stdio: "pipe" });
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
    }
  }
  if (lastError) throw new Error(`cannot compile ${src} with cc or clang: ${(lastError as Error).message}`);
  const text = execFileSync(out, { encoding: "utf8", timeout: 120_000 });
  return text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as UdpFloorRow);
}

export function floorTable(rows: UdpFloorRow[]): string {
  return renderTable(
    ["datagrams per wake", "call", "sender µs/pkt", "receiver µs/pkt", "received"],
    rows.map((r) => [
      String(r.burst),
      r.call,
      r.senderUsPerPacket.toFixed(2),
      r.receiverUsPerPacket.toFixed(2),
      `${r.received}/${r.packets}`,
    ]),
    2,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const rows = measureUdpFloor();
  process.stdout.write(
    "UDP floor: bare C, loopback to 100 sockets of a process asleep in epoll, 5000 packets/s\n\n" +
      `${floorTable(rows)}\n`,
  );
  const dir = join(BENCH_DIR, "results");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `udp-floor-${fileStamp()}.json`);
  writeFileSync(
    path,
    `${JSON.stringify({ benchmark: "udp-floor", date: new Date().toISOString(), git: gitInfo(), machine: machineInfo(), rows }, null, 2)}\n`,
  );
  process.stdout.write(`\nJSON: ${relative(ROOT, path)}\n`);
}
