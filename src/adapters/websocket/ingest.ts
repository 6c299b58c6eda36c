import { randomInt } from "node:crypto";
import type WebSocket from "ws";
import { OpusEncoder } from "../../media/opus-encoder.ts";
import { Pacer } from "../../media/pacer.ts";
import { PcmFramer } from "../../media/pcm-framer.ts";
import { OpusRtpPacketizer } from "../../media/rtp-packetizer.ts";
import type { MediaScheduler, Registration } from "../../media/scheduler.ts";
import type { Session } from "../../sfu/session.ts";
import { OPUS, type Track } from "../../sfu/track.ts";
import { Adapter, type AdapterStatus } from "./adapter.ts";
import { decodePacket } from "./packet-codec.ts";

export interface IngestOptions {
  highWaterMs: number;
  lowWaterMs: number;
  maxMessageBytes: number;
  opusFec: boolean;
  opusComplexity: number;
  now: () => number;
  onFrame?(latencyMs: number): void;
  onUnderrun?(): void;
  onTextMessage?(adapter: IngestAdapter): void;
}

/**
 * WebSocket → WebRTC. Bytes from the endpoint, in any chunking and at any speed, become 20 ms PCM frames
 * (PcmFramer), wait in the Pacer, and leave on the shared scheduler's absolute clock as Opus RTP written
 * into a track of the adapter's own session. While the queue is empty the track carries Opus silence so
 * subscribers' jitter buffers and sessions stay alive.
 */
export class IngestAdapter extends Adapter {
  readonly direction = "ingest" as const;
  readonly track: Track;
  private readonly framer = new PcmFramer();
  private readonly pacer: Pacer;
  private readonly encoder: OpusEncoder;
  private readonly packetizer = new OpusRtpPacketizer({ ssrc: randomInt(1, 2 ** 32 - 1) });
  /** Arrival time of each queued frame (parallel to the pacer's queue), for the latency histogram. */
  private arrivals: number[] = [];
  private arrivalHead = 0;
  private registration: Registration | undefined;
  /** Why the endpoint went away; set while its queued audio plays out. */
  private endpointGone: string | undefined;
  private paused = false;

  constructor(
    id: string,
    trackName: string,
    endpoint: string,
    private readonly session: Session,
    private readonly opts: IngestOptions,
  ) {
    super(id, trackName, endpoint);
    this.pacer = new Pacer({ highWaterMs: opts.highWaterMs, lowWaterMs: opts.lowWaterMs });
    this.encoder = new OpusEncoder({ inbandFec: opts.opusFec, complexity: opts.opusComplexity });
    this.track = session.publish({ name: trackName, kind: "audio", codec: OPUS, publisher: {} });
    // The session exists for this track only (SPEC §1.3).
    this.track.closed.subscribe((reason) => {
      this.close(reason);
      session.close(reason);
    });
  }

  get sessionId(): string {
    return this.session.id;
  }

  /** Takes over a connected socket and starts the media clock. */
  start(ws: WebSocket, scheduler: MediaScheduler): void {
    this.ws = ws;
    this.state = "open";
    ws.on("message", (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on("pong", () => {
      this.alive = true;
    });
    ws.on("close", (code, reason) => this.onSocketClosed(code, reason.toString()));
    ws.on("error", (err) => this.onSocketError(err));
    this.registration = scheduler.register({ tick: (_slot, _due, now) => this.tick(now) });
    // dial() paused reading at open (pauseOnOpen) so that nothing sent right after the handshake is lost.
    if (ws.isPaused && !this.paused) ws.resume();
  }

  status(): AdapterStatus {
    const c = this.pacer.counters;
    return {
      ...this.baseStatus(),
      frames: c.framesPlayed,
      queuedMs: this.pacer.queuedMs,
      maxQueuedMs: c.maxQueuedMs,
      underruns: c.underruns,
      droppedFrames: 0,
      reconnects: 0,
    };
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === "closed") return;
    this.messages++;
    if (!isBinary) {
      this.textMessagesIgnored++;
      if (this.textMessagesIgnored === 1) this.opts.onTextMessage?.(this);
      return;
    }
    const decoded = decodePacket(data);
    if (!decoded.ok) {
      this.close(decoded.error, 1007); // "malformed Packet (n bytes): …"
      return;
    }
    const payload = decoded.packet.payload;
    this.bytesProcessed += payload.length;
    const now = this.opts.now();
    if (payload.length === 0) {
      // End of a segment: pad the partial frame with silence, never discard anything.
      const last = this.framer.flush();
      if (last) this.enqueue(last, now);
      this.pacer.endSegment();
    } else {
      for (const frame of this.framer.push(payload)) this.enqueue(frame, now);
    }
    if (this.pacer.wantsPause()) {
      this.paused = true;
      this.ws?.pause(); // TCP back-pressure: the endpoint's sends block once the kernel buffers fill
    }
  }

  private enqueue(frame: Int16Array, now: number): void {
    this.pacer.enqueue(frame);
    this.arrivals.push(now);
  }

  private tick(now: number): void {
    const hadAudio = this.pacer.counters.underruns;
    const { frame, afterSilence } = this.pacer.next();
    if (this.paused && this.pacer.wantsResume()) {
      this.paused = false;
      this.ws?.resume();
    }
    this.track.write(this.packetizer.packetize(this.encoder.encodeSlot(frame), { marker: afterSilence }));
    if (frame) {
      const arrived = this.arrivals[this.arrivalHead++];
      if (this.arrivalHead > 1024 && this.arrivalHead * 2 > this.arrivals.length) {
        this.arrivals = this.arrivals.slice(this.arrivalHead);
        this.arrivalHead = 0;
      }
      this.opts.onFrame?.(now - arrived);
    } else if (this.pacer.counters.underruns !== hadAudio) {
      this.opts.onUnderrun?.();
    }
    if (this.endpointGone && this.pacer.queuedFrames === 0) this.close(this.endpointGone);
  }

  private onSocketClosed(code: number, reason: string): void {
    if (this.state === "closed") return;
    if (code === 1009) {
      this.close(`message larger than ${this.opts.maxMessageBytes} bytes`, 1009);
      return;
    }
    // Queued audio plays out first; tick() closes the adapter when the queue is empty.
    const last = this.framer.flush();
    if (last) this.enqueue(last, this.opts.now());
    this.pacer.endSegment();
    this.endpointGone = this.silentPeer
      ? "endpoint stopped answering pings (half-open connection dropped)"
      : `endpoint closed the WebSocket (${code}${reason ? ` ${reason}` : ""})`;
    if (this.pacer.queuedFrames === 0) this.close(this.endpointGone);
  }

  private onSocketError(err: Error): void {
    // ws closes the socket itself after an error (1009 for oversize, 1002 for protocol errors); remember why.
    if (/max payload size exceeded/i.test(err.message)) {
      this.close(`message larger than ${this.opts.maxMessageBytes} bytes (limit)`, 1009);
    }
  }

  protected onClose(reason: string): void {
    this.registration?.cancel();
    this.track.close(reason);
  }
}
