import type WebSocket from "ws";
import type { RtpPacket } from "../../media/rtp.ts";
import type { MediaScheduler, Registration } from "../../media/scheduler.ts";
import { SnapshotKeyframes } from "../../media/snapshot-keyframes.ts";
import type { Subscription, Track, TrackSink } from "../../sfu/track.ts";
import { Adapter, type AdapterLinkOptions, type AdapterState, type AdapterStatus } from "./adapter.ts";
import type { FfmpegSnapshots } from "./ffmpeg-snapshots.ts";
import { encodePacket } from "./packet-codec.ts";

export interface JpegEgressOptions extends AdapterLinkOptions {
  /** Images per second (what the decoder was started with). */
  fps: number;
  /** Socket buffer above which an image is dropped instead of queued (default 8 MiB). */
  sendHighWaterBytes?: number;
  shuttingDown?(): boolean;
  onImage?(bytes: number): void;
  onDrop?(): void;
}

/**
 * WebRTC video → JPEG images over WebSocket (`outputCodec: "jpeg"`). Subscribes to a video track like any
 * subscriber, hands one layer's RTP to an ffmpeg decoder (FfmpegSnapshots) and sends each image it makes
 * (`--jpeg-fps`, 1 per second by default) as one `Packet` whose payload is the JPEG, `sequenceNumber` counting
 * images from 1 and `timestamp` the source's RTP timestamp (90 kHz) of the newest packet fed when the image came
 * out. Keyframes are requested when the decoder needs one (SnapshotKeyframes). A slow endpoint loses images
 * (counted as droppedFrames), never buffers without bound; a closed endpoint ends the adapter.
 */
export class JpegEgressAdapter extends Adapter implements TrackSink {
  readonly direction = "egress" as const;
  frames = 0;
  droppedFrames = 0;
  private subscription: Subscription | undefined;
  private registration: Registration | undefined;
  private readonly keyframes: SnapshotKeyframes;
  /** The simulcast layer fed to the decoder (the first one that arrives; a decoder needs one stream). */
  private layer: number | undefined;
  private lastTimestamp = 0;
  private sequence = 0;
  private readonly highWater: number;

  constructor(
    id: string,
    trackName: string,
    endpoint: string,
    private readonly source: Track,
    /** Started by the caller, whose callbacks lead to deliver() and close(). */
    private readonly decoder: FfmpegSnapshots,
    private readonly opts: JpegEgressOptions,
  ) {
    super(id, trackName, endpoint, opts);
    this.highWater = opts.sendHighWaterBytes ?? 8 * 1024 * 1024;
    this.keyframes = new SnapshotKeyframes(opts.now(), { stallMs: Math.max(3000, 3000 / opts.fps) });
  }

  get sessionId(): string {
    return this.source.sessionId;
  }

  start(ws: WebSocket, scheduler: MediaScheduler): void {
    this.state = "open";
    this.attachSocket(ws, (_data, isBinary) => {
      if (!isBinary) this.textMessagesIgnored++;
    });
    if (ws.isPaused) ws.resume();
    this.subscription = this.source.subscribe(this);
    // The shared media clock drives keyframe requests and the link's liveness; no timer of our own.
    // (subscribe() ends the adapter at once when the track has ended meanwhile.)
    if ((this.state as AdapterState) !== "closed")
      this.registration = scheduler.register({ tick: () => this.onSlot() });
  }

  status(): AdapterStatus {
    return {
      ...this.baseStatus(),
      frames: this.frames,
      queuedMs: 0,
      maxQueuedMs: 0,
      underruns: 0,
      droppedFrames: this.droppedFrames,
      reconnects: 0,
    };
  }

  // ---- TrackSink ----------------------------------------------------------------------------

  onPacket(packet: RtpPacket, _track: Track, layer: number): void {
    if (this.state !== "open" || packet.payload.length === 0) return;
    this.layer ??= layer;
    if (layer !== this.layer) return;
    const h = packet.header;
    this.lastTimestamp = h.timestamp;
    this.keyframes.onPacket(this.opts.now());
    this.decoder.feed(h.sequenceNumber, h.timestamp, h.marker, packet.payload);
  }

  onTrackEnded(_track: Track, reason: string): void {
    this.close(`source track ended (${reason})`, this.opts.shuttingDown?.() ? 1001 : 1000);
  }

  // ---- internals ------------------------------------------------------------------------------

  private onSlot(): void {
    if (this.state === "closed") return;
    const now = this.opts.now();
    if (this.keyframes.poll(now)) this.source.requestKeyframe(this.layer ?? 0);
    this.tickLink(now);
  }

  /** One image from the decoder. */
  deliver(jpeg: Buffer): void {
    if (this.state !== "open") return;
    this.keyframes.onImage(this.opts.now());
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.highWater) {
      this.droppedFrames++;
      this.opts.onDrop?.();
      return;
    }
    this.sequence = (this.sequence + 1) >>> 0;
    ws.send(encodePacket({ sequenceNumber: this.sequence, timestamp: this.lastTimestamp, payload: jpeg }));
    this.frames++;
    this.messages++;
    this.bytesProcessed += jpeg.length;
    this.opts.onImage?.(jpeg.length);
  }

  protected onSocketClosed(ws: WebSocket, code: number, reason: string): void {
    if (this.state === "closed" || ws !== this.ws) return;
    this.close(
      this.socketFault ?? `endpoint closed the WebSocket (${code}${reason ? ` ${reason}` : ""})`,
      code === 1000 ? 1000 : 1001,
    );
  }

  protected onClose(): void {
    this.registration?.cancel();
    this.subscription?.close();
    this.decoder.close();
  }
}
