// The `recorder` example endpoint, for an egress adapter (location "remote"): every connection becomes one
// WAV file (48 kHz, stereo, 16-bit) in a directory. The file is streamed to disk while the connection lasts
// (memory stays flat however long it records): a hidden `.rec-….wav.part` file gets a WAV header, then the
// PCM as it arrives; when the connection ends the header's sizes are patched and the file is renamed to
// `rec-….wav`, so a listed .wav is always complete. Nothing else is left behind: a part that cannot be
// finished (a write error, nothing recorded) is deleted, and part files of an earlier run that crashed are
// deleted when the recorder next looks at its directory.
//
// Gaps: egress Packets carry the source's RTP timestamp (48 kHz units). When it jumps ahead of the audio
// received so far (the source paused, or stopped sending during silence), the gap is filled with silence so
// the file keeps real time, but never more than `maxGapFillMs` per gap, and never more silence in total than
// the audio received (see TimelineAssembler): a sender cannot turn a few bytes into a large file.
//
// Limits: one recording stops at `maxRecordingBytes` (the server closes the socket with 1000 and the
// reason); all files in the directory together stay under `diskQuotaBytes` (files already there count): a
// recording that reaches it is stopped the same way, and new connections are refused with 429 while the
// directory is full; at most `maxRecordings` record at once. Writing pauses reading the socket while the
// disk is behind (TCP back-pressure instead of memory).
//
// Query parameters (optional): label — [A-Za-z0-9_-]{1,40}, put into the file name so a client can find its
// file.

import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import type { WebSocket } from "ws";
import { BYTES_PER_FRAME, BYTES_PER_MS, decodePacket, type Packet } from "../client/endpoint.ts";
import { type Example, type ExampleLogger, messageBytes, type UpgradeDecision } from "./host.ts";
import { WAV_HEADER_BYTES, wavHeader } from "./wav.ts";

/** Turns a raw s16le 48 kHz stereo file into a WAV file (the worker's `rawToWav`, or `rawFileToWav`). */
export type RawToWav = (rawPath: string, wavPath: string) => Promise<{ bytes: number; frames: number }>;

export interface RecorderOptions {
  dir: string;
  logger: ExampleLogger;
  /**
   * Not used any more: recordings are streamed as WAV (no conversion step, no worker job that can be
   * refused). Accepted so existing callers keep compiling.
   * @deprecated
   */
  rawToWav?: RawToWav;
  /** A recording longer than this continues in a new file (`…-2.wav`). Default 10 minutes. */
  maxFileMs?: number;
  /** Largest timestamp gap filled with silence. Default 10 s (and never more than the audio received). */
  maxGapFillMs?: number;
  /** Bytes the files of one recording may take (headers included); it stops there. Default 100 MiB. */
  maxRecordingBytes?: number;
  /** Bytes all files in `dir` may take; recordings stop and new ones are refused there. Default 1 GiB. */
  diskQuotaBytes?: number;
  /** Recordings at once. Default 64. */
  maxRecordings?: number;
  /** Named in close reasons and refusals, e.g. `--examples-recording-max-mb` (the server's flags). */
  limitFlags?: { recording?: string; disk?: string };
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
/** Files a recorder writes before the final name: this version's parts, and older versions' raw/tmp files. */
const TEMP_PATTERN = /^(?:\.rec-[A-Za-z0-9_-]+(?:\.wav\.part|\.pcm)|rec-[A-Za-z0-9_-]+\.wav\.tmp)$/;
/** A temporary file untouched this long belongs to no live recording (an active one is written every 20 ms). */
const STALE_TEMP_MS = 60_000;
/** Disk writes buffered in memory above which the socket stops being read until they drain. */
const WRITE_BACKLOG_BYTES = 1024 * 1024;
/** One second of silence, shared by every gap fill (streams never modify what they write). */
const SILENCE = new Uint8Array(48_000 * BYTES_PER_FRAME);

function mib(bytes: number): string {
  const m = bytes / (1024 * 1024);
  return `${Number.isInteger(m) ? m : m.toFixed(1)} MiB`;
}

/**
 * Turns Packets into the byte stream of a recording: payloads in order, odd bytes carried over, and silence
 * inserted where the timestamps show a gap. A gap is filled with at most `maxGapFillFrames`, and only from a
 * budget of the audio bytes received so far minus the silence already inserted: silence never exceeds the
 * audio received, so a file is at most twice what the sender sent. Sans-IO.
 */
export class TimelineAssembler {
  private expected: number | undefined;
  private pendingBytes = 0; // payload bytes not yet accounted in whole frames for the timestamp
  private received = 0;
  private silence = 0;
  constructor(private readonly maxGapFillFrames: number) {}

  /** Payload bytes received so far. */
  get receivedBytes(): number {
    return this.received;
  }

  /** Silence bytes inserted so far (never more than `receivedBytes`). */
  get silenceBytes(): number {
    return this.silence;
  }

  /** The chunks to append for `packet` (empty payloads give nothing). */
  push(packet: Packet): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (packet.payload.length === 0) return out;
    this.received += packet.payload.length;
    if (this.expected !== undefined && this.pendingBytes === 0) {
      const gap = (packet.timestamp - this.expected) | 0; // signed 32-bit difference (RTP wrap-around)
      if (gap > 0 && gap <= this.maxGapFillFrames) {
        const budget = Math.floor((this.received - this.silence) / BYTES_PER_FRAME);
        let bytes = Math.min(gap, budget) * BYTES_PER_FRAME;
        this.silence += bytes;
        while (bytes > 0) {
          const n = Math.min(bytes, SILENCE.length);
          out.push(SILENCE.subarray(0, n));
          bytes -= n;
        }
      }
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

function errorCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

class Recording {
  readonly id = randomBytes(4).toString("hex");
  readonly startedAt = new Date();
  readonly baseName: string;
  packets = 0;
  malformed = 0;
  /** Called once when a limit or an error ends the recording early (the socket is then closed). */
  onStop: (reason: string) => void = () => {};
  private part = 1;
  /** PCM bytes in the current part's file. */
  private partBytes = 0;
  /** PCM bytes of every part (the duration). */
  private totalBytes = 0;
  /** Bytes of every part's file, headers included (the recording's quota). */
  private fileBytes = 0;
  private stream: WriteStream | undefined;
  private partPath = "";
  private failed = false;
  private finished = false;
  private readonly assembler: TimelineAssembler;

  constructor(
    private readonly owner: RecorderExample,
    readonly label: string | undefined,
  ) {
    this.baseName = `rec-${timestampForFile(this.startedAt)}-${label ? `${label}-` : ""}${this.id}`;
    this.assembler = new TimelineAssembler(owner.maxGapFillFrames);
  }

  get fileName(): string {
    return `${this.baseName}${this.part > 1 ? `-${this.part}` : ""}.wav`;
  }

  get durationMs(): number {
    return this.totalBytes / BYTES_PER_MS;
  }

  /** Bytes handed to the disk and not yet written: above WRITE_BACKLOG_BYTES the socket should pause. */
  get backlog(): number {
    return this.stream?.writableLength ?? 0;
  }

  /** Resolves when the disk has caught up (or there is nothing to wait for). */
  drained(): Promise<void> {
    const stream = this.stream;
    if (!stream || stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
  }

  push(data: Uint8Array): void {
    if (this.finished) return;
    const decoded = decodePacket(data);
    if (!decoded.ok) {
      this.malformed++;
      return;
    }
    this.packets++;
    for (const chunk of this.assembler.push(decoded.packet)) {
      this.write(chunk);
      if (this.finished) return;
    }
  }

  private write(data: Uint8Array): void {
    let chunk = data;
    while (chunk.length > 0) {
      if (this.failed || this.finished) return;
      if (!this.stream && !this.open()) return;
      const recordingRoom = this.owner.maxRecordingBytes - this.fileBytes;
      const diskRoom = this.owner.diskRoom();
      const room = Math.min(this.owner.maxPartBytes - this.partBytes, recordingRoom, diskRoom);
      const take = Math.max(0, Math.min(chunk.length, room));
      if (take > 0) {
        this.stream!.write(chunk.subarray(0, take));
        this.partBytes += take;
        this.totalBytes += take;
        this.fileBytes += take;
        this.owner.addUsage(take);
        chunk = chunk.subarray(take);
      }
      if (this.partBytes >= this.owner.maxPartBytes) {
        this.closePart();
        this.part++;
        continue;
      }
      if (chunk.length > 0) {
        this.stop(
          recordingRoom <= diskRoom ? this.owner.recordingLimitReason() : this.owner.diskQuotaReason(),
        );
        return;
      }
    }
  }

  /** Starts the next part file with its header; false (and the recording stopped) when there is no room. */
  private open(): boolean {
    if (this.fileBytes + WAV_HEADER_BYTES > this.owner.maxRecordingBytes) {
      this.stop(this.owner.recordingLimitReason());
      return false;
    }
    if (this.owner.diskRoom() < WAV_HEADER_BYTES + BYTES_PER_FRAME) {
      this.stop(this.owner.diskQuotaReason());
      return false;
    }
    this.partPath = join(this.owner.dir, `.${this.fileName}.part`);
    this.partBytes = 0;
    const stream = createWriteStream(this.partPath, { flags: "wx" });
    const path = this.partPath;
    stream.on("error", (err) => {
      if (this.stream === stream) this.failed = true;
      this.owner.logger.error({ err, file: path }, "recorder: cannot write");
      this.stop("recorder cannot write its file");
    });
    stream.write(wavHeader(0));
    this.fileBytes += WAV_HEADER_BYTES;
    this.owner.addUsage(WAV_HEADER_BYTES);
    this.stream = stream;
    return true;
  }

  /** Ends the current part: flushes it, patches its header and renames it (or deletes it). */
  private closePart(): void {
    const stream = this.stream;
    if (!stream) return;
    this.stream = undefined;
    const partPath = this.partPath;
    const wavPath = join(this.owner.dir, this.fileName);
    const dataBytes = this.partBytes;
    const failed = this.failed;
    const owner = this.owner;
    owner.track(
      (async () => {
        let onDisk = WAV_HEADER_BYTES + dataBytes; // what the usage counter holds for this part
        try {
          stream.end();
          await finished(stream);
          if (failed || dataBytes < BYTES_PER_FRAME) throw new Error("nothing to keep");
          const usable = dataBytes - (dataBytes % BYTES_PER_FRAME);
          const file = await open(partPath, "r+");
          try {
            if (usable !== dataBytes) await file.truncate(WAV_HEADER_BYTES + usable);
            await file.write(wavHeader(usable), 0, WAV_HEADER_BYTES, 0);
          } finally {
            await file.close();
          }
          owner.addUsage(usable - dataBytes);
          onDisk = WAV_HEADER_BYTES + usable;
          await rename(partPath, wavPath);
          owner.logger.info(
            { file: wavPath, durationMs: Math.round(usable / BYTES_PER_MS) },
            "recorder: saved",
          );
        } catch (err) {
          await rm(partPath, { force: true }).catch((rmErr: unknown) =>
            owner.logger.error({ err: rmErr, file: partPath }, "recorder: cannot delete a part file"),
          );
          owner.addUsage(-onDisk);
          if (!(err instanceof Error && err.message === "nothing to keep")) {
            owner.logger.error({ err, file: wavPath }, "recorder: saving failed; part file deleted");
          }
        }
      })(),
    );
  }

  /** Ends the recording because of a limit or an error, and tells the socket why. */
  private stop(reason: string): void {
    if (this.finished) return;
    this.finish();
    this.owner.logger.info({ id: this.id, reason }, "recorder: stopped");
    this.onStop(reason);
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
  readonly maxPartBytes: number;
  readonly maxGapFillFrames: number;
  readonly maxRecordingBytes: number;
  readonly diskQuotaBytes: number;
  private readonly maxRecordings: number;
  private readonly limitFlags: NonNullable<RecorderOptions["limitFlags"]>;
  private readonly active = new Map<string, Recording>();
  private readonly pending = new Set<Promise<void>>();
  /** Bytes of every file in `dir`: from the last scan, plus what was written or deleted since. */
  private used = 0;
  /** The scan in progress (recordings wait for it before they write). */
  private scanning: Promise<void> | undefined;
  private scanned = false;

  constructor(opts: RecorderOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger;
    this.maxPartBytes = Math.max(BYTES_PER_FRAME, Math.round((opts.maxFileMs ?? 600_000) * BYTES_PER_MS));
    this.maxGapFillFrames = Math.round((opts.maxGapFillMs ?? 10_000) * 48);
    this.maxRecordingBytes = opts.maxRecordingBytes ?? 100 * 1024 * 1024;
    this.diskQuotaBytes = opts.diskQuotaBytes ?? 1024 * 1024 * 1024;
    this.maxRecordings = opts.maxRecordings ?? 64;
    this.limitFlags = opts.limitFlags ?? {};
  }

  /** Bytes the directory may still grow by. */
  diskRoom(): number {
    return this.diskQuotaBytes - this.used;
  }

  /** Bytes the recorder's files take (as far as it knows; exact after a scan). */
  get diskUsage(): number {
    return this.used;
  }

  addUsage(bytes: number): void {
    this.used = Math.max(0, this.used + bytes);
  }

  recordingLimitReason(): string {
    const flag = this.limitFlags.recording ? `, ${this.limitFlags.recording}` : "";
    return `recording size limit reached (${mib(this.maxRecordingBytes)}${flag})`;
  }

  diskQuotaReason(): string {
    const flag = this.limitFlags.disk ? `, ${this.limitFlags.disk}` : "";
    return `disk quota for recordings reached (${mib(this.diskQuotaBytes)}${flag})`;
  }

  upgrade(subpath: string, query: URLSearchParams): UpgradeDecision | Promise<UpgradeDecision> {
    if (subpath !== "" && subpath !== "/")
      return { status: 404, message: `no recorder endpoint at ${subpath}` };
    const label = query.get("label") || undefined;
    if (label !== undefined && !LABEL_PATTERN.test(label)) {
      return { status: 400, message: "label must be 1–40 characters of A-Z, a-z, 0-9, _ and -" };
    }
    if (this.active.size >= this.maxRecordings) {
      return { status: 429, message: `too many recordings at once (${this.maxRecordings})` };
    }
    return this.refreshUsage().then(
      (): UpgradeDecision => {
        if (this.diskRoom() < WAV_HEADER_BYTES + BYTES_PER_FRAME) {
          return { status: 429, message: this.diskQuotaReason() };
        }
        return (ws) => this.record(ws, label);
      },
      (err: unknown): UpgradeDecision => {
        this.logger.error({ err, dir: this.dir }, "recorder: cannot use its directory");
        return { status: 500, message: "recorder cannot write its directory" };
      },
    );
  }

  /**
   * Re-reads the directory's size when nothing is being written (so files deleted by hand free the quota),
   * deleting temporary files a crashed run left behind. Recordings wait for a scan in progress.
   */
  private refreshUsage(): Promise<void> {
    if (this.scanning) return this.scanning;
    if (this.scanned && (this.active.size > 0 || this.pending.size > 0)) return Promise.resolve();
    const scan = this.scan().finally(() => {
      if (this.scanning === scan) this.scanning = undefined;
    });
    this.scanning = scan;
    return scan;
  }

  private async scan(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    let total = 0;
    const now = Date.now();
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      try {
        const s = await stat(path);
        if (!s.isFile()) continue;
        if (TEMP_PATTERN.test(name) && now - s.mtimeMs > STALE_TEMP_MS) {
          await rm(path, { force: true });
          this.logger.info({ file: path }, "recorder: deleted a temporary file of an earlier run");
          continue;
        }
        total += s.size;
      } catch (err) {
        if (errorCode(err) !== "ENOENT") throw err;
      }
    }
    this.used = total;
    this.scanned = true;
  }

  private record(ws: WebSocket, label: string | undefined): void {
    const rec = new Recording(this, label);
    this.active.set(rec.id, rec);
    rec.onStop = (reason) => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000, reason);
    };
    // Messages wait in order behind a directory scan in progress.
    let chain: Promise<void> = this.scanning ?? Promise.resolve();
    let paused = false;
    ws.on("message", (data, isBinary) => {
      if (!isBinary) return;
      const bytes = messageBytes(data);
      chain = chain.then(async () => {
        try {
          rec.push(bytes);
        } catch (err) {
          this.logger.warn({ err, id: rec.id }, "recorder: message skipped");
        }
        // The disk is behind: stop reading the socket until it catches up (TCP back-pressure).
        if (!paused && rec.backlog > WRITE_BACKLOG_BYTES) {
          paused = true;
          ws.pause();
          await rec.drained();
          paused = false;
          ws.resume();
        }
      });
    });
    ws.on("close", () => {
      const done = chain.then(() => rec.finish()).finally(() => this.active.delete(rec.id));
      this.track(done);
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
