// Runs one example endpoint on its own small HTTP server, for the scripts in examples/:
//
//   node --import tsx examples/tts.ts --port 9001      → ws://127.0.0.1:9001/tts
//
// Common flags: --port (default 9001; 0 = any free port), --host (default 127.0.0.1). The first line on
// stdout is the endpoint URL (scripts and tests read it). Ctrl-C stops it cleanly (recordings are saved).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ExamplesAccess } from "./access.ts";
import { type Example, ExampleHost, type ExampleLogger } from "./host.ts";
import { ExamplesWorker } from "./worker-client.ts";

export interface StandaloneArgs {
  port: number;
  host: string;
  /** Every other `--name value` pair. */
  extra: Map<string, string>;
}

export function parseArgs(argv: readonly string[], allowed: readonly string[] = []): StandaloneArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(token);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(token)}`);
    const name = m[1];
    if (!["port", "host", ...allowed].includes(name)) {
      throw new Error(
        `unknown flag --${name} (known: ${["port", "host", ...allowed].map((a) => `--${a}`).join(", ")})`,
      );
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    values.set(name, value);
  }
  const port = Number(values.get("port") ?? "9001");
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error("--port must be 0–65535");
  const host = values.get("host") ?? "127.0.0.1";
  values.delete("port");
  values.delete("host");
  return { port, host, extra: values };
}

/** A logger for the terminal: one line per event on stderr (stdout carries the URL). */
export function consoleLogger(name: string): ExampleLogger {
  const line = (level: string) => (obj: object, msg?: string) => {
    const fields = Object.entries(obj)
      .map(
        ([k, v]) => `${k}=${v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v)}`,
      )
      .join(" ");
    process.stderr.write(`[${name}] ${level} ${msg ?? ""}${fields ? ` ${fields}` : ""}\n`);
  };
  return { debug: () => {}, info: line("info"), warn: line("warn"), error: line("error") };
}

export interface RunningStandalone {
  server: Server;
  host: ExampleHost;
  /** ws:// URLs of the example's endpoints on this server. */
  urls: string[];
  close(): Promise<void>;
}

/**
 * Starts `build(worker, logger)` on `args.host:args.port` at the root prefix (`/<name>…`), prints the URLs,
 * and stops on SIGINT/SIGTERM.
 */
export async function runStandalone(
  args: StandaloneArgs,
  build: (worker: ExamplesWorker, logger: ExampleLogger) => Example,
  opts: { handleSignals?: boolean; print?: (line: string) => void } = {},
): Promise<RunningStandalone> {
  const worker = new ExamplesWorker();
  const example = build(worker, consoleLogger("example"));
  const logger = consoleLogger(example.name);
  // No apps here, so no tokens: on loopback, other sites' pages (Origin, DNS rebinding) are still refused;
  // beyond loopback anyone who reaches the port may use the example (within its own limits).
  const access = new ExamplesAccess({ bindHost: args.host, requireToken: false, apps: () => [] });
  if (!access.loopbackOnly) {
    logger.warn(
      { host: args.host },
      "listening beyond loopback without authentication: anyone who reaches this port can use the example",
    );
  }
  const host = new ExampleHost({
    prefix: "",
    examples: [example],
    logger,
    authorize: (req, query) => access.check(req.headers, query),
  });
  const server = createServer((req, res) => {
    const endpoints = example.endpoints.map((e) => `/${example.name}${e.path}`).join(", ");
    res.writeHead(426, { "content-type": "text/plain; charset=utf-8", upgrade: "websocket" });
    res.end(`${req.url} — this server only speaks WebSocket: ${endpoints}\n`);
  });
  host.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(args.port, args.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const hostPart = args.host.includes(":") ? `[${args.host}]` : args.host;
  const urls = example.endpoints.map((e) => `ws://${hostPart}:${port}/${example.name}${e.path}`);
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  for (const u of urls) print(u);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await host.close();
      await worker.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    })();
    return closing;
  };
  if (opts.handleSignals ?? true) {
    const onSignal = () => {
      close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  return { server, host, urls, close };
}

/** For the scripts: runs `main`, printing a usage error and exiting 2 on bad arguments. */
export async function runScript(main: () => Promise<unknown>): Promise<void> {
  try {
    await main();
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
