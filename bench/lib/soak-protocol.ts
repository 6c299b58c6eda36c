// IPC messages of the soak benchmark (bench/soak.ts) and its load generators (bench/lib/soak-load.ts, one
// child per role: "pairs" = ingest adapter → egress adapter through WebSocket endpoints, "streams" = werift
// publisher → werift subscriber). Request/reply framing is bench/protocol.ts's `request()`; the media
// scheduler's grid comes from bench/server-process.ts's "grid" request.

import type { LatencySummary } from "../protocol.ts";
import type { GridInfo } from "./adapter-protocol.ts";
import type { Summary } from "./histogram.ts";

export type SoakRole = "pairs" | "streams";

/** Continuity of one kind of unit (egress PCM frames, forwarded RTP packets), summed over streams. */
export interface SeqCounts {
  /** Units between the first and the highest index seen (per stream, inside the window). */
  expected: number;
  /** Distinct units received. */
  received: number;
  /** expected − received: holes in the sequence. */
  lost: number;
  duplicates: number;
  /** Units that arrived after a higher index of the same stream (and filled a hole). */
  reordered: number;
  /** Steps that were not a whole number of units (RTP timestamps not a multiple of 960). */
  misaligned: number;
}

export interface SoakSetupRequest {
  type: "setup";
  id: number;
  url: string;
  appId: string;
  secret: string;
  count: number;
  concurrency: number;
  peerTimeoutMs: number;
  setupTimeoutMs: number;
}

export interface SoakStartRequest {
  type: "start";
  id: number;
  grid: GridInfo;
  /** Ingest frames / publisher packets are sent this many ms before their slot of the server's grid. */
  leadMs: number;
}

export type SoakRequest =
  | SoakSetupRequest
  | SoakStartRequest
  | { type: "mark-start"; id: number }
  /** Close and recreate `count` items (idle ones, at random), through the HTTP API. */
  | { type: "churn"; id: number; count: number }
  | { type: "peek"; id: number }
  | { type: "mark-end"; id: number }
  /** Close every item through the HTTP API (end of the run). */
  | { type: "retire-all"; id: number }
  | { type: "close"; id: number };

export interface SoakSetupResult {
  setupMs: number;
  created: number;
  failures: string[];
}

export interface ChurnResult {
  /** Items closed and recreated without an error. */
  ops: number;
  failed: number;
  /** Asked for more than were idle (the rest was still being churned). */
  skipped: number;
}

/** Running figures of the window, for the per-minute rows. */
export interface SoakPeek {
  live: number;
  churnInFlight: number;
  churnOps: number;
  churnFailed: number;
  apiErrors: number;
  received: number;
  lost: number;
}

export interface SoakWindowReport {
  role: SoakRole;
  windowMs: number;
  /** Items wanted and items live at the end of the window. */
  target: number;
  live: number;
  cpuPctOfOneCore: number;
  eventLoopLag: LatencySummary;
  /** How late the pacing timer fired (ingest frames / publisher packets). */
  pacerLateness: Summary;
  churn: {
    rounds: number;
    ops: number;
    failed: number;
    skipped: number;
    /** Wall time of closing one item / creating one item, ms. */
    closeMs: Summary;
    createMs: Summary;
  };
  api: { calls: number; errors: number; firstErrors: string[] };
  /** pairs: PCM frames at the egress endpoints by RTP timestamp; streams: RTP packets at the subscribers. */
  units: SeqCounts;
  /** Items that received nothing in the window, and items whose last unit is older than 200 ms at the end. */
  dead: number;
  stalled: number;
  pairs?: {
    /** PCM frames the egress endpoints saw missing by their Packet sequence number (egress send-queue drops). */
    seqGaps: number;
    /** Messages that were not a 3 840-byte PCM Packet. */
    badMessages: number;
    ingestFramesSent: number;
    /** From the adapters' status (GET adapters/websocket/{id}): deltas over the window. */
    ingestUnderruns: number;
    egressDroppedFrames: number;
    egressUnderruns: number;
  };
  streams?: {
    /** Packets whose payload was not what the publisher sent at that index (misrouting, corruption). */
    mismatched: number;
    /** At a churn close: packets the publisher sent that never reached the subscriber (after a 150 ms wait). */
    tailLost: number;
  };
}

/** Whole-life reconciliation of every item of the run, made when the items are closed. */
export interface SoakTeardownReport {
  role: SoakRole;
  retired: number;
  failed: number;
  /** Every incarnation that ever existed (setup, churn, teardown). */
  incarnations: number;
  pairs?: {
    ingestFramesSent: number;
    /** Frames the ingest adapters played (status.frames), after the endpoint ended its segment and the queue drained. */
    ingestFramesPlayed: number;
    /** Ingest adapters closed with frames still queued (drain timed out). */
    ingestNotDrained: number;
    /** status.frames of every egress adapter at close (frames written to its socket, concealed ones included). */
    egressFramesSentByServer: number;
    /** Frames the egress endpoints received, counted after the server closed the socket. */
    egressFramesReceived: number;
  };
  streams?: { tailLost: number };
}

export type SoakMessage =
  | { type: "hello"; pid: number; role: SoakRole }
  | {
      type: "reply";
      id: number;
      setup?: SoakSetupResult;
      churn?: ChurnResult;
      peek?: SoakPeek;
      report?: SoakWindowReport;
      teardown?: SoakTeardownReport;
      error?: string;
    };
