// Clear-to-silence latency of ingest barge-in (control: "json"): how long after an endpoint sends
// {"event":"clear"} a listener stops hearing the cleared answer, and how long the "cleared" reply takes.
// Server in its own process (bench/server-process.ts); here: the endpoint (a ws server the ingest adapter
// dials) and a werift subscriber that decodes every packet. Each round queues 3 s of speech, waits until it
// plays, clears at a random point, and finds the first packet after which 300 ms of the track are silent.
//
//   node --import tsx bench/barge-in.ts [--rounds 30]

import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import type WebSocket from "ws";
import { encodePacket } from "../src/adapters/websocket/packet-codec.ts";
import { OpusDecoder } from "../src/media/opus-decoder.ts";
import { pullAudio } from "../test/helpers/rtc-client.ts";
import { rms, speechLike, toBytes } from "../test/helpers/signals.ts";
import { startEndpoint } from "../test/helpers/ws-endpoints.ts";
import { sleep } from "./lib/async.ts";
import { benchRun, startBenchServer } from "./lib/bench-run.ts";
import { ROOT, runBenchMain, stopChild } from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";

const SILENT_RMS = 30;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "30" }, out: { type: "string" } },
  });
  const rounds = Number(values.rounds);
  const run = benchRun("barge-in");
  const { stamp, resultsDir, log, machine, git } = run;
  const { server, api } = await startBenchServer(run);
  const endpoint = await startEndpoint();
  const res = await api.raw<{ tracks: { sessionId: string; errorCode?: string }[] }>(
    "POST",
    "adapters/websocket/new",
    {
      tracks: [
        { location: "local", trackName: "tts", endpoint: endpoint.url, inputCodec: "pcm", control: "json" },
      ],
    },
  );
  if (res.status !== 200) throw new Error(JSON.stringify(res.body));
  const ws: WebSocket = endpoint.connections[0];
  let clearedAt = 0;
  ws.on("message", (d, isBinary) => {
    if (!isBinary && (JSON.parse(d.toString()) as { event: string }).event === "cleared")
      clearedAt = performance.now();
  });
  const sub = await pullAudio(api, { sessionId: res.body.tracks[0].sessionId, trackName: "tts" });
  const decoder = new OpusDecoder();
  const levels: number[] = [];
  const decodeUpTo = () => {
    for (let i = levels.length; i < sub.packets.length; i++)
      levels.push(rms(decoder.decode(sub.packets[i].payload)));
  };
  const speech = toBytes(speechLike(3000, { seed: 9 }));
  const toSilence: number[] = [];
  const replyMs: number[] = [];
  let seq = 1;
  try {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < speech.length; i += 16 * 1024)
        ws.send(
          encodePacket({ sequenceNumber: seq++, timestamp: 0, payload: speech.subarray(i, i + 16 * 1024) }),
        );
      await sleep(400 + Math.random() * 1500); // somewhere inside the answer
      const t = performance.now();
      clearedAt = 0;
      ws.send(JSON.stringify({ event: "clear" }));
      const from = sub.packets.length;
      await sub.waitFor(from + 25, 5000); // 500 ms of track after the clear
      decodeUpTo();
      // First packet after the clear from which 300 ms (15 packets) are silent.
      let k = from;
      while (k < levels.length - 15 && levels.slice(k, k + 15).some((l) => l >= SILENT_RMS)) k++;
      // A packet already in flight at the clear may arrive just after it: the silence starts at packet k.
      toSilence.push(Math.max(0, sub.times[k] - t));
      if (clearedAt) replyMs.push(clearedAt - t);
      await sleep(200);
    }
  } finally {
    decoder.close();
    await sub.close();
    await endpoint.close();
    await stopChild(server, { type: "shutdown" }, 10_000);
  }
  const rows = [
    [
      "clear → silence on the wire (listener)",
      f(percentile(toSilence, 50)),
      f(percentile(toSilence, 99)),
      f(Math.max(...toSilence)),
    ],
    [
      'clear → "cleared" reply (endpoint)',
      f(percentile(replyMs, 50)),
      f(percentile(replyMs, 99)),
      f(Math.max(...replyMs)),
    ],
  ];
  process.stdout.write(
    `Barge-in (control: "json"), ${rounds} clears, commit ${git.commit ?? "?"}, ${machine.cores} × ${machine.cpuModel}\n\n` +
      `${renderTable(["ms", "p50", "p99", "max"], rows, 1)}\n\n` +
      "Silence = the first packet after which 300 ms of the track decode below RMS 30; its arrival time minus the clear's send time.\n",
  );
  const out = values.out ?? join(resultsDir, `barge-in-${stamp}.json`);
  writeFileSync(
    out,
    `${JSON.stringify({ benchmark: "barge-in", date: new Date().toISOString(), git, machine, rounds, toSilenceMs: toSilence, replyMs }, null, 2)}\n`,
  );
  process.stdout.write(`JSON: ${relative(ROOT, out)}\n`);
  await new Promise<void>((r) => log.end(() => r()));
}

runBenchMain("barge-in", main);
