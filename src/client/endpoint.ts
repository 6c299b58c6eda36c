/**
 * Tools for writing WebSocket endpoints that a Patchbay (or Cloudflare Realtime) WebSocket adapter dials.
 *
 * Wire format (SPEC §2.2): every binary message is one protobuf `Packet` whose `payload` is PCM, signed 16-bit
 * little-endian, 48 kHz, 2 channels interleaved (4 bytes per sample frame).
 *
 * - Ingest endpoints (the adapter has `location: "local"`) send audio: `sendBurst` (the whole clip as fast as
 *   possible, the way Cloudflare's TTS example does; the server buffers and paces) or `sendPaced` (real time).
 * - Egress endpoints (`location: "remote"`) receive audio: `readFrames` decodes each Packet to an Int16Array.
 *
 * These functions take a `ws` WebSocket (Node). They never throw from inside socket event handlers.
 */
import type { WebSocket } from "ws";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodePacket,
  encodePacket,
  maxPayloadForMessageSize,
  type WirePacket,
} from "../adapters/websocket/packet-codec.ts";

export {
  DEFAULT_MAX_MESSAGE_BYTES,
  type DecodeResult,
  decodePacket,
  encodePacket,
  maxPayloadForMessageSize,
  packetOverhead,
  type WirePacket as Packet,
} from "../adapters/websocket/packet-codec.ts";

export const SAMPLE_RATE = 48_000;
export const CHANNELS = 2;
/** Bytes per interleaved sample frame (2 channels × 2 bytes). */
export const BYTES_PER_FRAME = 4;
/** Bytes of PCM per millisecond on the wire. */
export const BYTES_PER_MS = (SAMPLE_RATE / 1000) * BYTES_PER_FRAME; // 192

/** PCM as Int16Array samples (interleaved L, R) or as s16le bytes. */
export type Pcm = Int16Array | Uint8Array;

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** s16le bytes of `pcm`: a view on little-endian hosts (no copy), a byte-swapped copy elsewhere. */
export function pcmToBytes(pcm: Pcm): Uint8Array {
  if (pcm instanceof Uint8Array) return pcm;
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out = new Uint8Array(pcm.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) view.setInt16(i * 2, pcm[i], true);
  return out;
}

/** Samples of s16le `bytes`, always a copy (any alignment; an odd trailing byte is ignored). */
export function bytesToPcm(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  if (HOST_IS_LITTLE_ENDIAN) {
    // Copy into a fresh, aligned buffer, then view it.
    const copy = new Uint8Array(n * 2);
    copy.set(bytes.subarray(0, n * 2));
    return new Int16Array(copy.buffer);
  }
  const out = new Int16Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/**
 * Largest payload (in bytes, a multiple of 4 so chunks hold whole sample frames) whose serialized Packet fits
 * in `maxMessageBytes` whatever the sequence number and timestamp: 32 752 for the default 32 768.
 */
export function maxChunkBytes(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): number {
  const max = maxPayloadForMessageSize(maxMessageBytes);
  if (max < BYTES_PER_FRAME) {
    if (max === 0) throw new RangeError(`no payload fits in a ${maxMessageBytes}-byte message`);
    return max;
  }
  return max - (max % BYTES_PER_FRAME);
}

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += size) out.push(bytes.subarray(off, off + size));
  return out;
}

/**
 * Cuts PCM into payload chunks whose serialized Packet is at most `maxMessageBytes` (the ingest limit,
 * 32 768 by default), protobuf overhead included. Chunks are views (no copy) and hold whole sample frames.
 */
export function chunkPcm(pcm: Pcm, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): Uint8Array[] {
  return split(pcmToBytes(pcm), maxChunkBytes(maxMessageBytes));
}

export interface SendOptions {
  /** Serialized message limit of the receiving side. Default 32 768. */
  maxMessageBytes?: number;
  /** Send an empty Packet after the audio (end of segment: the server pads and flushes). Default true. */
  end?: boolean;
  /** First sequence number (default 0); numbers increase by one per message, wrapping at 2³². */
  sequenceNumber?: number;
  /** Timestamp of the first sample (48 kHz units, default 0); each Packet carries its first sample's. */
  timestamp?: number;
}

export interface BurstOptions extends SendOptions {
  /** Payload bytes per message. Default 16 384 (Cloudflare's TTS example). */
  chunkBytes?: number;
}

export interface SendResult {
  /** Messages sent, the end packet included. */
  messages: number;
  /** PCM payload bytes sent. */
  bytes: number;
  /** Sequence number and timestamp to continue with in a later call. */
  nextSequenceNumber: number;
  nextTimestamp: number;
}

export interface PacedOptions extends SendOptions {
  /** Audio per message in ms (default 20: 3 840 bytes); 48 × frameMs must be an integer. */
  frameMs?: number;
  /** Stops sending (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

export interface PacedResult extends SendResult {
  /** Worst lateness of a send against its due time on the absolute clock (timer quality, diagnostics). */
  maxLateMs: number;
}

function assertOpen(ws: WebSocket, what: string): void {
  if (ws.readyState !== ws.OPEN) throw new Error(`${what}: socket is not open (readyState ${ws.readyState})`);
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Builds the Packets for `chunks` (+ the end packet) with running sequence numbers and timestamps. */
function packets(chunks: Uint8Array[], opts: SendOptions): { messages: Uint8Array[]; result: SendResult } {
  let seq = opts.sequenceNumber ?? 0;
  let ts = opts.timestamp ?? 0;
  let carry = 0; // bytes of a partial sample frame (only with unaligned input)
  let bytes = 0;
  const messages: Uint8Array[] = [];
  for (const payload of chunks) {
    messages.push(encodePacket({ sequenceNumber: seq, timestamp: ts, payload }));
    seq = (seq + 1) >>> 0;
    carry += payload.length;
    ts = (ts + Math.floor(carry / BYTES_PER_FRAME)) >>> 0;
    carry %= BYTES_PER_FRAME;
    bytes += payload.length;
  }
  if (opts.end ?? true) {
    messages.push(encodePacket({ sequenceNumber: seq, timestamp: ts, payload: new Uint8Array(0) }));
    seq = (seq + 1) >>> 0;
  }
  return {
    messages,
    result: { messages: messages.length, bytes, nextSequenceNumber: seq, nextTimestamp: ts },
  };
}

/** ws.send as a promise (resolves once the data is handed to the OS). */
function send(ws: WebSocket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.send(data, { binary: true }, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Sends the whole clip at once in `chunkBytes` Packets, then an empty Packet (Cloudflare TTS style). The
 * ingest adapter keeps every byte and plays it out in real time. Resolves when the last message is written.
 */
export async function sendBurst(ws: WebSocket, pcm: Pcm, opts: BurstOptions = {}): Promise<SendResult> {
  assertOpen(ws, "sendBurst");
  const size = Math.min(
    positiveInt("chunkBytes", opts.chunkBytes ?? 16_384),
    maxChunkBytes(opts.maxMessageBytes),
  );
  const { messages, result } = packets(split(pcmToBytes(pcm), size), opts);
  let last: Promise<void> = Promise.resolve();
  for (const m of messages) last = send(ws, m);
  await last;
  return result;
}

/**
 * Sends the clip in real time: message n leaves at t0 + n × frameMs on an absolute clock (late timers do
 * not accumulate drift; overdue messages are sent at once), then an empty Packet unless `end: false`.
 * Rejects if the socket closes first or `signal` aborts.
 */
export function sendPaced(ws: WebSocket, pcm: Pcm, opts: PacedOptions = {}): Promise<PacedResult> {
  const frameMs = opts.frameMs ?? 20;
  const frameSamples = (SAMPLE_RATE / 1000) * frameMs;
  if (!(frameMs > 0) || !Number.isInteger(frameSamples)) {
    throw new RangeError(`frameMs must be positive with 48 × frameMs an integer, got ${frameMs}`);
  }
  const frameBytes = frameSamples * BYTES_PER_FRAME;
  if (frameBytes > maxChunkBytes(opts.maxMessageBytes)) {
    throw new RangeError(`frameMs ${frameMs} makes ${frameBytes}-byte payloads, above the message limit`);
  }
  assertOpen(ws, "sendPaced");
  const { messages, result } = packets(split(pcmToBytes(pcm), frameBytes), opts);
  const audioMessages = messages.length - ((opts.end ?? true) ? 1 : 0);
  const t0 = performance.now();
  let n = 0;
  let maxLateMs = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<PacedResult>((resolve, reject) => {
    const onAbort = () => finish(opts.signal?.reason ?? new Error("sendPaced aborted"));
    const finish = (err?: unknown) => {
      if (timer !== undefined) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (err !== undefined) reject(err);
      else resolve({ ...result, maxLateMs });
    };
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const step = () => {
      timer = undefined;
      try {
        if (ws.readyState !== ws.OPEN) {
          finish(new Error(`sendPaced: socket closed after ${n} of ${messages.length} messages`));
          return;
        }
        const now = performance.now();
        // Audio message n is due at t0 + n × frameMs; the end packet follows the last one immediately.
        while (n < messages.length && (n >= audioMessages || t0 + n * frameMs <= now)) {
          if (n < audioMessages) maxLateMs = Math.max(maxLateMs, now - (t0 + n * frameMs));
          ws.send(messages[n++], { binary: true });
        }
        if (n < messages.length) {
          timer = setTimeout(step, Math.max(0, t0 + n * frameMs - performance.now()));
          return;
        }
        finish();
      } catch (err) {
        finish(err);
      }
    };
    step();
  });
}

export interface ReadFramesOptions {
  /** Called for a malformed message, a text message, or an exception thrown by `onFrame`. */
  onError?: (err: Error) => void;
}

export interface FrameReader {
  readonly stats: {
    /** Packets decoded (empty ones included). */
    packets: number;
    /** PCM payload bytes received. */
    bytes: number;
    malformed: number;
    textMessages: number;
  };
  /** Detaches the listener. */
  stop(): void;
}

/**
 * Decodes every binary message as a Packet and calls `onFrame` with its PCM as a fresh Int16Array (copied,
 * little-endian, interleaved stereo). The payloads form one continuous byte stream: an odd trailing byte is
 * carried into the next message. Text and malformed messages are skipped (reported through `onError`).
 */
export function readFrames(
  ws: WebSocket,
  onFrame: (pcm: Int16Array, packet: WirePacket) => void,
  opts: ReadFramesOptions = {},
): FrameReader {
  const stats = { packets: 0, bytes: 0, malformed: 0, textMessages: 0 };
  let carry: number | undefined; // an odd byte left from the previous payload
  const report = (err: Error) => {
    try {
      opts.onError?.(err);
    } catch {
      // An error reporter that throws must not take the socket's event loop down.
    }
  };
  const onMessage = (data: unknown, isBinary: boolean) => {
    try {
      if (!isBinary) {
        stats.textMessages++;
        report(new Error("text message ignored (the wire format is binary Packets)"));
        return;
      }
      const bytes = toUint8Array(data);
      const decoded = decodePacket(bytes);
      if (!decoded.ok) {
        stats.malformed++;
        report(new Error(decoded.error));
        return;
      }
      stats.packets++;
      let payload = decoded.packet.payload;
      stats.bytes += payload.length;
      if (carry !== undefined) {
        const joined = new Uint8Array(payload.length + 1);
        joined[0] = carry;
        joined.set(payload, 1);
        payload = joined;
        carry = undefined;
      }
      if (payload.length % 2 === 1) carry = payload[payload.length - 1];
      onFrame(bytesToPcm(payload), decoded.packet);
    } catch (err) {
      report(err instanceof Error ? err : new Error(String(err)));
    }
  };
  ws.on("message", onMessage);
  return { stats, stop: () => ws.off("message", onMessage) };
}

/** `ws` delivers Buffer, ArrayBuffer or Buffer[] depending on binaryType. */
function toUint8Array(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]);
  throw new TypeError(`unexpected message data type ${typeof data}`);
}
