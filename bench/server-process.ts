// The Patchbay server under test, alone in its own process so its CPU time and event loop are its own.
// Started by bench/forwarding.ts, bench/ingest.ts and bench/egress.ts with `fork()` (IPC channel); it can
// also run by hand:
//   node --import tsx bench/server-process.ts [server flags]   (prints PATCHBAY_URL=..., Ctrl-C to stop)
//
// It builds the real server the way the CLI does (loadConfig → AppRegistry.load → startServer) with a
// temporary data directory, one known app from PATCHBAY_APPS and loopback-only addresses; extra command-line
// arguments are passed to loadConfig as server flags (e.g. --no-egress-reorder). It then answers requests
// from the orchestrator: a CPU / event-loop / forwarded-packets snapshot, CPU profile start/stop
// (node:inspector, so only the measurement window is profiled), the media scheduler's slot grid, per-frame
// adapter probes over a window (bench/lib/probes.ts; nothing is instrumented before the first probe-start),
// and shutdown.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { startServer } from "../src/server.ts";
import { AppRegistry } from "../src/sfu/apps.ts";
import { Probes } from "./lib/probes.ts";
import {
  BENCH_APP,
  exitWithParent,
  type ServerMessage,
  type ServerRequest,
  sendToParent,
  summarizeNs,
} from "./protocol.ts";

const ELD_RESOLUTION_MS = 5;

const dataDir = mkdtempSync(join(tmpdir(), "patchbay-bench-"));
const removeDataDir = () => rmSync(dataDir, { recursive: true, force: true });

const config = loadConfig(
  [
    "--http-host",
    "127.0.0.1",
    "--http-port",
    "0",
    "--rtc-listen-ip",
    "127.0.0.1",
    "--data-dir",
    dataDir,
    "--log-level",
    process.env.BENCH_SERVER_LOG_LEVEL ?? "warn",
    "--log-format",
    "json",
    // Capacity runs hold thousands of sessions: the quotas are not what is measured.
    "--max-sessions",
    "100000",
    "--max-sessions-per-app",
    "100000",
    ...process.argv.slice(2),
  ],
  {
    // Server settings can come from the orchestrator's environment (e.g. PATCHBAY_INGEST_OPUS_FEC=false).
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("PATCHBAY_"))),
    PATCHBAY_APPS: JSON.stringify([{ ...BENCH_APP, name: "bench" }]),
  },
);
const logger = createLogger(config, false);
const { registry } = await AppRegistry.load(config, logger);
const server = await startServer({ config, logger, apps: registry });

const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
eld.enable();

let profiler: Session | undefined;
const probes = new Probes(server, BENCH_APP.appId);

async function snapshot() {
  const cpu = process.cpuUsage();
  const wallUs = Number(process.hrtime.bigint() / 1000n);
  const metric = await server.metrics.forwardedPackets.get();
  const mem = process.memoryUsage();
  const eventLoopLag = summarizeNs(eld, ELD_RESOLUTION_MS * 1e6);
  eld.reset();
  return {
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    wallUs,
    forwarded: metric.values[0]?.value ?? 0,
    eventLoopLag,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
  };
}

async function shutdown(code: number): Promise<never> {
  eld.disable();
  try {
    await Promise.race([server.close(), new Promise((r) => setTimeout(r, 5000))]);
  } finally {
    removeDataDir();
  }
  process.exit(code);
}

async function handle(
  msg: ServerRequest,
): Promise<Omit<Extract<ServerMessage, { type: "reply" }>, "type" | "id">> {
  switch (msg.type) {
    case "snapshot":
      return { snapshot: await snapshot() };
    case "profile-start": {
      profiler ??= new Session();
      profiler.connect();
      await profiler.post("Profiler.enable");
      await profiler.post("Profiler.setSamplingInterval", { interval: msg.samplingIntervalUs });
      await profiler.post("Profiler.start");
      return {};
    }
    case "profile-stop": {
      if (!profiler) throw new Error("profiler not started");
      const { profile } = await profiler.post("Profiler.stop");
      await profiler.post("Profiler.disable");
      profiler.disconnect();
      profiler = undefined;
      writeFileSync(msg.path, JSON.stringify(profile));
      return { path: msg.path };
    }
    case "grid":
      return { grid: probes.grid() };
    case "probe-start":
      probes.start(msg.options);
      return {};
    case "probe-stop":
      return { probe: probes.stop() };
    case "shutdown":
      // Reply first; the exit follows on the next turn.
      setImmediate(() => void shutdown(0));
      return {};
  }
}

const send = (m: ServerMessage) => sendToParent(m);

if (process.send) {
  exitWithParent(removeDataDir);
  process.on("message", (raw) => {
    const msg = raw as ServerRequest;
    handle(msg).then(
      (body) => send({ type: "reply", id: msg.id, ...body }),
      (err: unknown) =>
        send({ type: "reply", id: msg.id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  send({ type: "ready", url: server.url, pid: process.pid });
} else {
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void shutdown(0));
}
process.stdout.write(`PATCHBAY_URL=${server.url}\n`);
