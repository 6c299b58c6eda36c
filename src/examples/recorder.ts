// The `recorder` example endpoint, for an egress adapter (location "remote"): every connection becomes one
// WAV file (48 kHz, stereo, 16-bit) in a directory. The PCM is appended to a raw file while the connection
// lasts (memory stays flat however long it records) and turned into a WAV with the `wavefile` library on the
// worker thread when the connection ends. A listed .wav is always complete (written, then renamed).
//
// Gaps: egress Packets carry the source's RTP timestamp (48 kHz units). When it jumps ahead of the audio
// received so far (the source paused, or stopped sending during silence), the gap is filled with silence,
// up to `maxGapFillMs`, so the file keeps real time. Larger jumps are taken as a discontinuity, not filled.
//
// Query parameters (optional): label — [A-Za-z0-9_-]{1,40}, put into the file name so a client can find its
// file.

import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { WebSocket } from "ws";
import { BYTES_PER_FRAME, BYTES_PER_MS, decodePacket, type Packet } from "../client/endpoint.ts";
import { type Example, type ExampleLogger, messageBytes, type Refusal } from "./host.ts";

/** Turns a raw s16le 48 kHz stereo file into a WAV file (the worker's `rawToWav`, or `rawFileToWav`). */
export type RawToWav = (rawPath: string, wavPath: string) => Promise<{ bytes: number; frames: number }>;

export interface RecorderOptions {
  dir: string;
  rawToWav: RawToWav;
  logger: ExampleLogger;
  /** A recording longer than this continues in a new file (`…-2.wav`). Default 10 minutes. */
  maxFileMs?: number;
  /** Largest timestamp gap filled with silence. Default 10 s. */
  maxGapFillMs?: number;
}

export interface RecordingFile {
  name: string;
  bytes: number;
  durationMs: number;
  modified: string;
}

export interface ActiveRecording {
  id: string;
  label: string | undefined;
  file: string;
  startedAt: string;
  durationMs: number;
  packets: number;
  malformed: number;
}

const LABEL_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;
const FILE_PATTERN = /^rec-[A-Za-z0-9_-]+\.wav$/;
/** Size of the header wavefile writes for PCM (RIFF + fmt + data chunk headers). */
const WAV_HEADER_BYTES = 44;

/**
 * Turns Packets into the byte stream of a recording: payloads in order, odd bytes carried over, and silence
 * inserted where the timestamps show a gap. Sans-IO.
 */
export class TimelineAssembler {
  private expected: number | undefined;
  private pendingBytes = 0; // payload bytes not yet accounted in whole frames for the timestamp
  constructor(private readonly maxGapFillFrames: number) {}

  /** The chunks to append for `packet` (empty payloads give nothing). */
  push(packet: Packet): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (packet.payload.length === 0) return out;
    if (this.expected !== undefined && this.pendingBytes === 0) {
      const gap = (packet.timestamp - this.expected) | 0; // signed 32-bit difference (RTP wrap-around)
      if (gap > 0 && gap <= this.maxGapFillFrames) out.push(new Uint8Array(gap * BYTES_PER_FRAME));
    }
    out.push(packet.payload);
    const total = this.pendingBytes + packet.payload.length;
    this.pendingBytes = total % BYTES_PER_FRAME;
    this.expected = (packet.timestamp + Math.floor(packet.payload.length / BYTES_PER_FRAME)) >>> 0;
    return out;
  }
}

function timestampForFile(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replaceAll(":", "-");
}

class Recording {
  readonly id = randomBytes(4).toString("hex");
  readonly startedAt = new Date();
  readonly baseName: string;
  packets = 0;
  malformed = 0;
  private part = 1;
  private partBytes = 0;
  private totalBytes = 0;
  private stream: WriteStream | undefined;
  private rawPath = "";
  private failed = false;
  private finished = false;
  private readonly assembler: TimelineAssembler;

  constructor(
    private readonly owner: RecorderExample,
    readonly label: string | undefined,
    private readonly maxPartBytes: number,
    maxGapFillFrames: number,
  ) {
    this.baseName = `rec-${timestampForFile(this.startedAt)}-${label ? `${label}-` : ""}${this.id}`;
    this.assembler = new TimelineAssembler(maxGapFillFrames);
  }

  get fileName(): string {
    return `${this.baseName}${this.part > 1 ? `-${this.part}` : ""}.wav`;
  }

  get durationMs(): number {
    return this.totalBytes / BYTES_PER_MS;
  }

  push(data: Uint8Array): void {
    if (this.finished) return;
    const decoded = decodePacket(data);
    if (!decoded.ok) {
      this.malformed++;
      return;
    }
    this.packets++;
    for (const chunk of this.assembler.push(decoded.packet)) this.write(chunk);
  }

  private write(chunk: Uint8Array): void {
    if (this.failed) return;
    if (!this.stream) this.open();
    this.stream!.write(chunk);
    this.partBytes += chunk.length;
    this.totalBytes += chunk.length;
    if (this.partBytes >= this.maxPartBytes) {
      this.closePart();
      this.part++;
    }
  }

  private open(): void {
    this.rawPath = join(this.owner.dir, `.${this.baseName}-${this.part}.pcm`);
    this.partBytes = 0;
    const stream = createWriteStream(this.rawPath, { flags: "wx" });
    stream.on("error", (err) => {
      this.failed = true;
      this.owner.logger.error({ err, file: this.rawPath }, "recorder: cannot write");
    });
    this.stream = stream;
  }

  /** Ends the current part: flushes its raw file and converts it (tracked by the owner). */
  private closePart(): void {
    const stream = this.stream;
    if (!stream) return;
    this.stream = undefined;
    const rawPath = this.rawPath;
    const wavPath = join(this.owner.dir, this.fileName);
    const bytes = this.partBytes;
    const failed = () => this.failed;
    this.owner.track(
      (async () => {
        await new Promise<void>((resolve) => stream.end(() => resolve()));
        if (failed() || bytes < BYTES_PER_FRAME) {
          await rm(rawPath, { force: true });
          return;
        }
        const r = await this.owner.rawToWav(rawPath, wavPath);
        this.owner.logger.info({ file: wavPath, durationMs: Math.round(r.frames / 48) }, "recorder: saved");
      })(),
    );
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closePart();
  }
}

export class RecorderExample implements Example {
  readonly name = "recorder";
  readonly description =
    "Writes what an egress adapter sends into one WAV file (48 kHz stereo 16-bit) per connection.";
  readonly endpoints = [
    {
      path: "",
      adapter: "egress" as const,
      query: ["label"],
      description: "Records every frame it receives; the file is complete when the connection ends.",
    },
  ];
  readonly dir: string;
  readonly logger: ExampleLogger;
  readonly rawToWav: RawToWav;
  private readonly maxPartBytes: number;
  private readonly maxGapFillFrames: number;
  private readonly active = new Map<string, Recording>();
  private readonly pending = new Set<Promise<void>>();
  private dirReady: Promise<void> | undefined;

  constructor(opts: RecorderOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger;
    this.rawToWav = opts.rawToWav;
    this.maxPartBytes = Math.max(BYTES_PER_FRAME, Math.round((opts.maxFileMs ?? 600_000) * BYTES_PER_MS));
    this.maxGapFillFrames = Math.round((opts.maxGapFillMs ?? 10_000) * 48);
  }

  upgrade(subpath: string, query: URLSearchParams): Refusal | ((ws: WebSocket) => void) {
    if (subpath !== "" && subpath !== "/")
      return { status: 404, message: `no recorder endpoint at ${subpath}` };
    const label = query.get("label") || undefined;
    if (label !== undefined && !LABEL_PATTERN.test(label)) {
      return { status: 400, message: "label must be 1–40 characters of A-Z, a-z, 0-9, _ and -" };
    }
    return (ws) => this.record(ws, label);
  }

  private record(ws: WebSocket, label: string | undefined): void {
    const rec = new Recording(this, label, this.maxPartBytes, this.maxGapFillFrames);
    this.active.set(rec.id, rec);
    // Messages that arrive while the directory is being created wait in order behind it.
    this.dirReady ??= mkdir(this.dir, { recursive: true }).then(() => {});
    const ready = this.dirReady;
    let chain = ready;
    ws.on("message", (data, isBinary) => {
      if (!isBinary) return;
      const bytes = messageBytes(data);
      chain = chain.then(() => {
        try {
          rec.push(bytes);
        } catch (err) {
          this.logger.warn({ err, id: rec.id }, "recorder: message skipped");
        }
      });
    });
    ws.on("close", () => {
      const done = chain
        .then(() => rec.finish())
        .catch((err: unknown) => {
          this.logger.error({ err, dir: this.dir }, "recorder: cannot create the directory");
        })
        .finally(() => this.active.delete(rec.id));
      this.track(done);
    });
    ready.catch(() => {
      this.dirReady = undefined; // retried by the next connection
      ws.close(1011, "recorder cannot write its directory");
    });
    this.logger.info({ id: rec.id, file: rec.fileName }, "recorder: recording");
  }

  /** Keeps a file operation in the set close() waits for. */
  track(p: Promise<void>): void {
    const guarded = p.catch((err: unknown) => this.logger.error({ err }, "recorder: saving failed"));
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  /** Finished recordings, newest first. */
  async listFiles(): Promise<RecordingFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const files: RecordingFile[] = [];
    for (const name of names) {
      if (!FILE_PATTERN.test(name)) continue;
      try {
        const s = await stat(join(this.dir, name));
        if (!s.isFile()) continue;
        files.push({
          name,
          bytes: s.size,
          durationMs: Math.max(0, s.size - WAV_HEADER_BYTES) / BYTES_PER_MS,
          modified: s.mtime.toISOString(),
        });
      } catch {
        // removed meanwhile
      }
    }
    return files.sort((a, b) => (a.modified < b.modified ? 1 : a.modified > b.modified ? -1 : 0));
  }

  /** Recordings in progress. */
  activeRecordings(): ActiveRecording[] {
    return [...this.active.values()].map((r) => ({
      id: r.id,
      label: r.label,
      file: r.fileName,
      startedAt: r.startedAt.toISOString(),
      durationMs: Math.round(r.durationMs),
      packets: r.packets,
      malformed: r.malformed,
    }));
  }

  /** Absolute path of a finished recording, or undefined for a name that is not one (no path tricks). */
  filePath(name: string): string | undefined {
    return FILE_PATTERN.test(name) ? join(this.dir, name) : undefined;
  }

  /** Ends every recording and waits until its file is written. */
  async close(): Promise<void> {
    for (const r of this.active.values()) r.finish();
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
