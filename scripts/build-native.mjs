// Builds the native media plane (binding.gyp) with the node-gyp that npm bundles, against the headers of
// the Node that runs this script when they are installed beside it (/usr/include/node): no header download.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const prefix = resolve(dirname(process.execPath), "..");
const args = ["rebuild"];
if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);

let gyp = process.env.npm_config_node_gyp;
if (!gyp || !existsSync(gyp)) {
  // Outside an npm lifecycle: npm's own copy, found next to the npm that is on PATH.
  const npmDir = resolve(prefix, "lib", "node_modules", "npm");
  gyp = join(npmDir, "node_modules", "node-gyp", "bin", "node-gyp.js");
  if (!existsSync(gyp)) gyp = createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
}
const run = spawnSync(process.execPath, [gyp, ...args], { stdio: "inherit" });
if (run.status !== 0) {
  console.error(
    "\nPatchbay: building the native media plane failed. It needs a C++17 compiler, make and Python 3 (as node-gyp does) and Node's headers.",
  );
  process.exit(run.status ?? 1);
}
