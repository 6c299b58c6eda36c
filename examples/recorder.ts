// A recorder endpoint for an egress adapter (location "remote"), runnable on its own:
//
//   node --import tsx examples/recorder.ts --port 9002 [--dir ./recordings]
//
// Prints ws://127.0.0.1:9002/recorder. Every connection becomes one WAV file (48 kHz stereo 16-bit) in
// --dir, complete when the connection ends. See docs/EXAMPLES.md.

import { resolve } from "node:path";
import { RecorderExample } from "../src/examples/recorder.ts";
import { parseArgs, runScript, runStandalone } from "../src/examples/standalone.ts";

await runScript(async () => {
  const args = parseArgs(process.argv.slice(2), {
    script: "examples/recorder.ts",
    summary:
      'A recorder endpoint for an egress adapter (location "remote"): every connection becomes one WAV\n' +
      "file (48 kHz stereo 16-bit), complete when the connection ends. Prints its ws:// URL.",
    flags: [{ name: "dir", value: "path", description: "where the WAV files go (default ./recordings)" }],
  });
  const dir = resolve(args.extra.get("dir") ?? "recordings");
  await runStandalone(args, (worker, logger) => {
    process.stderr.write(`[recorder] writing WAV files to ${dir}\n`);
    return new RecorderExample({ dir, rawToWav: (raw, wav) => worker.rawToWav(raw, wav), logger });
  });
});
