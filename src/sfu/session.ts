import { randomBytes, randomInt } from "node:crypto";
import type { RtpPacket } from "../media/rtp.ts";
import { type CodecFormat, codecKey, DEFAULT_CODECS, type MediaKind } from "../rtc/negotiation/codecs.ts";
import {
  parseRemoteDescription,
  peerReceives,
  peerSends,
  type RemoteDescription,
  SdpError,
} from "../rtc/negotiation/remote-description.ts";
import { type LocalTransportParameters, writeDescription } from "../rtc/negotiation/sdp-writer.ts";
import {
  AnswerDraft,
  applyAnswer,
  emptyState,
  fillReservedSend,
  OfferDraft,
  type Section,
  type SendSpec,
  type SessionDescriptionState,
  withoutMedia,
} from "../rtc/negotiation/session-description.ts";
import type {
  LayerPreference,
  PeerTransport,
  ReceiveStreamSpec,
  SendStream,
  TransportState,
} from "../rtc/peer-transport.ts";
import { SctpAssociation } from "../rtc/sctp-association.ts";
import { Mutex } from "../util/mutex.ts";
import { Signal } from "../util/signal.ts";
import { SessionDataChannels } from "./data-channels.ts";
import { randomTrackName } from "./ids.ts";
import { type Subscription, Track, type TrackCodec, type TrackPublisher } from "./track.ts";

export type { MediaKind } from "../rtc/negotiation/codecs.ts";
export type SessionState = "new" | "connected" | "disconnected" | "closed";

export interface SessionTimings {
  connectTimeoutMs: number;
  disconnectGraceMs: number;
}

export interface SessionLimits {
  /**
   * Open tracks (published, pulled, or in an offer of ours awaiting renegotiation) one session may have
   * (--max-tracks-per-session). A tracks/new item beyond it fails alone with quota_exceeded.
   */
  tracksPerSession: number;
}

const NO_LIMITS: SessionLimits = { tracksPerSession: Number.POSITIVE_INFINITY };

/** What a session needs from its app: finding other sessions' tracks, and the hooks for counters. */
export interface SessionHost {
  findTrack(sessionId: string, trackName: string): Track | undefined;
  /** The peer connection came up (`previous` "new") or back ("disconnected"), or was lost ("disconnected"). */
  onSessionState?(session: Session, state: "connected" | "disconnected", previous: SessionState): void;
  onForwarded?(): void;
  onRetransmit?(): void;
  onError(err: unknown, context: string): void;
}

export interface LocalTrackRequest {
  location: "local";
  trackName?: string;
  mid?: string;
  kind?: MediaKind;
  bidirectionalMediaStream?: boolean;
}
export interface RemoteTrackRequest {
  location: "remote";
  sessionId: string;
  trackName: string;
  mid?: string;
  simulcast?: LayerPreference;
}
export type TrackRequest = LocalTrackRequest | RemoteTrackRequest;

export type TrackItemError = "not_found_track_error" | "invalid_request" | "quota_exceeded";

export interface TrackResultItem {
  location?: "local" | "remote";
  trackName?: string;
  mid?: string;
  sessionId?: string;
  kind?: MediaKind;
  simulcast?: LayerPreference;
  errorCode?: TrackItemError;
  errorDescription?: string;
}

export interface SessionDescriptionJson {
  type: "offer" | "answer";
  sdp: string;
}

export interface NegotiationResult {
  requiresImmediateRenegotiation: boolean;
  sessionDescription?: SessionDescriptionJson;
  tracks: TrackResultItem[];
}

export interface CloseResultItem {
  mid: string;
  errorCode?: "close_track_error";
  errorDescription?: string;
}

export interface UpdateRequest {
  mid: string;
  location?: "local" | "remote";
  sessionId?: string;
  trackName?: string;
  simulcast?: LayerPreference;
}

export interface UpdateResultItem {
  mid: string;
  location?: "local" | "remote";
  sessionId?: string;
  trackName?: string;
  simulcast?: LayerPreference;
  errorCode?: "update_track_error";
  errorDescription?: string;
}

/** A negotiation the client got wrong (bad SDP, an answer without an offer): HTTP 400 for the route. */
export class NegotiationError extends Error {
  override readonly name = "NegotiationError";
}

/** A track this session publishes, as listed by GET sessions/{id}. */
interface LocalEntry {
  kind: "local";
  mid: string | undefined;
  track: Track;
}
/** A track this session pulls from another session. */
interface RemoteEntry {
  kind: "remote";
  mid: string;
  track: Track;
  stream: SendStream;
  subscription: Subscription;
  preference: LayerPreference;
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

/** Work that becomes real only when the negotiation it belongs to completes. */
interface PlannedPublish {
  mid: string;
  name: string;
}
interface PlannedPull {
  mid: string;
  source: Track;
  preference: LayerPreference;
}

/** Our offer, waiting for PUT renegotiate. */
interface PendingOffer {
  state: SessionDescriptionState;
  publishes: PlannedPublish[];
  pulls: PlannedPull[];
  closes: string[];
}

/** m-lines plus items above which a negotiation lets the event loop run between its steps (see breathe). */
const LARGE_NEGOTIATION = 32;

const DEFAULT_PREFERENCE: LayerPreference = { priorityOrdering: "none", ridNotAvailable: "none" };

function mimeType(kind: MediaKind, name: string): string {
  const display = name === "opus" ? "opus" : name.toUpperCase();
  return `${kind}/${display}`;
}

function formatOf(track: Track): CodecFormat {
  if (!track.codec) {
    const d = DEFAULT_CODECS[track.kind][0];
    return { name: d.name, clockRate: d.clockRate, channels: d.channels, fmtp: d.fmtp };
  }
  const format: CodecFormat = {
    name: track.codec.mimeType.split("/")[1]?.toLowerCase() ?? "",
    clockRate: track.codec.clockRate,
  };
  if (track.codec.channels !== undefined) format.channels = track.codec.channels;
  if (track.codec.fmtp !== undefined) format.fmtp = track.codec.fmtp;
  return format;
}

/**
 * One client of the SFU. A regular session owns one media transport (one BUNDLE, ICE-lite) and one
 * negotiation model; an adapter session has neither and only publishes tracks fed through the internal
 * API. Every change of what flows is transactional: it is decided on a draft of the model and becomes
 * real (tracks registered, subscriptions made) only when the negotiation completes — at once for our
 * answers, on PUT renegotiate for our offers. A failed or abandoned negotiation leaves the session as
 * it was.
 */
export class Session {
  readonly closed = new Signal<string>();
  state: SessionState = "new";
  closeReason: string | undefined;
  private readonly transport: PeerTransport | undefined;
  private desc: SessionDescriptionState = emptyState();
  private pending: PendingOffer | undefined;
  private remote: RemoteDescription | undefined;
  private readonly entries: Entry[] = [];
  /** Publishing m-line → its current track (the latest binding wins). */
  private readonly publishing = new Map<string, Track>();
  private readonly negotiation = new Mutex();
  private readonly cname = randomBytes(8).toString("hex");
  private timer: NodeJS.Timeout | undefined;
  /** Data channels (issue 12): present once an offer negotiated m=application on a plane that carries it. */
  readonly dataChannels: SessionDataChannels;

  constructor(
    readonly id: string,
    private readonly host: SessionHost,
    createTransport: (() => PeerTransport) | undefined,
    private readonly timings: SessionTimings,
    private readonly limits: SessionLimits = NO_LIMITS,
  ) {
    this.dataChannels = new SessionDataChannels(id);
    if (createTransport) {
      this.transport = createTransport();
      this.transport.stateChanged.subscribe((s) => this.onTransportState(s));
      this.arm(timings.connectTimeoutMs, "session never connected");
    }
  }

  get hasPeer(): boolean {
    return this.transport !== undefined;
  }

  /**
   * Resolves once the transport has its UDP port(s) and credentials; rejects (NoUdpPortError when the port
   * range is full) when it cannot get them. A session without a peer connection is always ready.
   */
  async whenReady(): Promise<void> {
    if (this.transport) await this.transport.ready;
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
        mid: e.mid ?? "",
        trackName: e.track.name,
        status: active && !this.closeReason ? "active" : "inactive",
      };
      if (e.kind === "remote") info.sessionId = e.track.sessionId;
      return info;
    });
  }

  /** The committed negotiation model (tests, diagnostics). */
  get description(): SessionDescriptionState {
    return this.desc;
  }

  // ---- HTTP API operations -----------------------------------------------------------------

  /** sessions/new with an offer: accept what the peer sends; tracks/new names it later. */
  answer(offerSdp: string): Promise<string> {
    return this.negotiate(async () => {
      const offer = this.parse("offer", offerSdp);
      const size = offer.sections.length;
      await this.breathe(size);
      const local = await this.localParameters();
      const draft = this.answerDraft(offer);
      const state = draft.finish();
      const sdp = writeDescription(state, "answer", local);
      await this.breathe(size);
      this.commitAnswer(state, offer, [], []);
      return sdp;
    });
  }

  /** tracks/new in all its variants (see SPEC §1.4). */
  addTracks(req: {
    offerSdp?: string;
    tracks: TrackRequest[];
    autoDiscover: boolean;
  }): Promise<NegotiationResult> {
    return this.negotiate(() =>
      req.offerSdp
        ? this.addTracksWithOffer(req.offerSdp, req.tracks, req.autoDiscover)
        : this.addTracksByOffering(req.tracks),
    );
  }

  /**
   * datachannels/establish: give the session its data channel transport. With the peer's offer (it must
   * carry m=application) we answer; without, we offer m=application and the peer answers through PUT
   * renegotiate. Already there: nothing to negotiate.
   */
  establishDataChannels(offerSdp: string | undefined): Promise<NegotiationResult> {
    return this.negotiate(async () => {
      this.requireTransport();
      if (!this.carriesDataChannels)
        throw new NegotiationError(
          "this session's media plane (a ?thirdparty=true session) carries no data channels",
        );
      if (offerSdp !== undefined) {
        const offer = this.parse("offer", offerSdp);
        if (!offer.sections.some((s) => s.kind === "application" && !s.rejected))
          throw new NegotiationError(
            "the offer has no m=application section (create a data channel before createOffer)",
          );
        const local = await this.localParameters();
        const state = this.answerDraft(offer).finish();
        const sdp = writeDescription(state, "answer", local);
        this.commitAnswer(state, offer, [], []);
        return {
          requiresImmediateRenegotiation: false,
          sessionDescription: { type: "answer", sdp },
          tracks: [],
        };
      }
      if (this.dataChannels.available) return { requiresImmediateRenegotiation: false, tracks: [] };
      const draft = new OfferDraft(this.pending?.state ?? this.desc);
      draft.addApplicationSection();
      const local = await this.localParameters();
      const state = draft.finish();
      const sdp = writeDescription(state, "offer", local);
      this.pending = {
        state,
        publishes: this.pending?.publishes ?? [],
        pulls: this.pending?.pulls ?? [],
        closes: this.pending?.closes ?? [],
      };
      return { requiresImmediateRenegotiation: true, sessionDescription: { type: "offer", sdp }, tracks: [] };
    });
  }

  /** PUT renegotiate: the client's answer to our last offer. */
  renegotiate(answerSdp: string): Promise<void> {
    return this.negotiate(async () => {
      this.requireTransport();
      const pending = this.pending;
      if (!pending)
        throw new NegotiationError("there is no offer from Patchbay waiting for an answer on this session");
      const answer = this.parse("answer", answerSdp);
      await this.breathe(answer.sections.length);
      let applied: ReturnType<typeof applyAnswer>;
      try {
        applied = applyAnswer(pending.state, answer);
      } catch (err) {
        throw this.negotiationError(err);
      }
      this.pending = undefined;
      this.remote = answer;
      this.desc = applied.state;
      for (const mid of pending.closes) this.closeMid(mid, "closed by API");
      for (const mid of applied.rejectedMids) this.closeMid(mid, "m-line rejected by the peer");
      for (const p of pending.publishes) {
        const section = this.sectionOf(p.mid);
        // Registered once the answer applied, even if the peer does not send yet (it may attach its
        // track later): the push was accepted.
        if (section && !section.rejected && section.receive) this.bindPublish(section, p.name);
      }
      for (const p of pending.pulls) {
        const section = this.sectionOf(p.mid);
        if (section?.send && !section.rejected) this.bindPull(section, p.source, p.preference);
      }
      this.syncTransport();
    });
  }

  closeTracks(req: { mids: string[]; offerSdp?: string; force: boolean }): Promise<{
    tracks: CloseResultItem[];
    sessionDescription?: SessionDescriptionJson;
    requiresImmediateRenegotiation: boolean;
  }> {
    return this.negotiate(async () => {
      this.requireTransport();
      const items: CloseResultItem[] = [];
      const closing: string[] = [];
      for (const mid of req.mids) {
        if (!this.openEntryAt(mid)) {
          items.push({
            mid,
            errorCode: "close_track_error",
            errorDescription: `no open track with mid ${mid}`,
          });
          continue;
        }
        if (!closing.includes(mid)) closing.push(mid);
        items.push({ mid });
      }
      if (req.offerSdp) {
        const offer = this.parse("offer", req.offerSdp);
        const size = offer.sections.length + req.mids.length;
        await this.breathe(size);
        const local = await this.localParameters();
        const draft = this.answerDraft(offer);
        for (const mid of closing) {
          draft.unbindSend(mid);
          draft.setReceive(mid, false);
        }
        const state = draft.finish();
        const sdp = writeDescription(state, "answer", local);
        await this.breathe(size);
        for (const mid of closing) this.closeMid(mid, "closed by API");
        this.commitAnswer(state, offer, [], []);
        return {
          tracks: items,
          sessionDescription: { type: "answer", sdp },
          requiresImmediateRenegotiation: false,
        };
      }
      if (closing.length === 0) return { tracks: items, requiresImmediateRenegotiation: false };
      if (req.force) {
        // No renegotiation: media stops now; the next description we write says so.
        this.desc = withoutMedia(this.desc, closing);
        for (const mid of closing) this.closeMid(mid, "closed by API");
        this.syncTransport();
        return { tracks: items, requiresImmediateRenegotiation: false };
      }
      const local = await this.localParameters();
      const draft = new OfferDraft(this.pending?.state ?? this.desc);
      for (const mid of closing) draft.close(mid);
      const state = draft.finish();
      const sdp = writeDescription(state, "offer", local);
      for (const mid of closing) this.closeMid(mid, "closed by API");
      this.syncTransport();
      this.pending = {
        state,
        publishes: this.pending?.publishes ?? [],
        pulls: this.pending?.pulls ?? [],
        closes: [...(this.pending?.closes ?? []), ...closing],
      };
      return {
        tracks: items,
        sessionDescription: { type: "offer", sdp },
        requiresImmediateRenegotiation: true,
      };
    });
  }

  /** PUT tracks/update: a pulled track's simulcast preference, or another track on the same m-line. */
  updateTracks(
    updates: UpdateRequest[],
  ): Promise<{ tracks: UpdateResultItem[]; requiresImmediateRenegotiation: boolean }> {
    return this.negotiate(async () => {
      this.requireTransport();
      const items: UpdateResultItem[] = [];
      for (const u of updates) items.push(this.updateOne(u));
      return { tracks: items, requiresImmediateRenegotiation: false };
    });
  }

  /**
   * One negotiation at a time; afterwards the oldest closed tracks beyond --max-tracks-per-session are
   * forgotten (GET sessions/{id} lists the recent ones as inactive), so churn cannot grow a session forever.
   */
  private negotiate<T>(fn: () => Promise<T>): Promise<T> {
    return this.negotiation.run(async () => {
      try {
        return await fn();
      } finally {
        this.pruneClosedEntries();
      }
    });
  }

  /**
   * Between the steps of a large negotiation (parsing, planning, writing the SDP) lets timers and I/O run:
   * media timing shares this event loop. Nothing is committed before the last step, so the negotiation stays
   * all-or-nothing; a session closed meanwhile ends it.
   */
  private async breathe(size: number): Promise<void> {
    if (size <= LARGE_NEGOTIATION) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closeReason)
      throw new NegotiationError(`the session closed during the negotiation (${this.closeReason})`);
  }

  /** Ends every track this session publishes or pulls, and its transport. Idempotent. */
  close(reason: string): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    this.state = "closed";
    clearTimeout(this.timer);
    for (const e of this.entries) this.closeEntry(e, `session closed: ${reason}`);
    this.dataChannels.close();
    this.transport?.close();
    this.closed.emit(reason);
    this.closed.clear();
  }

  // ---- negotiation steps -----------------------------------------------------------------------

  private async addTracksWithOffer(
    offerSdp: string,
    tracks: TrackRequest[],
    autoDiscover: boolean,
  ): Promise<NegotiationResult> {
    const offer = this.parse("offer", offerSdp);
    const size = offer.sections.length + tracks.length;
    await this.breathe(size);
    const local = await this.localParameters();
    const draft = this.answerDraft(offer);
    const items: TrackResultItem[] = [];
    const publishes: PlannedPublish[] = [];
    const pulls: PlannedPull[] = [];
    const claimed = new Set<string>();
    // Our pending offer (if any) is replaced by this answer: only committed tracks count.
    const quota = this.trackQuota(false);

    for (const t of tracks) {
      if (t.location === "local") {
        const mid = t.mid!;
        const section = draft.section(mid);
        if (!section) {
          items.push(this.fail(t, "invalid_request", `the offer has no m-line with mid ${mid}`));
          continue;
        }
        if (section.rejected || !section.receive) {
          items.push(
            this.fail(
              t,
              "invalid_request",
              `m-line ${mid} does not send media in the offer (${section.rejected ? "rejected" : section.remoteDirection})`,
            ),
          );
          continue;
        }
        const name = t.trackName ?? randomTrackName();
        const existing = this.localEntryByName(name);
        const sameBinding = existing?.mid === mid && this.publishing.get(mid) === existing.track;
        if (existing && !sameBinding) {
          items.push(
            this.fail(
              t,
              "invalid_request",
              `track ${name} is already published on this session (mid ${existing.mid ?? "none"})`,
            ),
          );
          continue;
        }
        if (publishes.some((p) => p.name === name)) {
          items.push(this.fail(t, "invalid_request", `track ${name} appears twice in this request`));
          continue;
        }
        const busy = this.publishing.get(mid);
        if (busy && !busy.ended && busy.name !== name) {
          items.push(this.fail(t, "invalid_request", `m-line ${mid} already publishes track ${busy.name}`));
          continue;
        }
        if (!sameBinding && quota.full()) {
          items.push(this.fail(t, "quota_exceeded", quota.why()));
          continue;
        }
        if (t.bidirectionalMediaStream) {
          const why = draft.reserveSend(mid, this.sendSlot(name));
          if (why) {
            items.push(this.fail(t, "invalid_request", why));
            continue;
          }
        }
        claimed.add(mid);
        if (!sameBinding) {
          publishes.push({ mid, name });
          quota.take();
        }
        items.push({ location: "local", trackName: name, mid, kind: section.kind as MediaKind });
        continue;
      }
      const source = this.host.findTrack(t.sessionId, t.trackName);
      if (!source) {
        items.push(this.notFound(t));
        continue;
      }
      let mid: string | undefined;
      if (t.mid?.startsWith("#")) {
        mid = this.publishedMid(t.mid.slice(1));
        if (mid === undefined) {
          items.push(
            this.fail(t, "invalid_request", `no transceiver published ${t.mid.slice(1)} on this session`),
          );
          continue;
        }
      } else if (t.mid !== undefined) {
        mid = t.mid;
      } else {
        mid = draft.offered.find(
          (o) =>
            o.offered.kind === source.kind &&
            !o.section.rejected &&
            peerReceives(o.offered.direction) &&
            !peerSends(o.offered.direction) &&
            !claimed.has(o.offered.mid) &&
            !this.openPullAt(o.offered.mid),
        )?.offered.mid;
        if (mid === undefined) {
          items.push(
            this.fail(
              t,
              "invalid_request",
              `the offer has no free recvonly ${source.kind} m-line for ${t.trackName}`,
            ),
          );
          continue;
        }
      }
      if (quota.full()) {
        items.push(this.fail(t, "quota_exceeded", quota.why()));
        continue;
      }
      const why = this.openPullAt(mid)
        ? `m-line ${mid} already carries a pulled track`
        : draft.bindSend(mid, this.sendSpec(source));
      if (why) {
        items.push(this.fail(t, "invalid_request", why));
        continue;
      }
      claimed.add(mid);
      pulls.push({ mid, source, preference: t.simulcast ?? DEFAULT_PREFERENCE });
      quota.take();
      items.push(this.pullItem(t, mid));
    }

    if (autoDiscover) {
      for (const o of draft.offered) {
        const s = o.section;
        if (s.rejected || !s.receive || claimed.has(s.mid)) continue;
        if (s.kind !== "audio" && s.kind !== "video") continue;
        const current = this.publishing.get(s.mid);
        if (current && !current.ended) continue;
        if (quota.full()) {
          items.push({
            location: "local",
            mid: s.mid,
            kind: s.kind,
            errorCode: "quota_exceeded",
            errorDescription: quota.why(),
          });
          continue;
        }
        const msidName = o.offered.msid?.trackId;
        const taken = (n: string) => this.localTrack(n) !== undefined || publishes.some((p) => p.name === n);
        const name = msidName && !taken(msidName) ? msidName : randomTrackName();
        publishes.push({ mid: s.mid, name });
        quota.take();
        items.push({ location: "local", trackName: name, mid: s.mid, kind: s.kind });
      }
    }

    await this.breathe(size);
    const state = draft.finish();
    const sdp = writeDescription(state, "answer", local);
    await this.breathe(size);
    this.commitAnswer(state, offer, publishes, pulls);
    return {
      requiresImmediateRenegotiation: false,
      sessionDescription: { type: "answer", sdp },
      tracks: items,
    };
  }

  private async addTracksByOffering(tracks: TrackRequest[]): Promise<NegotiationResult> {
    this.requireTransport();
    const base = this.pending?.state ?? this.desc;
    const draft = new OfferDraft(base);
    const items: TrackResultItem[] = [];
    const publishes: PlannedPublish[] = [];
    const pulls: PlannedPull[] = [];
    // Our offer adds to the pending one: what it plans counts.
    const quota = this.trackQuota(true);
    for (const t of tracks) {
      if (t.location === "local") {
        if (!t.kind || !t.trackName) {
          items.push(
            this.fail(t, "invalid_request", "a local track without an offer needs kind and trackName"),
          );
          continue;
        }
        const name = t.trackName;
        if (
          this.localTrack(name) ||
          publishes.some((p) => p.name === name) ||
          this.pending?.publishes.some((p) => p.name === name)
        ) {
          items.push(this.fail(t, "invalid_request", `track ${name} is already published on this session`));
          continue;
        }
        if (quota.full()) {
          items.push(this.fail(t, "quota_exceeded", quota.why()));
          continue;
        }
        const reserve = t.bidirectionalMediaStream ? this.sendSlot(name) : undefined;
        const mid = draft.addReceiveSection(t.kind, reserve);
        publishes.push({ mid, name });
        quota.take();
        items.push({ location: "local", trackName: name, kind: t.kind, mid });
        continue;
      }
      const source = this.host.findTrack(t.sessionId, t.trackName);
      if (!source) {
        items.push(this.notFound(t));
        continue;
      }
      if (quota.full()) {
        items.push(this.fail(t, "quota_exceeded", quota.why()));
        continue;
      }
      let mid: string;
      if (t.mid?.startsWith("#")) {
        const published = this.publishedMid(t.mid.slice(1));
        if (published === undefined) {
          items.push(
            this.fail(t, "invalid_request", `no transceiver published ${t.mid.slice(1)} on this session`),
          );
          continue;
        }
        if (this.openPullAt(published) || pulls.some((p) => p.mid === published)) {
          items.push(this.fail(t, "invalid_request", `m-line ${published} already carries a pulled track`));
          continue;
        }
        // bidirectionalMediaStream: the peer already receives on that m-line, nothing to negotiate.
        const filled = this.pending
          ? "a negotiation is pending"
          : fillReservedSend(this.desc, published, this.sendSpec(source));
        if (typeof filled !== "string") {
          this.desc = filled;
          const section = this.sectionOf(published);
          if (section) this.bindPull(section, source, t.simulcast ?? DEFAULT_PREFERENCE);
          quota.take();
          items.push(this.pullItem(t, published));
          continue;
        }
        const why = draft.bindSend(published, this.sendSpec(source));
        if (why) {
          items.push(this.fail(t, "invalid_request", why));
          continue;
        }
        mid = published;
      } else {
        mid = draft.addSendSection(source.kind, this.sendSpec(source));
      }
      pulls.push({ mid, source, preference: t.simulcast ?? DEFAULT_PREFERENCE });
      quota.take();
      items.push(this.pullItem(t, mid));
    }
    if (publishes.length === 0 && pulls.length === 0)
      return { requiresImmediateRenegotiation: false, tracks: items };
    await this.breathe(base.sections.length + tracks.length);
    const local = await this.localParameters();
    const state = draft.finish();
    const sdp = writeDescription(state, "offer", local);
    this.pending = {
      state,
      publishes: [...(this.pending?.publishes ?? []), ...publishes],
      pulls: [...(this.pending?.pulls ?? []), ...pulls],
      closes: this.pending?.closes ?? [],
    };
    return {
      requiresImmediateRenegotiation: true,
      sessionDescription: { type: "offer", sdp },
      tracks: items,
    };
  }

  private updateOne(u: UpdateRequest): UpdateResultItem {
    const item: UpdateResultItem = { mid: u.mid };
    if (u.location) item.location = u.location;
    if (u.sessionId) item.sessionId = u.sessionId;
    if (u.trackName) item.trackName = u.trackName;
    const fail = (why: string): UpdateResultItem => ({
      ...item,
      errorCode: "update_track_error",
      errorDescription: why,
    });
    const entry = this.entries.find(
      (e): e is RemoteEntry => e.kind === "remote" && e.mid === u.mid && !e.closed,
    );
    if (!entry) return fail(`no pulled track is open on mid ${u.mid}`);
    let target = entry.track;
    if (
      u.trackName !== undefined &&
      (u.trackName !== entry.track.name || (u.sessionId ?? entry.track.sessionId) !== entry.track.sessionId)
    ) {
      // Reuse the transceiver for another track: same kind and codec, so the SDP the peer holds stays valid.
      const source = this.host.findTrack(u.sessionId ?? entry.track.sessionId, u.trackName);
      if (!source) return fail(`no track ${u.trackName} in session ${u.sessionId ?? entry.track.sessionId}`);
      if (source.kind !== entry.track.kind)
        return fail(`mid ${u.mid} carries ${entry.track.kind}, ${u.trackName} is ${source.kind}`);
      if (codecKey(formatOf(source)) !== codecKey(formatOf(entry.track)))
        return fail(
          `mid ${u.mid} was negotiated for ${formatOf(entry.track).name}, ${u.trackName} is ${formatOf(source).name}`,
        );
      target = source;
    }
    if (u.simulcast && target.layers.length <= 1)
      return fail(`track ${target.name} is not simulcast: it has no layers to choose from`);
    if (target !== entry.track) {
      const section = this.sectionOf(u.mid);
      if (!section?.send) return fail(`mid ${u.mid} does not send`);
      const preference = u.simulcast ?? entry.preference;
      this.closeEntry(entry, "replaced by tracks/update");
      this.bindPull(section, target, preference);
    } else if (u.simulcast) {
      entry.preference = { ...u.simulcast };
      entry.stream.setLayerPreference(entry.preference);
    }
    if (u.simulcast) item.simulcast = { ...u.simulcast };
    return item;
  }

  // ---- committing ------------------------------------------------------------------------------

  /** Our answer is final the moment we give it: adopt the state, then make the planned tracks real. */
  private commitAnswer(
    state: SessionDescriptionState,
    offer: RemoteDescription,
    publishes: PlannedPublish[],
    pulls: PlannedPull[],
  ): void {
    if (this.pending) this.pending = undefined; // the peer's offer replaced ours (it never answered it)
    this.desc = state;
    this.remote = offer;
    // Whatever the new description no longer carries ends (m-lines the peer stopped or rejected).
    for (const e of this.entries) {
      if (e.kind === "local" && e.mid !== undefined && !e.track.ended) {
        const s = this.sectionOf(e.mid);
        if (!s || s.rejected || !s.receive || this.publishing.get(e.mid) !== e.track)
          this.closeEntry(e, "m-line stopped by the peer");
      } else if (e.kind === "remote" && !e.closed) {
        const s = this.sectionOf(e.mid);
        if (!s || s.rejected || !s.send) this.closeEntry(e, "m-line stopped by the peer");
      }
    }
    for (const p of publishes) {
      const section = this.sectionOf(p.mid);
      if (section) this.bindPublish(section, p.name);
    }
    for (const p of pulls) {
      const section = this.sectionOf(p.mid);
      if (section?.send) this.bindPull(section, p.source, p.preference);
    }
    this.syncTransport();
  }

  /** The media plane can carry SCTP (the native plane; not werift's, used for thirdparty sessions). */
  private get carriesDataChannels(): boolean {
    return typeof this.transport?.sendApplicationData === "function";
  }

  /** Once m=application is negotiated: the session's SCTP association, on the transport's DTLS. */
  private syncDataChannels(transport: PeerTransport): void {
    if (this.dataChannels.association || !this.carriesDataChannels) return;
    if (!this.desc.sections.some((s) => s.kind === "application" && !s.rejected)) return;
    // SCTP's only role is who sends INIT. At the first negotiation the DTLS client does (browsers, as the
    // DTLS client toward us, start SCTP with DTLS); when the transport is added to a running connection
    // (datachannels/establish), some stacks (werift) only answer, so Patchbay sends INIT itself.
    const lateAddition = transport.state === "connected";
    const association = new SctpAssociation({
      isServer: !lateAddition && (this.desc.dtlsRole ?? "server") === "server",
      sendRecord: (record) => transport.sendApplicationData?.(record),
    });
    transport.onApplicationData = (record) => association.receiveRecord(record);
    this.dataChannels.attach(association);
    if (transport.state === "connected") association.start();
  }

  /** Tell the transport what the committed description means. */
  private syncTransport(): void {
    const transport = this.transport;
    if (!transport || this.closeReason) return;
    this.syncDataChannels(transport);
    const specs: ReceiveStreamSpec[] = [];
    for (const s of this.desc.sections) {
      if (s.rejected || !s.receive || !peerSends(s.remoteDirection)) continue;
      if (s.kind !== "audio" && s.kind !== "video") continue;
      const codec = s.codecs[0];
      if (!codec) continue;
      specs.push({
        mid: s.mid,
        kind: s.kind,
        payloadTypes: s.codecs.map((c) => c.payloadType),
        codecName: codec.name,
        clockRate: codec.clockRate,
        ssrcs: s.remoteSsrcs,
        rids: s.recvRids.length > 1 ? s.recvRids.map((r) => r.id) : [],
        extensions: new Map(s.extensions.map((e) => [e.uri, e.id])),
      });
    }
    transport.setReceiveStreams(specs, (mid, layer, packet) => this.onInbound(mid, layer, packet));
    const remote = this.remote;
    if (remote?.iceUfrag)
      transport.start({
        iceUfrag: remote.iceUfrag,
        icePwd: remote.icePwd,
        fingerprints: remote.fingerprints,
        role: this.desc.dtlsRole ?? "server",
        // Only a full agent (thirdparty) ever controls: against a lite peer, or when it made the first offer.
        iceControlling: remote.iceLite || remote.type === "answer",
        candidates: remote.candidates,
      });
  }

  private onInbound(mid: string, layer: number, packet: RtpPacket): void {
    this.publishing.get(mid)?.write(packet, layer);
  }

  private bindPublish(section: Section, name: string): void {
    const kind = section.kind as MediaKind;
    const codec = section.codecs[0];
    const extensions = new Map(section.extensions.map((e) => [e.id, e.uri]));
    const mid = section.mid;
    const publisher: TrackPublisher = {
      requestKeyframe: (layer) => this.transport?.requestKeyframe(mid, layer),
      extensionUri: (id) => extensions.get(id),
    };
    const trackCodec: TrackCodec | undefined = codec
      ? {
          mimeType: mimeType(kind, codec.name),
          clockRate: codec.clockRate,
          channels: codec.channels,
          fmtp: codec.fmtp,
          payloadType: codec.payloadType,
        }
      : undefined;
    const existing = this.publishing.get(mid);
    if (existing && !existing.ended && existing.name === name) return;
    const track = new Track({
      sessionId: this.id,
      name,
      kind,
      codec: trackCodec,
      publisher,
      layers: section.recvRids.length > 1 ? section.recvRids.map((r) => r.id) : [],
      onSinkError: (err) => this.host.onError(err, `forwarding ${this.id}/${name}`),
    });
    this.entries.push({ kind: "local", mid, track });
    this.publishing.set(mid, track);
  }

  private bindPull(section: Section, source: Track, preference: LayerPreference): void {
    const transport = this.transport;
    const send = section.send;
    if (!transport || !send) return;
    const kind = source.kind;
    const want = codecKey(formatOf(source));
    const codec = section.codecs.find((c) => codecKey(c) === want) ?? section.codecs[0];
    const stream = transport.createSendStream(
      {
        mid: section.mid,
        kind,
        ssrc: send.ssrc,
        cname: send.cname,
        payloadType: codec.payloadType,
        codecName: codec.name,
        clockRate: codec.clockRate,
        extensions: new Map(section.extensions.map((e) => [e.uri, e.id])),
      },
      source,
      { onRetransmit: this.host.onRetransmit },
    );
    stream.setLayerPreference(preference);
    const entry: RemoteEntry = {
      kind: "remote",
      mid: section.mid,
      track: source,
      stream,
      preference: { ...preference },
      closed: false,
      subscription: source.subscribe({
        onPacket: (p, t, layer) => {
          stream.onPacket(p, t, layer);
          this.host.onForwarded?.();
        },
        onTrackEnded: (t, reason) => {
          entry.closed = true;
          stream.onTrackEnded(t, reason);
        },
      }),
    };
    this.entries.push(entry);
    if (kind === "video") source.requestKeyframe(0);
  }

  // ---- helpers --------------------------------------------------------------------------------------

  private parse(type: "offer" | "answer", sdp: string): RemoteDescription {
    try {
      return parseRemoteDescription(type, sdp);
    } catch (err) {
      throw this.negotiationError(err);
    }
  }

  private answerDraft(offer: RemoteDescription): AnswerDraft {
    this.requireTransport();
    try {
      return new AnswerDraft(this.desc, offer, { dataChannels: this.carriesDataChannels });
    } catch (err) {
      throw this.negotiationError(err);
    }
  }

  private negotiationError(err: unknown): Error {
    if (err instanceof SdpError) return new NegotiationError(err.message);
    return err instanceof Error ? err : new Error(String(err));
  }

  private async localParameters(): Promise<LocalTransportParameters> {
    return this.requireTransport().ready;
  }

  private sendSpec(source: Track): SendSpec {
    return {
      ssrc: randomInt(1, 0xffff_ffff),
      cname: this.cname,
      streamId: source.sessionId,
      trackId: source.name,
      format: formatOf(source),
      preferredPayloadType: source.codec?.payloadType,
    };
  }

  /** A send slot for bidirectionalMediaStream, announced under this session and the pushed track's name. */
  private sendSlot(name: string): Omit<SendSpec, "format" | "reserved"> {
    return { ssrc: randomInt(1, 0xffff_ffff), cname: this.cname, streamId: this.id, trackId: name };
  }

  private sectionOf(mid: string): Section | undefined {
    return this.desc.sections.find((s) => s.mid === mid);
  }

  private publishedMid(name: string): string | undefined {
    for (const [mid, track] of this.publishing) if (track.name === name && !track.ended) return mid;
    return undefined;
  }

  private localEntryByName(name: string): LocalEntry | undefined {
    return this.entries.find(
      (e): e is LocalEntry => e.kind === "local" && e.track.name === name && !e.track.ended,
    );
  }

  private openPullAt(mid: string): RemoteEntry | undefined {
    return this.entries.find((e): e is RemoteEntry => e.kind === "remote" && e.mid === mid && !e.closed);
  }

  private openEntryAt(mid: string): Entry | undefined {
    return this.entries.find((e) => e.mid === mid && (e.kind === "local" ? !e.track.ended : !e.closed));
  }

  /**
   * Room for new tracks under --max-tracks-per-session: open tracks (and, with `pending`, those our offer
   * awaiting renegotiation plans) count. Tracks the same request stops are not subtracted.
   */
  private trackQuota(pending: boolean): { full(): boolean; take(): void; why(): string } {
    const limit = this.limits.tracksPerSession;
    let count = 0;
    for (const e of this.entries) if (e.kind === "local" ? !e.track.ended : !e.closed) count++;
    if (pending && this.pending) count += this.pending.publishes.length + this.pending.pulls.length;
    return {
      full: () => count >= limit,
      take: () => {
        count++;
      },
      why: () =>
        `session ${this.id} has ${count} tracks (published, pulled or awaiting renegotiation), the limit (--max-tracks-per-session ${limit})`,
    };
  }

  /** Forgets the oldest closed tracks beyond --max-tracks-per-session. */
  private pruneClosedEntries(): void {
    const keep = this.limits.tracksPerSession;
    let closed = 0;
    for (const e of this.entries) if (e.kind === "local" ? e.track.ended : e.closed) closed++;
    if (closed <= keep) return;
    let drop = closed - keep;
    let kept = 0;
    for (const e of this.entries) {
      if (drop > 0 && (e.kind === "local" ? e.track.ended : e.closed)) {
        drop--;
        continue;
      }
      this.entries[kept++] = e;
    }
    this.entries.length = kept;
  }

  private closeMid(mid: string, reason: string): void {
    for (const e of this.entries) if (e.mid === mid) this.closeEntry(e, reason);
  }

  private fail(t: TrackRequest, code: TrackItemError, description: string): TrackResultItem {
    const item: TrackResultItem = { location: t.location, errorCode: code, errorDescription: description };
    if (t.trackName) item.trackName = t.trackName;
    if (t.mid) item.mid = t.mid;
    if (t.location === "remote") item.sessionId = t.sessionId;
    return item;
  }

  private notFound(t: RemoteTrackRequest): TrackResultItem {
    return {
      location: "remote",
      sessionId: t.sessionId,
      trackName: t.trackName,
      errorCode: "not_found_track_error",
      errorDescription: `no track ${t.trackName} in session ${t.sessionId}`,
    };
  }

  private pullItem(t: RemoteTrackRequest, mid: string): TrackResultItem {
    const item: TrackResultItem = { location: "remote", sessionId: t.sessionId, trackName: t.trackName, mid };
    if (t.simulcast) item.simulcast = { ...t.simulcast };
    return item;
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

  private onTransportState(state: TransportState): void {
    if (this.closeReason) return;
    if (state === "connected") {
      const previous = this.state;
      this.state = "connected";
      const association = this.dataChannels.association;
      if (association && !association.connected) association.start();
      clearTimeout(this.timer);
      if (previous !== "connected") this.host.onSessionState?.(this, "connected", previous);
    } else if (state === "disconnected" || state === "failed") {
      if (this.state === "connected") {
        this.state = "disconnected";
        this.arm(this.timings.disconnectGraceMs, `transport lost (${state})`);
        this.host.onSessionState?.(this, "disconnected", "connected");
      } else if (state === "failed") this.close("transport failed");
    } else if (state === "closed") {
      this.close("transport closed");
    }
  }

  private arm(ms: number, reason: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.close(reason), ms);
    this.timer.unref();
  }

  private requireTransport(): PeerTransport {
    if (!this.transport) throw new NegotiationError("this session has no peer connection");
    return this.transport;
  }

  private closeEntry(e: Entry, reason: string): void {
    if (e.kind === "local") {
      e.track.close(reason);
      if (e.mid !== undefined && this.publishing.get(e.mid) === e.track) this.publishing.delete(e.mid);
    } else if (!e.closed) {
      e.closed = true;
      e.subscription.close();
      e.stream.close();
    }
  }
}
