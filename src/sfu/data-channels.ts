import type { SctpAssociation, SctpMessage } from "../rtc/sctp-association.ts";

// Cloudflare's data channel model (issue 12): a session publishes a named channel (`datachannels/new`,
// location "local") and other sessions subscribe to it by name (location "remote"). Both ends are negotiated
// channels (`createDataChannel(name, {negotiated: true, id})` in the browser) on the session's one SCTP
// association; the server picks the ids. Messages go one way, publisher → every subscriber, keeping their
// PPID (string, binary, empty). A subscriber whose association cannot take more (not connected yet, or its
// bounded queue full: a slow reader) loses that message, counted; the publisher and the other subscribers
// never wait for it.

export interface PublishedChannel {
  name: string;
  id: number;
  owner: SessionDataChannels;
  subscribers: Set<SubscribedChannel>;
  messages: number;
}

export interface SubscribedChannel {
  id: number;
  source: PublishedChannel;
  owner: SessionDataChannels;
  delivered: number;
  dropped: number;
  /** waitForAck: nothing is delivered until the subscriber's first message (consumed), within ACK_TIMEOUT_MS. */
  waitingForAck: boolean;
  ackTimer?: NodeJS.Timeout;
}

/** Cloudflare: the acknowledgment must arrive within 15 s of creating the remote channel, or it is torn down. */
export const ACK_TIMEOUT_MS = 15_000;

export interface DataChannelInfo {
  location: "local" | "remote";
  dataChannelName: string;
  id: number;
  sessionId?: string;
  /** local: messages the publisher sent. */
  messagesReceived?: number;
  /** remote: messages forwarded to this subscriber, and lost because it could not take them. */
  messagesDelivered?: number;
  messagesDropped?: number;
  /** remote with waitForAck: the subscriber has not acknowledged yet. */
  waitingForAck?: boolean;
}

export type DataChannelResult =
  | { ok: true; id: number }
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
  /** Messages on a stream that is no published channel of this session (ignored). */
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

  /** `datachannels/new` location "local": the channel's id (the same one again for a name already published). */
  publish(name: string): DataChannelResult {
    const existing = this.published.get(name);
    if (existing) return { ok: true, id: existing.id };
    const id = this.freeId();
    if (id === undefined) return this.full();
    const channel: PublishedChannel = { name, id, owner: this, subscribers: new Set(), messages: 0 };
    this.published.set(name, channel);
    this.publishedById.set(id, channel);
    return { ok: true, id };
  }

  /**
   * `datachannels/new` location "remote": a channel of this session that receives `source`'s messages;
   * with `waitForAck`, only after the subscriber's first message on it (Cloudflare's acknowledgment gate).
   */
  subscribe(source: SessionDataChannels, name: string, waitForAck = false): DataChannelResult {
    const channel = source.published.get(name);
    if (!channel)
      return {
        ok: false,
        errorCode: "not_found_datachannel_error",
        errorDescription: `session ${source.sessionId} publishes no data channel ${JSON.stringify(name)}`,
      };
    const id = this.freeId();
    if (id === undefined) return this.full();
    const sub: SubscribedChannel = {
      id,
      source: channel,
      owner: this,
      delivered: 0,
      dropped: 0,
      waitingForAck: waitForAck,
    };
    if (waitForAck) {
      sub.ackTimer = setTimeout(() => this.unsubscribe(sub), ACK_TIMEOUT_MS);
      sub.ackTimer.unref();
    }
    this.subscribed.set(id, sub);
    channel.subscribers.add(sub);
    return { ok: true, id };
  }

  private unsubscribe(sub: SubscribedChannel): void {
    clearTimeout(sub.ackTimer);
    sub.source.subscribers.delete(sub);
    this.subscribed.delete(sub.id);
  }

  /** What `GET sessions/{id}` lists: Cloudflare's fields, then Patchbay's counters. */
  list(): DataChannelInfo[] {
    return [
      ...[...this.published.values()].map((c) => ({
        location: "local" as const,
        dataChannelName: c.name,
        id: c.id,
        messagesReceived: c.messages,
      })),
      ...[...this.subscribed.values()].map((s) => ({
        location: "remote" as const,
        dataChannelName: s.source.name,
        id: s.id,
        sessionId: s.source.owner.sessionId,
        messagesDelivered: s.delivered,
        messagesDropped: s.dropped,
        ...(s.waitingForAck ? { waitingForAck: true } : {}),
      })),
    ];
  }

  /** Ends every channel of this session, published (their subscribers stop receiving) and subscribed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.published.values()) for (const s of c.subscribers) s.owner.subscribed.delete(s.id);
    for (const s of this.subscribed.values()) {
      clearTimeout(s.ackTimer);
      s.source.subscribers.delete(s);
    }
    this.published.clear();
    this.publishedById.clear();
    this.subscribed.clear();
    this.association?.close();
  }

  private onMessage(m: SctpMessage): void {
    const channel = this.publishedById.get(m.streamId);
    if (!channel) {
      const sub = this.subscribed.get(m.streamId);
      if (sub?.waitingForAck) {
        // The acknowledgment opens the gate and is consumed: the channel stays one-way.
        sub.waitingForAck = false;
        clearTimeout(sub.ackTimer);
      } else this.unrouted++; // one way: what a subscriber sends goes nowhere (Cloudflare's model)
      return;
    }
    channel.messages++;
    for (const sub of channel.subscribers) {
      if (sub.waitingForAck) continue;
      const out = sub.owner.association;
      if (out?.send(sub.id, m.ppid, m.data)) sub.delivered++;
      else sub.dropped++;
    }
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
