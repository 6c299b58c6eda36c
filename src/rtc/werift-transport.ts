import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import {
  GenericNack,
  getHostAddresses,
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
import { Mutex } from "../util/mutex.ts";
import { Signal } from "../util/signal.ts";
import { applyCandidatePolicy, type CandidatePolicy } from "./candidates.ts";
import { replayEarlyDtls } from "./early-dtls.ts";
import { ForwardingSendStream, type RtpOutput } from "./forwarding-stream.ts";
import { EXT } from "./negotiation/header-extensions.ts";
import type { LocalCandidate, LocalTransportParameters } from "./negotiation/sdp-writer.ts";
import {
  type InboundRtpHandler,
  NoUdpPortError,
  type PeerTransport,
  type PeerTransportOptions,
  type ReceiveStreamSpec,
  type RemoteTransportParameters,
  type SendStream,
  type SendStreamHooks,
  type SendStreamSpec,
  type TransportState,
  type TransportStats,
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

// ---- UDP ports ---------------------------------------------------------------------------------------

/**
 * UDP ports of --rtc-min-port..--rtc-max-port held by this process's transports. Ports are a resource of the
 * host, so this is module state shared by every server of the process.
 *
 * Patchbay picks the ports itself rather than leaving the search to werift, whose search probes a port,
 * closes it and binds it later (two sessions gathering at once can pick the same port, and the loser's bind
 * error has no listener), and which, when no port is free, throws after creating a socket it never closes:
 * one UDP handle leaked for good per refused session. Here gathering is serialized, free ports are probed
 * with an error listener, werift is handed a range holding exactly the ports found, and a full range is
 * refused (NoUdpPortError) before werift creates anything.
 */
const heldPorts = new Set<number>();
const gathering = new Mutex();
/** Where the next search starts in each range (round robin: a port just released rests a little). */
const cursors = new Map<string, number>();

function releasePorts(ports: number[]): void {
  for (const p of ports) heldPorts.delete(p);
}

/** Binds a probe socket on `port`; undefined when the port is taken. The caller closes the socket. */
function probe(port: number, address: string | undefined): Promise<Socket | undefined> {
  const socket = createSocket("udp4");
  return new Promise((resolve) => {
    socket.once("error", () => socket.close(() => resolve(undefined)));
    socket.once("listening", () => resolve(socket));
    socket.bind({ port, address });
  });
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

function udpPortsOf(gatherer: RTCIceGatherer): number[] {
  return gatherer.localCandidates.filter((c) => c.protocol === "udp").map((c) => c.port);
}

/**
 * Gathers the host candidates of one transport: `create` makes the gatherer for a port range. Resolves with
 * the gatherer and the ports it holds (to release after its sockets close); rejects with NoUdpPortError,
 * having created no socket, when the range has no free port.
 */
async function bindIce(
  rtc: RtcOptions,
  create: (portRange: [number, number] | undefined) => RTCIceGatherer,
): Promise<{ gatherer: RTCIceGatherer; ports: number[] }> {
  const range = rtc.portRange;
  if (!range) {
    const gatherer = create(undefined);
    await gatherer.gather();
    if (udpPortsOf(gatherer).length === 0) {
      await gatherer.connection.close().catch(() => {});
      throw new NoUdpPortError("the operating system gave no UDP port for a new session", { needed: 1 });
    }
    return { gatherer, ports: [] };
  }
  return gathering.run(async () => {
    const [min, max] = range;
    const size = max - min + 1;
    const any = rtc.listenIp === "0.0.0.0";
    // One socket per host address werift gathers on (see the constructor's options): one, or every IPv4
    // interface plus loopback when listening on 0.0.0.0.
    const needed = any ? new Set(["127.0.0.1", ...getHostAddresses(true, false)]).size : 1;
    const key = `${rtc.listenIp}|${min}|${max}`;
    const start = cursors.get(key) ?? min;
    const probes: { port: number; socket: Socket }[] = [];
    let held = 0;
    for (let i = 0; i < size && probes.length < needed; i++) {
      const port = min + ((start - min + i) % size);
      if (heldPorts.has(port)) {
        held++;
        continue;
      }
      const socket = await probe(port, any ? undefined : rtc.listenIp);
      if (socket) probes.push({ port, socket });
    }
    await Promise.all(probes.map((p) => closeSocket(p.socket)));
    if (probes.length < needed) {
      // The search went through the whole range: `held` counts every port of it that sessions hold.
      const others = size - held - probes.length;
      const what =
        needed === 1
          ? `all ${size} UDP ports of ${min}-${max} (--rtc-min-port..--rtc-max-port) are in use`
          : `a session needs ${needed} UDP ports (one per host address) and ${probes.length} of the ${size} of ${min}-${max} (--rtc-min-port..--rtc-max-port) are free`;
      throw new NoUdpPortError(
        `no UDP port for a new session: ${what}: ${held} held by Patchbay sessions, ${others} by other sockets`,
        { range: [min, max], needed, free: probes.length, heldBySessions: held, heldByOthers: others },
      );
    }
    const ports = probes.map((p) => p.port);
    const gatherer = create([Math.min(...ports), Math.max(...ports)]);
    await gatherer.gather();
    const bound = udpPortsOf(gatherer);
    for (const p of bound) heldPorts.add(p);
    if (bound.length === 0) {
      // Another program took the port between the probe and werift's bind.
      await gatherer.connection.close().catch(() => {});
      throw new NoUdpPortError(
        `no UDP port for a new session: the free port of ${min}-${max} (--rtc-min-port..--rtc-max-port) was taken by another program while binding`,
        { range: [min, max], needed, free: 0, heldBySessions: held, heldByOthers: size - held },
      );
    }
    const last = Math.max(...bound);
    cursors.set(key, last >= max ? min : last + 1);
    return { gatherer, ports: bound };
  });
}

/**
 * ICE-lite + DTLS-SRTP over werift's transport classes (no RTCPeerConnection: the SDP is Patchbay's own),
 * with Patchbay's demultiplexing, RTCP (receiver reports, NACKs, PLI, REMB, sender reports) and forwarding.
 */
export class WeriftTransport implements PeerTransport, RtcpTickable {
  readonly stateChanged = new Signal<TransportState>();
  state: TransportState = "new";
  readonly ready: Promise<LocalTransportParameters>;
  private ice: RTCIceTransport | undefined;
  /** UDP ports of the range this transport's sockets hold (given back once they are closed; see bindIce). */
  private ports: number[] = [];
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
    this.lastInboundMs = opts.clock.now();
    this.ready = this.prepare();
    // Nobody may be waiting yet; a failure is reported through `ready` and the state.
    this.ready.catch(() => this.setState("failed"));
  }

  /** Binds the UDP socket(s) (see bindIce), then sets up DTLS. Nothing of werift exists before the ports do. */
  private async prepare(): Promise<LocalTransportParameters> {
    const { rtc } = this.opts;
    const any = rtc.listenIp === "0.0.0.0";
    const bound = await bindIce(
      rtc,
      (portRange) =>
        new RTCIceGatherer({
          // ICE-lite: no gathering against STUN servers, no outbound checks; we learn the peer from its checks.
          // Full ICE (thirdparty sessions) gathers the same host candidates and checks the peer's.
          iceLite: this.mode.iceLite,
          // On one address, werift is given exactly that address: enumerating the host's interfaces as well
          // would bind one more socket (one more port of the range) per interface, all on the listen address
          // and never announced (candidates.ts keeps the listen address only).
          useIpv4: any,
          useIpv6: false,
          portRange,
          // werift skips loopback unless told about it explicitly.
          additionalHostAddresses: [any ? "127.0.0.1" : rtc.listenIp],
          interfaceAddresses: any ? undefined : { udp4: rtc.listenIp },
        }),
    );
    this.ports = bound.ports;
    const ice = new RTCIceTransport(bound.gatherer);
    this.ice = ice;
    if (this.isClosed) {
      // close() ran while the sockets were being bound: they exist only now.
      await this.stopSockets();
      throw new Error("transport closed while gathering");
    }
    ice.connection.iceControlling = false;
    const onData = ice.connection.onData.subscribe(() => {
      this.lastInboundMs = this.opts.clock.now();
      if (this.state === "disconnected") this.setState("connected");
    });
    this.disposers.push(() => onData.unSubscribe());
    const certificate = await RTCDtlsTransport.SetupCertificate();
    if (this.isClosed) throw new Error("transport closed while gathering");
    const candidates = bound.gatherer.localCandidates.filter((c) => c.protocol === "udp");
    const dtls = new RTCDtlsTransport({}, ice, certificate, SRTP_PROFILES);
    this.dtls = dtls;
    const policy: CandidatePolicy = {
      listenIp: any ? undefined : rtc.listenIp,
      announcedIp: rtc.announcedIp,
    };
    const local: LocalCandidate[] = applyCandidatePolicy(
      candidates.map((c) => ({ foundation: c.foundation, priority: c.priority, ip: c.ip, port: c.port })),
      policy,
    );
    const fp =
      certificate.getFingerprints().find((f) => f.algorithm === "sha-256") ??
      certificate.getFingerprints()[0];
    const params = ice.localParameters;
    return {
      iceLite: this.mode.iceLite,
      iceUfrag: params.usernameFragment,
      icePwd: params.password,
      fingerprint: { algorithm: fp.algorithm, value: fp.value },
      candidates: local,
    };
  }

  /** Closes the sockets (through DTLS when it exists), then hands their ports back to the range. */
  private async stopSockets(): Promise<void> {
    const ice = this.ice;
    if (!ice) return;
    try {
      await (this.dtls ? this.dtls.stop() : ice.stop());
    } finally {
      releasePorts(this.ports.splice(0));
    }
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
    const ice = this.ice;
    if (!dtls || !ice || this.state === "closed") return;
    const known = ice.connection.remoteUsername;
    if (known && known !== remote.iceUfrag) {
      // An ICE restart needs new local credentials too; not supported: the old pair keeps running.
      this.opts.onError(new Error("ICE restart requested by the peer; not supported"), "ice");
    }
    if (!known)
      ice.setRemoteParams(
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
      void ice.addRemoteCandidate(candidate)?.catch(() => {});
    }
    if (this.started) return;
    this.started = true;
    void this.connect(ice, dtls);
  }

  private get isClosed(): boolean {
    return this.state === "closed";
  }

  private async connect(ice: RTCIceTransport, dtls: RTCDtlsTransport): Promise<void> {
    this.setState("connecting");
    replayEarlyDtls(dtls);
    try {
      await ice.start();
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
    // Before `ready` settles there is nothing to stop yet: prepare() stops what it bound once it sees the close.
    this.stopSockets().catch((err) => this.opts.onError(err, "transport close"));
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
