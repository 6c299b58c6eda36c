import type { SctpAssociation, SctpMessage } from "../rtc/sctp-association.ts";

// Cloudflare's data channel model (issue 12; realtime-api-2024-05-21): a session publishes a named channel
// (`datachannels/new`, location "local") and other sessions subscribe to it by name (location "remote").
// Both ends are negotiated channels (`createDataChannel(name, {negotiated: true, id})` in the browser) on the
// session's one SCTP association; the server picks the ids. Messages go publisher → every subscriber, keeping
// their PPID (string, binary, empty). At most one subscriber holds `canReply`: what it sends goes back to the
// publisher (and nowhere else); what other subscribers send goes nowhere. A subscriber whose association
// cannot take more (not connected yet, or its bounded queue full: a slow reader) loses that message,
// counted; the publisher and the other subscribers never wait for it.

/** SCTP delivery of a channel: reliable and ordered unless asked otherwise (Cloudflare's ordered/maxRetransmits). */
export interface Delivery {
  ordered: boolean;
  maxRetransmits?: number;
}

export interface PublishedChannel {
  name: string;
  id: number;
  owner: SessionDataChannels;
  delivery: Delivery;
  subscribers: Set<SubscribedChannel>;
  /** The one subscriber whose messages go back to the publisher. */
  replier: SubscribedChannel | undefined;
  messages: number;
  replies: number;
}

export interface SubscribedChannel {
  id: number;
  source: PublishedChannel;
  owner: SessionDataChannels;
  delivery: Delivery;
  delivered: number;
  dropped: number;
  /** The publisher closed its channel (or its session ended): nothing more comes; listed as inactive. */
  ended: boolean;
  /** waitForAck: nothing is delivered until the subscriber's first message (consumed), within ACK_TIMEOUT_MS. */
  waitingForAck: boolean;
  ackTimer?: NodeJS.Timeout;
}

/** Cloudflare: the acknowledgment must arrive within 15 s of creating the remote channel, or it is torn down. */
export const ACK_TIMEOUT_MS = 15_000;

export type DataChannelStatus = "active" | "inactive" | "initializing";

export interface DataChannelInfo {
  location: "local" | "remote";
  sessionId?: string;
  dataChannelName: string;
  id: number;
  /** active: the association is up; initializing: still connecting; inactive: the channel can carry nothing. */
  status: DataChannelStatus;
  canReply?: boolean;
  /** local: messages the publisher sent, and replies it got. */
  messagesReceived?: number;
  repliesReceived?: number;
  /** remote: messages forwarded to this subscriber, and lost because it could not take them. */
  messagesDelivered?: number;
  messagesDropped?: number;
  /** remote with waitForAck: the subscriber has not acknowledged yet. */
  waitingForAck?: boolean;
}

export type DataChannelResult =
  | { ok: true; info: DataChannelInfo }
  | { ok: false; errorCode: "not_found_datachannel_error" | "datachannel_error"; errorDescription: string };

/** Channel ids a session may be given (SCTP stream ids; 65534 is the most an association negotiates). */
const MAX_STREAM_ID = 1023;

export class SessionDataChannels {
  association: SctpAssociation | undefined;
  private readonly published = new Map<string, PublishedChannel>();
  private readonly publishedById = new Map<number, PublishedChannel>();
  private readonly subscribed = new Map<number, SubscribedChannel>();
  /** Stream ids the client opened itself (DCEP), e.g. Cloudflare's `server-events`: never handed out. */
  private readonly inBand = new Set<number>();
  /** Messages on a stream that leads nowhere (ignored): a subscriber without canReply, an unknown stream. */
  unrouted = 0;
  private closed = false;

  constructor(readonly sessionId: string) {}

  /** The session's SCTP association exists (its offer carried m=application on a plane that carries it). */
  get available(): boolean {
    return this.association !== undefined && !this.closed;
  }

  attach(association: SctpAssociation): void {
    this.association = association;
    association.onMessage.subscribe((m) => this.onMessage(m));
    association.onDcepOpen.subscribe((o) => this.inBand.add(o.streamId));
  }

  /** `datachannels/new` location "local": the channel (the same one again for a name already published). */
  publish(name: string, delivery: Delivery): DataChannelResult {
    const existing = this.published.get(name);
    if (existing) return { ok: true, info: this.infoOfPublished(existing) };
    const id = this.freeId();
    if (id === undefined) return this.full();
    const channel: PublishedChannel = {
      name,
      id,
      owner: this,
      delivery,
      subscribers: new Set(),
      replier: undefined,
      messages: 0,
      replies: 0,
    };
    this.published.set(name, channel);
    this.publishedById.set(id, channel);
    return { ok: true, info: this.infoOfPublished(channel) };
  }

  /**
   * `datachannels/new` location "remote": a channel of this session that receives `source`'s messages;
   * with `waitForAck`, only after the subscriber's first message on it (Cloudflare's acknowledgment gate).
   */
  subscribe(
    source: SessionDataChannels,
    name: string,
    opts: { waitForAck?: boolean; canReply?: boolean; delivery?: Delivery },
  ): DataChannelResult {
    const channel = source.published.get(name);
    if (!channel) return notPublished(source.sessionId, name);
    const id = this.freeId();
    if (id === undefined) return this.full();
    const sub: SubscribedChannel = {
      id,
      source: channel,
      owner: this,
      delivery: opts.delivery ?? channel.delivery,
      delivered: 0,
      dropped: 0,
      ended: false,
      waitingForAck: opts.waitForAck === true,
    };
    if (sub.waitingForAck) {
      sub.ackTimer = setTimeout(() => this.unsubscribe(sub), ACK_TIMEOUT_MS);
      sub.ackTimer.unref();
    }
    this.subscribed.set(id, sub);
    channel.subscribers.add(sub);
    if (opts.canReply) channel.replier = sub;
    return { ok: true, info: this.infoOfSubscribed(sub) };
  }

  /**
   * `datachannels/update`: grant or revoke canReply on this session's subscription to `source`/`name`.
   * Granting replaces the previous replier of that channel (Cloudflare: at most one).
   */
  update(source: SessionDataChannels, name: string, canReply: boolean): DataChannelResult {
    const channel = source.published.get(name);
    if (!channel) return notPublished(source.sessionId, name);
    const sub = [...this.subscribed.values()].find((s) => s.source === channel);
    if (!sub)
      return {
        ok: false,
        errorCode: "not_found_datachannel_error",
        errorDescription: `session ${this.sessionId} has not pulled data channel ${JSON.stringify(name)} of session ${source.sessionId}`,
      };
    if (canReply) channel.replier = sub;
    else if (channel.replier === sub) channel.replier = undefined;
    return { ok: true, info: this.infoOfSubscribed(sub) };
  }

  /** `datachannels/close` by id: a published channel ends for its subscribers; a subscription just ends. */
  closeChannel(id: number): DataChannelResult {
    const published = this.publishedById.get(id);
    if (published) {
      const info = this.infoOfPublished(published);
      this.endPublished(published);
      return { ok: true, info: { ...info, status: "inactive" } };
    }
    const sub = this.subscribed.get(id);
    if (sub) {
      const info = this.infoOfSubscribed(sub);
      this.unsubscribe(sub);
      return { ok: true, info: { ...info, status: "inactive" } };
    }
    return {
      ok: false,
      errorCode: "not_found_datachannel_error",
      errorDescription: `session ${this.sessionId} has no data channel with id ${id}`,
    };
  }

  /** What `GET sessions/{id}` lists: Cloudflare's fields, then Patchbay's counters. */
  list(): DataChannelInfo[] {
    return [
      ...[...this.published.values()].map((c) => this.infoOfPublished(c)),
      ...[...this.subscribed.values()].map((s) => this.infoOfSubscribed(s)),
    ];
  }

  /** Ends every channel of this session, published (their subscribers stop receiving) and subscribed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.published.values()]) this.endPublished(c);
    for (const s of [...this.subscribed.values()]) this.unsubscribe(s);
    this.association?.close();
  }

  private get status(): DataChannelStatus {
    if (this.closed || !this.association || this.association.isClosed) return "inactive";
    return this.association.connected ? "active" : "initializing";
  }

  private infoOfPublished(c: PublishedChannel): DataChannelInfo {
    return {
      location: "local",
      dataChannelName: c.name,
      id: c.id,
      status: this.status,
      messagesReceived: c.messages,
      repliesReceived: c.replies,
    };
  }

  private infoOfSubscribed(s: SubscribedChannel): DataChannelInfo {
    return {
      location: "remote",
      sessionId: s.source.owner.sessionId,
      dataChannelName: s.source.name,
      id: s.id,
      status: s.ended ? "inactive" : this.status,
      ...(s.source.replier === s ? { canReply: true } : {}),
      messagesDelivered: s.delivered,
      messagesDropped: s.dropped,
      ...(s.waitingForAck ? { waitingForAck: true } : {}),
    };
  }

  private endPublished(c: PublishedChannel): void {
    for (const s of c.subscribers) {
      s.ended = true;
      clearTimeout(s.ackTimer);
    }
    c.subscribers.clear();
    c.replier = undefined;
    this.published.delete(c.name);
    this.publishedById.delete(c.id);
  }

  private unsubscribe(sub: SubscribedChannel): void {
    clearTimeout(sub.ackTimer);
    sub.source.subscribers.delete(sub);
    if (sub.source.replier === sub) sub.source.replier = undefined;
    this.subscribed.delete(sub.id);
  }

  private onMessage(m: SctpMessage): void {
    const channel = this.publishedById.get(m.streamId);
    if (channel) {
      channel.messages++;
      for (const sub of channel.subscribers) {
        if (sub.waitingForAck) continue;
        const out = sub.owner.association;
        const { ordered, maxRetransmits } = sub.delivery;
        if (out?.send(sub.id, m.ppid, m.data, ordered, maxRetransmits)) sub.delivered++;
        else sub.dropped++;
      }
      return;
    }
    const sub = this.subscribed.get(m.streamId);
    if (sub?.waitingForAck) {
      // The acknowledgment opens the gate and is consumed: it is not a reply.
      sub.waitingForAck = false;
      clearTimeout(sub.ackTimer);
      return;
    }
    const source = sub?.source;
    if (source && source.replier === sub) {
      const { ordered, maxRetransmits } = source.delivery;
      if (source.owner.association?.send(source.id, m.ppid, m.data, ordered, maxRetransmits))
        source.replies++;
      return;
    }
    this.unrouted++; // one way: what a subscriber without canReply sends goes nowhere (Cloudflare's model)
  }

  /**
   * The lowest odd id in use by nothing: the browser is the DTLS client, whose in-band channels take even ids
   * (RFC 8832 §6), so odd ids never collide with a channel it opens later.
   */
  private freeId(): number | undefined {
    for (let id = 1; id <= MAX_STREAM_ID; id += 2)
      if (!this.publishedById.has(id) && !this.subscribed.has(id) && !this.inBand.has(id)) return id;
    return undefined;
  }

  private full(): DataChannelResult {
    return {
      ok: false,
      errorCode: "datachannel_error",
      errorDescription: `session ${this.sessionId} has ${(MAX_STREAM_ID + 1) / 2} data channels, the most it can have`,
    };
  }
}

function notPublished(sessionId: string, name: string): DataChannelResult {
  return {
    ok: false,
    errorCode: "not_found_datachannel_error",
    errorDescription: `session ${sessionId} publishes no data channel ${JSON.stringify(name)}`,
  };
}
