// The standalone example scripts' command line (issue 10 item 10): --help / -h print a usage and exit 0; a
// mistyped flag is refused (exit 2) with a "did you mean" naming the closest flag, like the main CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseArgs, scriptHelp } from "../../src/examples/standalone.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function run(script: string, ...args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("example scripts", () => {
  test("--help prints the usage with every flag and exits 0 without listening", () => {
    const r = run("examples/tts.ts", "--help");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: node --import tsx examples\/tts\.ts/);
    for (const flag of ["--port", "--host", "--text", "--help"]) assert.ok(r.stdout.includes(flag), flag);
    assert.doesNotMatch(r.stdout, /ws:\/\/127/, "no endpoint URL: nothing was started");
  });

  test("-h works too, and each script lists its own flags", () => {
    const r = run("examples/recorder.ts", "-h");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /examples\/recorder\.ts/);
    assert.match(r.stdout, /--dir/);
    assert.doesNotMatch(r.stdout, /--text/);
  });

  test("a mistyped flag exits 2 with a did-you-mean", () => {
    const r = run("examples/echo.ts", "--prot", "0");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown flag --prot; did you mean --port\?/);
    assert.match(r.stderr, /--help/);
    assert.equal(r.stdout, "");
  });
});

describe("parseArgs", () => {
  const spec = {
    script: "examples/recorder.ts",
    summary: "A recorder.",
    flags: [{ name: "dir", value: "path", description: "where" }],
  };

  test("suggests the closest flag, or none when nothing is close", () => {
    assert.throws(() => parseArgs(["--dri", "x"], spec), /unknown flag --dri; did you mean --dir\?/);
    assert.throws(() => parseArgs(["--hots", "::1"], spec), /did you mean --host\?/);
    assert.throws(() => parseArgs(["-port", "1"], spec), /did you mean --port\?/);
    assert.throws(
      () => parseArgs(["--volume", "3"], spec),
      (err: Error) => !/did you mean/.test(err.message),
    );
  });

  test("parses known flags; --help anywhere asks for help", () => {
    const a = parseArgs(["--port", "0", "--dir=./r"], spec);
    assert.equal(a.port, 0);
    assert.equal(a.extra.get("dir"), "./r");
    assert.throws(() => parseArgs(["--port", "0", "--help"], spec), { name: "HelpRequested" });
    assert.match(scriptHelp(spec), /--dir <path>\s+where/);
  });
});
