// Per-frame timing of the live WebSocket adapters inside the benchmark's server process
// (bench/server-process.ts). Benchmark-only: nothing in src/ knows about it, and nothing is wrapped until
// an orchestrator sends `probe-start`, so the forwarding benchmark and normal runs are untouched.
//
// How. The adapters are reached through `server.adapters(appId)`; their private methods are wrapped on each
// instance (TypeScript `private` is not a runtime boundary). The wrapped names are checked when a probe
// attaches, so a refactor of the adapters fails loudly here instead of measuring nothing.
//
//   ingest:  enqueue(frame)   → how many frames were already queued in the pacer when this one arrived
//            tick(now, due)   → the slot being run (registration.startMs + slot × 20) and the wake time
//            opts.onFrame(arrival, start, sent) → the frame's arrival; sent − arrival is what the adapter's
//                               own histograms report together (queue + latency)
//            track.write(pkt) → when the packet was handed to the subscriber's sink (Opus encode done, SRTP
//                               encrypted, dgram.send called: PeerSenderSink → werift DTLS transport → ICE →
//                               UDP transport → socket.send, all synchronous JavaScript)
//            UDP send         → when the datagram really goes to the kernel. Node's dgram.send() resolves the
//                               (literal IP) address with dns.lookup, which calls back on process.nextTick,
//                               so the UDP handle's send runs after the scheduler's whole wake — after every
//                               other stream of that wake was encoded too. Hooked on the UDP handle prototype
//                               and matched to the frame by Buffer identity.
//   egress:  UDP 'message'    → when a datagram reached the server's socket listener (dgram.Socket#emit)
//            onPacket(pkt)    → the packet entered the adapter (inside that dispatch if werift is synchronous)
//            tick(t)          → the slot whose frames are being produced (t is its due time, or the wake)
//            emit(pcm, ts, a) → a decoded frame was queued (keyed by RTP timestamp back to its packet)
//            opts.onFrame(arrival, start, sent) → the frame was written to the WebSocket (ws.send returned at
//                               `sent`), matched to its packet by `arrival`
//
// Cost when attached: a few closures and one small object per frame; the hooks on dgram are global to this
// process and stay installed once a probe ran (they are cheap pass-throughs when no frame is pending).

import dgram from "node:dgram";
import { performance } from "node:perf_hooks";
import type { Adapter, AdapterStatus } from "../../src/adapters/websocket/adapter.ts";
import type { JitterBufferStats } from "../../src/media/jitter-buffer.ts";
import type { RtpPacket } from "../../src/media/rtp.ts";
import type { MediaSchedulerStats, Registration } from "../../src/media/scheduler.ts";
import type { RunningServer } from "../../src/server.ts";
import type {
  EgressProbeReport,
  GridInfo,
  IngestProbeReport,
  ProbeOptions,
  ProbeReport,
} from "./adapter-protocol.ts";
import { DriftTracker, MsHistogram } from "./histogram.ts";

const now = () => performance.now();

// ---- the adapters' internals, as far as the probes use them --------------------------------------

type OnFrame = (arrivalMs: number, startMs: number, sentMs: number) => void;

interface IngestInternals {
  tick(now: number, due: number): void;
  enqueue(frame: Int16Array, now: number): void;
  pacer: { readonly queuedFrames: number };
  opts: { onFrame?: OnFrame };
  registration: Registration | undefined;
  track: { write(packet: RtpPacket): void };
  status(): AdapterStatus;
}

interface EgressInternals {
  tick(now: number): void;
  emit(pcm: Int16Array, timestamp: number, arrivalMs: number): void;
  onPacket(packet: RtpPacket, track: unknown): void;
  opts: { onFrame?: OnFrame; now: () => number };
  registration: Registration | undefined;
  jitter: { stats: JitterBufferStats };
  ws: { bufferedAmount: number } | undefined;
  droppedFrames: number;
  concealedFrames: number;
}

function internals<T>(adapter: Adapter, methods: string[], objects: string[]): T {
  const a = adapter as unknown as Record<string, unknown>;
  for (const m of methods)
    if (typeof a[m] !== "function")
      throw new Error(`bench/lib/probes.ts: ${adapter.direction} adapter has no method ${m}() any more`);
  for (const o of objects)
    if (typeof a[o] !== "object" || a[o] === null)
      throw new Error(`bench/lib/probes.ts: ${adapter.direction} adapter has no field ${o} any more`);
  return adapter as unknown as T;
}

// ---- global socket hooks -----------------------------------------------------------------------

interface SocketWaiter {
  queued: boolean;
  onSocket(t: number): void;
}

/** Set while an instrumented track.write runs: the first dgram.send in it carries that frame's packet. */
let pendingWaiter: SocketWaiter | undefined;
const waiterByBuffer = new WeakMap<object, SocketWaiter>();
/** performance.now() at the start of the UDP 'message' dispatch in progress, NaN outside one. */
let udpReceiveMs = Number.NaN;
let hooksInstalled = false;

function installSocketHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  type AnyFn = (this: unknown, ...args: unknown[]) => unknown;
  const sockProto = dgram.Socket.prototype as unknown as { send: AnyFn; emit: AnyFn };

  const jsSend = sockProto.send;
  sockProto.send = function (this: unknown, ...args: unknown[]) {
    const w = pendingWaiter;
    if (w && args[0] instanceof Uint8Array) {
      pendingWaiter = undefined;
      w.queued = true;
      waiterByBuffer.set(args[0], w);
    }
    return jsSend.apply(this, args);
  };

  const emit = sockProto.emit;
  sockProto.emit = function (this: unknown, ...args: unknown[]) {
    if (args[0] !== "message") return emit.apply(this, args);
    const outer = udpReceiveMs;
    udpReceiveMs = now();
    try {
      return emit.apply(this, args);
    } finally {
      udpReceiveMs = outer;
    }
  };

  // The UDP handle (libuv wrapper) every dgram socket uses; reached through one throwaway socket.
  const probe = dgram.createSocket("udp4");
  const state = Object.getOwnPropertySymbols(probe).find((s) => s.description === "state symbol");
  const handle = state
    ? (probe as unknown as Record<symbol, { handle?: object } | undefined>)[state]?.handle
    : undefined;
  probe.close();
  if (!handle) throw new Error("bench/lib/probes.ts: cannot reach the UDP handle of a dgram socket");
  const handleProto = Object.getPrototypeOf(handle) as Record<string, AnyFn>;
  for (const name of ["send", "send6"]) {
    const orig = handleProto[name];
    if (typeof orig !== "function") throw new Error(`bench/lib/probes.ts: UDP handle has no ${name}()`);
    handleProto[name] = function (this: unknown, ...args: unknown[]) {
      const list = args[1];
      const first = Array.isArray(list) ? list[0] : undefined;
      if (first) {
        const w = waiterByBuffer.get(first);
        if (w) {
          waiterByBuffer.delete(first);
          w.onSocket(now());
        }
      }
      return orig.apply(this, args);
    };
  }
}

// ---- ingest ------------------------------------------------------------------------------------

class IngestState {
  prevDeparture = Number.NaN;
  prevSlot = -2;
  drift: DriftTracker;
  base = { framesPlayed: 0, underruns: 0 };

  constructor(
    readonly adapter: IngestInternals,
    readonly id: string,
    periodMs: number,
    series: boolean,
  ) {
    this.drift = new DriftTracker(periodMs, series);
  }
}

class IngestFrame implements SocketWaiter {
  arrival = Number.NaN;
  /** arrival → track.write returned, as the adapter's onFrame reports it (queue + latency histograms). */
  adapterMs = Number.NaN;
  /** Frames already in the pacer queue when this one was enqueued (NaN: enqueued before the probe attached). */
  queuedAhead = Number.NaN;
  tickStart = Number.NaN;
  writeEnd = Number.NaN;
  queued = false;
  constructor(
    readonly probes: Probes,
    readonly st: IngestState,
    readonly slot: number,
    readonly due: number,
    readonly wake: number,
  ) {}

  onSocket(t: number): void {
    this.probes.finishIngest(this, t, true);
  }
}

// ---- egress ------------------------------------------------------------------------------------

interface PendingFrame {
  arrivalMs: number;
  udpMs: number;
  due: number;
}

class EgressState {
  tickDue = Number.NaN;
  readonly udpByTimestamp = new Map<number, number>();
  readonly fifo: PendingFrame[] = [];
  base = {
    droppedFrames: 0,
    concealedFrames: 0,
    late: 0,
    overflowDrops: 0,
    trimmed: 0,
    duplicates: 0,
    skipped: 0,
    underruns: 0,
  };
  constructor(readonly adapter: EgressInternals) {}

  counters() {
    const j = this.adapter.jitter.stats;
    return {
      droppedFrames: this.adapter.droppedFrames,
      concealedFrames: this.adapter.concealedFrames,
      late: j.late,
      overflowDrops: j.overflowDrops,
      trimmed: j.trimmed,
      duplicates: j.duplicates,
      skipped: j.skipped,
      underruns: j.underruns,
    };
  }
}

// ---- the controller ----------------------------------------------------------------------------

function newIngestHists() {
  return {
    departureLateness: new MsHistogram(),
    intervalError: new MsHistogram(),
    intervalErrorAbs: new MsHistogram(),
    total: new MsHistogram(),
    totalQueueEmpty: new MsHistogram(),
    waitForSlot: new MsHistogram(),
    wakeLateness: new MsHistogram(),
    queuedInWake: new MsHistogram(),
    tickToWrite: new MsHistogram(),
    writeToSocket: new MsHistogram(),
    adapterMetric: new MsHistogram(),
  };
}

function newEgressHists() {
  return {
    departureLateness: new MsHistogram(),
    total: new MsHistogram(),
    udpToAdapter: new MsHistogram(),
    adapterMetric: new MsHistogram(),
  };
}

export class Probes {
  private recording = false;
  private options: ProbeOptions = { perFrame: true, socketHook: true, lateMs: 5 };
  private windowStart = 0;
  private schedBase: MediaSchedulerStats | undefined;
  private readonly ingest = new Map<Adapter, IngestState>();
  private readonly egress = new Map<Adapter, EgressState>();
  private readonly ih = newIngestHists();
  private readonly eh = newEgressHists();
  private ic = { frames: 0, audio: 0, late: 0, socket: 0, queued: 0 };
  private ec = { frames: 0, late: 0, buffered: 0, withUdp: 0, withoutUdp: 0, unmatched: 0 };

  constructor(
    private readonly server: RunningServer,
    private readonly appId: string,
  ) {}

  grid(): GridInfo {
    // A throwaway registration reveals the grid: slot 0 of every stream is on epoch + k × period.
    const r = this.server.scheduler.register({ tick() {} });
    const startMs = r.startMs;
    r.cancel();
    return { gridWallMs: performance.timeOrigin + startMs, periodMs: this.server.scheduler.periodMs };
  }

  start(options: ProbeOptions): void {
    this.options = options;
    if (options.perFrame && options.socketHook) installSocketHooks();
    const manager = this.server.adapters(this.appId);
    if (!manager) throw new Error(`no adapter manager for app ${this.appId}`);
    const period = this.server.scheduler.periodMs;
    for (const a of manager.list()) {
      if (a.state === "closed") continue;
      if (a.direction === "ingest") {
        let st = this.ingest.get(a);
        if (!st) {
          const inner = internals<IngestInternals>(
            a,
            ["tick", "enqueue", "status"],
            ["opts", "track", "pacer"],
          );
          st = new IngestState(inner, a.id, period, false);
          this.ingest.set(a, st);
          if (options.perFrame) this.wrapIngest(st);
        }
        st.drift = new DriftTracker(period, a.id === options.seriesAdapterId);
        st.prevDeparture = Number.NaN;
        st.prevSlot = -2;
        const s = st.adapter.status();
        st.base = { framesPlayed: s.frames, underruns: s.underruns };
      } else {
        let st = this.egress.get(a);
        if (!st) {
          const inner = internals<EgressInternals>(a, ["tick", "emit", "onPacket"], ["opts", "jitter"]);
          st = new EgressState(inner);
          this.egress.set(a, st);
          if (options.perFrame) this.wrapEgress(st);
        }
        st.base = st.counters();
      }
    }
    for (const h of Object.values(this.ih)) h.reset();
    for (const h of Object.values(this.eh)) h.reset();
    this.ic = { frames: 0, audio: 0, late: 0, socket: 0, queued: 0 };
    this.ec = { frames: 0, late: 0, buffered: 0, withUdp: 0, withoutUdp: 0, unmatched: 0 };
    this.schedBase = this.server.scheduler.stats;
    this.windowStart = now();
    this.recording = true;
  }

  stop(): ProbeReport {
    this.recording = false;
    const windowMs = now() - this.windowStart;
    const s = this.server.scheduler.stats;
    const b = this.schedBase ?? s;
    const report: ProbeReport = {
      windowMs,
      options: this.options,
      scheduler: {
        streams: s.streams,
        wakes: s.wakes - b.wakes,
        slotsRun: s.slotsRun - b.slotsRun,
        lateSlots: s.lateSlots - b.lateSlots,
        skippedSlots: s.skippedSlots - b.skippedSlots,
        errors: s.errors - b.errors,
        maxLatenessMsSinceStart: s.maxLatenessMs,
      },
    };
    if (this.ingest.size > 0) report.ingest = this.ingestReport([...this.ingest.values()]);
    if (this.egress.size > 0) report.egress = this.egressReport([...this.egress.values()]);
    return report;
  }

  // ---- ingest ----

  private wrapIngest(st: IngestState): void {
    const a = st.adapter;
    const period = this.server.scheduler.periodMs;
    let cur: IngestFrame | undefined;
    const tick = a.tick;
    a.tick = (wake: number, due: number) => {
      const reg = a.registration;
      if (!this.recording || !reg) {
        tick.call(a, wake, due);
        return;
      }
      const slot = reg.nextSlot - 1; // the scheduler advanced nextSlot before calling tick
      const frame = new IngestFrame(this, st, slot, reg.startMs + slot * period, wake);
      frame.tickStart = now();
      cur = frame;
      try {
        tick.call(a, wake, due);
      } finally {
        cur = undefined;
      }
      // No UDP send was queued (no connected subscriber, or the socket hook is off): time it at the write.
      if (!Number.isNaN(frame.writeEnd) && !frame.queued) this.finishIngest(frame, frame.writeEnd, false);
    };
    // Queue depth at arrival, one entry per enqueued frame in pacer order (the pacer never drops a frame);
    // frames queued before we attached get NaN.
    let ahead: number[] = Array.from({ length: a.pacer.queuedFrames }, () => Number.NaN);
    let aheadHead = 0;
    const enqueue = a.enqueue;
    a.enqueue = (frame: Int16Array, t: number) => {
      ahead.push(a.pacer.queuedFrames);
      enqueue.call(a, frame, t);
    };
    const onFrame = a.opts.onFrame;
    a.opts.onFrame = (arrivalMs: number, startMs: number, sentMs: number) => {
      const depth = ahead[aheadHead++] ?? Number.NaN;
      if (aheadHead > 1024 && aheadHead * 2 > ahead.length) {
        ahead = ahead.slice(aheadHead);
        aheadHead = 0;
      }
      if (cur) {
        cur.arrival = arrivalMs;
        cur.adapterMs = sentMs - arrivalMs;
        cur.queuedAhead = depth;
      }
      onFrame?.(arrivalMs, startMs, sentMs);
    };
    const track = a.track;
    const write = track.write;
    track.write = (packet: RtpPacket) => {
      const frame = cur;
      if (frame && this.options.socketHook) pendingWaiter = frame;
      try {
        write.call(track, packet);
      } finally {
        pendingWaiter = undefined;
        if (frame) frame.writeEnd = now();
      }
    };
  }

  finishIngest(frame: IngestFrame, departure: number, atSocket: boolean): void {
    if (!this.recording) return;
    const st = frame.st;
    const h = this.ih;
    const period = this.server.scheduler.periodMs;
    this.ic.frames++;
    if (atSocket) this.ic.socket++;
    const lateness = departure - frame.due;
    h.departureLateness.record(lateness);
    if (lateness > this.options.lateMs) this.ic.late++;
    if (frame.slot === st.prevSlot + 1) {
      const err = departure - st.prevDeparture - period;
      h.intervalError.record(err);
      h.intervalErrorAbs.record(Math.abs(err));
    }
    st.prevSlot = frame.slot;
    st.prevDeparture = departure;
    st.drift.record(frame.slot, departure);
    if (!Number.isNaN(frame.arrival)) {
      this.ic.audio++;
      if (frame.queuedAhead > 0) this.ic.queued++;
      else if (frame.queuedAhead === 0) h.totalQueueEmpty.record(departure - frame.arrival);
      h.total.record(departure - frame.arrival);
      h.waitForSlot.record(frame.due - frame.arrival);
      h.wakeLateness.record(frame.wake - frame.due);
      h.queuedInWake.record(frame.tickStart - frame.wake);
      h.tickToWrite.record(frame.writeEnd - frame.tickStart);
      h.writeToSocket.record(departure - frame.writeEnd);
      h.adapterMetric.record(frame.adapterMs);
    }
  }

  private ingestReport(states: IngestState[]): IngestProbeReport {
    const h = this.ih;
    let framesPlayed = 0;
    let underruns = 0;
    let maxQueuedMs = 0;
    const slopes: number[] = [];
    let worstDrift = 0;
    let worstCumulative = 0;
    let series: IngestProbeReport["drift"]["series"];
    for (const st of states) {
      const s = st.adapter.status();
      framesPlayed += s.frames - st.base.framesPlayed;
      underruns += s.underruns - st.base.underruns;
      maxQueuedMs = Math.max(maxQueuedMs, s.maxQueuedMs);
      const d = st.drift.report();
      if (d.frames > 0) {
        worstDrift = Math.max(worstDrift, Math.abs(d.minMs), Math.abs(d.maxMs));
        if (Math.abs(d.cumulativeMs) > Math.abs(worstCumulative)) worstCumulative = d.cumulativeMs;
        if (!Number.isNaN(d.slopePpm)) slopes.push(d.slopePpm);
      }
      if (st.id === this.options.seriesAdapterId) series = d;
    }
    slopes.sort((x, y) => x - y);
    return {
      adapters: states.length,
      frames: this.ic.frames,
      audioFrames: this.ic.audio,
      lateFrames: this.ic.late,
      socketWrites: this.ic.socket,
      queuedBehind: this.ic.queued,
      departureLateness: h.departureLateness.summary(),
      intervalError: h.intervalError.summary(),
      intervalErrorAbs: h.intervalErrorAbs.summary(),
      drift: {
        maxAbsMsWorstAdapter: worstDrift,
        cumulativeMsWorstAdapter: worstCumulative,
        slopePpmMedian: slopes.length ? slopes[Math.floor(slopes.length / 2)] : Number.NaN,
        slopePpmWorst: slopes.length
          ? slopes.reduce((w, x) => (Math.abs(x) > Math.abs(w) ? x : w), 0)
          : Number.NaN,
        series,
      },
      latency: {
        total: h.total.summary(),
        totalQueueEmpty: h.totalQueueEmpty.summary(),
        waitForSlot: h.waitForSlot.summary(),
        wakeLateness: h.wakeLateness.summary(),
        queuedInWake: h.queuedInWake.summary(),
        tickToWrite: h.tickToWrite.summary(),
        writeToSocket: h.writeToSocket.summary(),
        adapterMetric: h.adapterMetric.summary(),
      },
      counters: { framesPlayed, underruns, maxQueuedMs },
    };
  }

  // ---- egress ----

  private wrapEgress(st: EgressState): void {
    const a = st.adapter;
    const period = this.server.scheduler.periodMs;
    const onPacket = a.onPacket;
    a.onPacket = (packet: RtpPacket, track: unknown) => {
      if (this.recording) {
        if (Number.isNaN(udpReceiveMs)) this.ec.withoutUdp++;
        else this.ec.withUdp++;
      }
      const map = st.udpByTimestamp;
      map.set(packet.header.timestamp >>> 0, udpReceiveMs);
      if (map.size > 512) map.delete(map.keys().next().value as number);
      onPacket.call(a, packet, track);
    };
    const tick = a.tick;
    a.tick = (arg: number) => {
      // tick() receives either the slot's due time (slots deferred to setImmediate and run one by one) or
      // the wake time (slots run inside the scheduler's wake): an argument on the slot grid is the due time
      // itself; otherwise the slot just run by the scheduler is the one.
      const reg = a.registration;
      if (!reg) st.tickDue = Number.NaN;
      else {
        const k = (arg - reg.startMs) / period;
        st.tickDue = Math.abs(k - Math.round(k)) < 1e-6 ? arg : reg.startMs + (reg.nextSlot - 1) * period;
      }
      try {
        tick.call(a, arg);
      } finally {
        st.tickDue = Number.NaN;
      }
    };
    const emit = a.emit;
    a.emit = (pcm: Int16Array, timestamp: number, arrivalMs: number) => {
      if (!Number.isNaN(arrivalMs)) {
        const key = timestamp >>> 0;
        const udpMs = st.udpByTimestamp.get(key) ?? Number.NaN;
        st.udpByTimestamp.delete(key);
        st.fifo.push({ arrivalMs, udpMs, due: st.tickDue });
        if (st.fifo.length > 512) st.fifo.shift();
      }
      emit.call(a, pcm, timestamp, arrivalMs);
    };
    const onFrame = a.opts.onFrame;
    a.opts.onFrame = (arrivalMs: number, startMs: number, sentMs: number) => {
      onFrame?.(arrivalMs, startMs, sentMs);
      const sent = sentMs;
      const arrival = arrivalMs;
      const ms = sent - arrival;
      let f: PendingFrame | undefined;
      while (st.fifo.length > 0) {
        const head = st.fifo.shift()!;
        if (Math.abs(head.arrivalMs - arrival) < 1e-6) {
          f = head;
          break;
        }
        if (head.arrivalMs > arrival) {
          st.fifo.unshift(head);
          break;
        }
        // an older frame that was never sent (trimmed by back-pressure): skip it
      }
      if (!this.recording) return;
      const h = this.eh;
      this.ec.frames++;
      h.adapterMetric.record(ms);
      if ((a.ws?.bufferedAmount ?? 0) > 0) this.ec.buffered++;
      if (!f) {
        this.ec.unmatched++;
        return;
      }
      if (!Number.isNaN(f.due)) {
        const lateness = sent - f.due;
        h.departureLateness.record(lateness);
        if (lateness > this.options.lateMs) this.ec.late++;
      }
      if (!Number.isNaN(f.udpMs)) {
        h.total.record(sent - f.udpMs);
        h.udpToAdapter.record(f.arrivalMs - f.udpMs);
      }
    };
  }

  private egressReport(states: EgressState[]): EgressProbeReport {
    const h = this.eh;
    const c = {
      droppedFrames: 0,
      concealedFrames: 0,
      late: 0,
      overflowDrops: 0,
      trimmed: 0,
      duplicates: 0,
      skipped: 0,
      underruns: 0,
    };
    let target = 0;
    let depth = 0;
    for (const st of states) {
      const now = st.counters();
      for (const k of Object.keys(c) as (keyof typeof c)[]) c[k] += now[k] - st.base[k];
      const j = st.adapter.jitter.stats;
      target += j.targetMs;
      depth += j.currentDepthMs;
    }
    return {
      adapters: states.length,
      frames: this.ec.frames,
      lateFrames: this.ec.late,
      bufferedAfterSend: this.ec.buffered,
      packetsWithUdpContext: this.ec.withUdp,
      packetsWithoutUdpContext: this.ec.withoutUdp,
      unmatchedFrames: this.ec.unmatched,
      departureLateness: h.departureLateness.summary(),
      latency: {
        total: h.total.summary(),
        udpToAdapter: h.udpToAdapter.summary(),
        adapterMetric: h.adapterMetric.summary(),
      },
      counters: {
        droppedFrames: c.droppedFrames,
        concealedFrames: c.concealedFrames,
        jitterLate: c.late,
        jitterOverflowDrops: c.overflowDrops,
        jitterTrimmed: c.trimmed,
        jitterDuplicates: c.duplicates,
        jitterSkipped: c.skipped,
        jitterUnderruns: c.underruns,
        meanTargetMs: states.length ? target / states.length : Number.NaN,
        meanDepthMs: states.length ? depth / states.length : Number.NaN,
      },
    };
  }
}
