import { randomInt } from "node:crypto";
import {
  GenericNack,
  PictureLossIndication,
  ReceiverEstimatedMaxBitrate,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
} from "werift";
import { codecNameOf, isKeyframeStart } from "../media/keyframe.ts";
import { KeyframeRequester } from "../media/keyframe-requester.ts";
import { NackGenerator } from "../media/nack-generator.ts";
import { ReceiveStatistics } from "../media/receive-statistics.ts";
import type { RtpHeader, RtpPacket } from "../media/rtp.ts";
import { RtpDemuxer } from "../media/rtp-demuxer.ts";
import type { Clock } from "../media/scheduler.ts";
import { ntpMiddle32, RtcpIntervals } from "../media/sender-report.ts";
import type { Track } from "../sfu/track.ts";
import { Signal } from "../util/signal.ts";
import { ForwardingSendStream, type RtpOutput } from "./forwarding-stream.ts";
import { EXT } from "./negotiation/header-extensions.ts";
import type { LocalTransportParameters } from "./negotiation/sdp-writer.ts";
import type {
  InboundRtpHandler,
  PeerTransport,
  ReceiveStreamSpec,
  RemoteTransportParameters,
  SendStream,
  SendStreamHooks,
  SendStreamSpec,
  TransportState,
  TransportStats,
} from "./peer-transport.ts";
import type { RtcpDriver, RtcpTickable } from "./rtcp-driver.ts";

/** What every media plane's transport is given. */
export interface RtpTransportOptions {
  /** Runs every transport's RTCP housekeeping on the shared media clock. */
  rtcp: RtcpDriver;
  /** Monotonic ms (the scheduler's clock). */
  clock: Clock;
  /** The bitrate cap announced to video publishers by REMB (bits/s). */
  maxPublishBitrate: number;
  /** No inbound packet (media or STUN consent checks) for this long: the transport is "disconnected". */
  livenessTimeoutMs: number;
  onError(err: unknown, context: string): void;
}

/** One inbound SSRC: receiver-report statistics and, for video, loss recovery. */
interface InboundSsrc {
  ssrc: number;
  mid: string;
  layer: number;
  stats: ReceiveStatistics;
  nack: NackGenerator | undefined;
  clockRate: number;
}

/**
 * The RTP session half of a transport, the same on every media plane: demultiplexing inbound RTP to
 * m-lines and layers, receive statistics, NACK generation, keyframe requests, the RTCP a peer sends
 * (reports, NACK, PLI/FIR) and the RTCP Patchbay sends (RR, SR, REMB), and forwarding to send streams.
 * A subclass moves the bytes: ICE, DTLS, SRTP and the socket (werift-transport.ts, native-transport.ts).
 */
export abstract class RtpTransportBase implements PeerTransport, RtcpTickable {
  readonly stateChanged = new Signal<TransportState>();
  state: TransportState = "new";
  abstract readonly ready: Promise<LocalTransportParameters>;
  private readonly demuxer = new RtpDemuxer();
  private receivers = new Map<string, ReceiveStreamSpec>();
  private onInbound: InboundRtpHandler = () => {};
  private readonly inbound = new Map<number, InboundSsrc>();
  private readonly sendStreams = new Set<ForwardingSendStream>();
  /** Keyframe requests to the peer, coalesced per publishing m-line and layer. */
  private readonly keyframes = new Map<string, KeyframeRequester>();
  protected readonly rtcpSsrc = randomInt(1, 0xffff_ffff);
  private readonly rrInterval = new RtcpIntervals({ media: "video" });
  private readonly srInterval = new RtcpIntervals({ media: "video" });
  protected readonly counters = {
    packetsReceived: 0,
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    nacksSent: 0,
    keyframeRequestsSent: 0,
  };

  constructor(protected readonly base: RtpTransportOptions) {}

  abstract start(remote: RemoteTransportParameters): void;
  abstract close(): void;
  /** Encrypts and sends one RTP packet; false when the transport cannot send yet. */
  protected abstract writeRtp(header: RtpHeader, payload: Buffer): boolean;
  protected abstract writeRtcp(packets: RtcpPacket[]): void;
  /** Ms since anything valid arrived from the peer (liveness). */
  protected abstract msSinceInbound(now: number): number;

  /**
   * A media plane that forwards inside its addon queues `packet` (the one a receive batch is delivering)
   * for `stream` with these numbers; false sends it through writeRtp instead.
   */
  protected forwardRtp(
    _packet: RtpPacket,
    _seq: number,
    _ts: number,
    _stream: ForwardingSendStream,
  ): boolean {
    return false;
  }

  /** A send stream closed (subclasses release what they keep for it). */
  protected sendStreamClosed(_stream: ForwardingSendStream): void {}

  setReceiveStreams(specs: ReceiveStreamSpec[], onPacket: InboundRtpHandler): void {
    this.receivers = new Map(specs.map((s) => [s.mid, s]));
    this.onInbound = onPacket;
    this.demuxer.setStreams(
      specs.map((s) => ({
        mid: s.mid,
        payloadTypes: s.payloadTypes,
        ssrcs: s.ssrcs,
        rids: s.rids,
        midExtensionId: s.extensions.get(EXT.mid),
        ridExtensionId: s.extensions.get(EXT.rid),
      })),
    );
    for (const [ssrc, inbound] of this.inbound)
      if (!this.receivers.has(inbound.mid)) this.inbound.delete(ssrc);
    for (const mid of this.keyframes.keys()) if (!this.receivers.has(mid)) this.keyframes.delete(mid);
  }

  createSendStream(spec: SendStreamSpec, track: Track, hooks: SendStreamHooks = {}): SendStream {
    const output: RtpOutput = {
      send: (header, payload) => this.sendRtp(header, payload),
      now: () => this.base.clock.now(),
      forward: (packet, seq, ts, s) => {
        if (this.state === "closed" || !this.forwardRtp(packet, seq, ts, s)) return false;
        this.counters.packetsSent++;
        this.counters.bytesSent += packet.payload.length + 12;
        return true;
      },
    };
    const stream = new ForwardingSendStream(spec, track, output, hooks, () => {
      this.sendStreams.delete(stream);
      this.sendStreamClosed(stream);
    });
    this.sendStreams.add(stream);
    return stream;
  }

  requestKeyframe(mid: string, layer: number): void {
    if (!this.receivers.has(mid)) return;
    let requester = this.keyframes.get(mid);
    if (!requester) {
      requester = new KeyframeRequester();
      this.keyframes.set(mid, requester);
    }
    if (requester.request(this.base.clock.now(), layer)) this.sendPli(mid, layer);
    else this.base.rtcp.wake(this);
  }

  stats(): TransportStats {
    return { state: this.state, ...this.counters };
  }

  /** Closes the send streams and stops the RTCP housekeeping; subclasses release their sockets. */
  protected closeStreams(): void {
    this.setState("closed");
    this.base.rtcp.remove(this);
    for (const s of [...this.sendStreams]) s.close();
    this.stateChanged.clear();
  }

  // ---- inbound ------------------------------------------------------------------------------------

  protected onRtp(packet: RtpPacket): void {
    this.counters.packetsReceived++;
    this.counters.bytesReceived += packet.payload.length + 12;
    const header = packet.header;
    const target =
      this.demuxer.routeKnown(header.ssrc, header.payloadType) ??
      this.demuxer.route({
        ssrc: header.ssrc,
        payloadType: header.payloadType,
        extension: (id) => {
          const exts = header.extensions;
          for (let i = 0; i < exts.length; i++) if (exts[i].id === id) return exts[i].payload;
          return undefined;
        },
      });
    if (!target) return;
    const spec = this.receivers.get(target.mid);
    if (!spec) return;
    const now = this.base.clock.now();
    let inbound = this.inbound.get(header.ssrc);
    if (!inbound || inbound.mid !== target.mid) {
      inbound = {
        ssrc: header.ssrc,
        mid: target.mid,
        layer: target.layer,
        stats: new ReceiveStatistics(header.ssrc),
        nack: spec.kind === "video" ? new NackGenerator() : undefined,
        clockRate: spec.clockRate,
      };
      this.inbound.set(header.ssrc, inbound);
    }
    inbound.stats.onPacket(
      header.sequenceNumber,
      header.timestamp,
      now,
      spec.clockRate,
      packet.payload.length,
    );
    if (inbound.nack) {
      inbound.nack.onPacket(header.sequenceNumber, now);
      if (inbound.nack.missingCount > 0) this.base.rtcp.wake(this);
    }
    const requester = this.keyframes.size > 0 ? this.keyframes.get(target.mid) : undefined;
    if (requester?.pending(target.layer)) {
      const codec = codecNameOf(`video/${spec.codecName}`);
      if (codec && isKeyframeStart(codec, packet.payload)) requester.onKeyframe(target.layer);
    }
    this.onInbound(target.mid, target.layer, packet);
  }

  protected onRtcp(packet: RtcpPacket): void {
    const now = this.base.clock.now();
    if (packet instanceof RtcpSrPacket) {
      const inbound = this.inbound.get(packet.ssrc);
      inbound?.stats.onSenderReport(ntpMiddle32(packet.senderInfo.ntpTimestamp), now);
      for (const r of packet.reports) this.forStream(r.ssrc, (s) => s.onReceiverReport(r));
    } else if (packet instanceof RtcpRrPacket) {
      for (const r of packet.reports) this.forStream(r.ssrc, (s) => s.onReceiverReport(r));
    } else if (packet instanceof RtcpTransportLayerFeedback) {
      const fb = packet.feedback;
      if (fb instanceof GenericNack) this.forStream(fb.mediaSourceSsrc, (s) => s.onNack(fb.lost));
    } else if (packet instanceof RtcpPayloadSpecificFeedback) {
      const fb = packet.feedback;
      if (fb instanceof PictureLossIndication) this.forStream(fb.mediaSsrc, (s) => s.onKeyframeRequest());
      else if (!(fb instanceof ReceiverEstimatedMaxBitrate)) {
        // FIR: the media SSRC is in each FCI entry.
        const entries = (fb as { fir?: { ssrc: number }[] }).fir ?? [];
        for (const e of entries) this.forStream(e.ssrc, (s) => s.onKeyframeRequest());
      }
    }
  }

  private forStream(ssrc: number, fn: (s: ForwardingSendStream) => void): void {
    for (const s of this.sendStreams) if (s.spec.ssrc === ssrc) fn(s);
  }

  // ---- outbound ---------------------------------------------------------------------------------

  private sendRtp(header: RtpHeader, payload: Buffer): boolean {
    if (this.state === "closed" || !this.writeRtp(header, payload)) return false;
    this.counters.packetsSent++;
    this.counters.bytesSent += payload.length + 12;
    return true;
  }

  private sendPli(mid: string, layer: number): void {
    const ssrc = this.demuxer.ssrcOf(mid, layer);
    if (ssrc === undefined) return;
    this.counters.keyframeRequestsSent++;
    this.writeRtcp([
      new RtcpPayloadSpecificFeedback({
        feedback: new PictureLossIndication({ senderSsrc: this.rtcpSsrc, mediaSsrc: ssrc }),
      }),
    ]);
  }

  /**
   * Housekeeping on the shared media clock (RtcpDriver): NACKs and deferred PLIs when due, reports about
   * once a second. Returns true while loss is being recovered or a PLI waits (keep the 20 ms cadence).
   */
  rtcpTick(now: number): boolean {
    if (this.state !== "connected" && this.state !== "disconnected") return false;
    const quiet = this.msSinceInbound(now);
    if (quiet > this.base.livenessTimeoutMs && this.state === "connected") this.setState("disconnected");
    else if (quiet <= this.base.livenessTimeoutMs && this.state === "disconnected")
      this.setState("connected");
    const feedback: RtcpPacket[] = [];
    for (const inbound of this.inbound.values()) {
      if (!inbound.nack || (inbound.nack.missingCount === 0 && !inbound.nack.keyframeNeeded)) continue;
      const lost = inbound.nack.poll(now);
      if (lost.length > 0) {
        this.counters.nacksSent++;
        feedback.push(
          new RtcpTransportLayerFeedback({
            feedback: new GenericNack({ senderSsrc: this.rtcpSsrc, mediaSourceSsrc: inbound.ssrc, lost }),
          }),
        );
      }
      if (inbound.nack.takeKeyframeNeeded()) this.requestKeyframe(inbound.mid, inbound.layer);
    }
    for (const [mid, requester] of this.keyframes)
      for (const layer of requester.poll(now)) this.sendPli(mid, layer);
    if (this.rrInterval.due(now)) feedback.push(...this.receiverReports(now));
    if (feedback.length > 0) this.writeRtcp(feedback);
    if (this.srInterval.due(now)) {
      const wall = performance.timeOrigin + now;
      const reports: RtcpPacket[] = [];
      for (const s of this.sendStreams) {
        const info = s.senderReport(wall);
        if (info)
          reports.push(
            new RtcpSrPacket({
              ssrc: s.spec.ssrc,
              senderInfo: new RtcpSenderInfo({
                ntpTimestamp: info.ntpTimestamp,
                rtpTimestamp: info.rtpTimestamp,
                packetCount: info.packetCount,
                octetCount: info.octetCount,
              }),
            }),
          );
      }
      for (let i = 0; i < reports.length; i += 8) this.writeRtcp(reports.slice(i, i + 8));
    }
    for (const inbound of this.inbound.values())
      if (inbound.nack && inbound.nack.missingCount > 0) return true;
    for (const requester of this.keyframes.values()) if (requester.hasPending) return true;
    return false;
  }

  private receiverReports(now: number): RtcpPacket[] {
    const blocks: RtcpReceiverInfo[] = [];
    const videoSsrcs: number[] = [];
    for (const inbound of this.inbound.values()) {
      const b = inbound.stats.reportBlock(now);
      if (b) blocks.push(new RtcpReceiverInfo(b));
      if (inbound.nack) videoSsrcs.push(inbound.ssrc);
    }
    const out: RtcpPacket[] = [];
    for (let i = 0; i < blocks.length; i += 31)
      out.push(new RtcpRrPacket({ ssrc: this.rtcpSsrc, reports: blocks.slice(i, i + 31) }));
    if (videoSsrcs.length > 0) {
      // Patchbay does not estimate bandwidth yet: like Janus, it announces its configured cap so that
      // browsers ramp video up quickly; their loss-based controller still backs off on loss.
      out.push(
        new RtcpPayloadSpecificFeedback({
          feedback: new ReceiverEstimatedMaxBitrate({
            senderSsrc: this.rtcpSsrc,
            mediaSsrc: 0,
            bitrate: BigInt(this.base.maxPublishBitrate),
            ssrcFeedbacks: videoSsrcs,
          }),
        }),
      );
    }
    return out;
  }

  // ---- helpers ------------------------------------------------------------------------------------

  protected guard(context: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.base.onError(err, context);
    }
  }

  protected setState(state: TransportState): void {
    if (this.state === state || this.state === "closed") return;
    this.state = state;
    this.stateChanged.emit(state);
  }
}
