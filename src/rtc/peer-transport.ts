import type { RtpPacket } from "../media/rtp.ts";
import type { Track, TrackSink } from "../sfu/track.ts";
import type { Signal } from "../util/signal.ts";
import type { MediaKind } from "./negotiation/codecs.ts";
import type { Fingerprint, RemoteCandidate } from "./negotiation/remote-description.ts";
import type { LocalTransportParameters } from "./negotiation/sdp-writer.ts";

/**
 * The seam between a session and the media plane that moves its packets. A session negotiates (the
 * model in negotiation/), then tells its transport what the negotiation means: the peer's ICE/DTLS
 * parameters, which inbound streams belong to which m-line, and which tracks to send on which m-line
 * with which rewriting. The transport does ICE-lite, DTLS-SRTP, demultiplexing, RTCP and forwarding.
 * Session holds no type of any WebRTC library: werift-transport.ts implements this today; a native media
 * plane implements the same interface.
 */
export type TransportState = "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";

export interface RemoteTransportParameters {
  iceUfrag: string;
  icePwd: string;
  fingerprints: Fingerprint[];
  /** Our DTLS role. */
  role: "server" | "client";
  /** Our ICE role (a lite agent is always controlled; a full one controls against a lite peer or as offerer). */
  iceControlling: boolean;
  candidates: RemoteCandidate[];
}

/** Where the packets of one publishing m-line come from and how to recognize them. */
export interface ReceiveStreamSpec {
  mid: string;
  kind: MediaKind;
  /** Payload types the peer may send here (the negotiated codecs). */
  payloadTypes: number[];
  /** Lower-case name of the codec the peer sends ("opus", "vp8", "h264"). */
  codecName: string;
  clockRate: number;
  /** SSRCs the peer's SDP announced (may be empty: then MID/RID header extensions identify streams). */
  ssrcs: number[];
  /** Simulcast rids in the peer's order; layer index = position. Empty: one stream, layer 0. */
  rids: string[];
  /** Negotiated header-extension ids on this m-line. */
  extensions: ReadonlyMap<string, number>;
}

/** Called for every inbound RTP packet of a known m-line (`layer`: simulcast index, 0 otherwise). */
export type InboundRtpHandler = (mid: string, layer: number, packet: RtpPacket) => void;

/** How a pulled track is sent on one m-line. */
export interface SendStreamSpec {
  mid: string;
  kind: MediaKind;
  ssrc: number;
  cname: string;
  payloadType: number;
  /** Lower-case codec name and clock rate of what is sent. */
  codecName: string;
  clockRate: number;
  /** Negotiated header-extension ids on this m-line, by URI. */
  extensions: ReadonlyMap<string, number>;
}

/** Simulcast preferences of one subscriber (Cloudflare's `simulcast` object on a pull). */
export interface LayerPreference {
  preferredRid?: string;
  priorityOrdering: "none" | "asciibetical";
  ridNotAvailable: "none" | "asciibetical";
}

export interface SendStreamStats {
  packetsSent: number;
  bytesSent: number;
  retransmitted: number;
  /** Packets not sent because the transport was not connected yet. */
  notReady: number;
  /** The rid forwarded now (simulcast), or undefined. */
  currentRid: string | undefined;
  layerSwitches: number;
  keyframeRequests: number;
}

/** One track forwarded to the peer. It is the track's sink: the session subscribes it to the track. */
export interface SendStream extends TrackSink {
  readonly spec: SendStreamSpec;
  /** Which simulcast layer to forward; ignored for tracks without layers. */
  setLayerPreference(pref: LayerPreference): void;
  stats(): SendStreamStats;
  close(): void;
}

/** Counters a send stream reports as they happen (process metrics). */
export interface SendStreamHooks {
  onRetransmit?(): void;
}

export interface TransportStats {
  state: TransportState;
  packetsReceived: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  nacksSent: number;
  keyframeRequestsSent: number;
}

/** What a NoUdpPortError knows about the port range (for logs; the message says it in words). */
export interface NoUdpPortDetails {
  /** --rtc-min-port..--rtc-max-port; absent when the OS assigns ports. */
  range?: [number, number];
  /** Ports one transport needs (one per host address it gathers on). */
  needed: number;
  free?: number;
  heldBySessions?: number;
  heldByOthers?: number;
}

/**
 * A transport could not bind its UDP port(s): the range is full. Nothing was created (no socket, no handle);
 * the API answers 503 no_udp_port with the message as its description.
 */
export class NoUdpPortError extends Error {
  override readonly name = "NoUdpPortError";
  constructor(
    message: string,
    readonly details: NoUdpPortDetails,
  ) {
    super(message);
  }
}

export interface PeerTransport {
  /**
   * Resolves once local ports and credentials exist (gathering); rejects with NoUdpPortError when no port
   * could be bound.
   */
  readonly ready: Promise<LocalTransportParameters>;
  readonly state: TransportState;
  readonly stateChanged: Signal<TransportState>;
  /** Apply the peer's parameters (idempotent: later descriptions only add candidates). Starts connecting. */
  start(remote: RemoteTransportParameters): void;
  /** The full table of publishing m-lines; replaces the previous one. */
  setReceiveStreams(specs: ReceiveStreamSpec[], onPacket: InboundRtpHandler): void;
  createSendStream(spec: SendStreamSpec, track: Track, hooks?: SendStreamHooks): SendStream;
  /** Ask the peer for a keyframe of one publishing m-line (throttled per layer). */
  requestKeyframe(mid: string, layer: number): void;
  stats(): TransportStats;
  /** Idempotent. */
  close(): void;
  /**
   * DTLS application data (SCTP for data channels), on planes that carry it: records from the peer go to
   * `onApplicationData`, `sendApplicationData` sends one (false when DTLS is not up or the record is too big).
   */
  onApplicationData?: ((record: Buffer) => void) | undefined;
  sendApplicationData?(record: Buffer): boolean;
}

export interface PeerTransportOptions {
  /**
   * false for `?thirdparty=true` sessions: Patchbay runs full ICE (sends checks, nominates) so that it can
   * reach another ICE-lite server (an SFU, a realtime AI endpoint). Default true: ICE-lite, like Cloudflare.
   */
  iceLite: boolean;
}

export type PeerTransportFactory = (opts: PeerTransportOptions) => PeerTransport;
