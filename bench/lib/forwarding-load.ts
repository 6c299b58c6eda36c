// What the forwarding benchmark's two load generators (bench/load-generator.ts with werift peers,
// bench/native-load-generator.ts with the addon's transport as client) share, so that their reports mean the
// same thing: the Opus loop, the per-stream receive accounting, the single pacer on an absolute clock, the
// report, and the IPC loop.
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
//
// Media (BENCH_MEDIA, set by the orchestrator's --media): audio is the Opus loop, one packet per 20 ms tick;
// video is VP8-shaped packets, VIDEO_PACKETS_PER_TICK of VIDEO_PAYLOAD_BYTES per tick per stream (1.5 Mb/s of
// payload), one frame per tick with the marker on its last packet and a keyframe every 2 s. The accounting
// above then counts packets, not ticks: packet m of a stream belongs to tick floor(m / packetsPerTick).

import { createHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";
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
} from "../protocol.ts";
import { encodeOpusLoop } from "./opus-loop.ts";
import { encodeVideoLoop, VIDEO_PACKETS_PER_TICK } from "./video-loop.ts";

export const FRAME_MS = 20;
const LOOP_MS = 10_000;
const ELD_RESOLUTION_MS = 5;
/** Receive bookkeeping is sized for this many packets per stream (1 byte each); longer runs are refused. */
export const MAX_RUN_PACKETS = 120_000 / FRAME_MS;
const OPUS_BITRATE = Number(process.env.BENCH_OPUS_BITRATE ?? 32_000);

export type BenchMedia = "audio" | "video";
const mediaEnv = process.env.BENCH_MEDIA ?? "audio";
if (mediaEnv !== "audio" && mediaEnv !== "video")
  throw new Error(`BENCH_MEDIA must be audio or video, got ${JSON.stringify(mediaEnv)}`);
export const MEDIA: BenchMedia = mediaEnv;
/** RTP packets per stream per 20 ms tick. */
export const PACKETS_PER_TICK = MEDIA === "video" ? VIDEO_PACKETS_PER_TICK : 1;
/** RTP timestamp units per tick (Opus 48 kHz, video 90 kHz). */
export const TS_PER_TICK = MEDIA === "video" ? 1800 : 960;

/**
 * The packets every publisher cycles through, every one distinct: a pre-encoded, speech-like 10 s Opus loop
 * (stereo 48 kHz, 20 ms frames), or 10 s of VP8-shaped video packets.
 */
export const LOOP =
  MEDIA === "video"
    ? encodeVideoLoop(LOOP_MS / FRAME_MS, 20240611)
    : encodeOpusLoop(LOOP_MS, 20240611, OPUS_BITRATE);
export const L = LOOP.length;
const LOOP_TICKS = L / PACKETS_PER_TICK;
const LOOP_INDEX = new Map<string, number>();
for (let i = 0; i < L; i++) LOOP_INDEX.set(LOOP[i].toString("base64"), i);
if (LOOP_INDEX.size !== L)
  throw new Error(`${MEDIA} loop has duplicate packets (${LOOP_INDEX.size} of ${L} distinct)`);

/** Packet m of a publisher at `phase` (in ticks). */
export function loopPacket(phase: number, m: number): Buffer {
  return LOOP[(phase * PACKETS_PER_TICK + m) % L];
}

/** What publisher `index` sends: its phase in the loop, first sequence number and timestamp. */
export interface StreamOrigin {
  phase: number;
  seqBase: number;
  tsBase: number;
}

export function streamOrigin(index: number): StreamOrigin {
  return {
    phase: (index * 37) % LOOP_TICKS,
    seqBase: (index * 7919) & 0xffff,
    tsBase: (index * 104729) >>> 0,
  };
}

interface RunState {
  t0: number;
  kStart: number;
  kEnd: number;
}

/** Receive-side bookkeeping for one subscriber stream; `counts` is indexed by packet number m. */
export class StreamCounter {
  counts: Uint8Array;
  firstN = -1;
  firstSeq = 0;
  maxN = -1;
  received = 0;
  reordered = 0;
  mismatched = 0;

  constructor(
    readonly publisher: { phase: number },
    private readonly load: LoadAccounting,
    totalPackets = MAX_RUN_PACKETS * PACKETS_PER_TICK,
  ) {
    this.counts = new Uint8Array(totalPackets);
  }

  /** One RTP packet of this stream (sequence number, payload) received at `now` (performance.now()). */
  onPacket(seq: number, payload: Buffer, now: number): void {
    const run = this.load.run;
    if (!run) return;
    let n: number;
    if (this.firstN < 0) {
      const j = LOOP_INDEX.get(payload.toString("base64"));
      if (j === undefined) {
        this.mismatched++;
        return;
      }
      n = (j - this.publisher.phase * PACKETS_PER_TICK + L) % L;
      this.firstN = n;
      this.firstSeq = seq;
    } else {
      let delta = (seq - this.firstSeq) & 0xffff;
      if (delta >= 0x8000) delta -= 0x10000;
      n = this.firstN + delta;
    }
    if (n < 0 || n >= this.counts.length) return; // before the run or after its end: not accounted
    if (!payload.equals(loopPacket(this.publisher.phase, n))) {
      this.mismatched++;
      return;
    }
    if (this.counts[n] < 255) this.counts[n]++;
    this.received++;
    if (n < this.maxN) this.reordered++;
    else this.maxN = n;
    const tick = Math.floor(n / PACKETS_PER_TICK);
    if (tick >= run.kStart && tick < run.kEnd)
      this.load.latency.record(Math.max(1, Math.round((now - (run.t0 + tick * FRAME_MS)) * 1e6)));
  }
}

/** The run in progress (receive accounting is off outside it) and the latency it records. */
export class LoadAccounting {
  run: RunState | undefined;
  readonly latency = createHistogram();
}

export interface PacedRun {
  /** The publishers' origins, in the order sendTick sends them (for the payload byte count). */
  publishers: StreamOrigin[];
  /** Sends packet n of every publisher. */
  sendTick(n: number): void;
  /** Called once per pacer timer firing after the due packets went out (the native peers' ICE/DTLS ticks). */
  onTimer?(): void;
}

/** Runs the pacer over warm-up + window + tail, then reports what `counters` saw. */
export function runPaced(
  req: RunRequest,
  load: LoadAccounting,
  counters: StreamCounter[],
  paced: PacedRun,
): Promise<RunReport> {
  const kStart = Math.round(req.warmupMs / FRAME_MS);
  const kEnd = kStart + Math.round(req.measureMs / FRAME_MS);
  const kTotal = kEnd + Math.round(req.tailMs / FRAME_MS);
  if (kTotal > MAX_RUN_PACKETS)
    return Promise.reject(
      new Error(`warm-up + measure + tail must not exceed ${(MAX_RUN_PACKETS * FRAME_MS) / 1000} s`),
    );
  const pubs = paced.publishers;
  const pacerLateness = createHistogram();
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  load.latency.reset();
  let cpuAtStart = process.cpuUsage();
  let wallAtStart = performance.now();
  let cpuInWindow = { user: 0, system: 0 };
  let wallInWindow = 0;
  let packetsSent = 0;
  let payloadBytes = 0;
  const t0 = performance.now() + 50;
  load.run = { t0, kStart, kEnd };
  const send = (m: LoadMessage) => sendToParent(m);

  return new Promise<RunReport>((resolve) => {
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
        paced.sendTick(next);
        packetsSent += pubs.length * PACKETS_PER_TICK;
        for (let i = 0; i < pubs.length; i++)
          for (let k = 0; k < PACKETS_PER_TICK; k++)
            payloadBytes += loopPacket(pubs[i].phase, next * PACKETS_PER_TICK + k).length;
        next++;
        if (next === kEnd) {
          cpuInWindow = process.cpuUsage(cpuAtStart);
          wallInWindow = performance.now() - wallAtStart;
          eld.disable();
          send({ type: "event", name: "window-end", at: Date.now() });
        }
      }
      paced.onTimer?.();
      if (next < kTotal) {
        setTimeout(tick, Math.max(0, t0 + next * FRAME_MS - performance.now()));
        return;
      }
      // Last packet sent; give stragglers a moment, then count.
      setTimeout(() => {
        load.run = undefined;
        const rep = report(counters, load, kStart, kEnd, packetsSent, payloadBytes);
        rep.generator.cpuUserUs = cpuInWindow.user;
        rep.generator.cpuSystemUs = cpuInWindow.system;
        rep.generator.wallUs = wallInWindow * 1000;
        rep.generator.pacerLateness = summarizeNs(pacerLateness);
        rep.generator.eventLoopLag = summarizeNs(eld, ELD_RESOLUTION_MS * 1e6);
        resolve(rep);
      }, 300);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
}

function report(
  counters: StreamCounter[],
  load: LoadAccounting,
  kStart: number,
  kEnd: number,
  packetsSent: number,
  payloadBytes: number,
): RunReport {
  const windowPackets = (kEnd - kStart) * PACKETS_PER_TICK;
  let received = 0;
  let duplicates = 0;
  let reordered = 0;
  let mismatched = 0;
  let deadStreams = 0;
  let worstStreamLost = 0;
  for (const counter of counters) {
    let got = 0;
    for (let n = kStart * PACKETS_PER_TICK; n < kEnd * PACKETS_PER_TICK; n++) {
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
  const expected = windowPackets * counters.length;
  return {
    streams: counters.length,
    windowPackets,
    expected,
    received,
    lost: expected - received,
    duplicates,
    reordered,
    mismatched,
    deadStreams,
    worstStreamLost,
    latency: summarizeNs(load.latency),
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

/** The child's side of bench/protocol.ts: hello, then setup / run / close requests answered with replies. */
export function serveLoadGenerator(
  script: string,
  handlers: {
    setup(req: SetupRequest): Promise<SetupResult>;
    run(req: RunRequest): Promise<RunReport>;
    close(): Promise<void>;
  },
): void {
  if (!process.send) {
    process.stderr.write(`${script} is started by bench/forwarding.ts (it needs an IPC channel)\n`);
    process.exit(2);
  }
  const send = (m: LoadMessage) => sendToParent(m);
  exitWithParent();
  // Peers occasionally reject on teardown; log it (the orchestrator keeps our stderr) instead of dying mid-run.
  process.on("unhandledRejection", (err) => {
    process.stderr.write(
      `unhandled rejection in load generator: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
  });
  const handle = async (msg: LoadRequest): Promise<{ setup?: SetupResult; report?: RunReport }> => {
    switch (msg.type) {
      case "setup":
        return { setup: await handlers.setup(msg) };
      case "run":
        return { report: await handlers.run(msg) };
      case "close":
        await handlers.close();
        setImmediate(() => process.exit(0));
        return {};
    }
  };
  process.on("message", (raw) => {
    const msg = raw as LoadRequest;
    handle(msg).then(
      (body) => send({ type: "reply", id: msg.id, ...body }),
      (err: unknown) =>
        send({ type: "reply", id: msg.id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  send({ type: "hello", pid: process.pid });
}
