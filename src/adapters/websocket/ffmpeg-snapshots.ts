import { type ChildProcess, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JpegSplitter } from "../../media/jpeg-splitter.ts";

// FfmpegSnapshots: a video track's RTP in, JPEG images out, through an ffmpeg child process (Debian's
// `ffmpeg`; --ffmpeg-path). ffmpeg reads plain RTP from a loopback UDP port described by an SDP file, so
// its own RTP depacketizers (VP8, VP9, H.264), jitter handling and the RTP timestamps drive the decoder and
// its `fps` filter; it writes MJPEG images to stdout, which JpegSplitter cuts apart. Patchbay decrypts SRTP
// before anything gets here: only the decrypted payload of one layer ever crosses the loopback socket.

export type SnapshotCodec = "vp8" | "vp9" | "h264";

const RTPMAP: Record<SnapshotCodec, string> = { vp8: "VP8/90000", vp9: "VP9/90000", h264: "H264/90000" };
const PT = 96;
const SSRC = 0x5ab5_0001;
/** ffmpeg's own messages kept for the close reason when it fails. */
const STDERR_TAIL = 2000;

export function snapshotCodec(mimeType: string | undefined): SnapshotCodec | undefined {
  const m = mimeType?.toLowerCase();
  return m === "video/vp8" ? "vp8" : m === "video/vp9" ? "vp9" : m === "video/h264" ? "h264" : undefined;
}

export interface FfmpegSnapshotsOptions {
  ffmpegPath: string;
  codec: SnapshotCodec;
  /** Images per second (the `fps` filter). */
  fps: number;
  onImage(jpeg: Buffer): void;
  /** ffmpeg stopped on its own (crash, missing binary): the adapter closes with this reason. */
  onExit(reason: string): void;
}

/** A UDP port p on 127.0.0.1 with p+1 free too (ffmpeg binds RTCP on p+1), both released again. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const a = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      a.once("error", reject);
      a.bind(0, "127.0.0.1", resolve);
    });
    const port = a.address().port;
    const b = createSocket("udp4");
    const ok = await new Promise<boolean>((resolve) => {
      b.once("error", () => resolve(false));
      b.bind(port + 1, "127.0.0.1", () => resolve(true));
    });
    a.close();
    if (ok) b.close();
    if (ok && port < 65535) return port;
  }
  throw new Error("no free UDP port pair on 127.0.0.1 for the decoder");
}

export class FfmpegSnapshots {
  /** Images out, RTP packets in, bytes of JPEG out. */
  images = 0;
  packets = 0;
  jpegBytes = 0;
  private child: ChildProcess | undefined;
  private socket: Socket | undefined;
  private port = 0;
  private dir: string | undefined;
  private stderr = "";
  private closed = false;
  private readonly splitter = new JpegSplitter({ maxImageBytes: 8 * 1024 * 1024 });

  private constructor(private readonly opts: FfmpegSnapshotsOptions) {}

  /** Starts ffmpeg; rejects if it cannot be spawned (missing binary: the message says how to install it). */
  static async start(opts: FfmpegSnapshotsOptions): Promise<FfmpegSnapshots> {
    const d = new FfmpegSnapshots(opts);
    await d.spawn();
    return d;
  }

  private async spawn(): Promise<void> {
    this.port = await freePortPair();
    this.dir = mkdtempSync(join(tmpdir(), "patchbay-jpeg-"));
    const sdpPath = join(this.dir, "in.sdp");
    const fmtp = this.opts.codec === "h264" ? [`a=fmtp:${PT} packetization-mode=1`] : [];
    writeFileSync(
      sdpPath,
      [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=patchbay",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        `m=video ${this.port} RTP/AVP ${PT}`,
        `a=rtpmap:${PT} ${RTPMAP[this.opts.codec]}`,
        ...fmtp,
        "a=recvonly",
        "",
      ].join("\r\n"),
    );
    const args = [
      "-hide_banner",
      "-loglevel",
      "error",
      "-nostdin",
      "-protocol_whitelist",
      "file,udp,rtp",
      "-fflags",
      "nobuffer",
      "-reorder_queue_size",
      "64",
      "-i",
      sdpPath,
      "-an",
      "-vf",
      `fps=${this.opts.fps}`,
      "-c:v",
      "mjpeg",
      "-pix_fmt",
      "yuvj420p",
      "-q:v",
      "5",
      "-f",
      "image2pipe",
      "pipe:1",
    ];
    const child = spawn(this.opts.ffmpegPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new Error(
            code === "ENOENT"
              ? `${this.opts.ffmpegPath} not found: install ffmpeg (Debian: apt-get install ffmpeg) or set --ffmpeg-path`
              : `cannot start ${this.opts.ffmpegPath}: ${err.message}`,
          ),
        );
      });
    }).catch((err: unknown) => {
      this.cleanup();
      throw err;
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      for (const img of this.splitter.push(chunk)) {
        this.images++;
        this.jpegBytes += img.length;
        this.opts.onImage(img);
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-STDERR_TAIL);
    });
    child.on("exit", (code, signal) => {
      if (this.closed) return;
      const said = this.stderr.trim().split("\n").slice(-3).join(" | ");
      this.close();
      this.opts.onExit(`video decoder (ffmpeg) exited (${signal ?? code})${said ? `: ${said}` : ""}`);
    });
    const socket = createSocket("udp4");
    socket.on("error", () => {}); // ICMP port unreachable while ffmpeg starts: nothing to do
    this.socket = socket;
  }

  /** One RTP packet of the track (payload as received, decrypted): re-headed for ffmpeg and sent. */
  feed(seq: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    if (this.closed || !this.socket || payload.length === 0) return;
    // A fresh header each time: dgram may still hold the previous one in its send queue.
    const h = Buffer.allocUnsafe(12);
    h[0] = 0x80;
    h[1] = (marker ? 0x80 : 0) | PT;
    h.writeUInt16BE(seq & 0xffff, 2);
    h.writeUInt32BE(timestamp >>> 0, 4);
    h.writeUInt32BE(SSRC, 8);
    this.packets++;
    this.socket.send([h, payload], this.port, "127.0.0.1");
  }

  /** False once ffmpeg exited or close() ran. */
  get running(): boolean {
    return !this.closed;
  }

  /** Idempotent: stops ffmpeg (SIGKILL: it holds no state worth flushing) and frees the port and files. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child?.kill("SIGKILL");
    this.cleanup();
  }

  private cleanup(): void {
    this.socket?.close();
    this.socket = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
