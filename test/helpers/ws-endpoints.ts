import assert from "node:assert/strict";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Socket } from "node:net";
import { RtpHeader, RtpPacket } from "werift";
import { type WebSocket, WebSocket as WebSocketClient, WebSocketServer } from "ws";
import type { AdapterStatus } from "../../src/adapters/websocket/adapter.ts";
import { decodePacket, encodePacket, type WirePacket } from "../../src/adapters/websocket/packet-codec.ts";
import type { ApiClient } from "../../src/client/api-client.ts";
import { FRAME_VALUES } from "../../src/media/audio-format.ts";
import { seqDiff } from "../../src/media/rtp.ts";
import { decodeOpus, type Publisher, publishAudio, type Subscriber } from "./rtc-client.ts";
import { alignAndCorrelate, fromBytes, rms, toBytes } from "./signals.ts";

/** A WebSocket endpoint on loopback that the server dials. `onConnection` scripts its behaviour. */
export interface Endpoint {
  url: string;
  connections: WebSocket[];
  /** The HTTP upgrade request of each connection (parallel to `connections`). */
  requests: IncomingMessage[];
  /** Resolves with the next connection. */
  nextConnection(): Promise<WebSocket>;
  close(): Promise<void>;
}

export interface EndpointOptions {
  /** Answer protocol pings (default true). false simulates a half-open peer for keepalive tests. */
  autoPong?: boolean;
  /** Listen on this port (default 0: any free one). Restarting an endpoint on the port it had simulates an outage. */
  port?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

// Close events are captured from the moment a connection exists, so a test can ask late without missing it.
const closeEvents = new WeakMap<WebSocket, Promise<CloseInfo>>();

/** The close code/reason the endpoint side of `ws` saw (only for sockets accepted by `startEndpoint`). */
export function closeOf(ws: WebSocket): Promise<CloseInfo> {
  const p = closeEvents.get(ws);
  if (!p) throw new Error("closeOf: not a connection accepted by startEndpoint");
  return p;
}

export async function startEndpoint(
  onConnection: (ws: WebSocket) => void = () => {},
  path = "/tts?token=abc",
  options: EndpointOptions = {},
): Promise<Endpoint> {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: options.port ?? 0,
    autoPong: options.autoPong ?? true,
  });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const connections: WebSocket[] = [];
  const requests: IncomingMessage[] = [];
  let waiters: ((ws: WebSocket) => void)[] = [];
  wss.on("connection", (ws, req) => {
    connections.push(ws);
    requests.push(req);
    closeEvents.set(
      ws,
      new Promise((r) => ws.once("close", (code, reason) => r({ code, reason: reason.toString() }))),
    );
    ws.on("error", () => {});
    onConnection(ws);
    const w = waiters;
    waiters = [];
    for (const fn of w) fn(ws);
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}${path}`,
    connections,
    requests,
    nextConnection: () => new Promise((r) => waiters.push(r)),
    close: () =>
      new Promise((resolve) => {
        for (const c of connections) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

/**
 * Split PCM (samples, or bytes already in an endpoint's format) into `Packet` messages of `chunkBytes`
 * payload each (unaligned on purpose).
 */
export function chunkPackets(pcm: Int16Array | Uint8Array, chunkBytes: number): Uint8Array[] {
  const bytes = pcm instanceof Uint8Array ? pcm : toBytes(pcm);
  const out: Uint8Array[] = [];
  let seq = 0;
  for (let off = 0; off < bytes.length; off += chunkBytes) {
    out.push(
      encodePacket({ sequenceNumber: seq++, timestamp: 0, payload: bytes.subarray(off, off + chunkBytes) }),
    );
  }
  return out;
}

export const EMPTY_PACKET = encodePacket({ sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) });

/** Behaves like Cloudflare's TTS example: the whole clip as fast as possible in 16 KiB chunks, then an empty packet. */
export function ttsBurst(pcm: Int16Array | Uint8Array, chunkBytes = 16 * 1024): (ws: WebSocket) => void {
  return (ws) => {
    for (const m of chunkPackets(pcm, chunkBytes)) ws.send(m);
    ws.send(EMPTY_PACKET);
  };
}

export interface PacedResult {
  messages: number;
  /** Worst lateness of a send against its absolute due time (timer quality, for diagnostics). */
  maxLateMs: number;
}

/**
 * A real-time endpoint: message n leaves at t0 + n × periodMs on an absolute clock (never chained relative
 * timers, so lateness does not accumulate), `frameBytes` of payload each, then an empty packet unless
 * `end: false`. Resolves after the last send; rejects if the socket closes first.
 */
export function pacedSend(
  ws: WebSocket,
  pcm: Int16Array,
  opts: { frameBytes?: number; periodMs?: number; end?: boolean } = {},
): Promise<PacedResult> {
  const messages = chunkPackets(pcm, opts.frameBytes ?? 3840);
  const period = opts.periodMs ?? 20;
  const t0 = performance.now();
  let n = 0;
  let maxLateMs = 0;
  return new Promise((resolve, reject) => {
    const step = () => {
      if (ws.readyState !== ws.OPEN) {
        reject(new Error(`pacedSend: socket closed after ${n} of ${messages.length} messages`));
        return;
      }
      const now = performance.now();
      while (n < messages.length && t0 + n * period <= now) {
        maxLateMs = Math.max(maxLateMs, now - (t0 + n * period));
        ws.send(messages[n++]);
      }
      if (n < messages.length) {
        setTimeout(step, Math.max(0, t0 + n * period - performance.now()));
        return;
      }
      if (opts.end ?? true) ws.send(EMPTY_PACKET);
      resolve({ messages: messages.length, maxLateMs });
    };
    step();
  });
}

/** Tries a WebSocket handshake; resolves with "open", "HTTP <status>" or "error <message>". */
export function tryHandshake(url: string, headers: Record<string, string> = {}): Promise<string> {
  const ws = new WebSocketClient(url, { headers });
  ws.on("error", () => {});
  return new Promise((resolve) => {
    ws.once("open", () => {
      ws.close();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(`HTTP ${res.statusCode}`);
      ws.terminate();
    });
    ws.once("error", (err) => resolve(`error ${err.message}`));
  });
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = createTcpServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A TCP server that accepts connections and never answers (a hung endpoint). */
export async function startSilentServer(): Promise<{
  url: string;
  accepted(): number;
  close(): Promise<void>;
}> {
  const sockets: Socket[] = [];
  const srv = createTcpServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/tts`,
    accepted: () => sockets.length,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** An HTTP server that answers every request, upgrade included, with `302 Location: <location>`. */
export async function startRedirectServer(
  location: string,
): Promise<{ url: string; hits(): number; close(): Promise<void> }> {
  let hits = 0;
  const srv = createHttpServer((_req, res) => {
    hits++;
    res.writeHead(302, { location }).end();
  });
  srv.on("upgrade", (_req, socket: Socket) => {
    hits++;
    socket.end(
      `HTTP/1.1 302 Found\r\nLocation: ${location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/tts`,
    hits: () => hits,
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

// ---- adapter API ----------------------------------------------------------------------------------------

export interface IngestCreated {
  trackName: string;
  adapterId: string;
  sessionId: string;
  endpoint: string;
}

/** POST adapters/websocket/new with one ingest item; asserts success. */
export async function createIngest(
  api: ApiClient,
  endpoint: string,
  trackName = "tts",
  /** More item fields (inputCodec, sampleRate, channels, control…). */
  extra: Record<string, unknown> = {},
): Promise<IngestCreated> {
  const res = await api.raw<{ tracks: (IngestCreated & { errorCode?: string })[] }>(
    "POST",
    "adapters/websocket/new",
    { tracks: [{ location: "local", trackName, endpoint, inputCodec: "pcm", mode: "buffer", ...extra }] },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.tracks[0].errorCode, undefined, JSON.stringify(res.body));
  return res.body.tracks[0];
}

export async function adapterStatus(api: ApiClient, adapterId: string): Promise<AdapterStatus> {
  const res = await api.raw<AdapterStatus>("GET", `adapters/websocket/${adapterId}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/**
 * Polls GET adapters/websocket/{id} until `done(status)` (the server has no event for adapter state).
 * `onPoll` sees every sample (for bounds checked during a run). Rejects at the deadline with the last state.
 */
export async function pollAdapter(
  api: ApiClient,
  adapterId: string,
  done: (s: AdapterStatus) => boolean,
  opts: { timeoutMs: number; intervalMs?: number; onPoll?: (s: AdapterStatus) => void },
): Promise<AdapterStatus> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    const s = await adapterStatus(api, adapterId);
    opts.onPoll?.(s);
    if (done(s)) return s;
    if (performance.now() > deadline)
      throw new Error(
        `adapter ${adapterId}: condition not met after ${opts.timeoutMs} ms: ${JSON.stringify(s)}`,
      );
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

// ---- what a subscriber of an ingest track received ------------------------------------------------------

/** The canned 20 ms Opus silence packet the ingest track sends while its queue is empty. */
export function isOpusSilence(payload: Uint8Array): boolean {
  return payload.length === 3 && payload[0] === 0xf8 && payload[1] === 0xff && payload[2] === 0xfe;
}

/**
 * The audio frames of an ingest track as a subscriber received them, told apart from the two kinds of
 * silence the track sends: the canned 3-byte packet, and the one "flush" packet (encoded zeros, so not
 * canned) that follows every talk-spurt. A non-silence packet is a flush exactly when the next packet is
 * canned silence or starts a new talk-spurt (marker bit). A packet with no successor yet is not
 * classified, unless `ended` says the track has ended: an adapter that closes after playing out its queue
 * does so in the slot of its last frame, so its last packet is audio. `spurts` counts talk-spurts (an
 * underrun in the middle of a clip splits it in two).
 */
export function audioFrames(
  packets: RtpPacket[],
  opts: { ended?: boolean } = {},
): { packets: RtpPacket[]; indices: number[]; spurts: number } {
  const out: RtpPacket[] = [];
  const indices: number[] = [];
  let spurts = 0;
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i];
    if (isOpusSilence(p.payload)) continue;
    const next = packets[i + 1];
    if (next === undefined && !opts.ended) break;
    if (next && (isOpusSilence(next.payload) || next.header.marker)) continue; // the flush after a spurt
    if (out.length === 0 || p.header.marker) spurts++;
    out.push(p);
    indices.push(i);
  }
  return { packets: out, indices, spurts };
}

/** Resolves when at least `n` audio frames (see audioFrames) arrived; event-driven via waitFor. */
export async function waitForAudio(
  sub: Subscriber,
  n: number,
  timeoutMs: number,
  opts: { ended?: boolean } = {},
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const got = audioFrames(sub.packets, opts).packets.length;
    if (got >= n) return;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`only ${got} of ${n} audio frames after ${timeoutMs} ms`);
    await sub.waitFor(sub.packets.length + 1, left);
  }
}

/** Consecutive sequence numbers and timestamps 960 apart (one 20 ms frame each). */
export function assertContinuous(packets: RtpPacket[], what = "stream"): void {
  for (let i = 1; i < packets.length; i++) {
    assert.equal(
      seqDiff(packets[i].header.sequenceNumber, packets[i - 1].header.sequenceNumber),
      1,
      `${what}: seq gap at ${i} (${packets[i - 1].header.sequenceNumber} → ${packets[i].header.sequenceNumber})`,
    );
    assert.equal(
      (packets[i].header.timestamp - packets[i - 1].header.timestamp) >>> 0,
      960,
      `${what}: timestamp step at ${i}`,
    );
  }
}

/**
 * The subscriber heard exactly `clip`: the RTP stream is continuous (silence included), it holds every
 * frame of the clip as audio at real-time spacing, and they decode to the clip. `gapSlots` is the number
 * of silent slots inside the clip as the subscriber saw them (the adapter's underruns).
 */
export function assertHeardClip(
  sub: Subscriber,
  clip: Int16Array,
  what: string,
  opts: { ended?: boolean } = {},
): { gapSlots: number; audio: RtpPacket[] } {
  const frames = clip.length / FRAME_VALUES;
  assertContinuous(sub.packets, what);
  const audio = audioFrames(sub.packets, opts);
  assert.equal(audio.packets.length, frames, `${what}: audio frames`);
  assert.equal(audio.packets[0].header.marker, true, `${what}: the first audio frame carries the marker`);
  const first = audio.indices[0];
  const last = audio.indices[frames - 1];
  const spread = sub.times[last] - sub.times[first];
  assert.ok(
    Math.abs(spread - (last - first) * 20) < 300,
    `${what}: frames arrive at real-time rate (${spread.toFixed(0)} ms for ${last - first} slots)`,
  );
  const pcm = decodeOpus(audio.packets.map((p) => p.payload));
  assert.ok(rms(pcm) > 500, `${what}: decoded audio is not silence`);
  // A tight lag window (±100 ms): the decoded frames start with the clip, up to the codec's lookahead.
  const { correlation, lagSamples } = alignAndCorrelate(clip, pcm, { maxLagSamples: 4800 });
  assert.ok(correlation >= 0.9, `${what}: decoded matches the clip (r=${correlation.toFixed(3)})`);
  assert.ok(Math.abs(lagSamples) < 960, `${what}: aligned within one frame (lag ${lagSamples} samples)`);
  return { gapSlots: last - first + 1 - frames, audio: audio.packets };
}

// ---- egress: what an egress endpoint received; a publisher on an absolute clock -------------------------

export interface FrameReceiver {
  /** The decoded Packets, in arrival order. */
  packets: WirePacket[];
  /** performance.now() at each arrival (parallel to `packets`). */
  times: number[];
  /** Binary messages that did not decode as a Packet, and text messages (egress must send neither). */
  invalid: number;
  /** Resolves once at least `n` Packets arrived. */
  waitFor(n: number, ms?: number): Promise<WirePacket[]>;
  /** Resolves once `done(packets)` holds; checked on every arrival (event-driven, no polling). */
  waitUntil(done: (packets: WirePacket[]) => boolean, ms?: number, what?: string): Promise<WirePacket[]>;
}

/** Collects the Packets an egress endpoint receives on `ws` (attach it right when the connection opens). */
export function receiver(ws: WebSocket): FrameReceiver {
  const packets: WirePacket[] = [];
  const times: number[] = [];
  const waiters = new Set<() => void>();
  const rx: FrameReceiver = {
    packets,
    times,
    invalid: 0,
    waitFor: (n, ms = 15_000) => rx.waitUntil((p) => p.length >= n, ms, `${n} frames`),
    waitUntil(done, ms = 15_000, what = "condition") {
      if (done(packets)) return Promise.resolve(packets);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(packets)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(packets);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${what}: not met after ${ms} ms (${packets.length} frames received)`));
        }, ms);
        waiters.add(check);
      });
    },
  };
  ws.on("message", (data, isBinary) => {
    const r = isBinary ? decodePacket(data as Buffer) : undefined;
    if (r?.ok) {
      packets.push({ ...r.packet, payload: r.packet.payload.slice() });
      times.push(performance.now());
    } else rx.invalid++;
    for (const w of [...waiters]) w();
  });
  return rx;
}

/** The PCM of received frames, concatenated (interleaved stereo s16). */
export function pcmOf(packets: WirePacket[]): Int16Array {
  return fromBytes(new Uint8Array(Buffer.concat(packets.map((p) => p.payload))));
}

/** RMS of one received frame. */
export function frameRms(packet: WirePacket): number {
  return rms(fromBytes(packet.payload));
}

export interface EgressCreated {
  trackName: string;
  adapterId: string;
  sessionId: string;
  endpoint: string;
}

/** POST adapters/websocket/new with one egress item; asserts success. */
export async function createEgress(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
  endpoint: string,
  /** More item fields (outputCodec "jpeg", speechEvents, headers…). */
  extra: Record<string, unknown> = {},
): Promise<EgressCreated> {
  const res = await api.raw<{ tracks: (EgressCreated & { errorCode?: string })[] }>(
    "POST",
    "adapters/websocket/new",
    { tracks: [{ location: "remote", ...from, endpoint, outputCodec: "pcm", ...extra }] },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.tracks[0].errorCode, undefined, JSON.stringify(res.body));
  return res.body.tracks[0];
}

export interface EgressSetup {
  /** The publisher of the source track ("caller"). */
  pub: Publisher;
  endpoint: Endpoint;
  adapterId: string;
  /** The endpoint's side of the connection the server dialed. */
  ws: WebSocket;
}

/**
 * Publishes audio as "caller", starts an endpoint on `path` and creates an egress adapter from that track to it;
 * resolves once the server has dialed. On failure closes what it started; on success the caller closes `pub` and
 * `endpoint`.
 */
export async function startEgress(api: ApiClient, path: string): Promise<EgressSetup> {
  const pub = await publishAudio(api, "caller");
  let endpoint: Endpoint | undefined;
  try {
    endpoint = await startEndpoint(() => {}, path);
    const conn = endpoint.nextConnection();
    const { adapterId } = await createEgress(
      api,
      { sessionId: pub.sessionId, trackName: "caller" },
      endpoint.url,
    );
    return { pub, endpoint, adapterId, ws: await conn };
  } catch (err) {
    await pub.close();
    await endpoint?.close();
    throw err;
  }
}

/** Consecutive 20 ms RTP packets for `payloads` (the first with the marker bit); numbers wrap. */
export function rtpPackets(payloads: Uint8Array[], seq0 = 1000, ts0 = 5000): RtpPacket[] {
  return payloads.map(
    (p, i) =>
      new RtpPacket(
        new RtpHeader({
          payloadType: 111,
          sequenceNumber: (seq0 + i) & 0xffff,
          timestamp: (ts0 + i * 960) >>> 0,
          ssrc: 0,
          marker: i === 0,
        }),
        Buffer.from(p),
      ),
  );
}

/**
 * Writes `slots` through `pub.sendRaw` on an absolute clock: slot k leaves at t0 + k × periodMs (never
 * chained relative timers, so lateness does not accumulate into a slow source). An `undefined` slot sends
 * nothing: a lost packet keeps its time. Packets are cloned (werift rewrites headers in place). Resolves
 * after the last slot, or early when `signal` aborts, with the number of slots played (`slots`).
 * `startAt` (performance.now() time, the server's media clock too) sets t0, e.g. on the server's grid.
 */
export function sendPaced(
  pub: Publisher,
  slots: (RtpPacket | undefined)[],
  opts: { periodMs?: number; signal?: AbortSignal; startAt?: number } = {},
): Promise<{ slots: number; maxLateMs: number }> {
  const period = opts.periodMs ?? 20;
  const t0 = opts.startAt ?? performance.now();
  let k = 0;
  let maxLateMs = 0;
  return new Promise((resolve) => {
    const step = () => {
      if (opts.signal?.aborted) return resolve({ slots: k, maxLateMs });
      const now = performance.now();
      while (k < slots.length && t0 + k * period <= now) {
        maxLateMs = Math.max(maxLateMs, now - (t0 + k * period));
        const p = slots[k++];
        if (p) pub.sendRaw(p.clone());
      }
      if (k >= slots.length) return resolve({ slots: k, maxLateMs });
      setTimeout(step, Math.max(0, t0 + k * period - performance.now()));
    };
    step();
  });
}

/**
 * Egress frames as an endpoint must see them: sequence numbers consecutive (from `firstSeq` when given),
 * RTP timestamps exactly one 20 ms frame (960) apart, modulo 2^32, and 3 840 bytes of PCM each.
 */
export function assertEgressContinuous(
  packets: WirePacket[],
  what: string,
  opts: { firstSeq?: number } = {},
): void {
  assert.ok(packets.length > 0, `${what}: no frames`);
  if (opts.firstSeq !== undefined)
    assert.equal(packets[0].sequenceNumber, opts.firstSeq, `${what}: first seq`);
  for (let i = 0; i < packets.length; i++) {
    assert.equal(packets[i].payload.length, 3840, `${what}: frame ${i} holds 20 ms of stereo s16le`);
    if (i === 0) continue;
    const [a, b] = [packets[i - 1], packets[i]];
    assert.equal(
      b.sequenceNumber,
      a.sequenceNumber + 1,
      `${what}: sequence gap at ${i} (${a.sequenceNumber} → ${b.sequenceNumber})`,
    );
    assert.equal(
      (b.timestamp - a.timestamp) >>> 0,
      960,
      `${what}: timestamp step at ${i} (${a.timestamp} → ${b.timestamp})`,
    );
  }
}
