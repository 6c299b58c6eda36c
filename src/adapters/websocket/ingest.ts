import { randomInt } from "node:crypto";
import type WebSocket from "ws";
import { AdaptiveFec } from "../../media/adaptive-fec.ts";
import {
  type AdapterAudioFormat,
  describeFormat,
  frameBytesOf,
  isWireFormat,
  silenceByteOf,
  WIRE_FORMAT,
} from "../../media/audio-format.ts";
import { ToWireConverter } from "../../media/format-converter.ts";
import { OpusEncoder } from "../../media/opus-encoder.ts";
import { Pacer } from "../../media/pacer.ts";
import { PcmFramer } from "../../media/pcm-framer.ts";
import { type MarkResult, PlayoutMarks } from "../../media/playout-marks.ts";
import { OpusRtpPacketizer } from "../../media/rtp-packetizer.ts";
import type { MediaScheduler, Registration } from "../../media/scheduler.ts";
import type { Session } from "../../sfu/session.ts";
import { OPUS, type Track } from "../../sfu/track.ts";
import { Adapter, type AdapterDirection, type AdapterLinkOptions, type AdapterStatus } from "./adapter.ts";
import { decodePacket } from "./packet-codec.ts";

/**
 * Silence an endpoint may make us add by ending segments early (an empty Packet pads the partial frame to
 * 20 ms), beyond the audio it actually sent: one second (50 frames). Without a bound, 1-byte + empty
 * Packets turn 28 KB into a minute of queued silence (10.8 MB).
 */
const PADDING_ALLOWANCE_FRAMES = 50;

export interface IngestOptions extends AdapterLinkOptions {
  highWaterMs: number;
  lowWaterMs: number;
  /** In-band FEC: always, never, or while subscribers report loss (AdaptiveFec). */
  opusFec: boolean | "adaptive";
  opusComplexity: number;
  /** What the endpoint sends (inputCodec, sampleRate, channels); default 48 kHz stereo PCM. */
  format?: AdapterAudioFormat;
  /**
   * "json": the endpoint may send text frames {"event":"clear"} and {"event":"mark","mark":{"name":…}} and hears
   * back {"event":"mark","mark":{"name":…},"status":"played"|"cleared"} and {"event":"cleared",…} (barge-in;
   * proto/control.md). Otherwise text frames are ignored, as Cloudflare's adapter does.
   */
  control?: "json" | "twilio";
  /**
   * A frame left: it arrived at `arrivalMs`, its turn came at `startMs` (its slot's due time, or its
   * arrival if that was later) and its RTP packet was written at `sentMs` (all on `now()`'s clock).
   */
  onFrame?(arrivalMs: number, startMs: number, sentMs: number): void;
  onUnderrun?(): void;
  onTextMessage?(adapter: IngestAdapter): void;
  /** The endpoint closed while audio was queued: the adapter closes once `queuedMs` have played out. */
  onEndpointGone?(reason: string, queuedMs: number): void;
}

/** A control text frame: Patchbay's (control: "json") and Twilio's share `event` and `mark.name`. */
export interface ControlMessage {
  event?: unknown;
  mark?: { name?: unknown };
  media?: { payload?: unknown };
  streamSid?: unknown;
}

/**
 * WebSocket → WebRTC. Bytes from the endpoint, in any chunking and at any speed, become 20 ms PCM frames
 * (PcmFramer), wait in the Pacer, and leave on the shared scheduler's absolute clock as Opus RTP written
 * into a track of the adapter's own session. While the queue is empty the track carries Opus silence so
 * subscribers' jitter buffers and sessions stay alive.
 */
export class IngestAdapter extends Adapter {
  readonly direction: AdapterDirection = "ingest";
  readonly track: Track;
  private readonly format: AdapterAudioFormat;
  private framer: PcmFramer;
  private converter: ToWireConverter;
  /** Holds frames in the endpoint's format: converted to wire frames as they leave (tick). */
  private readonly pacer: Pacer<Uint8Array>;
  private encoder: OpusEncoder | undefined;
  private readonly packetizer = new OpusRtpPacketizer({ ssrc: randomInt(1, 2 ** 32 - 1) });
  /** Arrival time of each queued frame (parallel to the pacer's queue), for the queue and latency histograms. */
  private arrivals: number[] = [];
  private arrivalHead = 0;
  private registration: Registration | undefined;
  /** Why the endpoint went away; set while its queued audio plays out. */
  private endpointGone: string | undefined;
  private queueFull = false;
  /** Set in adaptive FEC mode; its decision is applied to the encoder once per slot. */
  private readonly fec: AdaptiveFec | undefined;
  /** control: "json" only. */
  private readonly marks: PlayoutMarks | undefined;
  clears = 0;
  private audioBytes = 0;
  private paddingBytes = 0;

  constructor(
    id: string,
    trackName: string,
    endpoint: string,
    private readonly session: Session,
    private readonly opts: IngestOptions,
  ) {
    super(id, trackName, endpoint, opts);
    this.format = opts.format ?? WIRE_FORMAT;
    this.framer = this.newFramer();
    this.converter = new ToWireConverter(this.format);
    this.pacer = new Pacer<Uint8Array>({
      highWaterMs: opts.highWaterMs,
      lowWaterMs: opts.lowWaterMs,
      frameLength: frameBytesOf(this.format),
    });
    this.marks = opts.control ? new PlayoutMarks() : undefined;
    const adaptive = opts.opusFec === "adaptive";
    this.fec = adaptive ? new AdaptiveFec() : undefined;
    this.encoder = new OpusEncoder({
      inbandFec: opts.opusFec !== false,
      // Adaptive starts clean: no FEC until a subscriber reports loss.
      packetLossPercent: adaptive ? 0 : undefined,
      complexity: opts.opusComplexity,
    });
    this.track = session.publish({
      name: trackName,
      kind: "audio",
      codec: OPUS,
      publisher: {
        onReceiverLoss: (from, fractionLost) => this.fec?.onReport(from, fractionLost, this.opts.now()),
      },
    });
    // The session exists for this track only (SPEC §1.3).
    this.track.closed.subscribe((reason) => {
      this.close(reason);
      session.close(reason);
    });
  }

  get sessionId(): string {
    return this.session.id;
  }

  private newFramer(): PcmFramer {
    return new PcmFramer(frameBytesOf(this.format), silenceByteOf(this.format));
  }

  /** Takes over a connected socket and starts the media clock. */
  start(ws: WebSocket, scheduler: MediaScheduler): void {
    this.state = "open";
    this.attachSocket(ws, (data, isBinary) => this.onMessage(data, isBinary));
    this.registration = scheduler.register({ tick: (_slot, due, now) => this.tick(now, due) });
    // dial() paused reading at open (pauseOnOpen) so that nothing sent right after the handshake is lost.
    if (ws.isPaused && !this.link?.readingPaused) ws.resume();
  }

  /** Whether the encoder currently adds in-band FEC (expected loss > 0). */
  get fecActive(): boolean {
    return this.opts.opusFec === true || (this.fec?.active ?? false);
  }

  status(): AdapterStatus {
    const c = this.pacer.counters;
    return {
      ...this.baseStatus(),
      fecActive: this.fecActive,
      ...(isWireFormat(this.format) ? {} : { audioFormat: describeFormat(this.format) }),
      frames: c.framesPlayed,
      queuedMs: this.pacer.queuedMs,
      maxQueuedMs: c.maxQueuedMs,
      underruns: c.underruns,
      droppedFrames: 0,
      reconnects: 0,
    };
  }

  protected onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === "closed") return;
    this.messages++;
    if (!isBinary) {
      if (this.marks) {
        this.onControl(data.toString("utf8"));
        return;
      }
      this.textMessagesIgnored++;
      if (this.textMessagesIgnored === 1) this.opts.onTextMessage?.(this);
      return;
    }
    const decoded = decodePacket(data);
    if (!decoded.ok) {
      this.close(decoded.error, 1007); // "malformed Packet (n bytes): …"
      return;
    }
    this.pushAudio(decoded.packet.payload);
  }

  /** Audio bytes from the endpoint, in its format; an empty payload ends a segment. */
  protected pushAudio(payload: Uint8Array): void {
    this.bytesProcessed += payload.length;
    this.audioBytes += payload.length;
    const now = this.opts.now();
    if (payload.length === 0) {
      // End of a segment: pad the partial frame with silence, never discard anything.
      const pending = this.framer.pendingBytes;
      if (pending > 0) {
        const frameBytes = this.framer.frameBytes;
        this.paddingBytes += frameBytes - pending;
        if (this.paddingBytes > this.audioBytes + PADDING_ALLOWANCE_FRAMES * frameBytes) {
          this.close(
            `endpoint ended segments so often that padding exceeds its audio (${this.paddingBytes} bytes of silence for ${this.audioBytes} bytes of audio)`,
            1008,
          );
          return;
        }
      }
      const last = this.framer.flush();
      if (last) this.enqueue(last, now);
      this.pacer.endSegment();
    } else {
      for (const frame of this.framer.push(payload)) this.enqueue(frame, now);
    }
    if (this.pacer.wantsPause()) {
      this.queueFull = true;
      this.setQueueFull(true); // TCP back-pressure: the endpoint's sends block once the kernel buffers fill
    }
  }

  /**
   * A control message (control: "json"). clear: every queued frame and the partial one are dropped at once
   * (nothing more of them is encoded; the next slot is silence), pending marks report "cleared". mark: reported
   * "played" once everything sent before it has left as RTP. Not JSON, or a mark without a usable name: closed
   * 1007; too many pending marks: 1008; an unknown event: ignored (counted), so endpoints can be newer than us.
   */
  private onControl(text: string): void {
    const msg = this.parseControl(text);
    if (msg === undefined) return;
    if (msg.event === "clear") this.clearQueued();
    else if (msg.event === "mark") this.addMark(msg.mark?.name);
    else this.textMessagesIgnored++;
  }

  /** A text frame as a JSON object with an `event`; not JSON closes the adapter (1007). */
  protected parseControl(text: string): ControlMessage | undefined {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.close(`invalid control message: not JSON (${Buffer.byteLength(text)} bytes)`, 1007);
      return undefined;
    }
    return typeof msg === "object" && msg !== null ? (msg as ControlMessage) : {};
  }

  /** Barge-in: drops the queued audio and the partial frame; pending marks come back cleared. */
  protected clearQueued(): void {
    const dropped = this.pacer.clear() + (this.framer.pendingBytes > 0 ? 1 : 0);
    // The resampler's history belongs to the cleared audio too: start the next answer clean.
    this.framer = this.newFramer();
    this.converter = new ToWireConverter(this.format);
    this.arrivals = [];
    this.arrivalHead = 0;
    this.clears++;
    const cleared = this.marks!.clear();
    this.reportCleared(dropped, cleared);
  }

  protected reportCleared(frames: number, cleared: MarkResult[]): void {
    this.sendControl({ event: "cleared", frames, marks: cleared.length });
    for (const m of cleared) this.sendMark(m);
  }

  /** A mark after the audio received so far; reported played when that audio has left as RTP. */
  protected addMark(name: unknown): void {
    if (typeof name !== "string" || name.length === 0 || name.length > 256) {
      this.close("invalid control message: a mark needs mark.name, a string of 1 to 256 characters", 1007);
      return;
    }
    const played = this.pacer.framesPlayed;
    if (!this.marks!.add(name, played, this.pacer.queuedFrames, this.framer.pendingBytes > 0)) {
      this.close(`more than ${this.marks!.maxPending} marks pending`, 1008);
      return;
    }
    for (const m of this.marks!.onPlayed(played)) this.sendMark(m);
  }

  protected sendMark(m: MarkResult): void {
    this.sendControl({ event: "mark", mark: { name: m.name }, status: m.status });
  }

  protected sendControl(msg: object): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  }

  private enqueue(frame: Uint8Array, now: number): void {
    this.pacer.enqueue(frame);
    this.arrivals.push(now);
  }

  private tick(now: number, dueMs: number): void {
    const encoder = this.encoder;
    if (!encoder) return;
    const hadAudio = this.pacer.counters.underruns;
    const { frame, afterSilence } = this.pacer.next();
    if (this.queueFull && this.pacer.wantsResume()) {
      this.queueFull = false;
      this.setQueueFull(false);
    }
    this.tickLink(now);
    if (this.fec) {
      const before = this.fec.percent;
      const percent = this.fec.poll(now);
      if (percent !== before) encoder.setExpectedLoss(percent);
    }
    const pcm = frame ? this.converter.convert(frame) : null;
    this.track.write(this.packetizer.packetize(encoder.encodeSlot(pcm), { marker: afterSilence }));
    if (frame && this.marks) for (const m of this.marks.onPlayed(this.pacer.framesPlayed)) this.sendMark(m);
    if (frame) {
      const arrived = this.arrivals[this.arrivalHead++];
      if (this.arrivalHead > 1024 && this.arrivalHead * 2 > this.arrivals.length) {
        this.arrivals = this.arrivals.slice(this.arrivalHead);
        this.arrivalHead = 0;
      }
      this.opts.onFrame?.(arrived, Math.max(dueMs, arrived), this.opts.now());
    } else if (this.pacer.counters.underruns !== hadAudio) {
      this.opts.onUnderrun?.();
    }
    if (this.endpointGone && this.pacer.queuedFrames === 0) this.close(this.endpointGone);
  }

  protected onSocketClosed(_ws: WebSocket, code: number, reason: string): void {
    if (this.state === "closed") return;
    // Queued audio plays out first (also after a protocol error: what arrived intact is the endpoint's
    // audio); tick() closes the adapter when the queue is empty.
    const last = this.framer.flush();
    if (last) this.enqueue(last, this.opts.now());
    this.pacer.endSegment();
    this.endpointGone =
      this.socketFault ?? `endpoint closed the WebSocket (${code}${reason ? ` ${reason}` : ""})`;
    if (this.pacer.queuedFrames === 0) this.close(this.endpointGone);
    else this.opts.onEndpointGone?.(this.endpointGone, this.pacer.queuedMs);
  }

  protected onClose(reason: string): void {
    this.registration?.cancel();
    this.track.close(reason);
    // A closed adapter keeps nothing heavy: its queue (up to --ingest-high-water-ms of PCM), framer and
    // encoder go now; only the counters stay for the status record.
    this.pacer.clear();
    this.arrivals = [];
    this.arrivalHead = 0;
    this.framer = this.newFramer();
    this.encoder = undefined;
  }
}
