// A text-to-speech endpoint for an ingest adapter (location "local"), runnable on its own:
//
//   node --import tsx examples/tts.ts --port 9001 [--text "Default sentence"]
//
// Prints ws://127.0.0.1:9001/tts. Each connection hears ?text=… (or the default) synthesized offline with
// eSpeak NG, sent as 16 KiB Packets and an empty Packet; ?repeat=1 repeats it. See docs/EXAMPLES.md.

import { parseArgs, runScript, runStandalone } from "../src/examples/standalone.ts";
import { TtsExample } from "../src/examples/tts.ts";

await runScript(async () => {
  const args = parseArgs(process.argv.slice(2), {
    script: "examples/tts.ts",
    summary:
      'A text-to-speech endpoint for an ingest adapter (location "local"): each connection hears ?text=…\n' +
      "(or the default sentence) synthesized offline with eSpeak NG. Prints its ws:// URL.",
    flags: [{ name: "text", value: "sentence", description: "what to say when the URL has no ?text=" }],
  });
  await runStandalone(
    args,
    (worker, logger) =>
      new TtsExample({
        synthesize: (text, o) => worker.synthesize(text, o),
        logger,
        defaultText: args.extra.get("text"),
      }),
  );
});
