// An echo endpoint pair, runnable on its own:
//
//   node --import tsx examples/echo.ts --port 9003
//
// Prints ws://127.0.0.1:9003/echo/in and ws://127.0.0.1:9003/echo/out. Point an egress adapter at
// /echo/in?room=R and an ingest adapter at /echo/out?room=R: what the first sends, the second plays back.
// See docs/EXAMPLES.md.

import { EchoExample } from "../src/examples/echo.ts";
import { parseArgs, runScript, runStandalone } from "../src/examples/standalone.ts";

await runScript(async () => {
  const args = parseArgs(process.argv.slice(2), {
    script: "examples/echo.ts",
    summary:
      "An echo endpoint pair: point an egress adapter at /echo/in?room=R and an ingest adapter at\n" +
      "/echo/out?room=R; what the first sends, the second plays back. Prints both ws:// URLs.",
  });
  await runStandalone(args, (_worker, logger) => new EchoExample({ logger }));
});
