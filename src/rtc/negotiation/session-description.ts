import { randomBytes } from "node:crypto";
import {
  allocatePayloadType,
  type Codec,
  type CodecFormat,
  choosePublishCodec,
  chooseSubscribeCodec,
  codecKey,
  DEFAULT_CODECS,
  FEEDBACK,
  isForwardable,
  type MediaKind,
} from "./codecs.ts";
import { answerExtensions, EXT, offerExtensions, supportedExtensions } from "./header-extensions.ts";
import {
  type Direction,
  directionOf,
  type Extension,
  peerReceives,
  peerSends,
  type RemoteDescription,
  type RemoteSection,
  type RidSpec,
  SdpError,
} from "./remote-description.ts";

/**
 * The negotiation model: one description per session that owns, across every offer and answer of the
 * session's life, the mids and their m-line order, the BUNDLE group, payload types and header-extension
 * ids (one meaning per number for the whole session; the peer's numbers respected, never reassigned),
 * rejected and recycled m-lines, directions and simulcast rids. Every SDP Patchbay writes is derived from
 * it (see sdp-writer.ts). It is plain data, changed only through drafts: a draft works on a copy and the
 * session keeps its committed state until the negotiation completes (transactional by construction).
 */

/** What Patchbay sends on an m-line: one pulled track. */
export interface SendSpec {
  ssrc: number;
  cname: string;
  /** msid stream id (the publisher's session id) and track id (the track name). */
  streamId: string;
  trackId: string;
  format: CodecFormat;
  /** The publisher's payload type for this codec: reused when it is free in this session. */
  preferredPayloadType?: number;
  /**
   * A send slot negotiated ahead of any track (bidirectionalMediaStream): the m-line is sendrecv, the
   * SSRC announced, and a later `#name` pull fills it without a new negotiation.
   */
  reserved?: boolean;
}

export interface Section {
  mid: string;
  kind: MediaKind | "application" | string;
  protocol: string;
  /** Port 0: carries nothing, outside BUNDLE; its slot can be recycled for a new m-line of the same kind. */
  rejected: boolean;
  createdBy: "peer" | "server";
  /** Negotiated codecs, the first being the one the peer sends with (publish m-lines). */
  codecs: Codec[];
  extensions: Extension[];
  /** Patchbay takes media the peer sends on this m-line. */
  receive: boolean;
  /** Patchbay sends this on the m-line. */
  send: SendSpec | undefined;
  /** Simulcast layers the peer sends here, in its order (empty: one plain stream). */
  recvRids: RidSpec[];
  /** The peer's side as its latest description states it. */
  remoteDirection: Direction;
  remoteSsrcs: number[];
  remoteMsid?: { streamId: string; trackId: string };
  /** m=application: the peer's a=sctp-port (data channels). */
  sctpPort?: number;
}

export interface SessionDescriptionState {
  readonly origin: string;
  readonly version: number;
  readonly sections: readonly Section[];
  /** Every payload type / extension id the peer's latest description used, accepted by us or not. */
  readonly remotePayloadTypes: ReadonlyMap<number, string>;
  readonly remoteExtensionIds: ReadonlyMap<number, string>;
  /** Our DTLS role once a negotiation settled it. */
  readonly dtlsRole: "server" | "client" | undefined;
}

export function emptyState(): SessionDescriptionState {
  return {
    origin: BigInt(`0x${randomBytes(7).toString("hex")}`).toString(),
    version: 0,
    sections: [],
    remotePayloadTypes: new Map(),
    remoteExtensionIds: new Map(),
    dtlsRole: undefined,
  };
}

function cloneSection(s: Section): Section {
  return {
    ...s,
    codecs: s.codecs.map((c) => ({ ...c, feedback: [...c.feedback] })),
    extensions: s.extensions.map((e) => ({ ...e })),
    send: s.send ? { ...s.send, format: { ...s.send.format } } : undefined,
    recvRids: s.recvRids.map((r) => ({ ...r })),
    remoteSsrcs: [...s.remoteSsrcs],
    remoteMsid: s.remoteMsid ? { ...s.remoteMsid } : undefined,
  };
}

/** Our direction on an m-line given what we want and what the peer said. */
export function effectiveDirection(s: Section): Direction {
  if (s.rejected) return "inactive";
  return directionOf(
    s.send !== undefined && peerReceives(s.remoteDirection),
    s.receive && peerSends(s.remoteDirection),
  );
}

/** Payload type → codec key and extension id → URI over every live m-line of both sides. */
function numbering(sections: readonly Section[], state: SessionDescriptionState) {
  const payloadTypes = new Map<number, string>(state.remotePayloadTypes);
  const extensionIds = new Map<number, string>(state.remoteExtensionIds);
  for (const s of sections) {
    if (s.rejected) continue;
    for (const c of s.codecs) payloadTypes.set(c.payloadType, codecKey(c));
    for (const e of s.extensions) extensionIds.set(e.id, e.uri);
  }
  const uriIds = new Map<string, number>();
  for (const [id, uri] of extensionIds) if (!uriIds.has(uri)) uriIds.set(uri, id);
  return { payloadTypes, extensionIds, uriIds };
}

function isMediaKind(kind: string): kind is MediaKind {
  return kind === "audio" || kind === "video";
}

/** A fresh mid: numeric like Cloudflare's and browsers', above every mid the session has seen. */
function nextMid(sections: readonly Section[]): string {
  let max = -1;
  for (const s of sections) {
    const n = Number(s.mid);
    if (Number.isInteger(n) && n > max) max = n;
  }
  let mid = max + 1;
  while (sections.some((s) => s.mid === String(mid))) mid++;
  return String(mid);
}

function remoteNumbering(desc: RemoteDescription): {
  payloadTypes: Map<number, string>;
  extensionIds: Map<number, string>;
} {
  const payloadTypes = new Map<number, string>();
  const extensionIds = new Map<number, string>();
  for (const s of desc.sections) {
    if (s.rejected) continue;
    for (const c of s.codecs)
      if (!payloadTypes.has(c.payloadType)) payloadTypes.set(c.payloadType, codecKey(c));
    for (const e of s.extensions) if (!extensionIds.has(e.id)) extensionIds.set(e.id, e.uri);
  }
  return { payloadTypes, extensionIds };
}

/** What the session sees of one offered m-line while deciding what to bind to it. */
export interface OfferedSection {
  readonly offered: RemoteSection;
  /** The model's section after this offer (before the session's decisions). */
  readonly section: Readonly<Section>;
  /** True when this offer put a new m-line in this slot (a new one or a recycled rejected one). */
  readonly isNew: boolean;
}

/** Answering a peer's offer. */
export class AnswerDraft {
  private readonly sections: Section[];
  private readonly info: OfferedSection[];

  /** `dataChannels`: accept one m=application (SCTP over DTLS); planes that cannot carry it reject it. */
  constructor(
    private readonly base: SessionDescriptionState,
    readonly offer: RemoteDescription,
    private readonly options: { dataChannels?: boolean } = {},
  ) {
    if (offer.type !== "offer") throw new SdpError("expected an offer");
    if (offer.sections.length < base.sections.length)
      throw new SdpError(
        `the offer has ${offer.sections.length} m-lines, the session has ${base.sections.length}: m-lines are never removed, only rejected (port 0)`,
      );
    this.sections = [];
    this.info = [];
    offer.sections.forEach((o, i) => {
      const prev = base.sections[i];
      let carried: Section | undefined;
      if (prev) {
        if (prev.mid === o.mid) carried = prev;
        else if (!prev.rejected)
          throw new SdpError(
            `m-line ${i} had mid ${prev.mid} and the offer gives it mid ${o.mid}: only a rejected m-line may be reused`,
          );
      }
      if (!carried && base.sections.some((s) => s.mid === o.mid))
        throw new SdpError(`mid ${o.mid} moved to another m-line position`);
      if (carried && carried.kind !== o.kind)
        throw new SdpError(`m-line ${i} (mid ${o.mid}) changed kind from ${carried.kind} to ${o.kind}`);
      const section = this.fromOffer(o, carried);
      this.sections.push(section);
      this.info.push({ offered: o, section, isNew: !carried });
    });
  }

  private fromOffer(o: RemoteSection, carried: Section | undefined): Section {
    const section: Section = {
      mid: o.mid,
      kind: o.kind,
      protocol: o.protocol,
      rejected: o.rejected,
      createdBy: carried?.createdBy ?? "peer",
      codecs: [],
      extensions: [],
      receive: false,
      send: undefined,
      recvRids: [],
      remoteDirection: o.direction,
      remoteSsrcs: [...o.ssrcs],
      remoteMsid: o.msid ? { ...o.msid } : undefined,
    };
    if (o.kind === "application" && !o.rejected && this.acceptsApplication(o)) {
      section.sctpPort = o.sctpPort ?? 5000;
      section.remoteDirection = "sendrecv";
      return section;
    }
    if (o.rejected || !isMediaKind(o.kind)) {
      section.rejected = true;
      // A rejected m-line still names one of the offered formats (some stacks refuse an unknown one).
      section.codecs = o.codecs.slice(0, 1).map((c) => ({ ...c, feedback: [] }));
      return section;
    }
    // Anything the peer sends is accepted; tracks/new binds names to it (possibly in a later request).
    // A publishing m-line the peer puts on hold (inactive) stays a publishing m-line: its track lives on.
    section.receive = peerSends(o.direction) || (carried?.receive ?? false);
    if (carried?.send && peerReceives(o.direction)) section.send = { ...carried.send };
    section.recvRids = peerSends(o.direction) ? o.sendRids.map((r) => ({ ...r })) : (carried?.recvRids ?? []);
    this.negotiateCodecs(section, o, carried);
    return section;
  }

  /** One data channel transport per session: the first live SCTP m-line, if the plane carries it. */
  private acceptsApplication(o: RemoteSection): boolean {
    if (!this.options.dataChannels || !/^(UDP\/)?DTLS\/SCTP$/.test(o.protocol)) return false;
    const first = [...this.base.sections, ...this.sections].find(
      (s) => s.kind === "application" && !s.rejected,
    );
    return first === undefined || first.mid === o.mid;
  }

  private negotiateCodecs(section: Section, o: RemoteSection, carried: Section | undefined): void {
    const kind = o.kind as MediaKind;
    const codecs: Codec[] = [];
    const publish = choosePublishCodec(kind, o.codecs, carried?.codecs[0]);
    if (section.receive || !section.send) {
      if (publish) codecs.push(publish);
    }
    if (section.send) {
      const sub = chooseSubscribeCodec(kind, o.codecs, section.send.format);
      if (sub && !codecs.some((c) => codecKey(c) === codecKey(sub))) codecs.push(sub);
      if (!sub) section.send = undefined;
    }
    if (codecs.length === 0) {
      section.rejected = true;
      section.receive = false;
      section.send = undefined;
      section.codecs = o.codecs.slice(0, 1).map((c) => ({ ...c, feedback: [] }));
      return;
    }
    section.codecs = codecs;
    section.extensions = answerExtensions(o.extensions, supportedExtensions(kind, true, true));
  }

  /** The offered m-lines, in order, with the model's view of each. */
  get offered(): readonly OfferedSection[] {
    return this.info;
  }

  section(mid: string): Readonly<Section> | undefined {
    return this.sections.find((s) => s.mid === mid);
  }

  /**
   * Send `spec` on the offered m-line `mid`. Returns why it cannot (the peer does not receive there, or it
   * did not offer the track's codec), or undefined on success.
   */
  bindSend(mid: string, spec: SendSpec): string | undefined {
    const section = this.sections.find((s) => s.mid === mid);
    const offered = this.info.find((i) => i.offered.mid === mid)?.offered;
    if (!section || !offered) return `the offer has no m-line with mid ${mid}`;
    if (section.rejected) return `m-line ${mid} is rejected (port 0)`;
    if (!peerReceives(offered.direction))
      return `m-line ${mid} is ${offered.direction} in the offer: it does not receive`;
    const kind = section.kind as MediaKind;
    const sub = chooseSubscribeCodec(kind, offered.codecs, spec.format);
    if (!sub) return `m-line ${mid} does not offer ${spec.format.name}/${spec.format.clockRate}`;
    section.send = { ...spec };
    const keep = section.receive ? section.codecs.slice(0, 1) : [];
    section.codecs = keep.some((c) => codecKey(c) === codecKey(sub)) ? keep : [...keep, sub];
    return undefined;
  }

  unbindSend(mid: string): void {
    const section = this.sections.find((s) => s.mid === mid);
    if (section) section.send = undefined;
  }

  /**
   * bidirectionalMediaStream on a push: answer the peer's sendrecv m-line sendrecv, with a send slot
   * that a later `#name` pull fills. Returns why not (the peer does not receive there).
   */
  reserveSend(mid: string, slot: Omit<SendSpec, "format" | "reserved">): string | undefined {
    const section = this.sections.find((s) => s.mid === mid);
    const offered = this.info.find((i) => i.offered.mid === mid)?.offered;
    if (!section || !offered || section.rejected) return `the offer has no live m-line with mid ${mid}`;
    if (!peerReceives(offered.direction))
      return `bidirectionalMediaStream needs m-line ${mid} to be sendrecv in the offer (it is ${offered.direction})`;
    if (section.send && !section.send.reserved) return undefined;
    const codec = section.codecs[0];
    section.send = { ...slot, format: formatOf(codec), reserved: true };
    return undefined;
  }

  /** Stop taking media on an m-line the peer sends on (it stays negotiated, inactive on our side). */
  setReceive(mid: string, receive: boolean): void {
    const section = this.sections.find((s) => s.mid === mid);
    if (section && !section.rejected) section.receive = receive;
  }

  /** The committed-to-be state. Nothing changes in the session until it adopts it. */
  finish(): SessionDescriptionState {
    const remote = remoteNumbering(this.offer);
    let dtlsRole = this.base.dtlsRole;
    if (dtlsRole === undefined) dtlsRole = this.offer.setup === "passive" ? "client" : "server";
    return {
      origin: this.base.origin,
      version: this.base.version + 1,
      sections: this.sections.map(cloneSection),
      remotePayloadTypes: remote.payloadTypes,
      remoteExtensionIds: remote.extensionIds,
      dtlsRole,
    };
  }
}

/** Patchbay's own offer (pulls without an offer, push without an offer, server-side closes). */
export class OfferDraft {
  private readonly sections: Section[];

  constructor(private readonly base: SessionDescriptionState) {
    this.sections = base.sections.map(cloneSection);
  }

  section(mid: string): Readonly<Section> | undefined {
    return this.sections.find((s) => s.mid === mid);
  }

  get changed(): boolean {
    return JSON.stringify(this.sections) !== JSON.stringify(this.base.sections);
  }

  /** The data channel transport (m=application, SCTP over the session's DTLS); its mid, or the existing one's. */
  addApplicationSection(): string {
    const existing = this.sections.find((s) => s.kind === "application" && !s.rejected);
    if (existing) return existing.mid;
    const section = this.newSection("application", "UDP/DTLS/SCTP");
    section.sctpPort = 5000;
    return section.mid;
  }

  /** A new m-line that sends one pulled track (a rejected m-line of the same kind is recycled). */
  addSendSection(kind: MediaKind, spec: SendSpec, opts: { receive?: boolean } = {}): string {
    const section = this.newSection(kind);
    section.send = { ...spec };
    section.receive = opts.receive ?? false;
    section.codecs = [this.codecFor(kind, spec.format, spec.preferredPayloadType)];
    section.extensions = this.extensionsFor(kind, true, section.receive);
    return section.mid;
  }

  /**
   * A new m-line on which the peer is asked to publish (push without an offer); with `reserve`
   * (bidirectionalMediaStream) it is offered sendrecv with a send slot for a later `#name` pull.
   */
  addReceiveSection(kind: MediaKind, reserve?: Omit<SendSpec, "format" | "reserved">): string {
    const section = this.newSection(kind);
    section.receive = true;
    const taken = numbering(this.sections, this.base).payloadTypes;
    section.codecs = DEFAULT_CODECS[kind].map((c) => {
      const payloadType = allocatePayloadType(codecKey(c), c.payloadType, taken);
      taken.set(payloadType, codecKey(c));
      return { ...c, payloadType, feedback: [...c.feedback] };
    });
    if (reserve) section.send = { ...reserve, format: formatOf(section.codecs[0]), reserved: true };
    section.extensions = this.extensionsFor(kind, reserve !== undefined, true);
    return section.mid;
  }

  /** Send `spec` on an existing m-line too (`#trackName` pulls into the publisher's transceiver). */
  bindSend(mid: string, spec: SendSpec): string | undefined {
    const section = this.sections.find((s) => s.mid === mid);
    if (!section || section.rejected) return `no live m-line with mid ${mid}`;
    const kind = section.kind as MediaKind;
    if (!section.codecs.some((c) => codecKey(c) === codecKey(spec.format))) {
      if (!isForwardable(kind, { ...spec.format, payloadType: 0, feedback: [] }))
        return `Patchbay cannot forward ${spec.format.name}`;
      section.codecs.push(this.codecFor(kind, spec.format, spec.preferredPayloadType));
    }
    section.send = { ...spec };
    const uris = new Set(section.extensions.map((e) => e.uri));
    for (const e of this.extensionsFor(kind, true, section.receive))
      if (!uris.has(e.uri)) section.extensions.push(e);
    return undefined;
  }

  unbindSend(mid: string): void {
    const section = this.sections.find((s) => s.mid === mid);
    if (section) section.send = undefined;
  }

  /**
   * Ends an m-line from our side: rejected (port 0) so its slot can be recycled, except the BUNDLE tag
   * (the first live m-line), which is only made inactive: moving the tag under a running transport is
   * what browsers handle worst.
   */
  close(mid: string): void {
    const section = this.sections.find((s) => s.mid === mid);
    if (!section || section.rejected) return;
    section.send = undefined;
    section.receive = false;
    const tag = this.sections.find((s) => !s.rejected);
    if (tag !== section) section.rejected = true;
  }

  finish(): SessionDescriptionState {
    return {
      ...this.base,
      version: this.base.version + 1,
      sections: this.sections.map((s) => {
        const out = cloneSection(s);
        // In an offer our direction is what we want; the answer narrows it.
        out.remoteDirection = "sendrecv";
        return out;
      }),
    };
  }

  /** A new server-made m-line, in the slot of a rejected one of the same kind if there is one. */
  private newSection(kind: MediaKind | "application", protocol = "UDP/TLS/RTP/SAVPF"): Section {
    const fresh: Section = {
      mid: nextMid(this.sections),
      kind,
      protocol,
      rejected: false,
      createdBy: "server",
      codecs: [],
      extensions: [],
      receive: false,
      send: undefined,
      recvRids: [],
      remoteDirection: "sendrecv",
      remoteSsrcs: [],
    };
    const slot = this.sections.findIndex((s) => s.rejected && s.kind === kind);
    if (slot >= 0) this.sections[slot] = fresh;
    else this.sections.push(fresh);
    return fresh;
  }

  private codecFor(kind: MediaKind, format: CodecFormat, preferred: number | undefined): Codec {
    const taken = numbering(this.sections, this.base).payloadTypes;
    const key = codecKey(format);
    const fallback = DEFAULT_CODECS[kind].find((c) => codecKey(c) === key)?.payloadType ?? 96;
    const payloadType = allocatePayloadType(key, preferred ?? fallback, taken);
    return { ...format, payloadType, feedback: [...FEEDBACK[kind]] };
  }

  private extensionsFor(kind: MediaKind, send: boolean, receive: boolean): Extension[] {
    const { extensionIds, uriIds } = numbering(this.sections, this.base);
    const uris = supportedExtensions(kind, send, receive).filter((u) => u !== EXT.rid || receive);
    return offerExtensions(uris, uriIds, new Set(extensionIds.keys()));
  }
}

function formatOf(c: Codec): CodecFormat {
  const f: CodecFormat = { name: c.name, clockRate: c.clockRate };
  if (c.channels !== undefined) f.channels = c.channels;
  if (c.fmtp !== undefined) f.fmtp = c.fmtp;
  return f;
}

/**
 * Fill a reserved send slot with a track, in the committed state, without a negotiation: the peer
 * already receives there and the track's codec is one the m-line negotiated. Returns why not otherwise.
 */
export function fillReservedSend(
  state: SessionDescriptionState,
  mid: string,
  spec: SendSpec,
): SessionDescriptionState | string {
  const section = state.sections.find((s) => s.mid === mid);
  if (!section || section.rejected) return `no live m-line with mid ${mid}`;
  if (!section.send?.reserved) return `m-line ${mid} has no free send slot`;
  if (!peerReceives(section.remoteDirection)) return `the peer does not receive on m-line ${mid}`;
  if (!section.codecs.some((c) => codecKey(c) === codecKey(spec.format)))
    return `m-line ${mid} did not negotiate ${spec.format.name}`;
  const sections = state.sections.map((s) => {
    if (s.mid !== mid) return s;
    const out = cloneSection(s);
    out.send = { ...spec, ssrc: s.send!.ssrc, cname: s.send!.cname, reserved: false };
    return out;
  });
  return { ...state, sections };
}

/** Drop what we send and receive on some m-lines now, without a negotiation (forced closes). */
export function withoutMedia(
  state: SessionDescriptionState,
  mids: readonly string[],
): SessionDescriptionState {
  const sections = state.sections.map((s) => {
    if (!mids.includes(s.mid)) return s;
    const out = cloneSection(s);
    out.send = undefined;
    out.receive = false;
    return out;
  });
  return { ...state, sections };
}

/** Result of applying the peer's answer to a pending offer. */
export interface AppliedAnswer {
  state: SessionDescriptionState;
  /** m-lines the answer rejected (port 0) although we offered them live. */
  rejectedMids: string[];
}

export function applyAnswer(pending: SessionDescriptionState, answer: RemoteDescription): AppliedAnswer {
  if (answer.type !== "answer") throw new SdpError("expected an answer");
  if (answer.sections.length !== pending.sections.length)
    throw new SdpError(
      `the answer has ${answer.sections.length} m-lines, the offer had ${pending.sections.length}`,
    );
  const rejectedMids: string[] = [];
  const sections = pending.sections.map((ours, i) => {
    const a = answer.sections[i];
    if (a.mid !== ours.mid)
      throw new SdpError(`m-line ${i} of the answer has mid ${a.mid}, the offer had ${ours.mid}`);
    const s = cloneSection(ours);
    if (s.rejected) return s;
    if (a.rejected) {
      rejectedMids.push(s.mid);
      s.rejected = true;
      s.send = undefined;
      s.receive = false;
      return s;
    }
    // Data channels: no codecs to agree on; the transport stays as negotiated.
    if (s.kind === "application") return s;
    s.remoteDirection = a.direction;
    s.remoteSsrcs = [...a.ssrcs];
    s.remoteMsid = a.msid ? { ...a.msid } : undefined;
    // The answer's order is the peer's preference; the first common codec is what it will send.
    const byPt = new Map(s.codecs.map((c) => [c.payloadType, c]));
    const common = a.codecs.map((c) => byPt.get(c.payloadType)).filter((c): c is Codec => c !== undefined);
    if (common.length === 0) {
      rejectedMids.push(s.mid);
      s.rejected = true;
      s.send = undefined;
      s.receive = false;
      return s;
    }
    s.codecs = s.send && !s.receive ? s.codecs : common;
    const answered = new Set(a.extensions.map((e) => `${e.id} ${e.uri}`));
    s.extensions = s.extensions.filter((e) => answered.has(`${e.id} ${e.uri}`));
    return s;
  });
  const remote = remoteNumbering(answer);
  let dtlsRole = pending.dtlsRole;
  if (answer.setup === "active") dtlsRole = "server";
  else if (answer.setup === "passive") dtlsRole = "client";
  return {
    state: {
      ...pending,
      sections,
      remotePayloadTypes: remote.payloadTypes,
      remoteExtensionIds: remote.extensionIds,
      dtlsRole: dtlsRole ?? "server",
    },
    rejectedMids,
  };
}
