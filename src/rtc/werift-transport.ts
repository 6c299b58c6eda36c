import { createSocket, type Socket } from "node:dgram";
import {
  getHostAddresses,
  IceCandidate,
  RTCDtlsFingerprint,
  RTCDtlsParameters,
  RTCDtlsTransport,
  RTCIceGatherer,
  RTCIceParameters,
  RTCIceTransport,
  type RtcpPacket,
  type RtpHeader,
  type RtpPacket,
} from "werift";
import { Mutex } from "../util/mutex.ts";
import { applyCandidatePolicy, type CandidatePolicy } from "./candidates.ts";
import { replayEarlyDtls } from "./early-dtls.ts";
import type { LocalCandidate, LocalTransportParameters } from "./negotiation/sdp-writer.ts";
import {
  NoUdpPortError,
  type PeerTransportOptions,
  type RemoteTransportParameters,
} from "./peer-transport.ts";
import { RtpTransportBase, type RtpTransportOptions } from "./rtp-transport-base.ts";

/** Everything the werift media plane needs to know about the network. */
export interface RtcOptions {
  /** Address the UDP sockets bind to; "0.0.0.0" = every interface (loopback included). */
  listenIp: string;
  announcedIp?: string;
  portRange?: [number, number];
}

export interface WeriftTransportOptions extends RtpTransportOptions {
  rtc: RtcOptions;
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
export class WeriftTransport extends RtpTransportBase {
  readonly ready: Promise<LocalTransportParameters>;
  private ice: RTCIceTransport | undefined;
  /** UDP ports of the range this transport's sockets hold (given back once they are closed; see bindIce). */
  private ports: number[] = [];
  private dtls: RTCDtlsTransport | undefined;
  private started = false;
  private closing = false;
  private lastInboundMs: number;
  private readonly disposers: (() => void)[] = [];

  constructor(
    private readonly opts: WeriftTransportOptions,
    private readonly mode: PeerTransportOptions = { iceLite: true },
  ) {
    super(opts);
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
    const rtp = dtls.onRtp.subscribe((p) => this.receiveRtp(p));
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

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.closeStreams();
    for (const d of this.disposers.splice(0)) d();
    // Before `ready` settles there is nothing to stop yet: prepare() stops what it bound once it sees the close.
    this.stopSockets().catch((err) => this.opts.onError(err, "transport close"));
  }

  // ---- outbound ---------------------------------------------------------------------------------

  protected writeRtp(header: RtpHeader, payload: Buffer): boolean {
    const dtls = this.dtls;
    if (dtls?.state !== "connected") return false;
    void dtls.sendRtp(payload, header);
    return true;
  }

  protected writeRtcp(packets: RtcpPacket[]): void {
    const dtls = this.dtls;
    if (dtls?.state !== "connected" || packets.length === 0) return;
    void dtls.sendRtcp(packets).catch(() => {});
  }

  protected msSinceInbound(now: number): number {
    return now - this.lastInboundMs;
  }

  /** werift delivers each packet parsed; a throw from our code never reaches werift's socket handler. */
  private receiveRtp(packet: RtpPacket): void {
    try {
      this.onRtp(packet);
    } catch (err) {
      this.opts.onError(err, "inbound RTP");
    }
  }
}
