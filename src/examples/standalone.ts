// Runs one example endpoint on its own small HTTP server, for the scripts in examples/:
//
//   node --import tsx examples/tts.ts --port 9001      → ws://127.0.0.1:9001/tts
//
// Common flags: --port (default 9001; 0 = any free port), --host (default 127.0.0.1); --help lists a
// script's flags, and a mistyped flag gets a "did you mean". The first line on stdout is the endpoint URL
// (scripts and tests read it). Ctrl-C stops it cleanly (recordings are saved).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { didYouMean } from "../util/did-you-mean.ts";
import { ExamplesAccess } from "./access.ts";
import { type Example, ExampleHost, type ExampleLogger } from "./host.ts";
import { ExamplesWorker } from "./worker-client.ts";

export interface StandaloneArgs {
  port: number;
  host: string;
  /** Every other `--name value` pair. */
  extra: Map<string, string>;
}

/** A flag of one script, beyond the common --port and --host. */
export interface ScriptFlag {
  name: string;
  /** What the value is, for the usage line: `--dir <path>`. */
  value: string;
  description: string;
}

/** What `--help` of a script says. */
export interface ScriptSpec {
  /** As typed after `node --import tsx`, e.g. `examples/tts.ts`. */
  script: string;
  summary: string;
  flags?: readonly ScriptFlag[];
}

/** Thrown by parseArgs for --help / -h; runScript prints `text` and exits 0. */
export class HelpRequested extends Error {
  override readonly name = "HelpRequested";
  constructor(readonly text: string) {
    super("help requested");
  }
}

const COMMON_FLAGS: readonly ScriptFlag[] = [
  { name: "port", value: "port", description: "port to listen on (default 9001; 0 = any free port)" },
  { name: "host", value: "address", description: "address to bind (default 127.0.0.1)" },
];

function allFlags(spec: ScriptSpec): readonly ScriptFlag[] {
  return [...COMMON_FLAGS, ...(spec.flags ?? [])];
}

/** The usage text of a script (`--help`). */
export function scriptHelp(spec: ScriptSpec): string {
  const flags = allFlags(spec);
  const rows = [
    ...flags.map((f) => [`--${f.name} <${f.value}>`, f.description] as const),
    ["--help, -h", "show this help"] as const,
  ];
  const width = Math.max(...rows.map(([f]) => f.length));
  return [
    `Usage: node --import tsx ${spec.script} ${flags.map((f) => `[--${f.name} <${f.value}>]`).join(" ")}`,
    "",
    spec.summary,
    "",
    "Flags:",
    ...rows.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`),
    "",
  ].join("\n");
}

/** `--name value` or `--name=value` for the script's flags; --help / -h throws HelpRequested. */
export function parseArgs(argv: readonly string[], spec: ScriptSpec): StandaloneArgs {
  if (argv.includes("--help") || argv.includes("-h")) throw new HelpRequested(scriptHelp(spec));
  const names = allFlags(spec).map((f) => f.name);
  const unknown = (typed: string, name: string) => {
    const guess = didYouMean(name, names);
    return new Error(
      `unknown flag ${typed}${guess ? `; did you mean --${guess}?` : ""} (run with --help to list the flags)`,
    );
  };
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const m = /^--([^=]+)(?:=(.*))?$/.exec(token);
    if (!m) {
      const single = /^-([a-z][a-z-]*)(?:=.*)?$/.exec(token);
      if (single) throw unknown(token, single[1]);
      throw new Error(`unexpected argument ${JSON.stringify(token)} (flags are given as --name value)`);
    }
    const name = m[1];
    if (!names.includes(name)) throw unknown(`--${name}`, name);
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

/**
 * For the scripts: runs `main`; --help prints the usage and exits 0, bad arguments (or a failed start)
 * print one line and exit 2.
 */
export async function runScript(main: () => Promise<unknown>): Promise<void> {
  try {
    await main();
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(err.text);
      process.exit(0);
    }
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
