import { randomInt } from "node:crypto";
import {
  GenericNack,
  IceCandidate,
  PictureLossIndication,
  ReceiverEstimatedMaxBitrate,
  RTCDtlsFingerprint,
  RTCDtlsParameters,
  RTCDtlsTransport,
  RTCIceGatherer,
  RTCIceParameters,
  RTCIceTransport,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  type RtpHeader,
  type RtpPacket,
} from "werift";
import { codecNameOf, isKeyframeStart } from "../media/keyframe.ts";
import { KeyframeRequester } from "../media/keyframe-requester.ts";
import { NackGenerator } from "../media/nack-generator.ts";
import { ReceiveStatistics } from "../media/receive-statistics.ts";
import { RtpDemuxer } from "../media/rtp-demuxer.ts";
import type { Clock } from "../media/scheduler.ts";
import { ntpMiddle32, RtcpIntervals } from "../media/sender-report.ts";
import type { Track } from "../sfu/track.ts";
import { Signal } from "../util/signal.ts";
import { applyCandidatePolicy, type CandidatePolicy } from "./candidates.ts";
import { replayEarlyDtls } from "./early-dtls.ts";
import { ForwardingSendStream, type RtpOutput } from "./forwarding-stream.ts";
import { EXT } from "./negotiation/header-extensions.ts";
import type { LocalCandidate, LocalTransportParameters } from "./negotiation/sdp-writer.ts";
import type {
  InboundRtpHandler,
  PeerTransport,
  PeerTransportOptions,
  ReceiveStreamSpec,
  RemoteTransportParameters,
  SendStream,
  SendStreamHooks,
  SendStreamSpec,
  TransportState,
  TransportStats,
} from "./peer-transport.ts";
import type { RtcpDriver, RtcpTickable } from "./rtcp-driver.ts";

/** Everything the werift media plane needs to know about the network. */
export interface RtcOptions {
  /** Address the UDP sockets bind to; "0.0.0.0" = every interface (loopback included). */
  listenIp: string;
  announcedIp?: string;
  portRange?: [number, number];
}

export interface WeriftTransportOptions {
  rtc: RtcOptions;
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

const SRTP_PROFILES: (1 | 7)[] = [7 /* AEAD_AES_128_GCM */, 1 /* AES128_CM_HMAC_SHA1_80 */];

/**
 * ICE-lite + DTLS-SRTP over werift's transport classes (no RTCPeerConnection: the SDP is Patchbay's own),
 * with Patchbay's demultiplexing, RTCP (receiver reports, NACKs, PLI, REMB, sender reports) and forwarding.
 */
export class WeriftTransport implements PeerTransport, RtcpTickable {
  readonly stateChanged = new Signal<TransportState>();
  state: TransportState = "new";
  readonly ready: Promise<LocalTransportParameters>;
  private readonly gatherer: RTCIceGatherer;
  private readonly ice: RTCIceTransport;
  private dtls: RTCDtlsTransport | undefined;
  private started = false;
  private closing = false;
  private readonly demuxer = new RtpDemuxer();
  private receivers = new Map<string, ReceiveStreamSpec>();
  private onInbound: InboundRtpHandler = () => {};
  private readonly inbound = new Map<number, InboundSsrc>();
  private readonly sendStreams = new Set<ForwardingSendStream>();
  /** Keyframe requests to the peer, coalesced per publishing m-line and layer. */
  private readonly keyframes = new Map<string, KeyframeRequester>();
  private readonly rtcpSsrc = randomInt(1, 0xffff_ffff);
  private readonly rrInterval = new RtcpIntervals({ media: "video" });
  private readonly srInterval = new RtcpIntervals({ media: "video" });
  private lastInboundMs: number;
  private readonly disposers: (() => void)[] = [];
  private readonly counters = {
    packetsReceived: 0,
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    nacksSent: 0,
    keyframeRequestsSent: 0,
  };

  constructor(
    private readonly opts: WeriftTransportOptions,
    private readonly mode: PeerTransportOptions = { iceLite: true },
  ) {
    const any = opts.rtc.listenIp === "0.0.0.0";
    const loopback = opts.rtc.listenIp.startsWith("127.");
    this.gatherer = new RTCIceGatherer({
      // ICE-lite: no gathering against STUN servers, no outbound checks; we learn the peer from its checks.
      // Full ICE (thirdparty sessions) gathers the same host candidates and checks the peer's.
      iceLite: mode.iceLite,
      useIpv4: true,
      useIpv6: false,
      portRange: opts.rtc.portRange,
      // werift skips loopback unless told about it explicitly.
      additionalHostAddresses: any ? ["127.0.0.1"] : loopback ? [opts.rtc.listenIp] : undefined,
      interfaceAddresses: any ? undefined : { udp4: opts.rtc.listenIp },
    });
    this.ice = new RTCIceTransport(this.gatherer);
    this.ice.connection.iceControlling = false;
    this.lastInboundMs = opts.clock.now();
    const onData = this.ice.connection.onData.subscribe(() => {
      this.lastInboundMs = this.opts.clock.now();
      if (this.state === "disconnected") this.setState("connected");
    });
    this.disposers.push(() => onData.unSubscribe());
    this.ready = this.prepare();
    // Nobody may be waiting yet; a failure is reported through `ready` and the state.
    this.ready.catch(() => this.setState("failed"));
  }

  private async prepare(): Promise<LocalTransportParameters> {
    const certificate = await RTCDtlsTransport.SetupCertificate();
    await this.gatherer.gather();
    if (this.isClosed) {
      // close() ran while the sockets were being bound: they exist only now.
      await this.ice.stop().catch(() => {});
      throw new Error("transport closed while gathering");
    }
    const candidates = this.gatherer.localCandidates.filter((c) => c.protocol === "udp");
    if (candidates.length === 0) throw new Error("no UDP port could be bound for this session");
    const dtls = new RTCDtlsTransport({}, this.ice, certificate, SRTP_PROFILES);
    this.dtls = dtls;
    const policy: CandidatePolicy = {
      listenIp: this.opts.rtc.listenIp === "0.0.0.0" ? undefined : this.opts.rtc.listenIp,
      announcedIp: this.opts.rtc.announcedIp,
    };
    const local: LocalCandidate[] = applyCandidatePolicy(
      candidates.map((c) => ({ foundation: c.foundation, priority: c.priority, ip: c.ip, port: c.port })),
      policy,
    );
    const fp =
      certificate.getFingerprints().find((f) => f.algorithm === "sha-256") ??
      certificate.getFingerprints()[0];
    const params = this.ice.localParameters;
    return {
      iceLite: this.mode.iceLite,
      iceUfrag: params.usernameFragment,
      icePwd: params.password,
      fingerprint: { algorithm: fp.algorithm, value: fp.value },
      candidates: local,
    };
  }

  start(remote: RemoteTransportParameters): void {
    if (this.state === "closed") return;
    void this.ready.then(
      () => this.applyRemote(remote),
      () => {},
    );
  }

  private applyRemote(remote: RemoteTransportParameters): void {
    const dtls = this.dtls;
    if (!dtls || this.state === "closed") return;
    const known = this.ice.connection.remoteUsername;
    if (known && known !== remote.iceUfrag) {
      // An ICE restart needs new local credentials too; not supported: the old pair keeps running.
      this.opts.onError(new Error("ICE restart requested by the peer; not supported"), "ice");
    }
    if (!known)
      this.ice.setRemoteParams(
        new RTCIceParameters({ usernameFragment: remote.iceUfrag, password: remote.icePwd }),
      );
    dtls.setRemoteParams(
      new RTCDtlsParameters(
        remote.fingerprints.map((f) => new RTCDtlsFingerprint(f.algorithm, f.value)),
        remote.role === "server" ? "client" : "server",
      ),
    );
    if (!this.started) dtls.role = remote.role;
    for (const c of remote.candidates) {
      if (c.transport !== "udp") continue;
      const candidate = new IceCandidate(1, c.foundation, c.ip, c.port, c.priority, "udp", c.type);
      void this.ice.addRemoteCandidate(candidate)?.catch(() => {});
    }
    if (this.started) return;
    this.started = true;
    void this.connect(dtls);
  }

  private get isClosed(): boolean {
    return this.state === "closed";
  }

  private async connect(dtls: RTCDtlsTransport): Promise<void> {
    this.setState("connecting");
    replayEarlyDtls(dtls);
    try {
      await this.ice.start();
      if (this.isClosed) return;
      await dtls.start();
    } catch (err) {
      if (!this.isClosed) {
        this.opts.onError(err, "transport connect");
        this.setState("failed");
      }
      return;
    }
    if (this.isClosed) return;
    // Hot path: no closure per packet; a throw from our code never reaches werift's socket handler.
    const rtp = dtls.onRtp.subscribe((p) => {
      try {
        this.onRtp(p);
      } catch (err) {
        this.opts.onError(err, "inbound RTP");
      }
    });
    const rtcp = dtls.onRtcp.subscribe((p) => this.guard("inbound RTCP", () => this.onRtcp(p)));
    const state = dtls.onStateChange.subscribe((s) => {
      // The peer ended DTLS (close_notify) or it broke: release the sockets too, through close().
      if (s === "failed") this.setState("failed");
      else if (s === "closed") queueMicrotask(() => this.close());
    });
    this.disposers.push(
      () => rtp.unSubscribe(),
      () => rtcp.unSubscribe(),
      () => state.unSubscribe(),
    );
    this.opts.rtcp.add(this);
    this.setState("connected");
  }

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
      now: () => this.opts.clock.now(),
    };
    const stream = new ForwardingSendStream(spec, track, output, hooks, () => {
      this.sendStreams.delete(stream);
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
    if (requester.request(this.opts.clock.now(), layer)) this.sendPli(mid, layer);
    else this.opts.rtcp.wake(this);
  }

  stats(): TransportStats {
    return { state: this.state, ...this.counters };
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.setState("closed");
    this.opts.rtcp.remove(this);
    for (const s of [...this.sendStreams]) s.close();
    for (const d of this.disposers.splice(0)) d();
    const stop = this.dtls ? this.dtls.stop() : this.ice.stop();
    stop.catch((err) => this.opts.onError(err, "transport close"));
    this.stateChanged.clear();
  }

  // ---- inbound ------------------------------------------------------------------------------------

  private onRtp(packet: RtpPacket): void {
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
    const now = this.opts.clock.now();
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
      if (inbound.nack.missingCount > 0) this.opts.rtcp.wake(this);
    }
    const requester = this.keyframes.size > 0 ? this.keyframes.get(target.mid) : undefined;
    if (requester?.pending(target.layer)) {
      const codec = codecNameOf(`video/${spec.codecName}`);
      if (codec && isKeyframeStart(codec, packet.payload)) requester.onKeyframe(target.layer);
    }
    this.onInbound(target.mid, target.layer, packet);
  }

  private onRtcp(packet: RtcpPacket): void {
    const now = this.opts.clock.now();
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
    const dtls = this.dtls;
    if (dtls?.state !== "connected" || this.state === "closed") return false;
    this.counters.packetsSent++;
    this.counters.bytesSent += payload.length + 12;
    void dtls.sendRtp(payload, header);
    return true;
  }

  private sendRtcp(packets: RtcpPacket[]): void {
    const dtls = this.dtls;
    if (dtls?.state !== "connected" || packets.length === 0) return;
    void dtls.sendRtcp(packets).catch(() => {});
  }

  private sendPli(mid: string, layer: number): void {
    const ssrc = this.demuxer.ssrcOf(mid, layer);
    if (ssrc === undefined) return;
    this.counters.keyframeRequestsSent++;
    this.sendRtcp([
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
    if (now - this.lastInboundMs > this.opts.livenessTimeoutMs && this.state === "connected")
      this.setState("disconnected");
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
    if (feedback.length > 0) this.sendRtcp(feedback);
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
      for (let i = 0; i < reports.length; i += 8) this.sendRtcp(reports.slice(i, i + 8));
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
            bitrate: BigInt(this.opts.maxPublishBitrate),
            ssrcFeedbacks: videoSsrcs,
          }),
        }),
      );
    }
    return out;
  }

  // ---- helpers ------------------------------------------------------------------------------------

  private guard(context: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onError(err, context);
    }
  }

  private setState(state: TransportState): void {
    if (this.state === state || this.state === "closed") return;
    this.state = state;
    this.stateChanged.emit(state);
  }
}
