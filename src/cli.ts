import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { consoleSignInUrl, isLoopbackHost } from "./api/routes/console.ts";
import { type Config, ConfigError, configHelp, loadConfig } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import { startServer } from "./server.ts";
import { type AppCredentials, AppRegistry, AppsError, type LoadedApps } from "./sfu/apps.ts";

// close() should finish in well under a second; this only guards against a hang keeping the process alive.
const SHUTDOWN_TIMEOUT_MS = 10_000;

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
}

function usage(): string {
  return `patchbay ${version()}: a self-hosted WebRTC SFU speaking the Cloudflare Realtime SFU HTTP API,
with a WebSocket audio adapter.

Usage: patchbay [--setting value ...]

Every setting is a flag and an environment variable of the same name; flags win over the environment,
the environment over defaults.

${configHelp()}

  --help, -h     Show this help.
  --version, -V  Show the version.
`;
}

/** A wildcard bind address is not something a browser can open; show loopback instead. */
function reachableUrl(url: string): string {
  const u = new URL(url);
  if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
  else if (u.hostname === "[::]") u.hostname = "[::1]";
  return u.origin;
}

/** Single-quoted for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * What a person reads in the terminal. An app secret appears here at most once in the life of a data
 * directory: when this start created the default app. Afterwards the banner says where it is stored, and
 * the console gets signed in through a one-time link (a single-use token in the URL fragment, redeemed by
 * POST /console/signin; loopback servers only).
 */
function banner(
  url: string,
  config: Config,
  apps: AppRegistry<unknown>,
  created: AppCredentials | undefined,
): string {
  const base = reachableUrl(url);
  const list = apps.list();
  const first = list[0];
  const source = apps.source;
  const loopback = isLoopbackHost(config.http.host);
  const lines = [`Patchbay ${version()} is running.`, ""];
  if (source.kind === "default" && loopback) {
    lines.push(
      `  Console   ${consoleSignInUrl(base, first.appId)}`,
      "            one-time sign-in link: opens the console signed in (once, within an hour, this run only)",
    );
  } else {
    lines.push(`  Console   ${base}/   (sign in with an app id and its secret)`);
  }
  lines.push(
    `  Health    ${base}/healthz`,
    `  Metrics   ${base}/metrics`,
    `  API base  ${base}/v1/apps/${first.appId}`,
  );
  if (config.examples && !loopback) {
    lines.push(
      `  Examples  ${base}/examples need ?token= (GET /examples/token?appId=… with the app secret); --no-examples turns them off`,
    );
  }
  lines.push("");
  if (source.kind === "default") {
    lines.push(`  App id    ${first.appId}${created ? "   (new default app)" : ""}`);
    if (created) {
      lines.push(
        `  Secret    ${created.secret}`,
        `            shown this once; stored in ${source.path} (delete it to get a new id and secret)`,
      );
    } else {
      lines.push(`  Secret    not shown again: stored in ${source.path}`);
    }
  } else {
    const where = source.kind === "file" ? `the apps file ${source.path}` : "PATCHBAY_APPS";
    for (const app of list) lines.push(`  App id    ${app.appId}${app.name ? `   (${app.name})` : ""}`);
    lines.push(`  Secrets   as configured in ${where} (not printed)`);
  }
  lines.push("", "  Create a session:");
  if (source.kind === "default") {
    lines.push(`  SECRET=$(node -p 'require(process.argv[1]).secret' ${shellQuote(source.path)})`);
  }
  lines.push(
    `  curl -X POST -H "Authorization: Bearer $SECRET" ${base}/v1/apps/${first.appId}/sessions/new`,
    "",
  );
  return lines.join("\n");
}

/** The logger's own choice between pino-pretty and JSON lines (see createLogger). */
function prettyLogs(config: Config): boolean {
  return config.log.format === "pretty" || (config.log.format === "auto" && process.stdout.isTTY === true);
}

/** What to tell the user when the HTTP listener could not be opened for a reason they can fix. */
function listenError(err: unknown, config: Config): string | undefined {
  const code = err instanceof Error && "code" in err ? err.code : undefined;
  const { host, port } = config.http;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (code === "EADDRINUSE")
    return `${where} is in use by another process (choose another --http-port / PATCHBAY_HTTP_PORT)`;
  if (code === "EACCES")
    return `no permission to listen on ${where} (ports below 1024 need privileges: choose another --http-port / PATCHBAY_HTTP_PORT)`;
  if (code === "EADDRNOTAVAIL")
    return `${host} is not an address of this machine (choose another --http-host / PATCHBAY_HTTP_HOST)`;
  return undefined;
}

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

function handleShutdown(logger: Logger, close: () => Promise<void>): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, "second signal, exiting immediately");
      process.exit(signalExitCode(signal));
    }
    closing = true;
    logger.info({ signal }, "shutting down");
    setTimeout(() => {
      logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, "shutdown timed out, exiting");
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    close().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "error during shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

async function main(argv: readonly string[]): Promise<number | undefined> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage());
    return 0;
  }
  if (argv.includes("--version") || argv.includes("-V")) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`patchbay: ${err.message}\n`);
    return 2;
  }
  const logger = createLogger(config);
  let loaded: LoadedApps<undefined>;
  try {
    loaded = await AppRegistry.load(config, logger);
  } catch (err) {
    if (!(err instanceof AppsError)) throw err;
    process.stderr.write(`patchbay: ${err.message}\n`);
    return 2;
  }
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({ config, logger, apps: loaded.registry });
  } catch (err) {
    // A listen error the user can fix is one line, not a logged stack trace.
    const known = listenError(err, config);
    if (known) {
      process.stderr.write(`patchbay: cannot start: ${known}\n`);
      return 1;
    }
    logger.fatal({ err }, "server failed to start");
    process.stderr.write(`patchbay: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  handleShutdown(logger, () => server.close());
  logger.info({ url: server.url, apps: loaded.registry.list().map((a) => a.appId) }, "listening");
  if (prettyLogs(config)) {
    process.stdout.write(banner(server.url, config, loaded.registry, loaded.created));
  } else {
    // JSON lines go to log collectors: no banner between them, no secret and no sign-in link in them.
    const source = loaded.registry.source;
    logger.info(
      {
        console: `${reachableUrl(server.url)}/`,
        ...(source.kind === "default" ? { secretStoredIn: source.path } : {}),
      },
      source.kind === "default"
        ? `sign in with the app id and the secret stored in ${source.path}`
        : "sign in with a configured app id and its secret",
    );
  }
  return undefined;
}

const code = await main(process.argv.slice(2));
// process.exit, not exitCode: a pretty-log transport worker could otherwise keep a failed start alive.
if (code !== undefined) process.exit(code);
