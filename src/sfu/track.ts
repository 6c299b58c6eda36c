import { PacketCache } from "../media/packet-cache.ts";
import type { RtpPacket } from "../media/rtp.ts";
import { Signal } from "../util/signal.ts";

/**
 * The seam every media path shares. A `Track` is a source of RTP packets with a clock; whoever
 * publishes it (a peer connection's receiver, an ingest adapter) calls `write()`. A `TrackSink`
 * consumes them (a peer connection's sender, an egress adapter). The forwarding code never asks which
 * kind of publisher or sink it is talking to.
 */
export type MediaKind = "audio" | "video";

export interface TrackCodec {
  mimeType: string; // e.g. "audio/opus"
  clockRate: number;
  channels?: number;
  /** Format parameters subscribers must be offered unchanged (H.264 profile, Opus options). */
  fmtp?: string;
  /** The publisher's payload type, reused for subscribers when free in their session. */
  payloadType?: number;
}

/** What a track needs from whoever publishes it. */
export interface TrackPublisher {
  /** Ask the publisher for a keyframe of one layer (video). Optional: audio publishers ignore it. */
  requestKeyframe?(layer: number): void;
  /** RTP header extension id → URI as negotiated with the publisher, for remapping. */
  extensionUri?(id: number): string | undefined;
  /** A subscriber (`from`, stable per subscriber) reported `fractionLost` (0..1) of this track's packets. */
  onReceiverLoss?(from: unknown, fractionLost: number): void;
}

export interface TrackSink {
  /**
   * Called for every packet in arrival order. The packet is shared: never mutate it. `layer` is the
   * simulcast layer (index into `track.layers`), 0 for a track without layers.
   */
  onPacket(packet: RtpPacket, track: Track, layer: number): void;
  /** The track ended (closed by its publisher, its session, or the API). Called once. */
  onTrackEnded(track: Track, reason: string): void;
}

export const OPUS: TrackCodec = { mimeType: "audio/opus", clockRate: 48000, channels: 2 };

export class Subscription {
  private closed = false;
  constructor(
    readonly track: Track,
    readonly sink: TrackSink,
    private readonly detach: (s: Subscription) => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop receiving packets. Idempotent; does not call `onTrackEnded`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach(this);
  }
}

export interface TrackInit {
  sessionId: string;
  name: string;
  kind: MediaKind;
  codec?: TrackCodec;
  publisher: TrackPublisher;
  /** Simulcast rids in the publisher's order; absent or empty for one stream. */
  layers?: string[];
  cacheSize?: number;
  onSinkError?: (err: unknown) => void;
}

export class Track {
  readonly sessionId: string;
  readonly name: string;
  readonly kind: MediaKind;
  codec: TrackCodec | undefined;
  readonly closed = new Signal<string>();
  packetsIn = 0;
  bytesIn = 0;
  /** Packets × subscribers delivered. */
  packetsOut = 0;
  /** Simulcast rids (layer index = position); empty for a track with one stream. */
  readonly layers: readonly string[];
  private endReason: string | undefined;
  private sinks: Subscription[] = [];
  private readonly caches: PacketCache[];
  private readonly publisher: TrackPublisher;
  private readonly onSinkError: (err: unknown) => void;

  constructor(init: TrackInit) {
    this.sessionId = init.sessionId;
    this.name = init.name;
    this.kind = init.kind;
    this.codec = init.codec;
    this.publisher = init.publisher;
    this.layers = init.layers ?? [];
    const layerCount = Math.max(1, this.layers.length);
    const size = init.cacheSize ?? (init.kind === "video" ? 1024 : 256);
    this.caches = Array.from({ length: layerCount }, () => new PacketCache(size));
    this.onSinkError = init.onSinkError ?? (() => {});
  }

  get ended(): boolean {
    return this.endReason !== undefined;
  }

  get reason(): string | undefined {
    return this.endReason;
  }

  get subscriberCount(): number {
    return this.sinks.length;
  }

  /** Publish one packet to every subscriber. The track keeps a reference for NACKs: do not reuse it. */
  write(packet: RtpPacket, layer = 0): void {
    if (this.endReason !== undefined) return;
    const cache = this.caches[layer];
    if (cache === undefined) return;
    this.packetsIn++;
    this.bytesIn += packet.payload.length;
    cache.put(packet);
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) {
      try {
        sinks[i].sink.onPacket(packet, this, layer);
        this.packetsOut++;
      } catch (err) {
        this.onSinkError(err);
      }
    }
  }

  /** A recent packet of one layer by its source sequence number (for NACK answers). */
  cached(sequenceNumber: number, layer = 0): RtpPacket | undefined {
    return this.caches[layer]?.get(sequenceNumber);
  }

  extensionUri(id: number): string | undefined {
    return this.publisher.extensionUri?.(id);
  }

  /** A subscriber's receiver report about this track: passed to the publisher (adaptive FEC). */
  reportReceiverLoss(from: unknown, fractionLost: number): void {
    if (this.endReason === undefined) this.publisher.onReceiverLoss?.(from, fractionLost);
  }

  requestKeyframe(layer = 0): void {
    if (this.endReason === undefined) this.publisher.requestKeyframe?.(layer);
  }

  subscribe(sink: TrackSink): Subscription {
    const sub = new Subscription(this, sink, (s) => {
      this.sinks = this.sinks.filter((x) => x !== s);
    });
    if (this.endReason !== undefined) {
      // Subscribing to an ended track is a no-op that immediately reports the end.
      sub.close();
      sink.onTrackEnded(this, this.endReason);
      return sub;
    }
    // Copy-on-write keeps write() iterating over a stable array while sinks come and go.
    this.sinks = [...this.sinks, sub];
    return sub;
  }

  /** End the track for every subscriber. Idempotent. */
  close(reason: string): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    const sinks = this.sinks;
    this.sinks = [];
    for (const s of sinks) {
      s.close();
      try {
        s.sink.onTrackEnded(this, reason);
      } catch (err) {
        this.onSinkError(err);
      }
    }
    for (const c of this.caches) c.clear();
    this.closed.emit(reason);
    this.closed.clear();
  }
}
