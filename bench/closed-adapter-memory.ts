// Memory held by closed ingest adapters (issue 9 item 2): create → burst → close, N times, then the heap
// (plus array buffers) after GC. Before the fix every closed adapter kept its queued audio (≈ 190 KB per
// queued second). Usage: node --import tsx bench/closed-adapter-memory.ts [--cycles 12] [--burst-s 50]

import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startTestServer } from "../test/helpers/server.ts";
import { speechLike } from "../test/helpers/signals.ts";
import { createIngest, pollAdapter, startEndpoint, ttsBurst } from "../test/helpers/ws-endpoints.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const { values } = parseArgs({ options: { cycles: { type: "string" }, "burst-s": { type: "string" } } });
const cycles = Number(values.cycles ?? 12);
const burstMs = Number(values["burst-s"] ?? 50) * 1000;

const srv = await startTestServer();
const ep = await startEndpoint(ttsBurst(speechLike(burstMs, { seed: 1 })));
const held = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const before = held();
for (let i = 0; i < cycles; i++) {
  const { adapterId } = await createIngest(srv.api, ep.url, `c${i}`);
  await pollAdapter(srv.api, adapterId, (s) => s.queuedMs >= burstMs - 1000, { timeoutMs: 30_000 });
  await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
}
await new Promise((r) => setTimeout(r, 3000)); // close handshakes and their 2 s terminate guards
const after = held();
console.log(
  `${cycles} cycles of create → ${burstMs / 1000} s burst → close: heap + buffers after GC ` +
    `${(before / 1e6).toFixed(1)} → ${(after / 1e6).toFixed(1)} MB (+${((after - before) / 1e6).toFixed(1)} MB)`,
);
await ep.close();
await srv.close();
