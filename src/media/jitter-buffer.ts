// JitterBuffer: puts the Opus RTP packets of one received audio track back in order for the egress
// adapter (SPEC §2.6) and tells its owner, tick by tick, what to decode: a packet, a lost slot to conceal
// (with the following packet when it is already here, for in-band FEC), or nothing. Sans-IO: the owner
// passes arrival and tick times in; this file never reads a clock or sets a timer.
//
// Usage. `push(packet, nowMs)` on every RTP packet. On every 20 ms tick of the shared scheduler call
// `pop(nowMs)` until it returns `empty`: each distinct `nowMs` grants one frame (960 samples) of playout,
// and a 10 ms packet only uses half of it. With 20 ms packets the second call simply returns `empty`
// ("covered"); a 40 or 60 ms packet makes the next one or two ticks return `empty` ("covered") because
// the audio already sent spans them.
//
// States
//
//   idle ──push──▶ buffering ──pop: depth ≥ target, or the oldest packet waited ≥ target──▶ playing
//                     ▲                                                                     │
//                     │  push of a packet that is not late                                  │ pop: nothing
//                     │                                                                     ▼ for 3 slots
//                  underrun ◀─────────────────────────────────────────────────────────────────┘
//   buffering/playing ──RTP source restart (a sequence jump confirmed by a second, consecutive packet;
//   in underrun the first such packet suffices)──▶ buffering, old packets flushed. reset() ──▶ idle.
//
// - buffering: collects packets; pop returns `empty` ("buffering").
// - playing: per slot, in sequence order:
//     • the expected packet is here → `packet`;
//     • it is missing but a later one is here → `lost` (confirmed loss; `next` is set when the very next
//       sequence number is buffered, so the owner can decode its FEC); after `maxConcealFrames`
//       consecutive losses the rest of the hole is skipped and playout jumps to the buffered packet;
//     • nothing is buffered at all → if jitter raised the target above the delay we are running at,
//       `empty` ("hold"): playout slips by one frame instead of concealing. That is how the buffer deepens
//       while playing; the PCM timeline stays gapless, its delivery is just 20 ms later. Otherwise `lost`
//       (starvation) up to `maxConcealFrames` times in a row, then `underrun`: the talk-spurt ended or the
//       source stopped, so concealing longer would only invent sound. The next packet that is not late
//       starts a fresh buffering phase (sequence numbers jumped over are counted as `skipped`).
//     • the expected packet is here but its timestamp starts ≥ 1 frame later than the playout position
//       (DTX silence with contiguous sequence numbers) → `empty` ("gap") until the position reaches it;
//       a jump backwards or beyond the cap re-anchors the position on the packet.
// - underrun: pop returns `empty` ("underrun"); nothing is concealed.
//
// `lost` carries the 16-bit sequence number, the RTP timestamp where concealment starts and its length
// in samples. `next` is only a peek: the owner decodes its FEC and then gets it from the next pop anyway.
//
// Lateness is judged by sequence number (already played → duplicate; already passed → late) with one
// exception: a packet whose sequence number was passed during starvation but whose timestamp is still
// ahead of the playout position is accepted. Starvation losses are speculative: during DTX the sender
// does not use sequence numbers, so the "lost" numbers we reported may never have existed. The RTP
// marker bit is accepted but not relied on (the packet carrying it can be lost); sequence numbers and
// timestamps decide.
//
// Adaptive target: jitter = max − min of (arrival − timestamp) over the last `jitterWindowMs` of
// arrivals; target = clamp(minTargetMs + jitter, minTargetMs, maxTargetMs). The target sets the depth at
// which buffering ends and allows "hold" slots while playing. When the depth stayed at least 2 frames
// above the target on every tick for a second (a sender clock running fast, or what is left of a burst),
// one packet is dropped (`trimmed`): a 20 ms step in the output timestamps, deliberately not concealed
// since concealing would put the latency back. The depth (audio to be output before the newest buffered
// packet: buffered packets plus the concealment their holes will get) never exceeds `capMs`: on push, the
// oldest packets are dropped (`overflowDrops`) and playout moves past them.
//
// `reorder: false` is a pass-through for benchmarks: target 0, packets leave in arrival order at one
// frame per tick, anything not newer than the last packet out is dropped as late, and losses are not
// reported.

import { opusPacketSamples } from "./opus-decoder.ts";

export interface JitterPacket {
  sequenceNumber: number;
  timestamp: number;
  payload: Uint8Array;
  marker?: boolean;
}

export type EmptyReason = "idle" | "buffering" | "underrun" | "covered" | "gap" | "hold";

export type PopResult<P extends JitterPacket = JitterPacket> =
  | { kind: "packet"; packet: P }
  | {
      kind: "lost";
      /** 16-bit RTP sequence number of the lost packet. */
      sequenceNumber: number;
      /** RTP timestamp (48 kHz) where the concealed audio starts. */
      timestamp: number;
      /** Samples per channel to conceal (960 for a 20 ms packet). */
      samples: number;
      /** The following packet, when already buffered: decode its FEC. It is still returned by the next pop. */
      next?: P;
    }
  | { kind: "empty"; reason: EmptyReason };

export type PushOutcome = "accepted" | "duplicate" | "late" | "probation" | "resync";

export type JitterState = "idle" | "buffering" | "playing" | "underrun";

export interface JitterBufferOptions {
  /** Lower bound of the adaptive target depth. Default 20. */
  minTargetMs?: number;
  /** Upper bound of the adaptive target depth. Default 40. */
  maxTargetMs?: number;
  /** Absolute bound on buffered audio; older packets are dropped beyond it. Default 200. */
  capMs?: number;
  /** false: pass-through in arrival order (benchmarks). Default true. */
  reorder?: boolean;
  /** Consecutive concealed slots before giving up (underrun, or skipping a hole). Default 3 (60 ms). */
  maxConcealFrames?: number;
  /** How far back arrivals count for the jitter estimate. Default 2000. */
  jitterWindowMs?: number;
  /** Duration of a payload in samples at 48 kHz; default reads the Opus TOC. */
  packetSamples?: (payload: Uint8Array) => number | undefined;
}

export interface JitterBufferStats {
  state: JitterState;
  received: number;
  played: number;
  concealed: number;
  late: number;
  duplicates: number;
  overflowDrops: number;
  /**
   * Sequence numbers jumped over without concealment: the rest of a hole longer than maxConcealFrames,
   * and the numbers between an underrun's last concealed slot and the packet the stream resumed with.
   */
  skipped: number;
  /** Packets dropped to pull a persistently excessive depth back toward the target. */
  trimmed: number;
  /** Packets discarded by a source restart or reset(). */
  flushed: number;
  /** Out-of-range packets that were not followed by a consecutive one (strays, not a restart). */
  strays: number;
  resyncs: number;
  underruns: number;
  holds: number;
  currentDepthMs: number;
  targetMs: number;
  jitterMs: number;
}

const CLOCK_RATE = 48_000;
const SAMPLES_PER_MS = CLOCK_RATE / 1000;
const FRAME_MS = 20;
const FRAME_SAMPLES = FRAME_MS * SAMPLES_PER_MS;
const SAMPLE_GRANULE = 120; // 2.5 ms: the smallest Opus frame
const MAX_PACKET_SAMPLES = 5760;
const SEQ_MOD = 65_536;
const TS_MOD = 4_294_967_296;
// Extended (unwrapped) counters start far from zero so that packets slightly older than the first one
// still have positive extended values.
const SEQ_BASE = SEQ_MOD * 16;
const TS_BASE = TS_MOD * 16;
// RFC 3550 A.1: a jump beyond these is a source restart (or garbage) rather than loss or reordering.
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
// Arrival times carry event-loop noise of a millisecond or two; depth compares against the target with
// this slack so that 1 ms of jitter does not demand a whole extra frame.
const TOLERANCE_MS = 2;
// A transit-time step this large is a timestamp discontinuity, not network jitter.
const TRANSIT_DISCONTINUITY_MS = 1000;
const TRIM_WINDOW_TICKS = 50;
const PLAYED_RING = 1024;

interface Entry<P> {
  ext: number;
  extTs: number;
  samples: number;
  arrivalMs: number;
  packet: P;
}

function seqDiff(a: number, b: number): number {
  return ((((a - b) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
}

function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

function checkMs(name: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min)
    throw new RangeError(`${name} must be a number ≥ ${min}, got ${value}`);
}

export class JitterBuffer<P extends JitterPacket = JitterPacket> {
  readonly #minTargetMs: number;
  readonly #maxTargetMs: number;
  readonly #capSamples: number;
  readonly #reorder: boolean;
  readonly #maxConceal: number;
  readonly #jitterWindowMs: number;
  readonly #packetSamples: (payload: Uint8Array) => number | undefined;

  #state: JitterState = "idle";
  /** Sorted by `ext` (reorder mode) or in arrival order (pass-through). */
  #buffer: Entry<P>[] = [];
  #highestSeq = 0;
  #tsRef = 0;
  /** Everything below was output (played, concealed, skipped or dropped). NaN until something was. */
  #nextSeq = Number.NaN;
  /** Extended RTP timestamp of the next sample to output. */
  #playTs = 0;
  #lastPlayedSeq = Number.NaN;
  readonly #playedRing = new Float64Array(PLAYED_RING).fill(-1);
  #credit = 0;
  #lastTickMs = Number.NaN;
  #nominalSamples = FRAME_SAMPLES;
  #consecutiveConcealed = 0;
  #scheduledDelayMs = 0;
  #bufferingSinceMs = 0;
  #probation: { seq: number; ts: number; packet: P; nowMs: number } | undefined;
  #arrivals: { arrivalMs: number; transitMs: number }[] = [];
  #jitterMs = 0;
  #trimTicks = 0;
  #trimMinDepth = Number.POSITIVE_INFINITY;

  #received = 0;
  #played = 0;
  #concealed = 0;
  #late = 0;
  #duplicates = 0;
  #overflowDrops = 0;
  #skipped = 0;
  #trimmed = 0;
  #flushed = 0;
  #strays = 0;
  #resyncs = 0;
  #underruns = 0;
  #holds = 0;

  constructor(options: JitterBufferOptions = {}) {
    this.#reorder = options.reorder ?? true;
    this.#minTargetMs = options.minTargetMs ?? 20;
    this.#maxTargetMs = options.maxTargetMs ?? 40;
    const capMs = options.capMs ?? 200;
    this.#maxConceal = options.maxConcealFrames ?? 3;
    this.#jitterWindowMs = options.jitterWindowMs ?? 2000;
    this.#packetSamples = options.packetSamples ?? opusPacketSamples;
    checkMs("minTargetMs", this.#minTargetMs, 0);
    checkMs("maxTargetMs", this.#maxTargetMs, this.#minTargetMs);
    checkMs("capMs", capMs, Math.max(FRAME_MS, this.#maxTargetMs));
    checkMs("jitterWindowMs", this.#jitterWindowMs, FRAME_MS);
    if (!Number.isInteger(this.#maxConceal) || this.#maxConceal < 0) {
      throw new RangeError(`maxConcealFrames must be a non-negative integer, got ${this.#maxConceal}`);
    }
    this.#capSamples = capMs * SAMPLES_PER_MS;
  }

  get state(): JitterState {
    return this.#state;
  }

  get targetMs(): number {
    if (!this.#reorder) return 0;
    return Math.min(this.#maxTargetMs, Math.max(this.#minTargetMs, this.#minTargetMs + this.#jitterMs));
  }

  get stats(): JitterBufferStats {
    return {
      state: this.#state,
      received: this.#received,
      played: this.#played,
      concealed: this.#concealed,
      late: this.#late,
      duplicates: this.#duplicates,
      overflowDrops: this.#overflowDrops,
      skipped: this.#skipped,
      trimmed: this.#trimmed,
      flushed: this.#flushed,
      strays: this.#strays,
      resyncs: this.#resyncs,
      underruns: this.#underruns,
      holds: this.#holds,
      currentDepthMs: this.#depthSamples() / SAMPLES_PER_MS,
      targetMs: this.targetMs,
      jitterMs: this.#jitterMs,
    };
  }

  /** Back to `idle`, forgetting packets and history but keeping the counters. */
  reset(): void {
    this.#flushed += this.#buffer.length;
    this.#restart("idle");
  }

  push(packet: P, nowMs: number): PushOutcome {
    this.#received++;
    const seq = packet.sequenceNumber & 0xffff;
    const ts = packet.timestamp >>> 0;
    if (this.#state === "idle") {
      this.#startStream(packet, seq, ts, nowMs);
      return "accepted";
    }
    const delta = seqDiff(seq, this.#highestSeq % SEQ_MOD);
    if (delta > MAX_DROPOUT || delta < -MAX_MISORDER) return this.#outOfRange(packet, seq, ts, nowMs);
    if (this.#probation !== undefined) {
      this.#strays++;
      this.#probation = undefined;
    }
    return this.#pushInRange(packet, seq, ts, nowMs);
  }

  pop(nowMs: number): PopResult<P> {
    const newTick = nowMs !== this.#lastTickMs;
    this.#lastTickMs = nowMs;
    switch (this.#state) {
      case "idle":
        return { kind: "empty", reason: "idle" };
      case "underrun":
        this.#credit = 0;
        return { kind: "empty", reason: "underrun" };
      case "buffering": {
        this.#credit = 0;
        const depthMs = this.#depthSamples() / SAMPLES_PER_MS;
        const waitedMs = nowMs - this.#bufferingSinceMs;
        const target = this.targetMs;
        const waiting = depthMs + TOLERANCE_MS < target && waitedMs + TOLERANCE_MS < target;
        if (!newTick || waiting || this.#buffer.length === 0) {
          return { kind: "empty", reason: "buffering" };
        }
        this.#startPlaying(depthMs);
        break;
      }
      case "playing":
        break;
    }
    if (newTick) {
      this.#credit = Math.min(this.#credit + FRAME_SAMPLES, FRAME_SAMPLES);
      if (this.#reorder) this.#trimCheck();
    }
    if (this.#credit <= 0) return { kind: "empty", reason: "covered" };
    return this.#reorder ? this.#playNext() : this.#playPassThrough();
  }

  // ---- push helpers -------------------------------------------------------------------------------

  #samplesOf(payload: Uint8Array): number {
    const samples = this.#packetSamples(payload);
    return samples !== undefined && samples > 0 ? samples : this.#nominalSamples;
  }

  #entry(packet: P, ext: number, extTs: number, nowMs: number): Entry<P> {
    return { ext, extTs, samples: this.#samplesOf(packet.payload), arrivalMs: nowMs, packet };
  }

  #startStream(packet: P, seq: number, ts: number, nowMs: number): void {
    this.#restart("buffering");
    const entry = this.#entry(packet, SEQ_BASE + seq, TS_BASE + ts, nowMs);
    this.#highestSeq = entry.ext;
    this.#tsRef = entry.extTs;
    this.#bufferingSinceMs = nowMs;
    this.#buffer.push(entry);
    if (!this.#reorder) this.#state = "playing";
    this.#observeArrival(nowMs, entry.extTs);
  }

  /** Forgets the stream (not the counters); `state` becomes `next`. */
  #restart(next: JitterState): void {
    this.#state = next;
    this.#buffer = [];
    this.#nextSeq = Number.NaN;
    this.#lastPlayedSeq = Number.NaN;
    this.#playedRing.fill(-1);
    this.#playTs = 0;
    this.#credit = 0;
    this.#consecutiveConcealed = 0;
    this.#scheduledDelayMs = 0;
    this.#probation = undefined;
    this.#arrivals = [];
    this.#jitterMs = 0;
    this.#trimTicks = 0;
    this.#trimMinDepth = Number.POSITIVE_INFINITY;
  }

  #outOfRange(packet: P, seq: number, ts: number, nowMs: number): PushOutcome {
    const candidate = this.#probation;
    // While nothing plays there is no stream to protect from a stray packet: restart at once.
    const confirmed =
      this.#state === "underrun" || (candidate !== undefined && seq === ((candidate.seq + 1) & 0xffff));
    if (!confirmed) {
      if (candidate !== undefined) this.#strays++;
      this.#probation = { seq, ts, packet, nowMs };
      return "probation";
    }
    this.#resyncs++;
    this.#flushed += this.#buffer.length;
    if (candidate === undefined) {
      this.#startStream(packet, seq, ts, nowMs);
    } else {
      this.#startStream(candidate.packet, candidate.seq, candidate.ts, candidate.nowMs);
      this.#pushInRange(packet, seq, ts, nowMs);
    }
    return "resync";
  }

  #pushInRange(packet: P, seq: number, ts: number, nowMs: number): PushOutcome {
    const ext = this.#highestSeq + seqDiff(seq, this.#highestSeq % SEQ_MOD);
    const extTs = this.#tsRef + tsDiff(ts, this.#tsRef % TS_MOD);
    return this.#reorder
      ? this.#pushOrdered(packet, ext, extTs, nowMs)
      : this.#pushPassThrough(packet, ext, extTs, nowMs);
  }

  #isPlayed(ext: number): boolean {
    return this.#playedRing[ext % PLAYED_RING] === ext;
  }

  #findIndex(ext: number): number {
    // Insertion point from the end: packets almost always arrive in order.
    let i = this.#buffer.length;
    while (i > 0 && this.#buffer[i - 1].ext > ext) i--;
    return i;
  }

  #pushOrdered(packet: P, ext: number, extTs: number, nowMs: number): PushOutcome {
    const at = this.#findIndex(ext);
    if ((at > 0 && this.#buffer[at - 1].ext === ext) || this.#isPlayed(ext)) {
      this.#duplicates++;
      return "duplicate";
    }
    if (ext < this.#nextSeq) {
      // Passed already. Only a starvation "loss" whose packet turns out to start later than the playout
      // position (a DTX pause) may come back; its slot was never really consumed.
      const speculative = !(ext <= this.#lastPlayedSeq) && extTs >= this.#playTs;
      if (!speculative) {
        this.#late++;
        // A late packet is the clearest jitter sample there is: it must raise the target.
        this.#observeArrival(nowMs, extTs);
        return "late";
      }
    }
    const entry = this.#entry(packet, ext, extTs, nowMs);
    this.#buffer.splice(at, 0, entry);
    if (ext > this.#highestSeq) {
      this.#highestSeq = ext;
      this.#tsRef = extTs;
    }
    this.#observeArrival(nowMs, extTs);
    if (this.#state === "underrun") {
      this.#state = "buffering";
      this.#bufferingSinceMs = nowMs;
      this.#consecutiveConcealed = 0;
    }
    this.#enforceCap();
    return "accepted";
  }

  #pushPassThrough(packet: P, ext: number, extTs: number, nowMs: number): PushOutcome {
    if (this.#isPlayed(ext) || this.#buffer.some((e) => e.ext === ext)) {
      this.#duplicates++;
      return "duplicate";
    }
    if (ext <= this.#lastPlayedSeq) {
      this.#late++;
      return "late";
    }
    this.#buffer.push(this.#entry(packet, ext, extTs, nowMs));
    if (ext > this.#highestSeq) {
      this.#highestSeq = ext;
      this.#tsRef = extTs;
    }
    while (this.#depthSamples() > this.#capSamples) {
      this.#buffer.shift();
      this.#overflowDrops++;
    }
    return "accepted";
  }

  #observeArrival(arrivalMs: number, extTs: number): void {
    if (!this.#reorder) return;
    const transitMs = arrivalMs - extTs / SAMPLES_PER_MS;
    const last = this.#arrivals.at(-1);
    if (last !== undefined && Math.abs(transitMs - last.transitMs) > TRANSIT_DISCONTINUITY_MS)
      this.#arrivals = [];
    this.#arrivals.push({ arrivalMs, transitMs });
    const horizon = arrivalMs - this.#jitterWindowMs;
    let drop = 0;
    while (drop < this.#arrivals.length - 1 && this.#arrivals[drop].arrivalMs < horizon) drop++;
    if (drop > 0) this.#arrivals.splice(0, drop);
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const a of this.#arrivals) {
      if (a.transitMs < min) min = a.transitMs;
      if (a.transitMs > max) max = a.transitMs;
    }
    this.#jitterMs = max - min;
  }

  /**
   * Audio that will be output before the newest buffered packet, in samples: the buffered packets plus
   * the concealment their holes will get (a hole longer than maxConcealFrames is skipped past that).
   */
  #depthSamples(): number {
    if (this.#buffer.length === 0) return 0;
    let sum = 0;
    let expected = this.#state === "playing" && this.#reorder ? this.#nextSeq : this.#buffer[0].ext;
    for (const e of this.#buffer) {
      if (this.#reorder && e.ext > expected)
        sum += Math.min(e.ext - expected, this.#maxConceal) * this.#nominalSamples;
      sum += e.samples;
      expected = e.ext + 1;
    }
    return sum;
  }

  #enforceCap(): void {
    while (this.#depthSamples() > this.#capSamples) {
      const head = this.#buffer[0];
      if (this.#state === "playing" && this.#nextSeq < head.ext) {
        // The excess is a hole in front: jumping over it costs no audio.
        this.#skipTo(head);
        continue;
      }
      this.#buffer.shift();
      this.#overflowDrops++;
      this.#passed(head);
    }
  }

  /** Moves the output boundary past `entry` without playing it. */
  #passed(entry: Entry<P>): void {
    this.#nextSeq = entry.ext + 1;
    this.#playTs = entry.extTs + entry.samples;
  }

  #skipTo(head: Entry<P>): void {
    this.#skipped += head.ext - this.#nextSeq;
    this.#nextSeq = head.ext;
    this.#playTs = head.extTs;
  }

  // ---- pop helpers --------------------------------------------------------------------------------

  #startPlaying(depthMs: number): void {
    const head = this.#buffer[0];
    // Resuming after an underrun: sequence numbers between the last concealed slot and the new head were
    // neither played nor concealed.
    if (head.ext > this.#nextSeq) this.#skipped += head.ext - this.#nextSeq;
    this.#state = "playing";
    this.#nextSeq = head.ext;
    this.#playTs = head.extTs;
    this.#credit = 0;
    this.#consecutiveConcealed = 0;
    this.#scheduledDelayMs = depthMs;
    this.#trimTicks = 0;
    this.#trimMinDepth = Number.POSITIVE_INFINITY;
  }

  #trimCheck(): void {
    const depth = this.#depthSamples();
    if (depth < this.#trimMinDepth) this.#trimMinDepth = depth;
    if (++this.#trimTicks < TRIM_WINDOW_TICKS) return;
    const excessMs = this.#trimMinDepth / SAMPLES_PER_MS - this.targetMs;
    this.#trimTicks = 0;
    this.#trimMinDepth = Number.POSITIVE_INFINITY;
    const head = this.#buffer[0];
    if (excessMs >= 2 * FRAME_MS && head !== undefined && head.ext === this.#nextSeq) {
      this.#buffer.shift();
      this.#trimmed++;
      this.#passed(head);
      this.#scheduledDelayMs = Math.max(0, this.#scheduledDelayMs - head.samples / SAMPLES_PER_MS);
    }
  }

  #emit(head: Entry<P>): PopResult<P> {
    this.#buffer.shift();
    this.#played++;
    this.#lastPlayedSeq = head.ext;
    this.#playedRing[head.ext % PLAYED_RING] = head.ext;
    this.#passed(head);
    this.#credit -= head.samples;
    this.#nominalSamples = head.samples;
    this.#consecutiveConcealed = 0;
    return { kind: "packet", packet: head.packet };
  }

  #lost(samples: number, next: P | undefined): PopResult<P> {
    const result: PopResult<P> = {
      kind: "lost",
      sequenceNumber: this.#nextSeq % SEQ_MOD,
      timestamp: this.#playTs % TS_MOD,
      samples,
    };
    if (next !== undefined) result.next = next;
    this.#concealed++;
    this.#consecutiveConcealed++;
    this.#nextSeq++;
    this.#playTs += samples;
    this.#credit -= samples;
    return result;
  }

  #playNext(): PopResult<P> {
    const head = this.#buffer[0];
    // A packet accepted behind the boundary (see #pushOrdered): the losses reported for it were
    // speculative, so playout resumes from it.
    if (head !== undefined && head.ext < this.#nextSeq) this.#nextSeq = head.ext;

    if (head !== undefined && head.ext > this.#nextSeq && this.#consecutiveConcealed >= this.#maxConceal) {
      // A long hole: more concealment would be invented audio; play what we have.
      this.#skipTo(head);
    }

    if (head !== undefined && head.ext === this.#nextSeq) {
      const gap = head.extTs - this.#playTs;
      if (gap < 0 || gap > this.#capSamples) {
        // Timestamp discontinuity with continuous sequence numbers: follow the packet's clock.
        this.#playTs = head.extTs;
      } else if (gap >= FRAME_SAMPLES) {
        // Silence the sender did not transmit (DTX): keep its timing, conceal nothing.
        this.#playTs += FRAME_SAMPLES;
        this.#credit -= FRAME_SAMPLES;
        this.#consecutiveConcealed = 0;
        return { kind: "empty", reason: "gap" };
      }
      return this.#emit(head);
    }

    if (head !== undefined) {
      // Confirmed loss: something later is here.
      const missing = head.ext - this.#nextSeq;
      const perPacket = (head.extTs - this.#playTs) / missing;
      let samples = Math.round(perPacket / SAMPLE_GRANULE) * SAMPLE_GRANULE;
      if (!(samples >= SAMPLE_GRANULE && samples <= MAX_PACKET_SAMPLES)) samples = this.#nominalSamples;
      return this.#lost(samples, missing === 1 ? head.packet : undefined);
    }

    // Starving: nothing buffered at all.
    if (this.#scheduledDelayMs + TOLERANCE_MS < this.targetMs) {
      this.#scheduledDelayMs += FRAME_MS;
      this.#holds++;
      this.#credit = 0;
      return { kind: "empty", reason: "hold" };
    }
    if (this.#consecutiveConcealed >= this.#maxConceal) {
      this.#state = "underrun";
      this.#underruns++;
      this.#credit = 0;
      return { kind: "empty", reason: "underrun" };
    }
    return this.#lost(this.#nominalSamples, undefined);
  }

  #playPassThrough(): PopResult<P> {
    for (;;) {
      const head = this.#buffer.shift();
      if (head === undefined) {
        this.#credit = 0;
        return { kind: "empty", reason: "underrun" };
      }
      if (head.ext <= this.#lastPlayedSeq) {
        this.#late++;
        continue;
      }
      this.#played++;
      this.#lastPlayedSeq = head.ext;
      this.#playedRing[head.ext % PLAYED_RING] = head.ext;
      this.#credit -= head.samples;
      return { kind: "packet", packet: head.packet };
    }
  }
}
