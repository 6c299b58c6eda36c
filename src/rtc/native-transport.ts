import { randomBytes } from "node:crypto";
import { networkInterfaces } from "node:os";
import { type RtcpPacket, RtcpPacketConverter, RtpPacket } from "werift";
import { parseRtpPacket, type RtpHeader } from "../media/rtp.ts";
import { loadNative, type NativePeer, type NativePeerState, type NativeUdpSocket } from "../native/addon.ts";
import { applyCandidatePolicy } from "./candidates.ts";
import type { ForwardingSendStream } from "./forwarding-stream.ts";
import { nativeForwardBatch } from "./native-forward-batch.ts";
import type { LocalCandidate, LocalTransportParameters } from "./negotiation/sdp-writer.ts";
import {
  NoUdpPortError,
  type PeerTransportOptions,
  type RemoteTransportParameters,
} from "./peer-transport.ts";
import { RtpTransportBase, type RtpTransportOptions } from "./rtp-transport-base.ts";
import type { RtcOptions } from "./werift-transport.ts";

export interface NativeTransportOptions extends RtpTransportOptions {
  rtc: RtcOptions;
  /** One UDP port for every session of the process (ICE ufrag demultiplexing); undefined: a port per session. */
  sharedPort?: SharedUdpPort;
}

/** ICE credentials per RFC 8445 §5.3: ufrag ≥ 4 and pwd ≥ 22 characters of ice-char. */
function iceToken(bytes: number): string {
  return randomBytes(bytes)
    .toString("base64")
    .replace(/[^A-Za-z0-9]/g, "x");
}

/** Host addresses announced for a socket bound to `listenIp` (all IPv4 interfaces for 0.0.0.0). */
function hostAddresses(listenIp: string): string[] {
  if (listenIp !== "0.0.0.0") return [listenIp];
  const out = new Set<string>(["127.0.0.1"]);
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (i.family === "IPv4") out.add(i.address);
  return [...out];
}

function candidatesFor(rtc: RtcOptions, port: number): LocalCandidate[] {
  const any = rtc.listenIp === "0.0.0.0";
  const found = hostAddresses(rtc.listenIp).map((ip, i) => ({
    foundation: String(i + 1),
    // Host candidates, type preference 126, one component; loopback last.
    priority: (126 << 24) | ((65535 - i - (ip === "127.0.0.1" ? 1000 : 0)) << 8) | 255,
    ip,
    port,
  }));
  return applyCandidatePolicy(found, {
    listenIp: any ? undefined : rtc.listenIp,
    announcedIp: rtc.announcedIp,
  });
}

// ---- per-session ports --------------------------------------------------------------------------

/** Ports of --rtc-min-port..--rtc-max-port held by native transports of this process. */
const heldPorts = new Set<number>();
const cursors = new Map<string, number>();

/**
 * Binds a socket on a free port of the range (or one the OS picks). A bind is atomic, so there is no
 * probe-then-bind race; a full range throws NoUdpPortError having kept no socket.
 */
function bindSessionSocket(rtc: RtcOptions): { socket: NativeUdpSocket; port: number } {
  const native = loadNative();
  const range = rtc.portRange;
  if (!range) {
    const socket = new native.UdpSocket();
    try {
      return { socket, port: socket.bind(rtc.listenIp, 0) };
    } catch (err) {
      socket.close();
      throw new NoUdpPortError(
        `the operating system gave no UDP port for a new session: ${(err as Error).message}`,
        {
          needed: 1,
        },
      );
    }
  }
  const [min, max] = range;
  const size = max - min + 1;
  const key = `${rtc.listenIp}|${min}|${max}`;
  const start = cursors.get(key) ?? min;
  let held = 0;
  for (let i = 0; i < size; i++) {
    const port = min + ((start - min + i) % size);
    if (heldPorts.has(port)) {
      held++;
      continue;
    }
    const socket = new native.UdpSocket();
    try {
      socket.bind(rtc.listenIp, port);
    } catch {
      socket.close();
      continue;
    }
    heldPorts.add(port);
    cursors.set(key, port >= max ? min : port + 1);
    return { socket, port };
  }
  const others = size - held;
  throw new NoUdpPortError(
    `no UDP port for a new session: all ${size} UDP ports of ${min}-${max} (--rtc-min-port..--rtc-max-port) are in use: ${held} held by Patchbay sessions, ${others} by other sockets`,
    { range: [min, max], needed: 1, free: 0, heldBySessions: held, heldByOthers: others },
  );
}

/** The one socket of --rtc-shared-port: every native transport of the process attaches to it. */
export class SharedUdpPort {
  private socket: NativeUdpSocket | undefined;
  private port = 0;

  constructor(
    private readonly rtc: RtcOptions,
    private readonly requested: number,
  ) {}

  /** Binds on first use; throws NoUdpPortError when the port is taken. */
  acquire(): { socket: NativeUdpSocket; port: number } {
    if (!this.socket) {
      const socket = new (loadNative().UdpSocket)();
      try {
        this.port = socket.bind(this.rtc.listenIp, this.requested, true);
      } catch (err) {
        socket.close();
        throw new NoUdpPortError(
          `the shared UDP port ${this.requested} (--rtc-shared-port) cannot be bound: ${(err as Error).message}`,
          { needed: 1 },
        );
      }
      this.socket = socket;
    }
    return { socket: this.socket, port: this.port };
  }

  stats(): ReturnType<NativeUdpSocket["stats"]> | undefined {
    return this.socket?.stats();
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}

// ---- the transport ------------------------------------------------------------------------------

let nextRouteId = 1;

/** Native transports by their peer's id, for the process-wide media dispatcher. */
const byPeerId = new Map<number, NativeTransport>();
let dispatcherSet = false;

/** The addon's one call per loop turn: each peer's batch to its transport. */
function dispatchMedia(batch: Buffer, peers: Uint32Array): void {
  let at = 0;
  for (let i = 0; i + 2 < peers.length; i += 3) {
    const length = peers[i + 2];
    byPeerId.get(peers[i])?.receiveBatch(batch.subarray(at, at + length), peers[i + 1]);
    at += length;
  }
}

/**
 * ICE-lite, DTLS-SRTP and the socket in the native addon (native/src/peer.cc, udp_mux.cc); the RTP session
 * (RtpTransportBase) in TypeScript. The addon hands each receive batch across in one call.
 */
export class NativeTransport extends RtpTransportBase {
  readonly ready: Promise<LocalTransportParameters>;
  private peer: NativePeer | undefined;
  private peerId = 0;
  private socket: NativeUdpSocket | undefined;
  private ownsSocket = false;
  private port = 0;
  private started = false;
  private closing = false;
  /** Set while the DTLS handshake runs: its retransmission timer needs the fine cadence. */
  private handshaking = false;
  /**
   * DTLS application-data records (SCTP packets, for data channels) as they arrive, in order with the media
   * of the same batch. Unset: they are dropped.
   */
  onApplicationData: ((record: Buffer) => void) | undefined;

  constructor(
    private readonly opts: NativeTransportOptions,
    mode: PeerTransportOptions = { iceLite: true },
  ) {
    super(opts);
    if (!mode.iceLite)
      throw new Error("the native media plane is ICE-lite only (thirdparty sessions use werift)");
    this.ready = this.prepare();
    this.ready.catch(() => this.setState("failed"));
  }

  private async prepare(): Promise<LocalTransportParameters> {
    const native = loadNative();
    const bound = this.opts.sharedPort ? this.opts.sharedPort.acquire() : bindSessionSocket(this.opts.rtc);
    this.ownsSocket = !this.opts.sharedPort;
    this.socket = bound.socket;
    this.port = bound.port;
    const ufrag = iceToken(6);
    const pwd = iceToken(18);
    this.peer = new native.Peer(
      bound.socket,
      ufrag,
      pwd,
      (batch, count) => this.onBatch(batch, count),
      (state, detail) => this.onPeerState(state, detail),
    );
    this.peerId = this.peer.id();
    byPeerId.set(this.peerId, this);
    if (!dispatcherSet) {
      native.setMediaDispatcher(dispatchMedia);
      dispatcherSet = true;
    }
    return {
      iceLite: true,
      iceUfrag: ufrag,
      icePwd: pwd,
      fingerprint: { algorithm: "sha-256", value: native.certificateFingerprint() },
      candidates: candidatesFor(this.opts.rtc, bound.port),
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
    const peer = this.peer;
    if (!peer || this.state === "closed") return;
    // Later descriptions only add fingerprints; an ICE restart (new ufrag) is not supported, as on werift.
    peer.setRemote(
      remote.iceUfrag,
      remote.fingerprints.map((f) => [f.algorithm, f.value]),
      remote.role === "client",
    );
    if (this.started) return;
    this.started = true;
    this.handshaking = true;
    this.setState("connecting");
    this.opts.rtcp.add(this);
    this.opts.rtcp.wake(this);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.closeStreams();
    this.peer?.close();
    this.peer = undefined;
    byPeerId.delete(this.peerId);
    if (this.ownsSocket) {
      this.socket?.close();
      heldPorts.delete(this.port);
    }
    this.socket = undefined;
  }

  /** The addon's counters for this transport (tests, diagnostics). */
  nativeStats(): ReturnType<NativePeer["stats"]> | undefined {
    return this.peer?.stats();
  }

  private onPeerState(state: NativePeerState, detail: string): void {
    if (state === "connected") {
      this.handshaking = false;
      this.setState("connected");
    } else if (state === "failed") {
      this.handshaking = false;
      this.opts.onError(new Error(`DTLS failed: ${detail}`), "transport connect");
      this.setState("failed");
    } else if (state === "closed" && !this.closing) {
      // The peer ended DTLS (close_notify): release the socket too, through close().
      queueMicrotask(() => this.close());
    }
  }

  /**
   * One receive batch: `[u16 length][u8 kind][u8 0][bytes]…` (see NativePeer). Subscribers on the native
   * plane queue what they forward (nativeForwardBatch), sent by the addon when the batch is done.
   */
  /** One receive batch from the dispatcher (or the peer's own callback). */
  receiveBatch(batch: Buffer, count: number): void {
    try {
      this.onBatch(batch, count);
    } catch (err) {
      this.opts.onError(err, "inbound batch");
    }
  }

  private onBatch(batch: Buffer, count: number): void {
    if (this.state === "disconnected") this.setState("connected");
    const peer = this.peer;
    if (!peer) return;
    nativeForwardBatch.begin(peer);
    try {
      let at = 0;
      for (let i = 0; i < count && at + 4 <= batch.length; i++) {
        const len = batch.readUInt16BE(at);
        const kind = batch[at + 2];
        const bytes = batch.subarray(at + 4, at + 4 + len);
        at += 4 + len;
        try {
          if (kind === 0) {
            const packet = parseRtpPacket(bytes);
            if (!packet) continue;
            nativeForwardBatch.deliver(packet, i);
            this.onRtp(packet);
            nativeForwardBatch.deliver(undefined, 0);
          } else if (kind === 1) for (const p of RtcpPacketConverter.deSerialize(bytes)) this.onRtcp(p);
          else if (kind === 2) this.onApplicationData?.(bytes);
        } catch (err) {
          this.opts.onError(err, kind === 0 ? "inbound RTP" : kind === 1 ? "inbound RTCP" : "inbound SCTP");
        }
      }
    } finally {
      nativeForwardBatch.end();
    }
  }

  /** One DTLS application-data record (an SCTP packet); false before DTLS is up or for an invalid size. */
  sendApplicationData(record: Buffer): boolean {
    return this.peer?.sendApplicationData(record) ?? false;
  }

  protected override forwardRtp(
    packet: RtpPacket,
    seq: number,
    ts: number,
    stream: ForwardingSendStream,
  ): boolean {
    const peer = this.peer;
    if (!peer || this.state === "new" || this.state === "connecting") return false;
    let route = stream.nativeRouteId;
    if (route === undefined) {
      const spec = stream.nativeRoute();
      route = nextRouteId++;
      if (!spec || !peer.defineRoute(route, spec.ssrc, spec.payloadType, spec.midId, spec.mid, spec.extMap))
        route = -1;
      stream.nativeRouteId = route;
    }
    return route >= 0 && nativeForwardBatch.push(packet, this.peerId, route, seq, ts);
  }

  protected override sendStreamClosed(stream: ForwardingSendStream): void {
    const route = stream.nativeRouteId;
    stream.nativeRouteId = undefined;
    if (route !== undefined && route >= 0) this.peer?.deleteRoute(route);
  }

  protected writeRtp(header: RtpHeader, payload: Buffer): boolean {
    const peer = this.peer;
    if (!peer || this.state === "new" || this.state === "connecting") return false;
    return peer.sendRtp(new RtpPacket(header, payload).serialize());
  }

  protected writeRtcp(packets: RtcpPacket[]): void {
    const peer = this.peer;
    if (!peer || packets.length === 0) return;
    peer.sendRtcp(Buffer.concat(packets.map((p) => p.serialize())));
  }

  protected msSinceInbound(): number {
    const ms = this.peer?.msSinceInbound() ?? -1;
    return ms < 0 ? Number.POSITIVE_INFINITY : ms;
  }

  override rtcpTick(now: number): boolean {
    if (this.handshaking && this.peer) {
      // DTLS retransmissions ride the shared clock: keep the 20 ms cadence until the handshake ends.
      this.peer.tick();
      return true;
    }
    return super.rtcpTick(now);
  }
}
