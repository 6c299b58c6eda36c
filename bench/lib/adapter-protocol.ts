// IPC messages of the WebSocket adapter benchmarks (bench/ingest.ts, bench/egress.ts): what the server
// process's probes report (bench/lib/probes.ts) and what the adapter load generator
// (bench/adapter-load.ts) is asked and answers. Request/reply framing is bench/protocol.ts's `request()`.

import type { LatencySummary } from "../protocol.ts";
import type { DriftReport, Summary } from "./histogram.ts";

// ---- server side: probes -----------------------------------------------------------------------

export interface ProbeOptions {
  /** Time each frame (wrap the live adapters). Off: only scheduler stats and adapter counters. */
  perFrame: boolean;
  /** Departure = the UDP send of the frame's RTP packet (hooked in Node's dgram); off: when track.write returns. */
  socketHook: boolean;
  /** A frame counts as late when it leaves more than this after its slot (ms). */
  lateMs: number;
  /** This adapter's drift is also sampled once a second into a series. */
  seriesAdapterId?: string;
}

export interface SchedulerDelta {
  streams: number;
  wakes: number;
  slotsRun: number;
  lateSlots: number;
  skippedSlots: number;
  errors: number;
  /** Worst wake lateness since the server started (the scheduler keeps no per-window maximum). */
  maxLatenessMsSinceStart: number;
}

export interface IngestProbeReport {
  adapters: number;
  /** Slots timed (one RTP packet each: audio or silence). */
  frames: number;
  audioFrames: number;
  /** Frames that left more than lateMs after their slot. */
  lateFrames: number;
  /** Frames whose RTP packet reached a UDP socket (socket hook); the rest are timed at track.write. */
  socketWrites: number;
  /** departure − slot due (the media clock's ideal departure). */
  departureLateness: Summary;
  /** departure(n) − departure(n − 1) − 20 ms, consecutive slots of one adapter; and its absolute value. */
  intervalError: Summary;
  intervalErrorAbs: Summary;
  /**
   * Per-adapter drift of departures (see DriftTracker: offset = departure(n) − n × 20 ms, relative to the
   * first second's median): the largest |offset| of any adapter, the largest last-second − first-second
   * change, the median and worst slope, and the series of the adapter named in the options.
   */
  drift: {
    maxAbsMsWorstAdapter: number;
    cumulativeMsWorstAdapter: number;
    slopePpmMedian: number;
    slopePpmWorst: number;
    series?: DriftReport;
  };
  /**
   * Audio frames that found other frames already queued in the pacer when they arrived (a frame that once
   * missed its slot keeps every later frame of a real-time sender a slot behind until the sender pauses:
   * the pacer never drops or speeds up).
   */
  queuedBehind: number;
  /** Audio frames only, ms: the parts of arrival → socket. */
  latency: {
    /** WebSocket message arrival in the server → UDP send of the RTP packet carrying it. */
    total: Summary;
    /** The same, only frames that found the pacer queue empty when they arrived. */
    totalQueueEmpty: Summary;
    /** arrival → slot due (waiting in the pacer queue for the frame's slot). */
    waitForSlot: Summary;
    /** slot due → scheduler wake (timer lateness). */
    wakeLateness: Summary;
    /** wake → this adapter's tick starts (other streams ticked first in the same wake). */
    queuedInWake: Summary;
    /** tick start → track.write returned (pacer, Opus encode, RTP packetize, SRTP encrypt, dgram.send call). */
    tickToWrite: Summary;
    /** track.write returned → UDP send (dgram sends on process.nextTick, after the whole wake). */
    writeToSocket: Summary;
    /** What the adapter's own histograms report together (queue + latency): arrival → track.write returned. */
    adapterMetric: Summary;
  };
  counters: { framesPlayed: number; underruns: number; maxQueuedMs: number };
}

export interface EgressProbeReport {
  adapters: number;
  /** PCM frames written to endpoints (ws.send) during the window. */
  frames: number;
  /** Frames whose send happened more than lateMs after the slot of the tick that produced them. */
  lateFrames: number;
  /** ws.send call → after the call, the frame was still buffered in user space (socket not writable). */
  bufferedAfterSend: number;
  /** onPacket happened inside the UDP 'message' dispatch (the receive path is synchronous). */
  packetsWithUdpContext: number;
  packetsWithoutUdpContext: number;
  /** Frames sent that could not be matched to their packet (should be 0). */
  unmatchedFrames: number;
  departureLateness: Summary;
  latency: {
    /** UDP datagram delivered to the server's socket listener → ws.send of its PCM frame returned. */
    total: Summary;
    /** UDP datagram → the adapter's onPacket (werift: DTLS/SRTP decrypt, RTP parse, track.write). */
    udpToAdapter: Summary;
    /** onPacket → ws.send returned: the adapter's queue + latency histograms together (jitter buffer, decode, send). */
    adapterMetric: Summary;
  };
  counters: {
    droppedFrames: number;
    concealedFrames: number;
    jitterLate: number;
    jitterOverflowDrops: number;
    jitterTrimmed: number;
    jitterDuplicates: number;
    jitterSkipped: number;
    jitterUnderruns: number;
    /** Mean adaptive target and current depth over adapters at the end of the window. */
    meanTargetMs: number;
    meanDepthMs: number;
  };
}

export interface ProbeReport {
  windowMs: number;
  options: ProbeOptions;
  scheduler: SchedulerDelta;
  ingest?: IngestProbeReport;
  egress?: EgressProbeReport;
}

export interface GridInfo {
  /** Wall-clock ms (performance.timeOrigin + performance.now()) of one slot instant of the shared scheduler. */
  gridWallMs: number;
  periodMs: number;
}

// ---- load generator ----------------------------------------------------------------------------

export interface AdapterSetupRequest {
  type: "setup";
  id: number;
  url: string;
  appId: string;
  secret: string;
  /** Ingest adapters (endpoint → server), each with one werift subscriber to its track. */
  ingest: number;
  /** Egress adapters (werift publisher → server → endpoint). */
  egress: number;
  concurrency: number;
  peerTimeoutMs: number;
  setupTimeoutMs: number;
}

export interface AdapterSetupResult {
  setupMs: number;
  ingest: { adapterId: string; sessionId: string }[];
  egress: { adapterId: string; sessionId: string }[];
  failures: string[];
}

export interface AdapterStartRequest {
  type: "start";
  id: number;
  /** The server's slot grid, so that frames can be sent a known time before their slot. */
  grid: GridInfo;
  /** Ingest endpoints send frame n this many ms before slot n. */
  ingestLeadMs: number;
  /** Egress publishers send packet n this many ms before slot n. */
  egressLeadMs: number;
  /** Hard stop even if nobody says stop (bounded loops). */
  maxDurationMs: number;
}

export type AdapterLoadRequest =
  | AdapterSetupRequest
  | AdapterStartRequest
  | { type: "mark-start"; id: number }
  | { type: "mark-end"; id: number }
  | { type: "stop"; id: number }
  | { type: "close"; id: number };

export interface GenWindowReport {
  windowMs: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  eventLoopLag: LatencySummary;
  /** How late the generator's send timers fired (ingest frames, egress packets). */
  pacerLateness: Summary;
  ingest?: {
    endpoints: number;
    framesSent: number;
    subscribers: number;
    /** RTP packets received by all subscribers, of which Opus silence (3-byte canned packets). */
    packets: number;
    silencePackets: number;
    /** Packets missing (RTP timestamp steps over 960) across subscribers. */
    gaps: number;
    /** Arrival interval − 20 ms at the subscribers, all streams (absolute value). */
    intervalErrorAbs: Summary;
    /** Subscriber of the first adapter: interval error (signed and absolute) and drift. */
    probe?: { intervalError: Summary; intervalErrorAbs: Summary; drift: DriftReport };
  };
  egress?: {
    publishers: number;
    packetsSent: number;
    endpoints: number;
    /** PCM frames received by the endpoints in the window. */
    frames: number;
    /** Frames missing at the endpoints: sequence-number gaps (send-queue drops) ... */
    seqGaps: number;
    /** ... and RTP-timestamp steps over 960 (packets the jitter buffer dropped or skipped). */
    tsGapFrames: number;
    /** Messages that were not a 3 840-byte PCM Packet. */
    badMessages: number;
    /** Endpoints that received nothing in the window. */
    deadEndpoints: number;
  };
}

export type AdapterLoadMessage =
  | { type: "hello"; pid: number }
  | {
      type: "reply";
      id: number;
      setup?: AdapterSetupResult;
      report?: GenWindowReport;
      error?: string;
    };
