import type WebSocket from "ws";
import {
  type AdapterAudioFormat,
  describeFormat,
  frameBytesOf,
  isWireFormat,
  WIRE_FORMAT,
} from "../../media/audio-format.ts";
import { FromWireConverter } from "../../media/format-converter.ts";
import { PlayoutDecoder } from "../../media/playout-decoder.ts";
import type { RtpPacket } from "../../media/rtp.ts";
import type { MediaScheduler, Registration } from "../../media/scheduler.ts";
import { SpeechDetector } from "../../media/speech-detector.ts";
import type { Subscription, Track, TrackSink } from "../../sfu/track.ts";
import { Adapter, type AdapterLinkOptions, type AdapterStatus } from "./adapter.ts";
import type { DialResult } from "./dial.ts";
import { encodePacket } from "./packet-codec.ts";
import { RedialPolicy } from "./redial-policy.ts";
import { SlotsAfterIo } from "./slots-after-io.ts";

const FRAME_MS = 20;
/** A Packet's framing around its payload (field tags, lengths, sequence number, timestamp), at most. */
const PACKET_OVERHEAD_BYTES = 15;

export interface EgressOptions extends AdapterLinkOptions {
  /** Reorder and conceal (default) or pass packets through in arrival order (benchmarks). */
  reorder: boolean;
  /**
   * Also send text frames {"event":"speech","state":"start"|"end","sequenceNumber","timestamp"} when speech
   * starts and ends (SpeechDetector), in order with the PCM Packets they refer to (proto/control.md).
   */
  speechEvents?: boolean;
  /** What the endpoint receives (outputCodec, sampleRate, channels); default 48 kHz stereo PCM. */
  format?: AdapterAudioFormat;
  /** Dial the same URL again (policy re-checked). */
  redial(): Promise<DialResult>;
  /** Socket buffer above which we stop writing and hold frames (default ≈ 1 s of audio). */
  sendHighWaterBytes?: number;
  /** Unsent frames kept while the endpoint reads slowly; older ones are dropped (default 25 = 500 ms). */
  maxPendingFrames?: number;
  /** Frames kept while reconnecting and sent first after it (default 100 = 2 s). */
  backlogFrames?: number;
  /** Give up reconnecting this long after the first failure of a run (default 15 s; see RedialPolicy). */
  reconnectWindowMs?: number;
  /** The adapter is closing because the server shuts down: tell the endpoint 1001, not 1000. */
  shuttingDown?(): boolean;
  /**
   * A frame was written to the WebSocket: its RTP packet arrived at `arrivalMs`, its turn came at `startMs`
   * (the due time of the slot that sent it, or its arrival if that was later; the send time for a frame
   * sent outside a slot, e.g. the backlog after a reconnect) and `ws.send` returned at `sentMs`. Not
   * called for concealed frames (no packet arrived).
   */
  onFrame?(arrivalMs: number, startMs: number, sentMs: number): void;
  onDrop?(frames: number): void;
  /** The endpoint's socket dropped (not a normal close): redialing starts. */
  onDisconnect?(reason: string): void;
  /** A redial failed; the next one is in `retryInMs` (none: the adapter gives up and closes). */
  onRedialFailed?(reason: string, retryInMs: number | undefined): void;
  /** Connected again, `downMs` after the drop. */
  onReconnect?(downMs: number): void;
  onError?(err: unknown): void;
}

interface OutFrame {
  /** A binary Packet, or (text set) a JSON event sent as a text frame in its place in the stream. */
  bytes: Uint8Array;
  text?: string;
  /** Audio bytes in it (3 840 for 20 ms of 48 kHz stereo s16le). */
  pcmBytes: number;
  /** Arrival of the RTP packet it came from; NaN for concealed frames. */
  arrivalMs: number;
}

/**
 * WebRTC → WebSocket. Subscribes to a track like any other subscriber, puts its Opus packets in order
 * (JitterBuffer, popped on the shared scheduler), decodes them with loss concealment (FEC from the next
 * packet when it is there, PLC otherwise) and sends each 20 ms as a `Packet` of 48 kHz stereo s16le PCM.
 * A slow endpoint costs dropped frames (counted), never unbounded latency; a dropped socket is redialed
 * with backoff while the last 2 s of frames wait for it.
 */
export class EgressAdapter extends Adapter implements TrackSink {
  readonly direction = "egress" as const;
  private readonly playout: PlayoutDecoder;
  private readonly format: AdapterAudioFormat;
  private readonly converter: FromWireConverter;
  private readonly speech: SpeechDetector | undefined;
  /** Sequence number and timestamp of the frames SpeechDetector counted, for dating its events. */
  private readonly frameIds: { seq: number; ts: number }[] = [];
  /** Frames given to the speech detector so far. */
  private speechFrames = 0;
  private sequence = 0;
  private pending: OutFrame[] = [];
  private subscription: Subscription | undefined;
  private registration: Registration | undefined;
  private redialTimer: NodeJS.Timeout | undefined;
  /** When the current outage began (the socket dropped). */
  private droppedAt = 0;
  private readonly redialPolicy: RedialPolicy;
  frames = 0;
  droppedFrames = 0;
  /** The jitter buffer's counters (diagnostics). */
  get jitterStats() {
    return this.playout.stats;
  }

  get concealedFrames(): number {
    return this.playout.concealedFrames;
  }
  reconnects = 0;
  private readonly highWater: number;
  private readonly maxPending: number;
  private readonly backlog: number;

  constructor(
    id: string,
    trackName: string,
    endpoint: string,
    private readonly source: Track,
    private readonly opts: EgressOptions,
  ) {
    super(id, trackName, endpoint, opts);
    this.redialPolicy = new RedialPolicy({ windowMs: opts.reconnectWindowMs ?? 15_000 });
    this.playout = new PlayoutDecoder({ reorder: opts.reorder });
    this.format = opts.format ?? WIRE_FORMAT;
    this.converter = new FromWireConverter(this.format);
    this.highWater = opts.sendHighWaterBytes ?? 50 * (frameBytesOf(this.format) + PACKET_OVERHEAD_BYTES);
    this.maxPending = opts.maxPendingFrames ?? 25;
    this.backlog = opts.backlogFrames ?? 2000 / FRAME_MS;
    this.speech = opts.speechEvents ? new SpeechDetector() : undefined;
  }

  get sessionId(): string {
    return this.source.sessionId;
  }

  start(ws: WebSocket, scheduler: MediaScheduler): void {
    this.redialPolicy.connected(this.opts.now());
    this.attach(ws);
    this.subscription = this.source.subscribe(this);
    if (this.state !== "closed")
      this.registration = scheduler.register({ tick: (_slot, slotTimeMs) => this.slots.add(slotTimeMs) });
  }

  status(): AdapterStatus {
    return {
      ...this.baseStatus(),
      ...(isWireFormat(this.format) ? {} : { audioFormat: describeFormat(this.format) }),
      frames: this.frames,
      queuedMs: this.pending.length * FRAME_MS + this.playout.stats.currentDepthMs,
      maxQueuedMs: 0,
      underruns: this.playout.stats.underruns,
      droppedFrames: this.droppedFrames,
      reconnects: this.reconnects,
    };
  }

  // ---- TrackSink ----------------------------------------------------------------------------

  onPacket(packet: RtpPacket): void {
    if (this.state !== "closed") this.playout.push(packet, this.opts.now());
  }

  onTrackEnded(_track: Track, reason: string): void {
    this.flush();
    this.close(`source track ended (${reason})`, this.opts.shuttingDown?.() ? 1001 : 1000);
  }

  // ---- media ----------------------------------------------------------------------------------

  /** One scheduler slot = one frame of playout, keyed by the slot's due time (SlotsAfterIo). */
  private readonly slots = new SlotsAfterIo(
    (slotMs) => this.tick(slotMs),
    () => this.state !== "closed",
    () => this.tickLink(this.opts.now()),
  );

  private tick(now: number): void {
    this.playout.pop(now, (f) => this.emit(f.pcm, f.timestamp, f.arrivalMs));
    this.flush(now);
  }

  private emit(pcm: Int16Array, timestamp: number, arrivalMs: number): void {
    this.sequence = (this.sequence + 1) >>> 0;
    const payload = this.converter.convert(pcm);
    this.pending.push({
      bytes: encodePacket({ sequenceNumber: this.sequence, timestamp, payload }),
      pcmBytes: payload.byteLength,
      arrivalMs,
    });
    if (this.speech) this.detectSpeech(pcm, timestamp);
  }

  /** Runs the detector on the frame just queued; an event goes right after it, dated to the frame it names. */
  private detectSpeech(pcm: Int16Array, timestamp: number): void {
    const ids = this.frameIds;
    ids.push({ seq: this.sequence, ts: timestamp });
    // The detector names frames at most hangover (15) frames back: keep a little more than that.
    if (ids.length > 64) ids.splice(0, ids.length - 32);
    const index = this.speechFrames++;
    const ev = this.speech!.push(pcm);
    if (!ev) return;
    const back = index - ev.frame;
    const id = ids[ids.length - 1 - back] ?? ids[0];
    this.pending.push({
      bytes: new Uint8Array(0),
      text: JSON.stringify({ event: "speech", state: ev.state, sequenceNumber: id.seq, timestamp: id.ts }),
      pcmBytes: 0,
      arrivalMs: Number.NaN,
    });
  }

  /**
   * Write what the socket can take; bound what it cannot. `slotMs`: the due time of the slot sending (none
   * outside a slot). Each frame sent counts as one message and its PCM bytes as bytes processed.
   */
  private flush(slotMs?: number): void {
    const ws = this.ws;
    if (this.state === "open" && ws && ws.readyState === ws.OPEN) {
      let sent = 0;
      while (sent < this.pending.length && ws.bufferedAmount < this.highWater) {
        const f = this.pending[sent++];
        if (f.text !== undefined) {
          ws.send(f.text);
          continue;
        }
        ws.send(f.bytes);
        this.frames++;
        this.messages++;
        this.bytesProcessed += f.pcmBytes;
        if (!Number.isNaN(f.arrivalMs)) {
          const sent = this.opts.now();
          this.opts.onFrame?.(f.arrivalMs, Math.max(slotMs ?? sent, f.arrivalMs), sent);
        }
      }
      if (sent > 0) this.pending = this.pending.slice(sent);
      this.trim(this.maxPending);
    } else if (this.state === "reconnecting") {
      this.trim(this.backlog);
    }
  }

  private trim(max: number): void {
    const excess = this.pending.length - max;
    if (excess <= 0) return;
    // Oldest first: latency stays bounded. Speech events survive (an end must follow its start).
    const dropped = this.pending.slice(0, excess);
    const events = dropped.filter((f) => f.text !== undefined);
    this.pending = [...events, ...this.pending.slice(excess)];
    const frames = excess - events.length;
    this.droppedFrames += frames;
    if (frames > 0) this.opts.onDrop?.(frames);
  }

  // ---- socket life cycle ------------------------------------------------------------------

  private attach(ws: WebSocket): void {
    this.state = "open";
    // Egress endpoints have nothing to say: what they send is rate-limited (link core) and ignored.
    this.attachSocket(ws, (_data, isBinary) => {
      if (!isBinary) this.textMessagesIgnored++;
    });
    if (ws.isPaused) ws.resume();
  }

  protected onSocketClosed(ws: WebSocket, code: number, reason: string): void {
    if (this.state === "closed" || ws !== this.ws) return;
    if (code === 1000 && !this.socketFault) {
      // A normal close is the endpoint's way of saying it is done: no redial.
      this.close("endpoint closed the WebSocket (1000)");
      return;
    }
    this.state = "reconnecting";
    this.ws = undefined;
    this.droppedAt = this.opts.now();
    const failure =
      this.socketFault ?? `endpoint closed the WebSocket (${code}${reason ? ` ${reason}` : ""})`;
    this.opts.onDisconnect?.(failure);
    this.scheduleRedial(failure);
  }

  /** One failure of the run: wait and redial, or give up when the run is older than the window. */
  private scheduleRedial(failure: string, redialFailed = false): void {
    const decision = this.redialPolicy.failed(this.opts.now());
    if (redialFailed)
      this.opts.onRedialFailed?.(failure, decision.kind === "retry" ? decision.delayMs : undefined);
    if (decision.kind === "give-up") {
      this.close(`endpoint unreachable for ${Math.round(decision.failingForMs / 1000)} s: ${failure}`);
      return;
    }
    this.redialTimer = setTimeout(() => void this.redial(), decision.delayMs);
  }

  private async redial(): Promise<void> {
    if (this.state !== "reconnecting") return;
    let result: DialResult;
    try {
      result = await this.opts.redial();
    } catch (err) {
      this.opts.onError?.(err);
      result = { ok: false, code: "websocket_handshake_failed", description: String(err) };
    }
    if (this.state !== "reconnecting") {
      if (result.ok) result.ws.close(1000, "adapter closed");
      return;
    }
    if (result.ok) {
      this.reconnects++;
      this.opts.onReconnect?.(this.opts.now() - this.droppedAt);
      this.redialPolicy.connected(this.opts.now());
      this.attach(result.ws);
      this.flush(); // the backlog goes first; sequence numbers simply continue
      return;
    }
    this.scheduleRedial(result.description, true);
  }

  protected onClose(): void {
    clearTimeout(this.redialTimer);
    this.registration?.cancel();
    this.subscription?.close();
    this.pending = [];
    this.slots.clear();
    this.playout.close();
  }
}
