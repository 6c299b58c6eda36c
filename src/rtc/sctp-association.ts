import { RTCSctpTransport } from "werift";
import { Signal } from "../util/signal.ts";

// One SCTP association (RFC 8831 data channels) carried in DTLS application data: the native plane's
// `NativeTransport.onApplicationData` feeds `receiveRecord`, and `send` hands records back to
// `sendApplicationData`. The SCTP state machine (INIT/COOKIE, retransmission, SACK, stream reset) is werift's;
// what this class adds is what an SFU needs and werift's RTCSctpTransport gets wrong for hostile peers:
// - raw messages (stream id, PPID, bytes), no RTCDataChannel objects: the SFU forwards, it does not consume;
// - DCEP (RFC 8832) OPEN acknowledged here and reported, so a channel a client opened in-band (Cloudflare's
//   `server-events`) works, while negotiated channels need nothing;
// - no throw escapes: werift's packet parser throws on a malformed packet from inside an async handler, and
//   its data-channel layer throws on an unknown PPID or an ACK for an unknown stream; either would be an
//   unhandled rejection, which ends a Node process. Every such input is counted instead.

/** RFC 8831 §8 payload protocol identifiers. */
export const PPID = {
  DCEP: 50,
  STRING: 51,
  BINARY: 53,
  STRING_EMPTY: 56,
  BINARY_EMPTY: 57,
} as const;

const DCEP_OPEN = 0x03;
const DCEP_ACK = 0x02;

export interface SctpMessage {
  streamId: number;
  ppid: number;
  /** Empty for the two "empty" PPIDs (their one padding byte is dropped). */
  data: Buffer;
}

export interface DcepOpen {
  streamId: number;
  label: string;
  protocol: string;
  ordered: boolean;
}

/** werift's SCTP class, used directly: the parts we call. */
interface WeriftSctp {
  isServer: boolean;
  /** DATA chunks werift has not sent yet. */
  outboundQueue: unknown[];
  /** Fires after each transmit pass. */
  readonly flush: { subscribe(fn: () => void): unknown };
  associationState: number;
  readonly onReceive: { subscribe(fn: (streamId: number, ppid: number, data: Buffer) => void): unknown };
  readonly stateChanged: Record<"connected" | "closed", { subscribe(fn: () => void): unknown }>;
  send(
    streamId: number,
    ppid: number,
    data: Buffer,
    opts?: { ordered?: boolean; maxRetransmits?: number },
  ): Promise<void>;
  start(remotePort?: number): Promise<void>;
  stop(): Promise<void>;
  handleData(data: Buffer): Promise<void>;
  abort(): Promise<void>;
}

interface SctpTransportLike {
  onData?: (buf: Buffer) => void;
  send(buf: Buffer): Promise<void>;
  close(): void;
}

type SctpConstructor = new (transport: SctpTransportLike, port: number) => WeriftSctp;

let sctpClass: SctpConstructor | undefined;

/**
 * werift exports RTCSctpTransport but not the SCTP class it builds on; one throwaway transport, given a DTLS
 * stand-in that never carries data, yields the constructor.
 */
function weriftSctpClass(): SctpConstructor {
  if (sctpClass) return sctpClass;
  const probe = new RTCSctpTransport(5000);
  const stub = {
    id: "probe",
    dataReceiver: () => {},
    sendData: async () => {},
    onStateChange: { subscribe: () => ({ unSubscribe: () => {} }) },
    iceTransport: { role: "controlled" },
  };
  probe.setDtlsTransport(stub as unknown as Parameters<RTCSctpTransport["setDtlsTransport"]>[0]);
  sctpClass = (probe.sctp as unknown as { constructor: SctpConstructor }).constructor;
  return sctpClass;
}

export interface SctpAssociationOptions {
  /** The DTLS server side (Patchbay toward browsers) waits for the peer's INIT. */
  isServer: boolean;
  /** Sends one SCTP packet as a DTLS application-data record. */
  sendRecord(record: Buffer): void;
  /** SCTP port of both ends (a=sctp-port); 5000 in every browser. */
  port?: number;
  /** Bytes queued before `send` refuses (the SFU's per-peer back-pressure bound). Default 4 MiB. */
  maxQueuedBytes?: number;
  /**
   * Largest message the peer may send (our a=max-message-size). A peer that sends a bigger one is aborted:
   * werift reassembles without a bound, so a hostile peer could otherwise fill memory with one message.
   */
  maxMessageSize?: number;
}

/** Our a=max-message-size (RFC 8841): what the SDP announces and the association enforces. */
export const MAX_MESSAGE_SIZE = 262_144;

const DATA_CHUNK = 0;
const FLAG_BEGIN = 0x02;
const FLAG_END = 0x01;

/**
 * Messages handed to werift at a time, and only once its own queue is empty. Each werift `send` waits for
 * that queue to drain by re-arming a listener on every transmit pass: with the queue never empty, every
 * pending send re-arms on every pass, O(n²) — 10 000 messages queued at once cost 4 ms of CPU each. The rest
 * waits here, in a plain FIFO.
 */
const IN_FLIGHT_MESSAGES = 16;

interface Pending {
  streamId: number;
  ppid: number;
  data: Buffer;
  ordered: boolean;
  maxRetransmits?: number;
}

export class SctpAssociation {
  readonly onMessage = new Signal<SctpMessage>();
  readonly onDcepOpen = new Signal<DcepOpen>();
  readonly onConnected = new Signal<void>();
  readonly onClosed = new Signal<void>();
  /** Inputs dropped: malformed SCTP packets, unknown PPIDs, malformed DCEP. */
  malformed = 0;
  /** Sends that failed (association gone, werift refused). */
  sendFailures = 0;
  /** Why the association was aborted by us (an oversize message), if it was. */
  abortReason: string | undefined;
  connected = false;
  /** Bytes accepted by `send` and not yet handed to SCTP. */
  queuedBytes = 0;
  private readonly sctp: WeriftSctp;
  private closed = false;
  private started = false;
  private pending: Pending[] = [];
  private pendingHead = 0;

  constructor(private readonly opts: SctpAssociationOptions) {
    const SCTP = weriftSctpClass();
    const transport: SctpTransportLike = {
      send: async (buf) => {
        if (!this.closed) opts.sendRecord(buf);
      },
      close: () => {},
    };
    this.sctp = new SCTP(transport, opts.port ?? 5000);
    // werift wires transport.onData to handleData without catching: records come through receiveRecord.
    transport.onData = undefined;
    this.sctp.isServer = opts.isServer;
    this.sctp.onReceive.subscribe((streamId, ppid, data) => this.receive(streamId, ppid, data));
    this.sctp.stateChanged.connected.subscribe(() => {
      this.connected = true;
      this.onConnected.emit();
      this.pump();
    });
    // After the transmit pass's own waiters have seen an empty queue (they run as microtasks), not inside it.
    this.sctp.flush.subscribe(() => this.schedulePump());
    this.sctp.stateChanged.closed.subscribe(() => {
      this.connected = false;
      this.onClosed.emit();
    });
  }

  /** Closed by us (close(), or aborted for an oversize message): it carries nothing any more. */
  get isClosed(): boolean {
    return this.closed || this.abortReason !== undefined;
  }

  /** Starts the association once DTLS is up (the client sends INIT; the server waits for it). */
  start(remotePort = this.opts.port ?? 5000): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.sctp.start(remotePort).catch(() => this.sendFailures++);
  }

  /** One DTLS application-data record from the peer. */
  receiveRecord(record: Buffer): void {
    if (this.closed || this.abortReason) return;
    const oversize = this.oversizeStream(record);
    if (oversize !== undefined) {
      // The ABORT goes out first (close() stops sending); nothing more from this peer is read meanwhile.
      this.abortReason = `the peer sent a message over ${this.maxMessageSize} bytes on stream ${oversize}`;
      this.connected = false;
      this.sctp
        .abort()
        .catch(() => {})
        .finally(() => {
          this.close();
          this.onClosed.emit();
        });
      return;
    }
    this.sctp.handleData(record).catch(() => this.malformed++);
  }

  private get maxMessageSize(): number {
    return this.opts.maxMessageSize ?? MAX_MESSAGE_SIZE;
  }

  /**
   * Reads the DATA chunks of one SCTP packet (RFC 9260 §3.3.1) before werift does and adds each fragment to its
   * stream's open message; the stream whose message grew past maxMessageSize, if any. Retransmitted and
   * reordered fragments can only overcount, never let a large message through.
   */
  private oversizeStream(packet: Buffer): number | undefined {
    let at = 12;
    while (at + 4 <= packet.length) {
      const type = packet[at];
      const flags = packet[at + 1];
      const length = packet.readUInt16BE(at + 2);
      if (length < 4) return undefined; // malformed: werift's parser will refuse it
      if (type === DATA_CHUNK && length >= 16 && at + 16 <= packet.length) {
        const stream = packet.readUInt16BE(at + 8);
        const bytes = (flags & FLAG_BEGIN ? 0 : (this.openMessageBytes.get(stream) ?? 0)) + (length - 16);
        if (bytes > this.maxMessageSize) return stream;
        if (flags & FLAG_END) this.openMessageBytes.delete(stream);
        else this.openMessageBytes.set(stream, bytes);
      }
      at += (length + 3) & ~3;
    }
    return undefined;
  }

  /**
   * Queues one message; false when the association cannot take it (not connected, closed, or more than
   * maxQueuedBytes already waiting: the caller decides what a slow peer loses).
   */
  send(streamId: number, ppid: number, data: Buffer, ordered = true, maxRetransmits?: number): boolean {
    if (this.closed || !this.connected) return false;
    if (this.queuedBytes + data.length > (this.opts.maxQueuedBytes ?? 4 << 20)) return false;
    // RFC 8831 §6.6: an empty message is sent as one zero byte with an "empty" PPID.
    const body = data.length === 0 ? Buffer.alloc(1) : data;
    this.pending.push({ streamId, ppid, data: body, ordered, maxRetransmits });
    this.queuedBytes += body.length;
    this.pump();
    return true;
  }

  private pumpScheduled = false;
  /** Bytes of the message being reassembled, per stream (from DATA chunks' B and E flags). */
  private readonly openMessageBytes = new Map<number, number>();

  private schedulePump(): void {
    if (this.pumpScheduled || this.pendingHead >= this.pending.length) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Hands queued messages to werift while its own queue is empty. */
  private pump(): void {
    while (
      !this.closed &&
      this.connected &&
      this.pendingHead < this.pending.length &&
      this.sctp.outboundQueue.length === 0
    ) {
      const end = Math.min(this.pending.length, this.pendingHead + IN_FLIGHT_MESSAGES);
      while (this.pendingHead < end) {
        const m = this.pending[this.pendingHead++];
        this.queuedBytes -= m.data.length;
        this.sctp
          .send(m.streamId, m.ppid, m.data, { ordered: m.ordered, maxRetransmits: m.maxRetransmits })
          .catch(() => this.sendFailures++);
      }
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
  }

  close(): void {
    if (this.closed) return;
    this.sctp.stop().catch(() => {});
    this.closed = true;
    this.pending = [];
    this.pendingHead = 0;
    this.queuedBytes = 0;
  }

  private receive(streamId: number, ppid: number, data: Buffer): void {
    switch (ppid) {
      case PPID.DCEP:
        this.receiveDcep(streamId, data);
        return;
      case PPID.STRING:
      case PPID.BINARY:
        this.onMessage.emit({ streamId, ppid, data });
        return;
      case PPID.STRING_EMPTY:
      case PPID.BINARY_EMPTY:
        this.onMessage.emit({ streamId, ppid, data: Buffer.alloc(0) });
        return;
      default:
        this.malformed++;
    }
  }

  /** RFC 8832: OPEN is acknowledged on the same stream and reported; an ACK (to our OPEN) needs nothing. */
  private receiveDcep(streamId: number, data: Buffer): void {
    if (data.length >= 1 && data[0] === DCEP_ACK) return;
    if (data.length < 12 || data[0] !== DCEP_OPEN) {
      this.malformed++;
      return;
    }
    const labelLength = data.readUInt16BE(8);
    const protocolLength = data.readUInt16BE(10);
    if (12 + labelLength + protocolLength > data.length) {
      this.malformed++;
      return;
    }
    const label = data.toString("utf8", 12, 12 + labelLength);
    const protocol = data.toString("utf8", 12 + labelLength, 12 + labelLength + protocolLength);
    this.sctp.send(streamId, PPID.DCEP, Buffer.from([DCEP_ACK])).catch(() => this.sendFailures++);
    this.onDcepOpen.emit({ streamId, label, protocol, ordered: (data[1] & 0x80) === 0 });
  }
}

/** A DCEP OPEN for a reliable channel (what a client's createDataChannel(label) sends). */
export function dcepOpen(label: string, protocol = "", ordered = true): Buffer {
  const l = Buffer.from(label, "utf8");
  const p = Buffer.from(protocol, "utf8");
  const head = Buffer.alloc(12);
  head[0] = DCEP_OPEN;
  head[1] = ordered ? 0x00 : 0x80;
  head.writeUInt16BE(l.length, 8);
  head.writeUInt16BE(p.length, 10);
  return Buffer.concat([head, l, p]);
}
