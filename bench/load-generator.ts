// Load generator for the forwarding benchmark: N werift publisher peers, each sending a real Opus stream
// at 50 packets/s, and S werift subscriber peers per publisher that pull it through the HTTP API and
// count what arrives. Runs in its own process (forked by bench/forwarding.ts, IPC channel) so the
// server's CPU numbers are not mixed with ours.
//
// Pacing: ONE timer for all streams on an absolute clock. Packet n of every stream is due at
// t0 + n × 20 ms; when the timer fires late, every due packet is sent (catch-up) and the lateness is
// recorded, so a saturated generator shows up as pacer lateness and CPU, not as silently fewer packets.
//
// Accounting: publisher p sends, as packet n, loop[(phase_p + n) mod L] with sequence number
// seqBase_p + n. A subscriber finds n of its first packet from the payload (the loop's packets are all
// distinct), then n = n_first + (seq − seq_first) for the rest (the SFU rewrites sequence numbers with a
// constant per-subscriber offset), and checks each payload against what its publisher sent at n, which
// also catches misrouted streams (every publisher starts at a different phase of the loop).

import { createHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";
import { type MediaStreamTrack, type RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import { ApiClient } from "../src/client/api-client.ts";
import { pool, withTimeout } from "./lib/async.ts";
import { encodeOpusLoop } from "./lib/opus-loop.ts";
import { publishAudioTrack, pullAudioTrack } from "./lib/peers.ts";
import {
  exitWithParent,
  type LoadMessage,
  type LoadRequest,
  type RunReport,
  type RunRequest,
  type SetupRequest,
  type SetupResult,
  sendToParent,
  summarizeNs,
} from "./protocol.ts";

const FRAME_MS = 20;
const LOOP_MS = 10_000;
const ELD_RESOLUTION_MS = 5;
/** Receive bookkeeping is sized for this many packets per stream (1 byte each); longer runs are refused. */
const MAX_RUN_PACKETS = 120_000 / FRAME_MS;
const OPUS_BITRATE = Number(process.env.BENCH_OPUS_BITRATE ?? 32_000);

/** A pre-encoded, speech-like, 10 s Opus loop (stereo 48 kHz, 20 ms frames), every packet distinct. */
const LOOP = encodeOpusLoop(LOOP_MS, 20240611, OPUS_BITRATE);
const L = LOOP.length;
const LOOP_INDEX = new Map<string, number>();
for (let i = 0; i < L; i++) LOOP_INDEX.set(LOOP[i].toString("base64"), i);
if (LOOP_INDEX.size !== L)
  throw new Error(`Opus loop has duplicate packets (${LOOP_INDEX.size} of ${L} distinct)`);

interface PublisherPeer {
  index: number;
  pc: RTCPeerConnection;
  track: MediaStreamTrack;
  sessionId: string;
  trackName: string;
  phase: number;
  seqBase: number;
  tsBase: number;
}

/** Receive-side bookkeeping for one subscriber stream; `counts` is indexed by packet number n. */
class StreamCounter {
  counts: Uint8Array;
  firstN = -1;
  firstSeq = 0;
  maxN = -1;
  received = 0;
  reordered = 0;
  mismatched = 0;

  constructor(
    readonly publisher: PublisherPeer,
    totalPackets: number,
  ) {
    this.counts = new Uint8Array(totalPackets);
  }

  onPacket(
    seq: number,
    payload: Buffer,
    now: number,
    t0: number,
    inWindow: (n: number, late: number) => void,
  ) {
    let n: number;
    if (this.firstN < 0) {
      const j = LOOP_INDEX.get(payload.toString("base64"));
      if (j === undefined) {
        this.mismatched++;
        return;
      }
      n = (j - this.publisher.phase + L) % L;
      this.firstN = n;
      this.firstSeq = seq;
    } else {
      let delta = (seq - this.firstSeq) & 0xffff;
      if (delta >= 0x8000) delta -= 0x10000;
      n = this.firstN + delta;
    }
    if (n < 0 || n >= this.counts.length) return; // before the run or after its end: not accounted
    if (!payload.equals(LOOP[(this.publisher.phase + n) % L])) {
      this.mismatched++;
      return;
    }
    if (this.counts[n] < 255) this.counts[n]++;
    this.received++;
    if (n < this.maxN) this.reordered++;
    else this.maxN = n;
    inWindow(n, now - (t0 + n * FRAME_MS));
  }
}

const publishers: PublisherPeer[] = [];
const subscribers: { pc: RTCPeerConnection; counter: StreamCounter }[] = [];
let runState: { t0: number; totalPackets: number; kStart: number; kEnd: number } | undefined;
const latency = createHistogram();

const send = (m: LoadMessage) => sendToParent(m);

/** Variant 1 (push with the client's offer), as test/helpers/rtc-client.ts publishAudio does. */
async function createPublisher(api: ApiClient, index: number, timeoutMs: number): Promise<void> {
  const { pc, track, sessionId, trackName } = await publishAudioTrack(api, `bench-${index}`, timeoutMs);
  publishers[index] = {
    index,
    pc,
    track,
    sessionId,
    trackName,
    phase: (index * 37) % L,
    seqBase: (index * 7919) & 0xffff,
    tsBase: (index * 104729) >>> 0,
  };
}

/** Variant 3 (server offer, answer through PUT renegotiate), as pullAudio does, but counting instead of storing. */
async function createSubscriber(
  api: ApiClient,
  pub: PublisherPeer,
  totalPackets: number,
  timeoutMs: number,
): Promise<void> {
  const counter = new StreamCounter(pub, totalPackets);
  const pc = await pullAudioTrack(api, pub, timeoutMs, (rtp) => {
    const run = runState;
    if (!run) return;
    const now = performance.now();
    counter.onPacket(rtp.header.sequenceNumber, rtp.payload, now, run.t0, (n, late) => {
      if (n >= run.kStart && n < run.kEnd) latency.record(Math.max(1, Math.round(late * 1e6)));
    });
  });
  subscribers.push({ pc, counter });
}

async function setup(req: SetupRequest): Promise<SetupResult> {
  const started = performance.now();
  const api = new ApiClient(`${req.url}/v1`, req.appId, req.secret);
  const failures: string[] = [];
  const work = (async () => {
    await pool(
      Array.from({ length: req.publishers }, (_, i) => i),
      req.concurrency,
      (i) => createPublisher(api, i, req.peerTimeoutMs),
    );
    const pairs: PublisherPeer[] = [];
    for (const p of publishers) for (let s = 0; s < req.subscribersPerPublisher; s++) pairs.push(p);
    await pool(pairs, req.concurrency, (p) => createSubscriber(api, p, MAX_RUN_PACKETS, req.peerTimeoutMs));
  })();
  try {
    await withTimeout(work, req.setupTimeoutMs, "setup");
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  }
  return {
    setupMs: performance.now() - started,
    publishers: publishers.filter(Boolean).length,
    subscribers: subscribers.length,
    failures,
  };
}

function run(req: RunRequest): Promise<RunReport> {
  const kStart = Math.round(req.warmupMs / FRAME_MS);
  const kEnd = kStart + Math.round(req.measureMs / FRAME_MS);
  const kTotal = kEnd + Math.round(req.tailMs / FRAME_MS);
  if (kTotal > MAX_RUN_PACKETS)
    return Promise.reject(
      new Error(`warm-up + measure + tail must not exceed ${(MAX_RUN_PACKETS * FRAME_MS) / 1000} s`),
    );
  const pubs = publishers.filter(Boolean);
  const pacerLateness = createHistogram();
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  latency.reset();
  let cpuAtStart = process.cpuUsage();
  let wallAtStart = performance.now();
  let cpuInWindow = { user: 0, system: 0 };
  let wallInWindow = 0;
  let packetsSent = 0;
  let payloadBytes = 0;
  const t0 = performance.now() + 50;
  runState = { t0, totalPackets: kTotal, kStart, kEnd };

  const sendTick = (n: number) => {
    for (let i = 0; i < pubs.length; i++) {
      const p = pubs[i];
      const payload = LOOP[(p.phase + n) % L];
      const header = new RtpHeader({
        payloadType: 111,
        sequenceNumber: (p.seqBase + n) & 0xffff,
        timestamp: (p.tsBase + n * 960) >>> 0,
        ssrc: 0,
        marker: n === 0,
      });
      p.track.writeRtp(new RtpPacket(header, payload));
      packetsSent++;
      payloadBytes += payload.length;
    }
  };

  return new Promise((resolve) => {
    let next = 0;
    const tick = () => {
      const now = performance.now();
      // Every packet whose due time has passed; bounded by kTotal.
      const due = Math.min(kTotal, Math.floor((now - t0) / FRAME_MS) + 1);
      while (next < due) {
        if (next === kStart) {
          cpuAtStart = process.cpuUsage();
          wallAtStart = performance.now();
          eld.enable();
          send({ type: "event", name: "window-start", at: Date.now() });
        }
        if (next >= kStart && next < kEnd) {
          pacerLateness.record(Math.max(1, Math.round((now - (t0 + next * FRAME_MS)) * 1e6)));
        }
        sendTick(next);
        next++;
        if (next === kEnd) {
          cpuInWindow = process.cpuUsage(cpuAtStart);
          wallInWindow = performance.now() - wallAtStart;
          eld.disable();
          send({ type: "event", name: "window-end", at: Date.now() });
        }
      }
      if (next < kTotal) {
        setTimeout(tick, Math.max(0, t0 + next * FRAME_MS - performance.now()));
        return;
      }
      // Last packet sent; give stragglers a moment, then count.
      setTimeout(() => {
        runState = undefined;
        resolve(report(kStart, kEnd, packetsSent, payloadBytes));
      }, 300);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  }).then((r) => {
    const rep = r as RunReport;
    rep.generator.cpuUserUs = cpuInWindow.user;
    rep.generator.cpuSystemUs = cpuInWindow.system;
    rep.generator.wallUs = wallInWindow * 1000;
    rep.generator.pacerLateness = summarizeNs(pacerLateness);
    rep.generator.eventLoopLag = summarizeNs(eld, ELD_RESOLUTION_MS * 1e6);
    return rep;
  });
}

function report(kStart: number, kEnd: number, packetsSent: number, payloadBytes: number): RunReport {
  const windowPackets = kEnd - kStart;
  let received = 0;
  let duplicates = 0;
  let reordered = 0;
  let mismatched = 0;
  let deadStreams = 0;
  let worstStreamLost = 0;
  for (const { counter } of subscribers) {
    let got = 0;
    for (let n = kStart; n < kEnd; n++) {
      const c = counter.counts[n];
      if (c > 0) got++;
      if (c > 1) duplicates += c - 1;
    }
    received += got;
    reordered += counter.reordered;
    mismatched += counter.mismatched;
    if (counter.received === 0) deadStreams++;
    worstStreamLost = Math.max(worstStreamLost, windowPackets - got);
  }
  const expected = windowPackets * subscribers.length;
  return {
    streams: subscribers.length,
    windowPackets,
    expected,
    received,
    lost: expected - received,
    duplicates,
    reordered,
    mismatched,
    deadStreams,
    worstStreamLost,
    latency: summarizeNs(latency),
    generator: {
      cpuUserUs: 0,
      cpuSystemUs: 0,
      wallUs: 0,
      pacerLateness: summarizeNs(createHistogram()),
      eventLoopLag: summarizeNs(createHistogram()),
      packetsSent,
      meanPayloadBytes: packetsSent ? payloadBytes / packetsSent : 0,
    },
  };
}

async function closeAll(): Promise<void> {
  const pcs = [...subscribers.map((s) => s.pc), ...publishers.filter(Boolean).map((p) => p.pc)];
  await withTimeout(
    pool(pcs, 16, (pc) => pc.close().catch(() => {})),
    15_000,
    "closing peers",
  ).catch(() => {});
}

async function handle(msg: LoadRequest): Promise<{ setup?: SetupResult; report?: RunReport }> {
  switch (msg.type) {
    case "setup":
      return { setup: await setup(msg) };
    case "run":
      return { report: await run(msg) };
    case "close":
      await closeAll();
      setImmediate(() => process.exit(0));
      return {};
  }
}

if (!process.send) {
  process.stderr.write(
    "bench/load-generator.ts is started by bench/forwarding.ts (it needs an IPC channel)\n",
  );
  process.exit(2);
}
exitWithParent();
// werift occasionally rejects on teardown; log it (the orchestrator keeps our stderr) instead of dying mid-run.
process.on("unhandledRejection", (err) => {
  process.stderr.write(
    `unhandled rejection in load generator: ${err instanceof Error ? err.stack : String(err)}\n`,
  );
});
process.on("message", (raw) => {
  const msg = raw as LoadRequest;
  handle(msg).then(
    (body) => send({ type: "reply", id: msg.id, ...body }),
    (err: unknown) =>
      send({ type: "reply", id: msg.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
send({ type: "hello", pid: process.pid });
