// One worker thread shared by the examples of a process, for work that would otherwise block the event loop
// that paces every adapter's media: speech synthesis (~100 ms per sentence; the tts example keeps at most a
// few jobs queued). `rawToWav` (WAV encoding with wavefile, ~15 ms per second of audio) remains for callers
// of the old recorder API; the recorder now streams its WAV files itself. Started on first use, unref'd
// while idle (it never keeps a process alive), restarted after a crash or a timeout.

import { Worker } from "node:worker_threads";

export type WorkerJob =
  | { type: "synthesize"; text: string; voice?: string; wordsPerMinute?: number }
  | { type: "rawToWav"; rawPath: string; wavPath: string };

export type WorkerReply =
  | { id: number; ok: true; result: { pcm: Int16Array } | { bytes: number; frames: number } }
  | { id: number; ok: false; error: string };

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export interface ExamplesWorkerOptions {
  /** Jobs queued at once; more are refused. Default 32. */
  maxPending?: number;
  /** A job not answered by then fails and the worker is restarted. Default 30 s. */
  timeoutMs?: number;
}

export class ExamplesWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private readonly maxPending: number;
  private readonly timeoutMs: number;

  constructor(opts: ExamplesWorkerOptions = {}) {
    this.maxPending = opts.maxPending ?? 32;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Text → 48 kHz stereo s16 speech (see speech.ts). */
  async synthesize(
    text: string,
    opts: { voice?: string; wordsPerMinute?: number } = {},
  ): Promise<Int16Array> {
    const r = (await this.run({ type: "synthesize", text, ...opts })) as { pcm: Int16Array };
    return r.pcm;
  }

  /** Raw s16le 48 kHz stereo file → WAV file (see wav.ts). */
  rawToWav(rawPath: string, wavPath: string): Promise<{ bytes: number; frames: number }> {
    return this.run({ type: "rawToWav", rawPath, wavPath }) as Promise<{ bytes: number; frames: number }>;
  }

  /** Jobs waiting or running. */
  get busy(): number {
    return this.pending.size;
  }

  private run(job: WorkerJob): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("examples worker is closed"));
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new Error(`examples worker busy (${this.pending.size} jobs queued)`));
    }
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failAll(new Error(`examples worker job timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      worker.ref();
      worker.postMessage({ id, job });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Workers do not inherit tsx's loader, so the entry (TypeScript) is imported after registering it.
    const tsx = import.meta.resolve("tsx/esm/api");
    const entry = new URL("./worker-main.ts", import.meta.url).href;
    const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
    const worker = new Worker(bootstrap, { eval: true });
    worker.unref();
    worker.on("message", (reply: WorkerReply) => this.onReply(reply));
    worker.on("error", (err) => this.failAll(err, worker));
    worker.on("exit", (code) => this.failAll(new Error(`examples worker exited with code ${code}`), worker));
    this.worker = worker;
    return worker;
  }

  private onReply(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new Error(reply.error));
    if (this.pending.size === 0) this.worker?.unref();
  }

  /** Rejects every job and drops the worker (a later job starts a new one). */
  private failAll(err: Error, from?: Worker): void {
    if (from && from !== this.worker) return; // a late event of a worker already replaced
    const worker = this.worker;
    this.worker = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    if (worker) void worker.terminate().catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.failAll(new Error("examples worker is closed"));
    if (worker) await worker.terminate().catch(() => {});
  }
}
