import type { MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver } from "werift";
import type { RtpPacket } from "../media/rtp.ts";
import {
  answerOffer,
  createServerPeer,
  makeOffer,
  type RtcOptions,
  setSendMsid,
  transceiverByMid,
} from "../rtc/peer.ts";
import { parseMediaSections } from "../rtc/sdp.ts";
import { PeerSenderSink } from "../rtc/sender-sink.ts";
import { Mutex } from "../util/mutex.ts";
import { Signal } from "../util/signal.ts";
import { randomTrackName } from "./ids.ts";
import { type MediaKind, type Subscription, Track, type TrackCodec, type TrackPublisher } from "./track.ts";

export type SessionState = "new" | "connected" | "disconnected" | "closed";

export interface SessionTimings {
  connectTimeoutMs: number;
  disconnectGraceMs: number;
}

/** What a session needs from its app: finding other sessions' tracks, and the hooks for counters. */
export interface SessionHost {
  findTrack(sessionId: string, trackName: string): Track | undefined;
  onForwarded?(): void;
  onRetransmit?(): void;
  onError(err: unknown, context: string): void;
}

export interface LocalTrackRequest {
  location: "local";
  trackName?: string;
  mid?: string;
  kind?: MediaKind;
}
export interface RemoteTrackRequest {
  location: "remote";
  sessionId: string;
  trackName: string;
  mid?: string;
}
export type TrackRequest = LocalTrackRequest | RemoteTrackRequest;

export interface TrackResultItem {
  location?: "local" | "remote";
  trackName?: string;
  mid?: string;
  sessionId?: string;
  kind?: MediaKind;
  errorCode?: "not_found_track_error" | "invalid_request";
  errorDescription?: string;
}

export interface NegotiationResult {
  requiresImmediateRenegotiation: boolean;
  sessionDescription?: { type: "offer" | "answer"; sdp: string };
  tracks: TrackResultItem[];
}

export interface CloseResultItem {
  mid: string;
  errorCode?: "close_track_error";
  errorDescription?: string;
}

/** A track this session publishes, as listed by GET sessions/{id}. */
interface LocalEntry {
  kind: "local";
  mid: string | undefined;
  track: Track;
  transceiver?: RTCRtpTransceiver;
}
/** A track this session pulls from another session. */
interface RemoteEntry {
  kind: "remote";
  mid: string | undefined;
  track: Track;
  transceiver: RTCRtpTransceiver;
  subscription: Subscription;
  sink: PeerSenderSink;
  closed: boolean;
}
type Entry = LocalEntry | RemoteEntry;

export interface SessionTrackInfo {
  location: "local" | "remote";
  mid: string;
  trackName: string;
  sessionId?: string;
  status: "active" | "inactive";
}

/**
 * One client of the SFU. A regular session owns exactly one werift peer connection (BUNDLE, ICE-lite);
 * an adapter session has none and only publishes tracks fed through the internal API.
 */
export class Session {
  readonly closed = new Signal<string>();
  state: SessionState = "new";
  closeReason: string | undefined;
  private readonly pc: RTCPeerConnection | undefined;
  private readonly entries: Entry[] = [];
  private readonly negotiation = new Mutex();
  /** The track each receiving transceiver currently publishes into (the latest binding wins). */
  private readonly publishing = new Map<RTCRtpTransceiver, Track>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    private readonly host: SessionHost,
    private readonly rtc: RtcOptions | undefined,
    private readonly timings: SessionTimings,
  ) {
    if (rtc) {
      this.pc = createServerPeer(rtc);
      this.pc.ontrack = ({ track, transceiver }) => this.onRemoteTrack(track, transceiver);
      this.pc.connectionStateChange.subscribe((s) => this.onConnectionState(s));
      this.arm(timings.connectTimeoutMs, "session never connected");
    }
  }

  get hasPeer(): boolean {
    return this.pc !== undefined;
  }

  // ---- internal API (adapters) -------------------------------------------------------------

  /** Publish a track fed by code rather than by the peer connection (e.g. an ingest adapter). */
  publish(init: { name: string; kind: MediaKind; codec: TrackCodec; publisher: TrackPublisher }): Track {
    if (this.closeReason) throw new Error("session is closed");
    if (this.localTrack(init.name)) throw new Error(`track ${init.name} already exists`);
    const track = this.newTrack(init.name, init.kind, init.codec, init.publisher);
    this.entries.push({ kind: "local", mid: undefined, track });
    return track;
  }

  /** An active track this session publishes. */
  localTrack(name: string): Track | undefined {
    for (const e of this.entries)
      if (e.kind === "local" && e.track.name === name && !e.track.ended) return e.track;
    return undefined;
  }

  /** Tracks this session publishes that have not ended. */
  activeTracks(): Track[] {
    const out: Track[] = [];
    for (const e of this.entries) if (e.kind === "local" && !e.track.ended) out.push(e.track);
    return out;
  }

  tracks(): SessionTrackInfo[] {
    return this.entries.map((e) => {
      const active = e.kind === "local" ? !e.track.ended : !e.closed && !e.track.ended;
      const info: SessionTrackInfo = {
        location: e.kind,
        mid: e.mid ?? e.transceiver?.mid ?? "",
        trackName: e.track.name,
        status: active && !this.closeReason ? "active" : "inactive",
      };
      if (e.kind === "remote") info.sessionId = e.track.sessionId;
      return info;
    });
  }

  // ---- HTTP API operations -----------------------------------------------------------------

  /** sessions/new with an offer. */
  answer(offerSdp: string): Promise<string> {
    return this.negotiation.run(async () => {
      const pc = this.requirePeer();
      await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
      return answerOffer(pc, this.rtc!);
    });
  }

  /** tracks/new in all its variants (see SPEC §1.4). */
  addTracks(req: {
    offerSdp?: string;
    tracks: TrackRequest[];
    autoDiscover: boolean;
  }): Promise<NegotiationResult> {
    return this.negotiation.run(() => this.addTracksLocked(req));
  }

  /** PUT renegotiate: the client's answer to our last offer. */
  renegotiate(answerSdp: string): Promise<void> {
    return this.negotiation.run(async () => {
      await this.requirePeer().setRemoteDescription({ type: "answer", sdp: answerSdp });
    });
  }

  closeTracks(req: { mids: string[]; offerSdp?: string; force: boolean }): Promise<{
    tracks: CloseResultItem[];
    sessionDescription?: { type: "offer" | "answer"; sdp: string };
    requiresImmediateRenegotiation: boolean;
  }> {
    return this.negotiation.run(async () => {
      const pc = this.requirePeer();
      if (req.offerSdp) await pc.setRemoteDescription({ type: "offer", sdp: req.offerSdp });
      const items: CloseResultItem[] = req.mids.map((mid) => {
        const entry = this.entries.find((e) => this.entryMid(e) === mid && this.entryOpen(e));
        if (!entry)
          return { mid, errorCode: "close_track_error", errorDescription: `no open track with mid ${mid}` };
        this.closeEntry(entry, "closed by API");
        return { mid };
      });
      if (req.offerSdp) {
        const sdp = await answerOffer(pc, this.rtc!);
        return {
          tracks: items,
          sessionDescription: { type: "answer", sdp },
          requiresImmediateRenegotiation: false,
        };
      }
      if (req.force || items.every((i) => i.errorCode))
        return { tracks: items, requiresImmediateRenegotiation: false };
      const sdp = await makeOffer(pc, this.rtc!);
      return {
        tracks: items,
        sessionDescription: { type: "offer", sdp },
        requiresImmediateRenegotiation: true,
      };
    });
  }

  /** Ends every track this session publishes or pulls, and its peer connection. Idempotent. */
  close(reason: string): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    this.state = "closed";
    clearTimeout(this.timer);
    for (const e of this.entries) this.closeEntry(e, `session closed: ${reason}`);
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.close().catch((err) => this.host.onError(err, "peer close"));
    }
    this.closed.emit(reason);
    this.closed.clear();
  }

  // ---- internals -----------------------------------------------------------------------------

  private async addTracksLocked(req: {
    offerSdp?: string;
    tracks: TrackRequest[];
    autoDiscover: boolean;
  }): Promise<NegotiationResult> {
    const pc = this.requirePeer();
    const offered = req.offerSdp ? parseMediaSections(req.offerSdp) : [];
    if (req.offerSdp) await pc.setRemoteDescription({ type: "offer", sdp: req.offerSdp });
    const items: TrackResultItem[] = [];
    // Items whose mid is only known once our own offer is created.
    const pending: { item: TrackResultItem; transceiver: RTCRtpTransceiver }[] = [];
    let changed = false;

    for (const t of req.tracks) {
      if (t.location === "local") {
        if (req.offerSdp) {
          const tr = t.mid !== undefined ? transceiverByMid(pc, t.mid) : undefined;
          if (!tr) {
            items.push(
              this.fail(t, "invalid_request", `the offer has no m-line with mid ${t.mid ?? "(none)"}`),
            );
            continue;
          }
          const name = t.trackName ?? randomTrackName();
          if (this.localTrack(name)) {
            items.push(this.fail(t, "invalid_request", `track ${name} is already published on this session`));
            continue;
          }
          this.bindLocal(tr, name);
          items.push({
            location: "local",
            trackName: name,
            mid: tr.mid ?? undefined,
            kind: tr.kind as MediaKind,
          });
        } else {
          if (!t.kind || !t.trackName) {
            items.push(
              this.fail(t, "invalid_request", "a local track without an offer needs kind and trackName"),
            );
            continue;
          }
          if (this.localTrack(t.trackName)) {
            items.push(
              this.fail(t, "invalid_request", `track ${t.trackName} is already published on this session`),
            );
            continue;
          }
          const tr = pc.addTransceiver(t.kind, { direction: "recvonly" });
          this.bindLocal(tr, t.trackName);
          const item: TrackResultItem = { location: "local", trackName: t.trackName, kind: t.kind };
          items.push(item);
          pending.push({ item, transceiver: tr });
          changed = true;
        }
        continue;
      }

      const source = this.host.findTrack(t.sessionId, t.trackName);
      if (!source) {
        items.push({
          location: "remote",
          sessionId: t.sessionId,
          trackName: t.trackName,
          errorCode: "not_found_track_error",
          errorDescription: `no track ${t.trackName} in session ${t.sessionId}`,
        });
        continue;
      }
      let tr: RTCRtpTransceiver | undefined;
      if (t.mid?.startsWith("#")) {
        const published = this.entries.find(
          (e) => e.kind === "local" && e.track.name === t.mid!.slice(1) && e.transceiver,
        ) as LocalEntry | undefined;
        tr = published?.transceiver;
        if (!tr) {
          items.push(
            this.fail(t, "invalid_request", `no transceiver published ${t.mid.slice(1)} on this session`),
          );
          continue;
        }
        tr.setDirection("sendrecv");
        if (!req.offerSdp) changed = true;
      } else if (req.offerSdp) {
        tr =
          t.mid !== undefined
            ? transceiverByMid(pc, t.mid)
            : this.nextOfferedReceiver(pc, offered, source.kind);
        if (!tr) {
          items.push(
            this.fail(
              t,
              "invalid_request",
              `the offer has no free recvonly ${source.kind} m-line for ${t.trackName}`,
            ),
          );
          continue;
        }
        const offeredDirection = offered.find((m) => m.mid === tr!.mid)?.direction;
        tr.setDirection(offeredDirection === "sendrecv" ? "sendrecv" : "sendonly");
      } else {
        tr = pc.addTransceiver(source.kind, { direction: "sendonly" });
        changed = true;
      }
      this.bindRemote(tr, source);
      const item: TrackResultItem = { location: "remote", sessionId: t.sessionId, trackName: t.trackName };
      if (tr.mid) item.mid = tr.mid;
      else pending.push({ item, transceiver: tr });
      items.push(item);
    }

    if (req.autoDiscover && req.offerSdp) {
      for (const m of offered) {
        if (m.kind !== "audio" && m.kind !== "video") continue;
        if (m.direction !== "sendonly" && m.direction !== "sendrecv") continue;
        if (m.port === 0 || m.mid === undefined) continue;
        if (this.entries.some((e) => e.kind === "local" && e.mid === m.mid && !e.track.ended)) continue;
        const tr = transceiverByMid(pc, m.mid);
        if (!tr) continue;
        const name = m.msidTrack && !this.localTrack(m.msidTrack) ? m.msidTrack : randomTrackName();
        this.bindLocal(tr, name);
        items.push({ location: "local", trackName: name, mid: m.mid, kind: m.kind });
      }
    }

    let sessionDescription: NegotiationResult["sessionDescription"];
    if (req.offerSdp) {
      sessionDescription = { type: "answer", sdp: await answerOffer(pc, this.rtc!) };
    } else if (changed) {
      sessionDescription = { type: "offer", sdp: await makeOffer(pc, this.rtc!) };
    }
    for (const p of pending) p.item.mid = p.transceiver.mid ?? undefined;
    for (const e of this.entries) if (e.mid === undefined && e.transceiver?.mid) e.mid = e.transceiver.mid;
    return {
      requiresImmediateRenegotiation: sessionDescription?.type === "offer",
      sessionDescription,
      tracks: items,
    };
  }

  private fail(t: TrackRequest, code: "invalid_request", description: string): TrackResultItem {
    const item: TrackResultItem = { location: t.location, errorCode: code, errorDescription: description };
    if (t.trackName) item.trackName = t.trackName;
    if (t.mid) item.mid = t.mid;
    if (t.location === "remote") item.sessionId = t.sessionId;
    return item;
  }

  /** The offered recvonly m-lines are bound to pulled tracks in order. */
  private nextOfferedReceiver(
    pc: RTCPeerConnection,
    offered: ReturnType<typeof parseMediaSections>,
    kind: MediaKind,
  ): RTCRtpTransceiver | undefined {
    for (const m of offered) {
      if (m.kind !== kind || m.direction !== "recvonly" || m.mid === undefined) continue;
      if (this.entries.some((e) => e.kind === "remote" && this.entryMid(e) === m.mid && !e.closed)) continue;
      const tr = transceiverByMid(pc, m.mid);
      if (tr) return tr;
    }
    return undefined;
  }

  private bindLocal(transceiver: RTCRtpTransceiver, name: string): void {
    const publisher: TrackPublisher = {
      requestKeyframe: () => {
        const ssrc = transceiver.receiver.tracks[0]?.ssrc;
        if (ssrc !== undefined) transceiver.receiver.sendRtcpPLI(ssrc).catch(() => {});
      },
      extensionUri: (id) => transceiver.headerExtensions.find((e) => e.id === id)?.uri,
    };
    const kind = transceiver.kind as MediaKind;
    const codec = transceiver.codecs[0];
    const track = this.newTrack(
      name,
      kind,
      codec ? { mimeType: codec.mimeType, clockRate: codec.clockRate, channels: codec.channels } : undefined,
      publisher,
    );
    this.entries.push({ kind: "local", mid: transceiver.mid ?? undefined, track, transceiver });
    this.publishing.set(transceiver, track);
  }

  private bindRemote(transceiver: RTCRtpTransceiver, track: Track): void {
    setSendMsid(transceiver, track.sessionId, track.name);
    const sink = new PeerSenderSink(transceiver, {
      onForwarded: this.host.onForwarded,
      onRetransmit: this.host.onRetransmit,
    });
    const entry: RemoteEntry = {
      kind: "remote",
      mid: transceiver.mid ?? undefined,
      track,
      transceiver,
      sink,
      subscription: track.subscribe({
        onPacket: (p, t) => sink.onPacket(p, t),
        onTrackEnded: (t, reason) => {
          entry.closed = true;
          sink.onTrackEnded(t, reason);
        },
      }),
      closed: false,
    };
    this.entries.push(entry);
  }

  private newTrack(
    name: string,
    kind: MediaKind,
    codec: TrackCodec | undefined,
    publisher: TrackPublisher,
  ): Track {
    return new Track({
      sessionId: this.id,
      name,
      kind,
      codec,
      publisher,
      onSinkError: (err) => this.host.onError(err, `forwarding ${this.id}/${name}`),
    });
  }

  private onRemoteTrack(track: MediaStreamTrack, transceiver: RTCRtpTransceiver): void {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      // Looked up per packet (one map read) so that a transceiver re-bound after tracks/close publishes the new track.
      this.publishing.get(transceiver)?.write(rtp);
    });
  }

  private onConnectionState(state: string): void {
    if (this.closeReason) return;
    if (state === "connected") {
      this.state = "connected";
      clearTimeout(this.timer);
    } else if (state === "disconnected" || state === "failed") {
      if (this.state === "connected") {
        this.state = "disconnected";
        this.arm(this.timings.disconnectGraceMs, `transport lost (${state})`);
      }
    } else if (state === "closed") {
      this.close("peer connection closed");
    }
  }

  private arm(ms: number, reason: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.close(reason), ms);
    this.timer.unref();
  }

  private requirePeer(): RTCPeerConnection {
    if (!this.pc) throw new Error("this session has no peer connection");
    return this.pc;
  }

  private entryMid(e: Entry): string | undefined {
    return e.mid ?? e.transceiver?.mid ?? undefined;
  }

  private entryOpen(e: Entry): boolean {
    return e.kind === "local" ? !e.track.ended : !e.closed;
  }

  private closeEntry(e: Entry, reason: string): void {
    if (e.kind === "local") {
      e.track.close(reason);
      if (e.transceiver && !this.closeReason)
        e.transceiver.setDirection(e.transceiver.direction === "sendrecv" ? "sendonly" : "inactive");
    } else if (!e.closed) {
      e.closed = true;
      e.subscription.close();
      e.sink.dispose();
      if (!this.closeReason)
        e.transceiver.setDirection(e.transceiver.direction === "sendrecv" ? "recvonly" : "inactive");
    }
  }
}
