/**
 * Issue 9 item 11 and issue 10 item 4: the default app's secret.
 *
 * - `GET /console/bootstrap` never hands out a secret, whatever the request (it used to give it to any local
 *   process that left out `Origin`).
 * - The CLI prints the secret once, when it creates the default app, and never again: a restart on the same
 *   data directory prints where it is stored instead. In JSON log mode (log collectors) it is never printed.
 * - The console gets a credential only through an explicit path: the one-time sign-in link the banner prints
 *   (a single-use token in the URL fragment, redeemed with `POST /console/signin`), or the secret pasted in.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { startServer } from "../../src/server.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), "patchbay-hostile-console-"));
  dirs.push(d);
  return d;
}

function storedSecret(dir: string): { appId: string; secret: string } {
  return JSON.parse(readFileSync(join(dir, "default-app.json"), "utf8")) as { appId: string; secret: string };
}

interface CliRun {
  /** Everything printed on stdout and stderr, once the process has exited. */
  output: Promise<string>;
  /** Resolves with the output so far once the server is ready. */
  ready: Promise<string>;
  stop(): void;
}

/** Starts `src/cli.ts` as README's `npm start` does, on an ephemeral loopback port. */
function runCli(dir: string, format: "pretty" | "json", extra: string[] = []): CliRun {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "src/cli.ts",
      "--http-port",
      "0",
      "--data-dir",
      dir,
      "--log-format",
      format,
      ...extra,
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PATCHBAY_APPS: "" } },
  );
  let out = "";
  let onData = () => {};
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the CLI did not start:\n${out}`)), 30_000);
    onData = () => {
      if (/"msg":"listening"|listening|is running/.test(out) && /\n/.test(out)) {
        // Give the pretty transport and the banner a moment to flush.
        setTimeout(() => {
          clearTimeout(timer);
          resolve(out);
        }, 500);
        onData = () => {};
      }
    };
  });
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    onData();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
    onData();
  });
  const output = new Promise<string>((resolve) => child.once("exit", () => resolve(out)));
  return {
    output,
    ready,
    stop: () => {
      if (child.exitCode === null) child.kill("SIGTERM");
    },
  };
}

async function runToEnd(dir: string, format: "pretty" | "json"): Promise<string> {
  const run = runCli(dir, format);
  try {
    await run.ready;
  } finally {
    run.stop();
  }
  return run.output;
}

describe("GET /console/bootstrap hands out no secret", () => {
  test("a loopback request without Origin (any local process) gets no secret", async () => {
    const dir = dataDir();
    const config = loadConfig(["--http-port", "0", "--data-dir", dir, "--log-level", "silent"], {});
    const logger = createLogger(config, false);
    const { registry } = await AppRegistry.load(config, logger);
    const server = await startServer({ config, logger, apps: registry });
    try {
      const { secret } = storedSecret(dir);
      const variants: Record<string, string>[] = [
        {},
        { "sec-fetch-site": "same-origin" },
        { origin: server.url },
        { host: new URL(server.url).host },
      ];
      for (const headers of variants) {
        const res = await fetch(`${server.url}/console/bootstrap`, { headers });
        assert.equal(res.status, 200);
        const text = await res.text();
        assert.ok(!text.includes(secret), `no secret in ${text} (headers ${JSON.stringify(headers)})`);
      }
    } finally {
      await server.close();
    }
  });
});

describe("the CLI prints the secret only when it creates it", () => {
  test("first start (pretty) prints it once; a restart on the same data directory does not", async () => {
    const dir = dataDir();
    const first = await runToEnd(dir, "pretty");
    const { secret } = storedSecret(dir);
    assert.equal(first.split(secret).length - 1, 1, `printed exactly once on creation:\n${first}`);
    const second = await runToEnd(dir, "pretty");
    assert.ok(!second.includes(secret), `the restart printed the secret:\n${second}`);
    assert.ok(second.includes(join(dir, "default-app.json")), `says where the secret is:\n${second}`);
  });

  test("JSON log mode never prints it, not even on creation", async () => {
    const dir = dataDir();
    const first = await runToEnd(dir, "json");
    const { secret } = storedSecret(dir);
    assert.ok(!first.includes(secret), `JSON mode printed the secret on creation:\n${first}`);
    const second = await runToEnd(dir, "json");
    assert.ok(!second.includes(secret), `JSON mode printed the secret on restart:\n${second}`);
    for (const line of second.split("\n").filter(Boolean)) {
      assert.doesNotThrow(() => JSON.parse(line), `every line is JSON: ${line}`);
    }
  });
});

describe("the console signs in through the one-time link the banner prints", () => {
  test("the link's token gives the console the default app once; a second use and a guessed one are refused", async () => {
    const dir = dataDir();
    await runToEnd(dir, "pretty"); // creates the app
    const run = runCli(dir, "pretty");
    try {
      const out = await run.ready;
      const m = /(http:\/\/127\.0\.0\.1:\d+)\/#signin=([A-Za-z0-9_-]+)/.exec(out);
      assert.ok(m, `a one-time console link in the banner:\n${out}`);
      const [, base, token] = m;
      const { appId, secret } = storedSecret(dir);
      const redeem = (t: string, headers: Record<string, string> = {}) =>
        fetch(`${base}/console/signin`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ token: t }),
        });
      const guessed = await redeem("A".repeat(43));
      assert.equal(guessed.status, 401);
      const crossSite = await redeem(token, { origin: "http://attacker.example" });
      assert.equal(crossSite.status, 403, "another site's page cannot redeem it");
      const res = await redeem(token, { origin: base });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const body = (await res.json()) as { appId: string; secret: string };
      assert.equal(body.appId, appId);
      assert.equal(body.secret, secret);
      const again = await redeem(token, { origin: base });
      assert.equal(again.status, 401, "single use");
      const errorBody = (await again.json()) as { errorCode: string };
      assert.equal(errorBody.errorCode, "unauthorized");
    } finally {
      run.stop();
      await run.output;
    }
  });

  test("a server bound beyond loopback prints no link", async () => {
    const dir = dataDir();
    await runToEnd(dir, "pretty");
    const run = runCli(dir, "pretty", ["--http-host", "0.0.0.0"]);
    try {
      const out = await run.ready;
      assert.ok(!out.includes("#signin="), out);
      assert.ok(!out.includes(storedSecret(dir).secret));
    } finally {
      run.stop();
      await run.output;
    }
  });
});
