// Load generator of the WebSocket adapter benchmarks (bench/ingest.ts, bench/egress.ts), forked as a child
// with an IPC channel so that the server's CPU numbers are its own. It holds both sides of every adapter
// that is not the server:
//
//   ingest agent i:  a WebSocket endpoint /ingest/i that the server dials (POST adapters/websocket/new,
//                    location "local"), sending one 20 ms PCM frame (3 840 bytes, continuous speech-like
//                    audio) every 20 ms, and a werift subscriber pulling the adapter's track, which times
//                    every RTP packet's arrival (intervals, drift, gaps).
//   egress agent i:  a werift publisher sending a real Opus stream at 50 packets/s, and a WebSocket endpoint
//                    /egress/i that the server's egress adapter (location "remote") dials and writes PCM
//                    frames to; it checks sequence numbers, RTP timestamps and frame sizes.
//
// Pacing: one timer per direction on an absolute clock aligned to the server's media-scheduler grid (the
// orchestrator passes the grid in `start`): ingest frame n is sent `ingestLeadMs` before slot n, egress
// packet n `egressLeadMs` before it. A late timer sends everything due (catch-up) and records its
// lateness. Loops stop on `stop`, or by themselves after `maxDurationMs`.

import type { IncomingMessage } from "node:http";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { type RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import WebSocket, { WebSocketServer } from "ws";
import { decodePacket, encodePacket } from "../src/adapters/websocket/packet-codec.ts";
import { ApiClient } from "../src/client/api-client.ts";
import { speechLike } from "../test/helpers/signals.ts";
import type {
  AdapterLoadMessage,
  AdapterLoadRequest,
  AdapterSetupRequest,
  AdapterSetupResult,
  AdapterStartRequest,
  GenWindowReport,
} from "./lib/adapter-protocol.ts";
import { errorText, pool, withTimeout } from "./lib/async.ts";
import { DriftTracker, MsHistogram } from "./lib/histogram.ts";
import { encodeOpusLoop } from "./lib/opus-loop.ts";
import { type PublishedTrack, publishAudioTrack, pullAudioTrack } from "./lib/peers.ts";
import { exitWithParent, sendToParent, summarizeNs } from "./protocol.ts";

const FRAME_MS = 20;
const FRAME_BYTES = 3840;
const SAMPLES = 960;
const LOOP_MS = 10_000;
const ELD_RESOLUTION_MS = 5;

/** Continuous speech-like PCM, 500 frames of 20 ms (48 kHz stereo s16le). */
const PCM_LOOP: Buffer[] = (() => {
  const pcm = speechLike(LOOP_MS, { seed: 424242 });
  const bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out: Buffer[] = [];
  for (let o = 0; o + FRAME_BYTES <= bytes.length; o += FRAME_BYTES)
    out.push(bytes.subarray(o, o + FRAME_BYTES));
  return out;
})();
const OPUS_LOOP = encodeOpusLoop(LOOP_MS, 20240611, Number(process.env.BENCH_OPUS_BITRATE ?? 32_000));

// ---- window state ------------------------------------------------------------------------------

let recording = false;
let windowStartedAt = 0;
let windowCpu = process.cpuUsage();
const win = {
  framesSent: 0,
  packetsSent: 0,
  subPackets: 0,
  subSilence: 0,
  subGaps: 0,
  egFrames: 0,
  egSeqGaps: 0,
  egTsGapFrames: 0,
  egBad: 0,
};
const pacerLateness = new MsHistogram();
const subIntervalAbs = new MsHistogram();
const probeInterval = new MsHistogram();
const probeIntervalAbs = new MsHistogram();
let probeDrift = new DriftTracker(FRAME_MS, true);
const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });

// ---- agents ------------------------------------------------------------------------------------

/** Receive side of one ingest track at its werift subscriber. */
class ArrivalStats {
  private lastTs = 0;
  private ext = Number.NaN;
  private prevK = Number.NaN;
  private prevT = Number.NaN;
  windowPackets = 0;

  constructor(readonly probe: boolean) {}

  onRtp(timestamp: number, payload: Buffer, t: number): void {
    if (Number.isNaN(this.ext)) this.ext = 0;
    else this.ext += (timestamp - this.lastTs) | 0;
    this.lastTs = timestamp;
    const k = Math.round(this.ext / SAMPLES);
    const prevK = this.prevK;
    const prevT = this.prevT;
    this.prevK = k;
    this.prevT = t;
    if (!recording) return;
    this.windowPackets++;
    win.subPackets++;
    if (payload.length === 3 && payload[0] === 0xf8 && payload[1] === 0xff && payload[2] === 0xfe)
      win.subSilence++;
    if (k === prevK + 1) {
      const err = t - prevT - FRAME_MS;
      subIntervalAbs.record(Math.abs(err));
      if (this.probe) {
        probeInterval.record(err);
        probeIntervalAbs.record(Math.abs(err));
      }
    } else if (k > prevK + 1) win.subGaps += k - prevK - 1;
    if (this.probe) probeDrift.record(k, t);
  }
}

interface IngestAgent {
  index: number;
  adapterId: string;
  sessionId: string;
  ws: WebSocket;
  pc: RTCPeerConnection;
  stats: ArrivalStats;
  phase: number;
  seq: number;
}

/** What one egress endpoint receives. */
class PcmEndpoint {
  private lastSeq = Number.NaN;
  private lastTs = 0;
  windowFrames = 0;

  onMessage(data: Buffer): void {
    const d = decodePacket(data);
    if (!d.ok || d.packet.payload.length !== FRAME_BYTES) {
      if (recording) win.egBad++;
      return;
    }
    const { sequenceNumber: seq, timestamp: ts } = d.packet;
    const hadPrev = !Number.isNaN(this.lastSeq);
    const seqStep = seq - this.lastSeq;
    const tsStep = (ts - this.lastTs) | 0;
    this.lastSeq = seq;
    this.lastTs = ts;
    if (!recording) return;
    this.windowFrames++;
    win.egFrames++;
    if (!hadPrev) return;
    if (seqStep > 1) win.egSeqGaps += seqStep - 1;
    if (tsStep > SAMPLES) win.egTsGapFrames += Math.round(tsStep / SAMPLES) - 1;
  }
}

interface EgressAgent {
  index: number;
  adapterId: string;
  pub: PublishedTrack;
  ws: WebSocket;
  endpoint: PcmEndpoint;
  phase: number;
  seqBase: number;
  tsBase: number;
  sent: number;
}

const ingest: IngestAgent[] = [];
const egress: EgressAgent[] = [];

// ---- endpoint server ---------------------------------------------------------------------------

let wss: WebSocketServer | undefined;
let wssPort = 0;
const arrived = new Map<string, WebSocket>();
const waiting = new Map<string, (ws: WebSocket) => void>();

async function endpointServer(): Promise<number> {
  if (wss) return wssPort;
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", () => resolve());
    server.once("error", reject);
  });
  server.on("connection", (ws: WebSocket, req: IncomingMessage) => {
    const path = req.url ?? "";
    ws.on("error", () => {});
    const w = waiting.get(path);
    if (w) {
      waiting.delete(path);
      w(ws);
    } else arrived.set(path, ws);
  });
  wss = server;
  wssPort = (server.address() as { port: number }).port;
  return wssPort;
}

function connectionOn(path: string, timeoutMs: number): Promise<WebSocket> {
  const ws = arrived.get(path);
  if (ws) {
    arrived.delete(path);
    return Promise.resolve(ws);
  }
  return withTimeout(
    new Promise<WebSocket>((resolve) => waiting.set(path, resolve)),
    timeoutMs,
    `server dialing ${path}`,
  ).finally(() => waiting.delete(path));
}

interface AdapterItem {
  adapterId?: string;
  sessionId?: string;
  errorCode?: string;
  errorDescription?: string;
}

async function newAdapter(api: ApiClient, item: Record<string, string>): Promise<AdapterItem> {
  const res = await api.raw<{ tracks?: AdapterItem[]; errorDescription?: string }>(
    "POST",
    "adapters/websocket/new",
    { tracks: [item] },
  );
  const t = res.body.tracks?.[0];
  if (res.status !== 200 || !t || t.errorCode || !t.adapterId)
    throw new Error(
      `adapters/websocket/new ${res.status}: ${t?.errorCode ?? ""} ${t?.errorDescription ?? res.body.errorDescription ?? ""}`,
    );
  return t;
}

async function setup(req: AdapterSetupRequest): Promise<AdapterSetupResult> {
  const started = performance.now();
  const api = new ApiClient(`${req.url}/v1`, req.appId, req.secret);
  const port = await endpointServer();
  const failures: string[] = [];
  const work = (async () => {
    await pool(
      Array.from({ length: req.ingest }, (_, i) => i),
      req.concurrency,
      async (i) => {
        const path = `/ingest/${i}`;
        const conn = connectionOn(path, req.peerTimeoutMs);
        conn.catch(() => {});
        const trackName = `agent-${i}`;
        const item = await newAdapter(api, {
          location: "local",
          trackName,
          endpoint: `ws://127.0.0.1:${port}${path}`,
          inputCodec: "pcm",
        });
        const ws = await conn;
        const stats = new ArrivalStats(i === 0);
        const pc = await pullAudioTrack(
          api,
          { sessionId: item.sessionId!, trackName },
          req.peerTimeoutMs,
          (rtp) => stats.onRtp(rtp.header.timestamp, rtp.payload, performance.now()),
        );
        ingest[i] = {
          index: i,
          adapterId: item.adapterId!,
          sessionId: item.sessionId!,
          ws,
          pc,
          stats,
          phase: (i * 37) % PCM_LOOP.length,
          seq: 1,
        };
      },
    );
    await pool(
      Array.from({ length: req.egress }, (_, i) => i),
      req.concurrency,
      async (i) => {
        const pub = await publishAudioTrack(api, `human-${i}`, req.peerTimeoutMs);
        try {
          const path = `/egress/${i}`;
          const conn = connectionOn(path, req.peerTimeoutMs);
          conn.catch(() => {});
          const item = await newAdapter(api, {
            location: "remote",
            sessionId: pub.sessionId,
            trackName: pub.trackName,
            endpoint: `ws://127.0.0.1:${port}${path}`,
            outputCodec: "pcm",
          });
          const ws = await conn;
          const endpoint = new PcmEndpoint();
          ws.on("message", (data: Buffer) => endpoint.onMessage(data));
          egress[i] = {
            index: i,
            adapterId: item.adapterId!,
            pub,
            ws,
            endpoint,
            phase: (i * 37) % OPUS_LOOP.length,
            seqBase: (i * 7919) & 0xffff,
            tsBase: (i * 104729) >>> 0,
            sent: 0,
          };
        } catch (err) {
          await pub.pc.close().catch(() => {});
          throw err;
        }
      },
    );
  })();
  try {
    await withTimeout(work, req.setupTimeoutMs, "setup");
  } catch (err) {
    failures.push(errorText(err));
  }
  return {
    setupMs: performance.now() - started,
    ingest: ingest.filter(Boolean).map((a) => ({ adapterId: a.adapterId, sessionId: a.sessionId })),
    egress: egress.filter(Boolean).map((a) => ({ adapterId: a.adapterId, sessionId: a.pub.sessionId })),
    failures,
  };
}

// ---- pacing ------------------------------------------------------------------------------------

interface Loop {
  stop(): void;
}

/** Calls onTick(n) for n = 0, 1, … at firstDue + n × period (catch-up when late) until stopped or endAt. */
function pacedLoop(firstDue: number, endAt: number, onTick: (n: number) => void): Loop {
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const fire = () => {
    if (stopped) return;
    const now = performance.now();
    const due = Math.floor((now - firstDue) / FRAME_MS) + 1;
    while (next < due) {
      const at = firstDue + next * FRAME_MS;
      if (at > endAt) {
        stopped = true;
        return;
      }
      if (recording) pacerLateness.record(now - at);
      onTick(next++);
    }
    timer = setTimeout(fire, Math.max(0, firstDue + next * FRAME_MS - performance.now()));
  };
  timer = setTimeout(fire, Math.max(0, firstDue - performance.now()));
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

let loops: Loop[] = [];
/** Local time of egress media slot 0 (RTP timestamps follow real time across stops and restarts). */
let egressEpoch = Number.NaN;

function stopLoops(): void {
  for (const l of loops) l.stop();
  loops = [];
}

function start(req: AdapterStartRequest): void {
  stopLoops();
  const period = req.grid.periodMs;
  if (period !== FRAME_MS) throw new Error(`scheduler period ${period} ms, expected ${FRAME_MS}`);
  const gridLocal = req.grid.gridWallMs - performance.timeOrigin;
  const earliest = performance.now() + 100;
  // First slot whose send time (slot − lead) is still ahead of us.
  const lead = Math.max(req.ingestLeadMs, req.egressLeadMs);
  const k0 = Math.ceil((earliest + lead - gridLocal) / period);
  const slot0 = gridLocal + k0 * period;
  const endAt = performance.now() + req.maxDurationMs;
  const ing = ingest.filter(Boolean);
  const eg = egress.filter(Boolean);
  if (ing.length > 0) {
    loops.push(
      pacedLoop(slot0 - req.ingestLeadMs, endAt, () => {
        for (const a of ing) {
          if (a.ws.readyState !== WebSocket.OPEN) continue;
          const seq = a.seq++;
          const payload = PCM_LOOP[(a.phase + seq) % PCM_LOOP.length];
          a.ws.send(encodePacket({ sequenceNumber: seq, timestamp: (seq * SAMPLES) >>> 0, payload }));
          if (recording) win.framesSent++;
        }
      }),
    );
  }
  if (eg.length > 0) {
    const first = slot0 - req.egressLeadMs;
    if (Number.isNaN(egressEpoch)) egressEpoch = first;
    const slotOffset = Math.round((first - egressEpoch) / period);
    loops.push(
      pacedLoop(first, endAt, (n) => {
        const slot = slotOffset + n;
        for (const p of eg) {
          const header = new RtpHeader({
            payloadType: 111,
            sequenceNumber: (p.seqBase + p.sent) & 0xffff,
            timestamp: (p.tsBase + slot * SAMPLES) >>> 0,
            ssrc: 0,
            marker: n === 0,
          });
          p.pub.track.writeRtp(new RtpPacket(header, OPUS_LOOP[(p.phase + slot) % OPUS_LOOP.length]));
          p.sent++;
          if (recording) win.packetsSent++;
        }
      }),
    );
  }
}

// ---- windows -----------------------------------------------------------------------------------

function markStart(): void {
  for (const k of Object.keys(win) as (keyof typeof win)[]) win[k] = 0;
  for (const a of ingest) if (a) a.stats.windowPackets = 0;
  for (const a of egress) if (a) a.endpoint.windowFrames = 0;
  pacerLateness.reset();
  subIntervalAbs.reset();
  probeInterval.reset();
  probeIntervalAbs.reset();
  probeDrift = new DriftTracker(FRAME_MS, true);
  eld.reset();
  eld.enable();
  windowCpu = process.cpuUsage();
  windowStartedAt = performance.now();
  recording = true;
}

function markEnd(): GenWindowReport {
  recording = false;
  const cpu = process.cpuUsage(windowCpu);
  const windowMs = performance.now() - windowStartedAt;
  eld.disable();
  const ing = ingest.filter(Boolean);
  const eg = egress.filter(Boolean);
  const report: GenWindowReport = {
    windowMs,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    eventLoopLag: summarizeNs(eld, ELD_RESOLUTION_MS * 1e6),
    pacerLateness: pacerLateness.summary(),
  };
  if (ing.length > 0)
    report.ingest = {
      endpoints: ing.length,
      framesSent: win.framesSent,
      subscribers: ing.length,
      packets: win.subPackets,
      silencePackets: win.subSilence,
      gaps: win.subGaps,
      intervalErrorAbs: subIntervalAbs.summary(),
      probe: {
        intervalError: probeInterval.summary(),
        intervalErrorAbs: probeIntervalAbs.summary(),
        drift: probeDrift.report(),
      },
    };
  if (eg.length > 0)
    report.egress = {
      publishers: eg.length,
      packetsSent: win.packetsSent,
      endpoints: eg.length,
      frames: win.egFrames,
      seqGaps: win.egSeqGaps,
      tsGapFrames: win.egTsGapFrames,
      badMessages: win.egBad,
      deadEndpoints: eg.filter((a) => a.endpoint.windowFrames === 0).length,
    };
  return report;
}

async function closeAll(): Promise<void> {
  stopLoops();
  const pcs = [...ingest.filter(Boolean).map((a) => a.pc), ...egress.filter(Boolean).map((a) => a.pub.pc)];
  for (const a of [...ingest, ...egress]) if (a) a.ws.terminate();
  await withTimeout(
    pool(pcs, 16, (pc) => pc.close().catch(() => {})),
    15_000,
    "closing peers",
  ).catch(() => {});
  await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
}

// ---- IPC ---------------------------------------------------------------------------------------

async function handle(
  msg: AdapterLoadRequest,
): Promise<{ setup?: AdapterSetupResult; report?: GenWindowReport }> {
  switch (msg.type) {
    case "setup":
      return { setup: await setup(msg) };
    case "start":
      start(msg);
      return {};
    case "mark-start":
      markStart();
      return {};
    case "mark-end":
      return { report: markEnd() };
    case "stop":
      stopLoops();
      return {};
    case "close":
      await closeAll();
      setImmediate(() => process.exit(0));
      return {};
  }
}

const send = (m: AdapterLoadMessage) => sendToParent(m);

if (!process.send) {
  process.stderr.write(
    "bench/adapter-load.ts is started by bench/ingest.ts or bench/egress.ts (IPC channel)\n",
  );
  process.exit(2);
}
exitWithParent();
process.on("unhandledRejection", (err) => {
  process.stderr.write(
    `unhandled rejection in adapter load generator: ${err instanceof Error ? err.stack : String(err)}\n`,
  );
});
process.on("message", (raw) => {
  const msg = raw as AdapterLoadRequest;
  handle(msg).then(
    (body) => send({ type: "reply", id: msg.id, ...body }),
    (err: unknown) => send({ type: "reply", id: msg.id, error: errorText(err) }),
  );
});
send({ type: "hello", pid: process.pid });
