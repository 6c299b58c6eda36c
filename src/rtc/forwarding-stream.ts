import { RtpHeader } from "werift";
import { codecNameOf, isKeyframeStart, type VideoCodecName } from "../media/keyframe.ts";
import { selectLayer } from "../media/layer-selector.ts";
import { NackResponder } from "../media/nack-responder.ts";
import type { RtpPacket } from "../media/rtp.ts";
import { RtpMunger } from "../media/rtp-munger.ts";
import { type SenderReportInfo, SenderReportState } from "../media/sender-report.ts";
import { Vp8Munger } from "../media/vp8-munger.ts";
import type { Track } from "../sfu/track.ts";
import { EXT, FORWARDED_EXTENSIONS } from "./negotiation/header-extensions.ts";
import type {
  LayerPreference,
  SendStream,
  SendStreamHooks,
  SendStreamSpec,
  SendStreamStats,
} from "./peer-transport.ts";

/** Where a send stream writes: the transport's SRTP path. */
export interface RtpOutput {
  /** False when the transport cannot send yet (not connected). */
  send(header: RtpHeader, payload: Buffer): boolean;
  /** Monotonic ms (the media clock). */
  now(): number;
  /**
   * Native media plane: forward `packet` unchanged but for the stream's route (SSRC, payload type, extension
   * ids, mid) and the given numbers, inside the addon. False when this packet cannot go that way (then the
   * caller sends it through `send`).
   */
  forward?(packet: RtpPacket, seq: number, ts: number, stream: ForwardingSendStream): boolean;
}

/** What the addon needs to rewrite packets for one send stream (native/src/forward.h). */
export interface NativeRoute {
  ssrc: number;
  payloadType: number;
  /** 0: no mid extension. */
  midId: number;
  mid: string;
  /** Publisher extension id → subscriber id, 0 where the element is not forwarded. */
  extMap: Uint8Array;
}

/** A layer without packets for this long counts as stopped (the publisher dropped it for bandwidth). */
const LAYER_TIMEOUT_MS = 1000;
/** How often the target layer is re-evaluated and, while waiting for a switch, a keyframe re-requested. */
const RESELECT_MS = 250;
const REREQUEST_MS = 1000;

const DEFAULT_PREFERENCE: LayerPreference = { priorityOrdering: "none", ridNotAvailable: "none" };

/**
 * Forwards one track to one subscriber m-line: picks the simulcast layer (switching only at a keyframe of
 * the new layer), rewrites SSRC, sequence numbers, timestamps, payload type, header-extension ids and,
 * across VP8 layer switches, picture ids, so that the subscriber sees one continuous stream; answers
 * its NACKs from what it sent and passes its keyframe requests to the publisher. The packet handed in is
 * shared with every other subscriber and never modified.
 */
export class ForwardingSendStream implements SendStream {
  private readonly munger: RtpMunger;
  private readonly vp8: Vp8Munger | undefined;
  private readonly codec: VideoCodecName | undefined;
  private readonly responder = new NackResponder();
  private readonly sr = new SenderReportState();
  /**
   * What went out under each recent output sequence number, for NACKs: the number and timestamp in typed
   * arrays (no per-packet object survives to the old generation); the packet itself comes back from the
   * track's cache through the munger's inverse mapping. Rewritten VP8 payloads are the only bytes kept.
   */
  private readonly sentSeq: Int32Array;
  private readonly sentTs: Uint32Array;
  private readonly sentPayload: (Buffer | undefined)[] | undefined;
  private readonly midExtension: { id: number; payload: Buffer } | undefined;
  /** Publisher extension id → subscriber id (null: not forwarded). */
  private readonly extensionMap = new Map<number, number | null>();
  private preference: LayerPreference = DEFAULT_PREFERENCE;
  /** Layer being forwarded (undefined: none yet, or stopped). */
  private current: number | undefined;
  private target: number | undefined;
  private lastSelectMs = Number.NEGATIVE_INFINITY;
  private lastRequestMs = Number.NEGATIVE_INFINITY;
  private switchPending = false;
  /** When each simulcast layer last had a packet (the publisher stops layers it cannot afford). */
  private readonly layerSeen: number[];
  private closed = false;
  private readonly counters = {
    packetsSent: 0,
    bytesSent: 0,
    retransmitted: 0,
    notReady: 0,
    layerSwitches: 0,
    keyframeRequests: 0,
  };
  /**
   * The native plane's route for this stream (NativeTransport owns it; -1: not expressible natively). A field
   * rather than a map in the transport: it is read for every forwarded copy.
   */
  nativeRouteId: number | undefined;
  /** Latest receiver report about this stream (loss, jitter) for stats. */
  lastReport: { fractionLost: number; packetsLost: number; jitter: number } | undefined;

  constructor(
    readonly spec: SendStreamSpec,
    private readonly track: Track,
    private readonly output: RtpOutput,
    private readonly hooks: SendStreamHooks,
    private readonly onClose: () => void,
  ) {
    this.munger = new RtpMunger({ clockRate: spec.clockRate });
    this.codec = spec.kind === "video" ? codecNameOf(`video/${spec.codecName}`) : undefined;
    const simulcast = track.layers.length > 1;
    this.vp8 = simulcast && this.codec === "vp8" ? new Vp8Munger() : undefined;
    const size = spec.kind === "video" ? 1024 : 256;
    this.sentSeq = new Int32Array(size).fill(-1);
    this.sentTs = new Uint32Array(size);
    this.sentPayload = this.vp8 ? new Array(size) : undefined;
    const midId = spec.extensions.get(EXT.mid);
    this.midExtension = midId === undefined ? undefined : { id: midId, payload: Buffer.from(spec.mid) };
    this.layerSeen = new Array(Math.max(1, track.layers.length)).fill(Number.NEGATIVE_INFINITY);
    if (!simulcast) this.current = 0;
  }

  setLayerPreference(pref: LayerPreference): void {
    this.preference = { ...pref };
    this.lastSelectMs = Number.NEGATIVE_INFINITY;
  }

  // ---- TrackSink --------------------------------------------------------------------------------

  onPacket(packet: RtpPacket, track: Track, layer: number): void {
    if (this.closed) return;
    const now = this.output.now();
    if (track.layers.length > 1) {
      // A layer that (re)appears may be the one this subscriber wants: decide again at once.
      if (now - this.layerSeen[layer] >= LAYER_TIMEOUT_MS) this.lastSelectMs = Number.NEGATIVE_INFINITY;
      this.layerSeen[layer] = now;
      if (!this.admit(packet, layer, now)) return;
    }
    const h = packet.header;
    if (packet.payload.length === 0) {
      // Padding-only probes mean nothing to this receiver; the munger closes the sequence gap they leave.
      this.munger.map({
        sequenceNumber: h.sequenceNumber,
        timestamp: h.timestamp,
        layer,
        nowMs: now,
        dropped: true,
      });
      return;
    }
    const switched = this.switchPending;
    const out = this.munger.map({
      sequenceNumber: h.sequenceNumber,
      timestamp: h.timestamp,
      layer,
      nowMs: now,
    });
    if (!out) return;
    this.switchPending = false;
    if (!this.vp8 && this.output.forward?.(packet, out.sequenceNumber, out.timestamp, this)) {
      this.recordSent(out.sequenceNumber, out.timestamp, packet.payload, now);
      return;
    }
    const payload = this.vp8 ? Buffer.from(this.vp8.rewrite(packet.payload, { switched })) : packet.payload;
    const header = new RtpHeader({
      marker: h.marker,
      payloadType: this.spec.payloadType,
      sequenceNumber: out.sequenceNumber,
      timestamp: out.timestamp,
      ssrc: this.spec.ssrc,
      csrc: h.csrc,
      csrcLength: h.csrcLength,
      extensions: this.extensions(packet),
    });
    this.transmit(header, payload, now);
  }

  onTrackEnded(): void {
    this.close();
  }

  // ---- from the subscriber's RTCP -------------------------------------------------------------------

  onNack(lost: readonly number[]): void {
    if (this.closed) return;
    const now = this.output.now();
    const size = this.sentSeq.length;
    for (const seq of lost) {
      const i = seq % size;
      if (this.sentSeq[i] !== seq) continue;
      const src = this.munger.toSource(seq);
      const packet = src && this.track.cached(src.sequenceNumber, src.layer);
      if (!packet || !this.responder.shouldResend(seq, now)) continue;
      const payload = this.sentPayload?.[i] ?? packet.payload;
      const header = new RtpHeader({
        marker: packet.header.marker,
        payloadType: this.spec.payloadType,
        sequenceNumber: seq,
        timestamp: this.sentTs[i],
        ssrc: this.spec.ssrc,
        csrc: packet.header.csrc,
        csrcLength: packet.header.csrcLength,
        extensions: this.extensions(packet),
      });
      if (this.output.send(header, payload)) {
        this.counters.retransmitted++;
        this.hooks.onRetransmit?.();
        this.sr.onPacketSent(header.timestamp, payload.length, performance.timeOrigin + now);
      }
    }
  }

  onKeyframeRequest(): void {
    if (this.closed || this.spec.kind !== "video") return;
    this.counters.keyframeRequests++;
    this.track.requestKeyframe(this.current ?? this.target ?? 0);
  }

  onReceiverReport(r: { fractionLost: number; packetsLost: number; jitter: number }): void {
    this.lastReport = { fractionLost: r.fractionLost, packetsLost: r.packetsLost, jitter: r.jitter };
    if (!this.closed) this.track.reportReceiverLoss(this, r.fractionLost / 256);
  }

  /** Sender-report fields for this stream at a wall-clock time (Unix ms). */
  senderReport(wallMs: number): SenderReportInfo | undefined {
    return this.sr.report(wallMs, this.spec.clockRate);
  }

  stats(): SendStreamStats {
    const rid = this.current === undefined ? undefined : this.track.layers[this.current];
    return {
      packetsSent: this.counters.packetsSent,
      bytesSent: this.counters.bytesSent,
      retransmitted: this.counters.retransmitted,
      notReady: this.counters.notReady,
      currentRid: rid,
      layerSwitches: this.counters.layerSwitches,
      keyframeRequests: this.counters.keyframeRequests,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sentSeq.fill(-1);
    this.sentPayload?.fill(undefined);
    this.onClose();
  }

  // ---- internals --------------------------------------------------------------------------------------

  /** Simulcast: is this packet on the layer we forward (switching there at a keyframe)? */
  private admit(packet: RtpPacket, layer: number, now: number): boolean {
    if (now - this.lastSelectMs >= RESELECT_MS) this.reselect(now);
    if (layer === this.current && this.target === this.current) return true;
    if (layer === this.target && this.codec && isKeyframeStart(this.codec, packet.payload)) {
      if (this.current !== undefined) this.counters.layerSwitches++;
      this.current = layer;
      this.switchPending = true;
      return true;
    }
    if (
      this.target !== undefined &&
      this.target !== this.current &&
      now - this.lastRequestMs >= REREQUEST_MS
    ) {
      this.lastRequestMs = now;
      this.track.requestKeyframe(this.target);
    }
    // Until the target's keyframe arrives, the current layer keeps flowing.
    return layer === this.current;
  }

  private reselect(now: number): void {
    this.lastSelectMs = now;
    const active = this.layerSeen.map((t) => now - t < LAYER_TIMEOUT_MS);
    const target = selectLayer(this.track.layers, active, this.preference);
    if (target === this.target) return;
    this.target = target;
    if (target !== undefined && target !== this.current) {
      this.lastRequestMs = now;
      this.track.requestKeyframe(target);
    }
    if (target === undefined) this.current = undefined;
  }

  private transmit(header: RtpHeader, payload: Buffer, now: number): void {
    if (!this.output.send(header, payload)) {
      this.counters.notReady++;
      return;
    }
    this.recordSent(header.sequenceNumber, header.timestamp, payload, now);
  }

  private recordSent(seq: number, ts: number, payload: Buffer, now: number): void {
    const i = seq % this.sentSeq.length;
    this.sentSeq[i] = seq;
    this.sentTs[i] = ts;
    if (this.sentPayload) this.sentPayload[i] = payload;
    this.counters.packetsSent++;
    this.counters.bytesSent += payload.length;
    this.sr.onPacketSent(ts, payload.length, performance.timeOrigin + now);
  }

  /**
   * The rewrite of this stream for the addon: the same extension mapping as `extensions()`, for every id the
   * publisher may use. Undefined when the stream rewrites payloads (VP8 simulcast) or the one-byte extension
   * form cannot carry its ids.
   */
  nativeRoute(): NativeRoute | undefined {
    if (this.vp8) return undefined;
    const extMap = new Uint8Array(256);
    for (let id = 1; id < 256; id++) {
      const uri = this.track.extensionUri(id);
      const to = uri && FORWARDED_EXTENSIONS.includes(uri) ? this.spec.extensions.get(uri) : undefined;
      if (to === undefined) continue;
      if (to > 14) return undefined;
      extMap[id] = to;
    }
    const midId = this.spec.extensions.get(EXT.mid) ?? 0;
    if (midId > 14 || Buffer.byteLength(this.spec.mid) > 16) return undefined;
    return { ssrc: this.spec.ssrc, payloadType: this.spec.payloadType, midId, mid: this.spec.mid, extMap };
  }

  private extensions(packet: RtpPacket): { id: number; payload: Buffer }[] {
    const out: { id: number; payload: Buffer }[] = [];
    if (this.midExtension) out.push(this.midExtension);
    const src = packet.header.extensions;
    for (let i = 0; i < src.length; i++) {
      let id = this.extensionMap.get(src[i].id);
      if (id === undefined) {
        const uri = this.track.extensionUri(src[i].id);
        id = uri && FORWARDED_EXTENSIONS.includes(uri) ? (this.spec.extensions.get(uri) ?? null) : null;
        this.extensionMap.set(src[i].id, id);
      }
      if (id !== null) out.push({ id, payload: src[i].payload });
    }
    return out;
  }
}
