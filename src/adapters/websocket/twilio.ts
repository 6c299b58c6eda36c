import { createHmac, randomBytes } from "node:crypto";
import type WebSocket from "ws";
import type { AdapterAudioFormat } from "../../media/audio-format.ts";
import { FromWireConverter } from "../../media/format-converter.ts";
import { PlayoutDecoder } from "../../media/playout-decoder.ts";
import type { MarkResult } from "../../media/playout-marks.ts";
import type { RtpPacket } from "../../media/rtp.ts";
import type { MediaScheduler, Registration } from "../../media/scheduler.ts";
import type { Session } from "../../sfu/session.ts";
import type { Subscription, Track, TrackSink } from "../../sfu/track.ts";
import type { AdapterDirection, AdapterStatus } from "./adapter.ts";
import { type ControlMessage, IngestAdapter, type IngestOptions } from "./ingest.ts";
import { SlotsAfterIo } from "./slots-after-io.ts";

// The Twilio Media Streams dialect (`"dialect": "twilio"`, issue 14): Patchbay plays Twilio's part of a
// bidirectional <Connect><Stream>, so a bot written for Twilio joins a WebRTC call unchanged. One socket:
// - to the bot: `connected`, `start` (stream metadata, µ-law 8 kHz mono), `media` every 20 ms with the
//   source track's audio as base64 µ-law, `mark` when audio before a bot's mark has played (or was
//   cleared), `stop` when the adapter ends;
// - from the bot: `media` (base64 µ-law 8 kHz, any chunking) into the reply track, `mark`, `clear`.
// Message shapes follow Twilio's published "Media Streams WebSocket messages". `dtmf` is never sent: a
// WebRTC track here carries no telephone-events.

export const TWILIO_FORMAT: AdapterAudioFormat = { encoding: "pcmu", sampleRate: 8000, channels: 1 };

export interface TwilioOptions extends IngestOptions {
  /** The WebRTC track the bot hears (Twilio's "inbound" track). */
  source: Track;
  /** Reorder and conceal the source (default), or pass packets through (--no-egress-reorder, as for egress). */
  reorder: boolean;
  /** Sent in `start.customParameters` (Twilio's <Parameter> elements). */
  customParameters: Record<string, string>;
  /** Socket buffer above which outbound media frames are dropped (default ≈ 1 s of messages). */
  sendHighWaterBytes?: number;
  /** The first message the bot sent that the protocol does not allow (it is ignored, as Twilio does). */
  onIgnored?(what: string): void;
  /** An outbound frame was dropped because the bot reads too slowly. */
  onDrop?(frames: number): void;
}

/**
 * Twilio's request signature (X-Twilio-Signature): base64 HMAC-SHA1 of the URL, keyed with the account's auth
 * token (no POST parameters on a WebSocket handshake). A bot that validates Twilio's connections with
 * `validateRequest(authToken, signature, url, {})` accepts ours.
 */
export function twilioSignature(authToken: string, url: string): string {
  return createHmac("sha1", authToken).update(url).digest("base64");
}

/** Twilio-style ids: a two-letter prefix and 32 hex digits. */
function sid(prefix: string): string {
  return prefix + randomBytes(16).toString("hex");
}

/** ≈ 1 s of outbound media messages (a 20 ms µ-law chunk is ≈ 300 bytes of JSON). */
const DEFAULT_HIGH_WATER = 50 * 320;

export class TwilioAdapter extends IngestAdapter implements TrackSink {
  override readonly direction: AdapterDirection = "bidirectional";
  readonly streamSid = sid("MZ");
  readonly callSid = sid("CA");
  readonly accountSid = sid("AC");
  /** sequenceNumber of the messages we send (Twilio counts from "1" at `start`). */
  private sequence = 0;
  private chunk = 0;
  private readonly playout: PlayoutDecoder;
  private readonly toBot = new FromWireConverter(TWILIO_FORMAT);
  private subscription: Subscription | undefined;
  private outbound: Registration | undefined;
  private readonly slots = new SlotsAfterIo(
    (slotMs) => this.playOut(slotMs),
    () => this.state !== "closed",
    () => {},
  );
  outFrames = 0;
  outDroppedFrames = 0;

  constructor(
    id: string,
    replyTrackName: string,
    endpoint: string,
    session: Session,
    private readonly twilio: TwilioOptions,
  ) {
    super(id, replyTrackName, endpoint, session, { ...twilio, format: TWILIO_FORMAT, control: "twilio" });
    this.playout = new PlayoutDecoder({ reorder: twilio.reorder });
  }

  override start(ws: WebSocket, scheduler: MediaScheduler): void {
    // The greeting goes before anything is read: Twilio's order is connected, start, then media.
    ws.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    this.send(
      {
        event: "start",
        start: {
          accountSid: this.accountSid,
          streamSid: this.streamSid,
          callSid: this.callSid,
          tracks: ["inbound"],
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
          customParameters: this.twilio.customParameters,
        },
      },
      ws,
    );
    super.start(ws, scheduler);
    this.subscription = this.twilio.source.subscribe(this);
    // Subscribing to a track that just ended closes us at once.
    if (this.isOpen())
      this.outbound = scheduler.register({ tick: (_slot, slotMs) => this.slots.add(slotMs) });
  }

  override status(): AdapterStatus {
    return {
      ...super.status(),
      dialect: "twilio",
      sourceSessionId: this.twilio.source.sessionId,
      sourceTrackName: this.twilio.source.name,
      framesToEndpoint: this.outFrames,
      droppedFrames: this.outDroppedFrames,
    };
  }

  private isOpen(): boolean {
    return this.state !== "closed";
  }

  // ---- from the bot -----------------------------------------------------------------------------

  /**
   * As Twilio does (its warnings 31950 and 31924 do not end a call), a message the protocol does not allow
   * is ignored and counted, and the first one logged: a bot written for Twilio never loses its call to us
   * over something Twilio would have let pass. A flood is paced by the link core's message rate.
   */
  protected override onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === "closed") return;
    this.messages++;
    const ignored = this.handle(data, isBinary);
    if (ignored !== undefined) this.ignore(ignored);
  }

  /** Acts on one message; returns why it was ignored, if it was. */
  private handle(data: Buffer, isBinary: boolean): string | undefined {
    if (isBinary) return "a binary message (Twilio's messages are JSON text)";
    let msg: ControlMessage;
    try {
      msg = JSON.parse(data.toString("utf8"));
    } catch {
      return `text that is not JSON (${data.length} bytes)`;
    }
    if (typeof msg !== "object" || msg === null) return "JSON that is not an object";
    if (typeof msg.streamSid === "string" && msg.streamSid !== this.streamSid)
      return "a message for another streamSid";
    if (msg.event === "media") {
      const payload = msg.media?.payload;
      if (typeof payload !== "string") return "a media message without media.payload";
      const audio = Buffer.from(payload, "base64");
      // An empty chunk is nothing to play; in Patchbay's own protocol it would end a segment.
      if (audio.length > 0) this.pushAudio(audio);
      return undefined;
    }
    if (msg.event === "mark") {
      const name = msg.mark?.name;
      if (typeof name !== "string" || name.length === 0 || name.length > 256)
        return "a mark without mark.name (a string of 1 to 256 characters)";
      this.addMark(name);
      return undefined;
    }
    if (msg.event === "clear") {
      this.clearQueued();
      return undefined;
    }
    return `an unknown event ${JSON.stringify(msg.event)?.slice(0, 40)}`;
  }

  private ignore(what: string): void {
    this.textMessagesIgnored++;
    if (this.textMessagesIgnored === 1) this.twilio.onIgnored?.(what);
  }

  /** Twilio reports every mark the same way, played or cleared: a `mark` message naming it. */
  protected override sendMark(m: MarkResult): void {
    this.send({ event: "mark", mark: { name: m.name } });
  }

  protected override reportCleared(_frames: number, cleared: MarkResult[]): void {
    for (const m of cleared) this.sendMark(m);
  }

  // ---- to the bot ---------------------------------------------------------------------------------

  onPacket(packet: RtpPacket): void {
    if (this.state !== "closed") this.playout.push(packet, this.twilio.now());
  }

  onTrackEnded(_track: Track, reason: string): void {
    this.close(`source track ended (${reason})`);
  }

  private playOut(slotMs: number): void {
    this.playout.pop(slotMs, (f) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > (this.twilio.sendHighWaterBytes ?? DEFAULT_HIGH_WATER)) {
        this.outDroppedFrames++;
        this.twilio.onDrop?.(1);
        return;
      }
      const bytes = this.toBot.convert(f.pcm);
      this.chunk++;
      this.send({
        event: "media",
        media: {
          track: "inbound",
          chunk: String(this.chunk),
          timestamp: String((this.chunk - 1) * 20),
          payload: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
        },
      });
      this.outFrames++;
    });
  }

  /** One message to the bot, numbered and tagged with the stream as Twilio does. */
  private send(body: Record<string, unknown>, socket = this.ws): void {
    if (!socket || socket.readyState !== socket.OPEN) return;
    this.sequence++;
    socket.send(
      JSON.stringify({ ...body, sequenceNumber: String(this.sequence), streamSid: this.streamSid }),
    );
  }

  protected override farewell(ws: WebSocket): void {
    this.send({ event: "stop", stop: { accountSid: this.accountSid, callSid: this.callSid } }, ws);
  }

  protected override onClose(reason: string): void {
    super.onClose(reason);
    this.outbound?.cancel();
    this.subscription?.close();
    this.slots.clear();
    this.playout.close();
  }
}
