// Entry of the examples' worker thread (started by worker-client.ts): runs the CPU-heavy jobs (speech
// synthesis, WAV encoding) off the server's media event loop. One job at a time, in arrival order.

import { parentPort } from "node:worker_threads";
import { synthesizeSpeech } from "./speech.ts";
import { rawFileToWav } from "./wav.ts";
import type { WorkerJob, WorkerReply } from "./worker-client.ts";

const port = parentPort;
if (!port) throw new Error("worker-main.ts must run on a worker thread");

let queue: Promise<void> = Promise.resolve();

port.on("message", (msg: { id: number; job: WorkerJob }) => {
  queue = queue.then(() => run(msg.id, msg.job));
});

async function run(id: number, job: WorkerJob): Promise<void> {
  try {
    if (job.type === "synthesize") {
      const pcm = await synthesizeSpeech(job.text, { voice: job.voice, wordsPerMinute: job.wordsPerMinute });
      const reply: WorkerReply = { id, ok: true, result: { pcm } };
      port!.postMessage(reply, [pcm.buffer as ArrayBuffer]);
    } else {
      const result = await rawFileToWav(job.rawPath, job.wavPath);
      port!.postMessage({ id, ok: true, result } satisfies WorkerReply);
    }
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    port!.postMessage({ id, ok: false, error } satisfies WorkerReply);
  }
}
