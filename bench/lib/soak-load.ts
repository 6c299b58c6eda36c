// Load generator of the soak benchmark (bench/soak.ts), forked as a child with an IPC channel, one process
// per role so that the server's CPU and memory are its own:
//
//   pairs    pair i = an ingest adapter (location "local") whose WebSocket endpoint /i/<i>/<gen> sends
//            continuous speech-like PCM, one 20 ms Packet per slot on an absolute clock aligned to the
//            server's media grid, and an egress adapter (location "remote") pulling that ingest track to a
//            second endpoint /e/<i>/<gen>, which checks every frame: Packet sequence numbers consecutive, RTP
//            timestamps stepping by 960, payload 3 840 bytes.
//   streams  stream i = a werift publisher sending a pre-encoded Opus loop at 50 packets/s and a werift
//            subscriber in another session checking RTP sequence continuity and every payload.
//
// Churn ("churn" request): close `count` idle items and create new ones through the HTTP API. A pair is
// closed egress first (POST adapters/websocket/close, then its status), then the ingest endpoint ends its
// segment, the adapter plays out what it holds, and it is closed the same way; a stream stops publishing,
// waits for the last packets, force-closes both tracks (PUT tracks/close) and closes both peers (werift sends
// no DTLS close_notify, so the server ends those sessions by its liveness timeout and disconnect grace). Each
// item has a generation number, so endpoints, track names and counters of a new item never mix with the old
// one's.

import type { IncomingMessage } from "node:http";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { type RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import WebSocket, { WebSocketServer } from "ws";
import { decodePacket, encodePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { ApiClient, type TrackObject } from "../../src/client/api-client.ts";
import { speechLike } from "../../test/helpers/signals.ts";
import { exitWithParent, sendToParent, summarizeNs } from "../protocol.ts";
import type { GridInfo } from "./adapter-protocol.ts";
import { errorText, pool, sleep, withTimeout } from "./async.ts";
import { MsHistogram } from "./histogram.ts";
import { encodeOpusLoop } from "./opus-loop.ts";
import { type PublishedTrack, publishAudioTrack, pullAudioTrack } from "./peers.ts";
import type {
  ChurnResult,
  SoakMessage,
  SoakPeek,
  SoakRequest,
  SoakRole,
  SoakSetupRequest,
  SoakSetupResult,
  SoakTeardownReport,
  SoakWindowReport,
} from "./soak-protocol.ts";
import { addCounts, emptyCounts, SeqChecker } from "./soak-seq.ts";

const FRAME_MS = 20;
const FRAME_BYTES = 3840;
const SAMPLES = 960;
const LOOP_MS = 10_000;
const API_TIMEOUT_MS = 20_000;
const STALL_MS = 200;
/** A closing stream waits this long after its last packet before comparing sent and received. */
const TAIL_WAIT_MS = 150;
const ELD_RESOLUTION_MS = 5;

const role = process.argv[2] as SoakRole;
if (role !== "pairs" && role !== "streams") {
  process.stderr.write("usage: bench/lib/soak-load.ts pairs|streams (started by bench/soak.ts)\n");
  process.exit(2);
}

// ---- API calls, counted --------------------------------------------------------------------------

const apiStats = { calls: 0, errors: 0, firstErrors: [] as string[] };
let api: ApiClient | undefined;
let conn: { url: string; appId: string; secret: string } | undefined;
let peerTimeoutMs = 20_000;

/** One HTTP API step (or a step that includes API calls), bounded and counted; failures are rethrown. */
async function step<T>(what: string, fn: (a: ApiClient) => Promise<T>): Promise<T> {
  if (!api) throw new Error("not set up");
  apiStats.calls++;
  try {
    return await withTimeout(fn(api), Math.max(API_TIMEOUT_MS, peerTimeoutMs + 10_000), what);
  } catch (err) {
    apiStats.errors++;
    if (apiStats.firstErrors.length < 20) apiStats.firstErrors.push(`${what}: ${errorText(err)}`);
    throw err;
  }
}

/** A raw API request whose non-2xx answers (and per-item errorCodes) are failures. */
function call<T>(what: string, method: string, path: string, body?: unknown): Promise<T> {
  return step(what, async (a) => {
    const res = await a.raw<T & { tracks?: TrackObject[]; errorDescription?: string }>(method, path, body);
    const item = res.body.tracks?.[0];
    if (res.status >= 300 || item?.errorCode)
      throw new Error(
        `HTTP ${res.status} ${item?.errorCode ?? ""} ${item?.errorDescription ?? res.body.errorDescription ?? ""}`,
      );
    return res.body;
  });
}

interface AdapterStatus {
  state: string;
  frames: number;
  queuedMs: number;
  underruns: number;
  droppedFrames: number;
}

const adapterPath = "adapters/websocket";
const openAdapter = (item: Record<string, string>) =>
  call<{ tracks: { adapterId: string; sessionId: string }[] }>(
    `POST ${adapterPath}/new (${item.location})`,
    "POST",
    `${adapterPath}/new`,
    { tracks: [item] },
  ).then((b) => b.tracks[0]);
const closeAdapter = (id: string) =>
  call(`POST ${adapterPath}/close`, "POST", `${adapterPath}/close`, { tracks: [{ adapterId: id }] });
const adapterStatus = (id: string) =>
  call<AdapterStatus>(`GET ${adapterPath}/{id}`, "GET", `${adapterPath}/${id}`);

/** An ApiClient that remembers the session its pull created (peers.ts's pullAudioTrack does not return it). */
class RecordingApi extends ApiClient {
  sessionId: string | undefined;
  override async newSession(...args: Parameters<ApiClient["newSession"]>) {
    const r = await super.newSession(...args);
    this.sessionId = r.sessionId;
    return r;
  }
}

// ---- WebSocket endpoints (pairs) ------------------------------------------------------------------

let wss: WebSocketServer | undefined;
let wssPort = 0;
const expected = new Map<string, (ws: WebSocket) => void>();

async function listen(): Promise<void> {
  if (wss) return;
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  server.on("connection", (ws: WebSocket, req: IncomingMessage) => {
    ws.on("error", () => {});
    const take = expected.get(req.url ?? "");
    if (take) {
      expected.delete(req.url ?? "");
      take(ws);
    } else ws.close(1008, "nobody expects this endpoint");
  });
  wss = server;
  wssPort = (server.address() as { port: number }).port;
}

/** The server's dial to `path`; `onOpen` runs synchronously on arrival, before any message can be missed. */
function expectDial(path: string, onOpen: (ws: WebSocket) => void = () => {}): Promise<WebSocket> {
  const arrived = new Promise<WebSocket>((resolve) =>
    expected.set(path, (ws) => {
      onOpen(ws);
      resolve(ws);
    }),
  );
  const bounded = withTimeout(arrived, peerTimeoutMs, `server dialing ${path}`);
  bounded.catch(() => expected.delete(path));
  return bounded;
}

// ---- pacing --------------------------------------------------------------------------------------

const pacerLateness = new MsHistogram();
let loopTimer: NodeJS.Timeout | undefined;

/** tick() once per 20 ms slot of the server's grid, `leadMs` before the slot; a late timer catches up. */
function startClock(grid: GridInfo, leadMs: number, tick: () => void): void {
  clearTimeout(loopTimer);
  const gridLocal = grid.gridWallMs - performance.timeOrigin;
  const k0 = Math.ceil((performance.now() + 50 + leadMs - gridLocal) / grid.periodMs);
  const origin = gridLocal + k0 * grid.periodMs - leadMs;
  let n = 0;
  const fire = () => {
    const now = performance.now();
    for (; origin + n * FRAME_MS <= now; n++) {
      pacerLateness.record(now - (origin + n * FRAME_MS));
      tick();
    }
    loopTimer = setTimeout(fire, origin + n * FRAME_MS - performance.now());
  };
  loopTimer = setTimeout(fire, origin - performance.now());
}

// ---- items and churn -----------------------------------------------------------------------------

interface Item {
  slot: number;
  gen: number;
}

interface RoleImpl<T extends Item> {
  create(slot: number, gen: number): Promise<T>;
  /** Close through the API; `inWindow`: its figures count in the window. */
  retire(item: T, inWindow: boolean): Promise<void>;
  tick(): void;
  /** At mark-start: counters restart, adapter status baselines. */
  markStart(items: T[]): Promise<void>;
  /** Adds the live items' window figures to `report`. */
  markEnd(items: T[], report: SoakWindowReport, now: number): Promise<void>;
  peek(items: T[]): { received: number; lost: number };
  teardown(report: SoakTeardownReport): void;
}

let items: (Item | undefined)[] = [];
const gens: number[] = [];
const busy = new Set<number>();
/** Items whose endpoint / publisher sends on every tick (from creation until their close begins). */
const sending = new Set<Item>();
let recording = false;
let incarnations = 0;
const churnStats = {
  rounds: 0,
  ops: 0,
  failed: 0,
  skipped: 0,
  closeMs: new MsHistogram(0.1, 0, 60_000),
  createMs: new MsHistogram(0.1, 0, 60_000),
};

const live = () => items.filter((x): x is Item => x !== undefined);

async function createAt(slot: number): Promise<void> {
  gens[slot] = (gens[slot] ?? 0) + 1;
  incarnations++;
  items[slot] = await impl.create(slot, gens[slot]);
}

/** Close one item and open its successor; returns whether both went through. */
async function churnOne(slot: number): Promise<boolean> {
  busy.add(slot);
  let ok = true;
  try {
    const old = items[slot];
    if (old) {
      items[slot] = undefined;
      const t = performance.now();
      try {
        await impl.retire(old, recording);
        churnStats.closeMs.record(performance.now() - t);
      } catch {
        ok = false;
      }
    }
    const t = performance.now();
    try {
      await createAt(slot);
      churnStats.createMs.record(performance.now() - t);
    } catch {
      ok = false;
    }
  } finally {
    busy.delete(slot);
  }
  return ok;
}

async function churn(count: number, concurrency: number): Promise<ChurnResult> {
  churnStats.rounds++;
  // Empty slots (a failed creation) first, then idle live items at random.
  const idle = items.map((_, i) => i).filter((i) => !busy.has(i));
  const empty = idle.filter((i) => !items[i]);
  const full = idle.filter((i) => items[i]);
  for (let i = full.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [full[i], full[j]] = [full[j], full[i]];
  }
  const chosen = [...empty, ...full].slice(0, count);
  const result: ChurnResult = { ops: 0, failed: 0, skipped: count - chosen.length };
  await pool(chosen, concurrency, async (slot) => {
    if (await churnOne(slot)) result.ops++;
    else result.failed++;
  });
  churnStats.ops += result.ops;
  churnStats.failed += result.failed;
  churnStats.skipped += result.skipped;
  return result;
}

// ---- pairs ---------------------------------------------------------------------------------------

/** Continuous speech-like PCM, 500 frames of 20 ms (48 kHz stereo s16le). */
function pcmFrames(): Buffer[] {
  const pcm = speechLike(LOOP_MS, { seed: 9_090_909 });
  const all = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  return Array.from({ length: Math.floor(all.length / FRAME_BYTES) }, (_, i) =>
    all.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES),
  );
}

interface Pair extends Item {
  trackName: string;
  ingestId: string;
  ingestWs: WebSocket;
  nextSeq: number;
  sent: number;
  sentAtMark: number;
  phase: number;
  egressId?: string;
  egressGone?: Promise<void>;
  bySeq: SeqChecker;
  byTs: SeqChecker;
  framesReceived: number;
  bad: number;
  base: { ingestUnderruns: number; egressDropped: number; egressUnderruns: number };
}

const pairWindow = {
  units: emptyCounts(),
  seqGaps: 0,
  bad: 0,
  dead: 0,
  ingestFramesSent: 0,
  ingestUnderruns: 0,
  egressDroppedFrames: 0,
  egressUnderruns: 0,
};
const pairLife = {
  ingestFramesSent: 0,
  ingestFramesPlayed: 0,
  ingestNotDrained: 0,
  egressFramesSentByServer: 0,
  egressFramesReceived: 0,
};

function pairsRole(): RoleImpl<Pair> {
  const pcm = pcmFrames();
  const endpointUrl = (path: string) => `ws://127.0.0.1:${wssPort}${path}`;

  const onFrame = (p: Pair, data: Buffer) => {
    const d = decodePacket(data);
    if (!d.ok || d.packet.payload.length !== FRAME_BYTES) {
      p.bad++;
      return;
    }
    const now = performance.now();
    p.framesReceived++;
    p.bySeq.push(d.packet.sequenceNumber, now);
    p.byTs.push(d.packet.timestamp, now);
  };

  /** Ends the segment, waits until the adapter played everything it was sent, closes it. */
  const closeIngest = async (p: Pair, inWindow: boolean) => {
    sending.delete(p);
    if (p.ingestWs.readyState === WebSocket.OPEN)
      p.ingestWs.send(encodePacket({ sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) }));
    let st = await adapterStatus(p.ingestId);
    const until = performance.now() + 5000;
    while ((st.frames < p.sent || st.queuedMs > 0) && st.state !== "closed" && performance.now() < until) {
      await sleep(40);
      st = await adapterStatus(p.ingestId);
    }
    const drained = st.frames >= p.sent && st.queuedMs === 0;
    if (st.state !== "closed") await closeAdapter(p.ingestId);
    p.ingestWs.terminate();
    pairLife.ingestFramesSent += p.sent;
    pairLife.ingestFramesPlayed += st.frames;
    if (!drained) pairLife.ingestNotDrained++;
    if (inWindow) {
      pairWindow.ingestFramesSent += p.sent - p.sentAtMark;
      pairWindow.ingestUnderruns += st.underruns - p.base.ingestUnderruns;
    }
  };

  const closeEgress = async (p: Pair, inWindow: boolean) => {
    if (!p.egressId) return;
    await closeAdapter(p.egressId);
    const st = await adapterStatus(p.egressId);
    // The server closed the socket after its last frame: once the endpoint sees the close, all have arrived.
    await withTimeout(p.egressGone ?? Promise.resolve(), 3000, "egress socket close").catch(() => {});
    pairLife.egressFramesSentByServer += st.frames;
    pairLife.egressFramesReceived += p.framesReceived;
    if (inWindow) {
      pairWindow.egressDroppedFrames += st.droppedFrames - p.base.egressDropped;
      pairWindow.egressUnderruns += st.underruns - p.base.egressUnderruns;
    }
  };

  /** Status of both adapters of a pair; a failed request is counted (step) and reads as undefined. */
  const bothStatuses = (p: Pair) =>
    Promise.all([
      adapterStatus(p.ingestId).catch(() => undefined),
      p.egressId ? adapterStatus(p.egressId).catch(() => undefined) : undefined,
    ]);

  const addWindow = (p: Pair, now: number, w = pairWindow) => {
    addCounts(w.units, p.byTs.counts());
    w.seqGaps += p.bySeq.counts().lost;
    w.bad += p.bad;
    if (p.byTs.received === 0) w.dead++;
    return now - p.byTs.lastAt > STALL_MS;
  };

  return {
    async create(slot, gen) {
      const trackName = `pair-${slot}-${gen}`;
      const ipath = `/i/${slot}/${gen}`;
      const ingestDial = expectDial(ipath);
      ingestDial.catch(() => {});
      const ing = await openAdapter({
        location: "local",
        trackName,
        endpoint: endpointUrl(ipath),
        inputCodec: "pcm",
      });
      const ingestWs = await ingestDial.catch(async (err: unknown) => {
        await closeAdapter(ing.adapterId).catch(() => {});
        throw err;
      });
      const p: Pair = {
        slot,
        gen,
        trackName,
        ingestId: ing.adapterId,
        ingestWs,
        nextSeq: 1,
        sent: 0,
        sentAtMark: 0,
        phase: (slot * 37 + gen * 11) % pcm.length,
        bySeq: new SeqChecker(32),
        byTs: new SeqChecker(32, SAMPLES),
        framesReceived: 0,
        bad: 0,
        base: { ingestUnderruns: 0, egressDropped: 0, egressUnderruns: 0 },
      };
      sending.add(p);
      try {
        const epath = `/e/${slot}/${gen}`;
        const egressDial = expectDial(epath, (ws) => {
          ws.on("message", (data: Buffer) => onFrame(p, data));
          p.egressGone = new Promise((r) => ws.once("close", () => r()));
        });
        egressDial.catch(() => {});
        const eg = await openAdapter({
          location: "remote",
          sessionId: ing.sessionId,
          trackName,
          endpoint: endpointUrl(epath),
          outputCodec: "pcm",
        });
        p.egressId = eg.adapterId;
        await egressDial;
        return p;
      } catch (err) {
        await closeEgress(p, false).catch(() => {});
        await closeIngest(p, false).catch(() => {});
        throw err;
      }
    },

    async retire(p, inWindow) {
      try {
        await closeEgress(p, inWindow);
      } finally {
        await closeIngest(p, inWindow);
        if (inWindow) addWindow(p, performance.now());
      }
    },

    tick() {
      for (const x of sending) {
        const p = x as Pair;
        if (p.ingestWs.readyState !== WebSocket.OPEN) continue;
        const seq = p.nextSeq++;
        const payload = pcm[(p.phase + seq) % pcm.length];
        p.ingestWs.send(encodePacket({ sequenceNumber: seq, timestamp: (seq * SAMPLES) >>> 0, payload }));
        p.sent++;
      }
    },

    async markStart(ps) {
      for (const p of ps) {
        p.bySeq.reset();
        p.byTs.reset();
        p.bad = 0;
        p.sentAtMark = p.sent;
      }
      await pool(ps, 8, async (p) => {
        const [i, e] = await bothStatuses(p);
        p.base = {
          ingestUnderruns: i?.underruns ?? 0,
          egressDropped: e?.droppedFrames ?? 0,
          egressUnderruns: e?.underruns ?? 0,
        };
      });
    },

    async markEnd(ps, report, now) {
      const w = { ...pairWindow, units: { ...pairWindow.units } };
      let stalled = 0;
      for (const p of ps) if (addWindow(p, now, w)) stalled++;
      await pool(ps, 8, async (p) => {
        const [i, e] = await bothStatuses(p);
        w.ingestFramesSent += p.sent - p.sentAtMark;
        w.ingestUnderruns += (i?.underruns ?? 0) - p.base.ingestUnderruns;
        w.egressDroppedFrames += (e?.droppedFrames ?? 0) - p.base.egressDropped;
        w.egressUnderruns += (e?.underruns ?? 0) - p.base.egressUnderruns;
      }).catch(() => {});
      report.units = w.units;
      report.dead = w.dead;
      report.stalled = stalled;
      report.pairs = {
        seqGaps: w.seqGaps,
        badMessages: w.bad,
        ingestFramesSent: w.ingestFramesSent,
        ingestUnderruns: w.ingestUnderruns,
        egressDroppedFrames: w.egressDroppedFrames,
        egressUnderruns: w.egressUnderruns,
      };
    },

    peek(ps) {
      const c = { ...pairWindow.units };
      for (const p of ps) addCounts(c, p.byTs.counts());
      return { received: c.received, lost: c.lost };
    },

    teardown(report) {
      report.pairs = { ...pairLife };
    },
  };
}

// ---- streams -------------------------------------------------------------------------------------

interface Stream extends Item {
  pub: PublishedTrack;
  pubMid: string;
  sent: number;
  phase: number;
  seqBase: number;
  tsBase: number;
  sub?: RTCPeerConnection;
  subSession?: string;
  subMid?: string;
  checker: SeqChecker;
  /** The publisher's packet number of the subscriber's first packet. */
  first: number;
  mismatched: number;
}

const streamWindow = { units: emptyCounts(), dead: 0, mismatched: 0, tailLost: 0 };
const streamLife = { tailLost: 0 };

function streamsRole(): RoleImpl<Stream> {
  const OPUS = encodeOpusLoop(LOOP_MS, 77_001, 32_000);
  const OPUS_INDEX = new Map(OPUS.map((b, i) => [b.toString("base64"), i]));
  const L = OPUS.length;
  if (OPUS_INDEX.size !== L) throw new Error("the Opus loop has duplicate packets");

  const onRtp = (s: Stream, seq: number, payload: Buffer) => {
    if (Number.isNaN(s.first)) {
      const j = OPUS_INDEX.get(payload.toString("base64"));
      if (j === undefined) {
        s.mismatched++;
        return;
      }
      // The latest packet number the publisher has sent with this payload.
      const top = s.sent - 1;
      s.first = top - ((((top - (j - s.phase)) % L) + L) % L);
    }
    const k = s.checker.push(seq, performance.now());
    if (k !== undefined && !payload.equals(OPUS[(s.phase + s.first + k) % L])) s.mismatched++;
  };

  const closeTrack = (what: string, sessionId: string | undefined, mid: string | undefined) =>
    sessionId && mid
      ? step(`PUT tracks/close (${what})`, (a) =>
          a.closeTracks(sessionId, { tracks: [{ mid }], force: true }),
        ).then(() => {})
      : Promise.resolve();

  const addWindow = (s: Stream, now: number, w = streamWindow) => {
    addCounts(w.units, s.checker.counts());
    w.mismatched += s.mismatched;
    if (s.checker.received === 0) w.dead++;
    return now - s.checker.lastAt > STALL_MS;
  };

  return {
    async create(slot, gen) {
      const pub = await step("publish (sessions/new, tracks/new, connect)", (a) =>
        publishAudioTrack(a, `stream-${slot}-${gen}`, peerTimeoutMs),
      );
      const s: Stream = {
        slot,
        gen,
        pub,
        pubMid: pub.pc.getTransceivers()[0]?.mid ?? "",
        sent: 0,
        phase: (slot * 53 + gen * 7) % L,
        seqBase: (slot * 7919 + gen * 101) & 0xffff,
        tsBase: (slot * 104_729 + gen * 7_777) >>> 0,
        checker: new SeqChecker(16),
        first: Number.NaN,
        mismatched: 0,
      };
      sending.add(s);
      try {
        const rec = new RecordingApi(`${conn!.url}/v1`, conn!.appId, conn!.secret);
        s.sub = await step("pull (sessions/new, tracks/new, renegotiate, connect)", () =>
          pullAudioTrack(rec, pub, peerTimeoutMs, (rtp) => onRtp(s, rtp.header.sequenceNumber, rtp.payload)),
        );
        s.subSession = rec.sessionId;
        s.subMid = s.sub.getTransceivers()[0]?.mid ?? undefined;
        return s;
      } catch (err) {
        sending.delete(s);
        await closeTrack("publisher", pub.sessionId, s.pubMid).catch(() => {});
        await pub.pc.close().catch(() => {});
        throw err;
      }
    },

    async retire(s, inWindow) {
      sending.delete(s);
      await sleep(TAIL_WAIT_MS);
      if (s.checker.started) {
        const tail = s.sent - 1 - (s.first + s.checker.maxExt);
        streamLife.tailLost += tail;
        if (inWindow) streamWindow.tailLost += tail;
      }
      if (inWindow) addWindow(s, performance.now());
      try {
        await closeTrack("subscriber", s.subSession, s.subMid);
        await closeTrack("publisher", s.pub.sessionId, s.pubMid);
      } finally {
        await s.sub?.close().catch(() => {});
        await s.pub.pc.close().catch(() => {});
      }
    },

    tick() {
      for (const x of sending) {
        const s = x as Stream;
        const n = s.sent++;
        const header = new RtpHeader({
          payloadType: 111,
          sequenceNumber: (s.seqBase + n) & 0xffff,
          timestamp: (s.tsBase + n * SAMPLES) >>> 0,
          ssrc: 0,
          marker: n === 0,
        });
        s.pub.track.writeRtp(new RtpPacket(header, OPUS[(s.phase + n) % L]));
      }
    },

    async markStart(ss) {
      for (const s of ss) {
        s.checker.reset();
        s.mismatched = 0;
      }
    },

    async markEnd(ss, report, now) {
      const w = { ...streamWindow, units: { ...streamWindow.units } };
      let stalled = 0;
      for (const s of ss) if (addWindow(s, now, w)) stalled++;
      report.units = w.units;
      report.dead = w.dead;
      report.stalled = stalled;
      report.streams = { mismatched: w.mismatched, tailLost: w.tailLost };
    },

    peek(ss) {
      const c = { ...streamWindow.units };
      for (const s of ss) addCounts(c, s.checker.counts());
      return { received: c.received, lost: c.lost + streamWindow.tailLost };
    },

    teardown(report) {
      report.streams = { ...streamLife };
    },
  };
}

const impl = (role === "pairs" ? pairsRole() : streamsRole()) as RoleImpl<Item>;

// ---- requests ------------------------------------------------------------------------------------

let concurrency = 4;
const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
let windowStart = 0;
let windowCpu = process.cpuUsage();

async function setup(req: SoakSetupRequest): Promise<SoakSetupResult> {
  const started = performance.now();
  conn = { url: req.url, appId: req.appId, secret: req.secret };
  api = new ApiClient(`${req.url}/v1`, req.appId, req.secret);
  concurrency = req.concurrency;
  peerTimeoutMs = req.peerTimeoutMs;
  if (role === "pairs") await listen();
  items = new Array(req.count).fill(undefined);
  const failures: string[] = [];
  await withTimeout(
    pool(
      items.map((_, i) => i),
      req.concurrency,
      (slot) =>
        createAt(slot).catch((err: unknown) => {
          failures.push(`item ${slot}: ${errorText(err)}`);
        }),
    ),
    req.setupTimeoutMs,
    "setup",
  ).catch((err: unknown) => failures.push(errorText(err)));
  return { setupMs: performance.now() - started, created: live().length, failures };
}

async function markStart(): Promise<void> {
  await impl.markStart(live());
  apiStats.calls = 0;
  apiStats.errors = 0;
  apiStats.firstErrors = [];
  for (const k of ["rounds", "ops", "failed", "skipped"] as const) churnStats[k] = 0;
  churnStats.closeMs.reset();
  churnStats.createMs.reset();
  pacerLateness.reset();
  eld.reset();
  eld.enable();
  windowCpu = process.cpuUsage();
  windowStart = performance.now();
  recording = true;
}

async function markEnd(): Promise<SoakWindowReport> {
  const now = performance.now();
  const windowMs = now - windowStart;
  const cpu = process.cpuUsage(windowCpu);
  eld.disable();
  // Figures first (the status requests below are not part of the window's API counts).
  const report: SoakWindowReport = {
    role,
    windowMs,
    target: items.length,
    live: live().length,
    cpuPctOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / windowMs,
    eventLoopLag: summarizeNs(eld, ELD_RESOLUTION_MS * 1e6),
    pacerLateness: pacerLateness.summary(),
    churn: {
      rounds: churnStats.rounds,
      ops: churnStats.ops,
      failed: churnStats.failed,
      skipped: churnStats.skipped,
      closeMs: churnStats.closeMs.summary(),
      createMs: churnStats.createMs.summary(),
    },
    api: { calls: apiStats.calls, errors: apiStats.errors, firstErrors: [...apiStats.firstErrors] },
    units: emptyCounts(),
    dead: 0,
    stalled: 0,
  };
  recording = false;
  await impl.markEnd(live(), report, now);
  return report;
}

async function retireAll(): Promise<SoakTeardownReport> {
  recording = false;
  const all = live();
  items = items.map(() => undefined);
  const report: SoakTeardownReport = { role, retired: 0, failed: 0, incarnations };
  await pool(all, concurrency * 2, async (x) => {
    try {
      await impl.retire(x, false);
      report.retired++;
    } catch {
      report.failed++;
    }
  });
  impl.teardown(report);
  return report;
}

function peek(): SoakPeek {
  const c = impl.peek(live());
  return {
    live: live().length,
    churnInFlight: busy.size,
    churnOps: churnStats.ops,
    churnFailed: churnStats.failed,
    apiErrors: apiStats.errors,
    ...c,
  };
}

async function closeEverything(): Promise<void> {
  clearTimeout(loopTimer);
  for (const x of live()) {
    const p = x as Partial<Pair & Stream>;
    p.ingestWs?.terminate();
    await p.sub?.close().catch(() => {});
    await p.pub?.pc.close().catch(() => {});
  }
  await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
}

async function handle(
  msg: SoakRequest,
): Promise<Omit<Extract<SoakMessage, { type: "reply" }>, "type" | "id">> {
  switch (msg.type) {
    case "setup":
      return { setup: await setup(msg) };
    case "start":
      startClock(msg.grid, msg.leadMs, () => impl.tick());
      return {};
    case "mark-start":
      await markStart();
      return {};
    case "churn":
      return { churn: await churn(msg.count, concurrency) };
    case "peek":
      return { peek: peek() };
    case "mark-end":
      return { report: await markEnd() };
    case "retire-all":
      return { teardown: await retireAll() };
    case "close":
      await closeEverything();
      setImmediate(() => process.exit(0));
      return {};
  }
}

if (!process.send) {
  process.stderr.write("bench/lib/soak-load.ts is started by bench/soak.ts (IPC channel)\n");
  process.exit(2);
}
exitWithParent();
process.on("unhandledRejection", (err) => {
  process.stderr.write(
    `unhandled rejection in soak load generator (${role}): ${err instanceof Error ? err.stack : String(err)}\n`,
  );
});
process.on("message", (raw) => {
  const msg = raw as SoakRequest;
  handle(msg).then(
    (body) => sendToParent({ type: "reply", id: msg.id, ...body } satisfies SoakMessage),
    (err: unknown) =>
      sendToParent({ type: "reply", id: msg.id, error: errorText(err) } satisfies SoakMessage),
  );
});
sendToParent({ type: "hello", pid: process.pid, role } satisfies SoakMessage);
