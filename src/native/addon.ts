import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/**
 * The native media plane (binding.gyp, native/), built by `npm ci` through scripts/build-native.mjs. Loading
 * fails loudly with what to do: nothing falls back silently to another implementation.
 */
export interface NativeSrtpContext {
  /** The protected packet, or null when the input is not RTP (or RTCP) or cannot be protected. */
  protectRtp(packet: Buffer): Buffer | null;
  /** The plain packet, or null when authentication, replay or parsing refused it. */
  unprotectRtp(packet: Buffer): Buffer | null;
  protectRtcp(packet: Buffer): Buffer | null;
  unprotectRtcp(packet: Buffer): Buffer | null;
  /** Protects `count` copies of one packet with consecutive sequence numbers (benchmark); returns successes. */
  protectRtpBatch(packet: Buffer, count: number, firstSeq: number): number;
  stats(): { authFailures: number; replays: number; malformed: number };
}

/** One UDP socket on Node's libuv loop, shared by the peers attached to it (native/src/udp_mux.h). */
export interface NativeUdpSocket {
  /** Binds and starts receiving; returns the bound port. Throws an Error with `code` ("EADDRINUSE"…). */
  bind(ip: string, port: number, batched?: boolean): number;
  close(): void;
  stats(): {
    datagrams: number;
    bytes: number;
    batches: number;
    unrouted: number;
    truncated: number;
    sendErrors: number;
    /** System calls that sent held (corked) datagrams. */
    sendCalls: number;
    peers: number;
    recvmmsg: boolean;
  };
}

export type NativePeerState = "new" | "connecting" | "connected" | "failed" | "closed";

export interface NativePeerStats {
  state: NativePeerState;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  dropped: number;
  srtpFailures: number;
  notSent: number;
  /** -1 before anything arrived. */
  msSinceInbound: number;
  iceChecks: number;
  iceBadIntegrity: number;
  srtpProfile: number;
  /** Client mode only (setRemote's `controlling` option): the controlling agent's counters. */
  iceChecksSent?: number;
  iceResponses?: number;
  iceErrorResponses?: number;
  iceBadResponses?: number;
  iceRttMs?: number;
}

/**
 * Client mode (the benchmark's native load generator): we are the controlling ICE agent toward an ICE-lite
 * peer and check its candidate with its password; use with `dtlsClient` true. Retransmissions and consent
 * checks (every 2–3 s) go out from tick(); without an answer for 15 s the peer fails.
 */
export interface NativeControllingOptions {
  ip: string;
  port: number;
  pwd: string;
}

/**
 * One transport (ICE-lite, DTLS-SRTP) on a socket (native/src/peer.h). `onMedia` is called once per receive
 * batch with every decrypted packet of the batch: `[u16 length][u8 kind: 0 RTP, 1 RTCP, 2 DTLS application
 * data (SCTP)][u8 0][bytes]…`.
 */
export interface NativePeer {
  setRemote(
    ufrag: string,
    fingerprints: [string, string][],
    dtlsClient: boolean,
    controlling?: NativeControllingOptions,
  ): void;
  /** Plain RTP in; false when not connected (or no consent). */
  sendRtp(packet: Buffer): boolean;
  /** Packets in the receive batches' framing (kind 0 RTP, 1 RTCP); returns how many were sent. */
  sendRtpBatch(batch: Buffer): number;
  sendRtcp(packet: Buffer): boolean;
  /** One DTLS application-data record (an SCTP packet); false before DTLS is up, or empty / over 16 KiB. */
  sendApplicationData(record: Buffer): boolean;
  /** Runs DTLS retransmissions (and client mode's checks); ms until DTLS wants another tick, -1 for none. */
  tick(): number;
  stats(): NativePeerStats;
  close(): void;
  /** Ms since the last valid datagram from the peer, -1 before the first. */
  msSinceInbound(): number;
  /** Process-unique id, how forwarding instructions name a destination. */
  id(): number;
  /**
   * A subscriber stream's rewrite (see native/src/forward.h); `extMap[publisherId]` = subscriber id or 0.
   * False when the one-byte extension form cannot express it (ids above 14, a mid over 16 bytes).
   */
  defineRoute(
    routeId: number,
    ssrc: number,
    payloadType: number,
    midId: number,
    mid: string,
    extMap: Uint8Array,
  ): boolean;
  deleteRoute(routeId: number): void;
  /**
   * Only during this peer's onMedia: sends packets of the batch being handled to other peers, `count`
   * instructions of 5 numbers [batch index, destination id, route id, sequence number, timestamp].
   */
  forward(instructions: Uint32Array, count: number): number;
}

export interface NativeAddon {
  version: string;
  SrtpContext: new (profile: 1 | 7, masterKey: Buffer, masterSalt: Buffer) => NativeSrtpContext;
  UdpSocket: new () => NativeUdpSocket;
  Peer: new (
    socket: NativeUdpSocket,
    ufrag: string,
    pwd: string,
    onMedia: (batch: Buffer, count: number) => void,
    onState: (state: NativePeerState, detail: string) => void,
  ) => NativePeer;
  /**
   * Once per process: every peer's received media in one call per event-loop turn, `peers` holding
   * [peer id, packet count, byte length] per peer whose batch follows in `batch`, instead of each Peer's onMedia.
   */
  setMediaDispatcher(fn: (batch: Buffer, peers: Uint32Array) => void): void;
  /** SHA-256 fingerprint of the process's DTLS certificate ("AB:CD:…"). */
  certificateFingerprint(): string;
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = fileURLToPath(new URL("../../build/Release/patchbay_native.node", import.meta.url));
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new Error(
      `the native media plane is not built (${path}): run \`npm ci\` or \`npm run native:build\` (needs a C++17 compiler, make and Python 3): ${(err as Error).message}`,
    );
  }
  return cached;
}
