// README's run command under a supervisor's signal (issue 10 item 2): `kill -TERM <npm pid>` used to end npm
// and its shell while node went on serving, reparented to PID 1. The server must stop with npm.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Resolves once nothing accepts connections on `port` any more (the listener is gone). */
async function refused(port: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(false);
      });
      s.once("error", () => resolve(true));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50)); // no event tells a prober that another process closed
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`npm start stops the server when npm gets ${signal}`, { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "patchbay-cli-"));
    const npm = spawn(
      "npm",
      ["start", "--silent", "--", "--http-port", "0", "--data-dir", dir, "--log-format", "json"],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, PATCHBAY_APPS: "" } },
    );
    const lines: string[] = [];
    const rl = createInterface({ input: npm.stdout! });
    const listening = new Promise<number>((resolve, reject) => {
      rl.on("line", (line) => {
        lines.push(line);
        const m = /"msg":"listening"/.test(line) ? /"url":"http:\/\/[^:]+:(\d+)"/.exec(line) : null;
        if (m) resolve(Number(m[1]));
      });
      npm.once("exit", (code) =>
        reject(new Error(`npm exited (${code}) before listening:\n${lines.join("\n")}`)),
      );
    });
    try {
      const port = await listening;
      const closed = once(rl, "close"); // the server's stdout closes only when node itself has exited
      npm.kill(signal);
      await refused(port);
      await closed;
      assert.ok(
        lines.some((l) => /"msg":"shutting down"/.test(l)),
        `the server logged its shutdown:\n${lines.join("\n")}`,
      );
      assert.ok(
        lines.some((l) => /"msg":"stopped"/.test(l)),
        "and that it stopped",
      );
    } finally {
      if (npm.exitCode === null) npm.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
