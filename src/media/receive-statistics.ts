// ReceiveStatistics: the receiver-report side of one inbound RTP stream (RFC 3550 §6.4.1, Appendix A.1,
// A.3, A.8). Sans-IO: arrival and report times are arguments; nothing here reads a clock.
//
// Deliberate differences from the RFC's reference code, and why:
// - No probation (A.1's MIN_SEQUENTIAL): the stream's SSRC comes from signalling, so the first packet is
//   trusted instead of waiting for a run of sequential packets before counting anything.
// - Duplicates are recognised (within the reorder window) and not counted as received. A.1 counts them,
//   which lets a NACK retransmission that crosses a late original hide a real loss elsewhere in the
//   same interval; the publisher's loss-based bandwidth estimate would then be too optimistic.
// - A reordered packet older than the first one received moves the base back, so it is counted once and
//   expected/received stay consistent (cumulative loss never goes negative from it).
// - Jitter uses A.8's integer variant (Q4 fixed point): exact, reproducible values with no float drift.
//   A transit difference of 5 s or more is a timestamp discontinuity of the sender (source switch),
//   not network jitter, and is skipped, as libwebrtc does; one such sample would dominate the estimate.

import { seqDiff } from "./rtp.ts";

const SEQ_MOD = 0x10000;
const MAX_PACKETS_LOST = 0x7fffff;
const MIN_PACKETS_LOST = -0x800000;

export interface ReceiveStatisticsOptions {
  /** A forward jump of fewer than this many sequence numbers is a gap; larger is a jump. RFC A.1: 3000. */
  maxDropout?: number;
  /** A packet fewer than this many sequence numbers behind the highest is reordered. RFC A.1: 100. */
  maxMisorder?: number;
}

/** One RFC 3550 §6.4.1 report block, values ready to serialise. */
export interface ReportBlock {
  ssrc: number;
  /** Fraction of packets lost since the previous report block, in 1/256 (0..255). */
  fractionLost: number;
  /** Cumulative packets lost, clamped to the 24-bit signed range. */
  packetsLost: number;
  /** Extended highest sequence number received: cycles × 65536 + highest sequence, as uint32. */
  highestSequence: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last sender report, 0 if none was received. */
  lsr: number;
  /** Delay since that sender report was received, in 1/65536 s; 0 if none. */
  dlsr: number;
}

export interface ReceiveStatisticsCounters {
  /** Every packet passed to onPacket, whatever became of it. */
  packets: number;
  /** Sum of the byte sizes passed to onPacket. */
  bytes: number;
  duplicates: number;
  /** Packets accepted out of sequence order (late but within the reorder window). */
  reordered: number;
  /** Packets dropped as an unconfirmed sequence jump (A.1's bad_seq). */
  discarded: number;
  /** Times two consecutive packets after a jump restarted the sequence accounting. */
  restarts: number;
}

export class ReceiveStatistics {
  readonly ssrc: number;
  readonly maxDropout: number;
  readonly maxMisorder: number;
  #started = false;
  // Extended sequence numbers (cycles already added) are plain numbers; they never get near 2^53.
  #maxExt = 0;
  #baseExt = 0;
  #badSeq: number | undefined;
  #received = 0;
  #expectedPrior = 0;
  #receivedPrior = 0;
  // Which of the most recent extended sequence numbers arrived, indexed by ext mod window size. Only
  // consulted for packets within maxMisorder of the highest, so older slots may alias freely.
  #seen: Uint8Array;
  #jitterQ4 = 0;
  #hasTransit = false;
  #lastArrivalMs = 0;
  #lastTimestamp = 0;
  #lastSrNtp = 0;
  #lastSrArrivalMs: number | undefined;
  #counters: ReceiveStatisticsCounters = {
    packets: 0,
    bytes: 0,
    duplicates: 0,
    reordered: 0,
    discarded: 0,
    restarts: 0,
  };

  constructor(ssrc: number, options: ReceiveStatisticsOptions = {}) {
    const maxDropout = options.maxDropout ?? 3000;
    const maxMisorder = options.maxMisorder ?? 100;
    if (!Number.isInteger(ssrc) || ssrc < 0 || ssrc > 0xffffffff) {
      throw new RangeError(`ssrc must be a uint32, got ${ssrc}`);
    }
    if (!Number.isInteger(maxMisorder) || maxMisorder < 1 || maxMisorder > 0x8000) {
      throw new RangeError(`maxMisorder must be an integer in [1, 32768], got ${maxMisorder}`);
    }
    if (!Number.isInteger(maxDropout) || maxDropout < 1 || maxDropout + maxMisorder > SEQ_MOD) {
      throw new RangeError(`maxDropout must be an integer in [1, 65536 - maxMisorder], got ${maxDropout}`);
    }
    this.ssrc = ssrc;
    this.maxDropout = maxDropout;
    this.maxMisorder = maxMisorder;
    this.#seen = new Uint8Array(maxMisorder);
  }

  get counters(): Readonly<ReceiveStatisticsCounters> {
    return { ...this.#counters };
  }

  /**
   * Accounts one received RTP packet. `arrivalMs` must come from one monotonic clock; `clockRate` is the
   * payload's RTP clock in Hz; `bytes` only feeds the byte counter.
   */
  onPacket(seq: number, rtpTimestamp: number, arrivalMs: number, clockRate: number, bytes = 0): void {
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) {
      throw new RangeError(`sequence number must be a uint16, got ${seq}`);
    }
    if (!(clockRate > 0)) throw new RangeError(`clockRate must be > 0, got ${clockRate}`);
    this.#counters.packets++;
    this.#counters.bytes += bytes;

    if (!this.#started) {
      this.#init(seq);
    } else {
      const maxSeq = this.#maxExt % SEQ_MOD;
      const udelta = (seq - maxSeq) & 0xffff;
      if (udelta === 0) {
        this.#counters.duplicates++;
        return;
      }
      if (udelta < this.maxDropout) {
        this.#advanceTo(this.#maxExt + udelta);
        this.#badSeq = undefined;
      } else if (udelta <= SEQ_MOD - this.maxMisorder) {
        // A.1: a large jump is only believed when the next packet continues from it; a lone stray
        // packet must not wreck the accounting of the real stream.
        if (seq !== this.#badSeq) {
          this.#badSeq = (seq + 1) & 0xffff;
          this.#counters.discarded++;
          return;
        }
        this.#init(seq);
        this.#counters.restarts++;
      } else {
        const ext = this.#maxExt + seqDiff(seq, maxSeq);
        const slot = this.#slot(ext);
        if (this.#seen[slot] === 1) {
          this.#counters.duplicates++;
          return;
        }
        this.#seen[slot] = 1;
        if (ext < this.#baseExt) this.#baseExt = ext;
        this.#counters.reordered++;
      }
    }
    this.#received++;
    this.#updateJitter(rtpTimestamp, arrivalMs, clockRate);
  }

  /** Records a sender report from this source: the middle 32 bits of its NTP timestamp and its arrival. */
  onSenderReport(ntpMiddle32: number, arrivalMs: number): void {
    this.#lastSrNtp = ntpMiddle32 >>> 0;
    this.#lastSrArrivalMs = arrivalMs;
  }

  /**
   * The report block for an RTCP SR/RR sent at `nowMs`, or undefined before the first packet (a block
   * then would claim a highest sequence number that was never received). Each call closes the interval
   * that `fractionLost` covers.
   */
  reportBlock(nowMs: number): ReportBlock | undefined {
    if (!this.#started) return undefined;
    const expected = this.#maxExt - this.#baseExt + 1;
    const lost = expected - this.#received;
    const expectedInterval = expected - this.#expectedPrior;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0
        ? 0
        : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    let dlsr = 0;
    if (this.#lastSrArrivalMs !== undefined) {
      const units = Math.round(((nowMs - this.#lastSrArrivalMs) * 65536) / 1000);
      dlsr = Math.min(0xffffffff, Math.max(0, units));
    }
    return {
      ssrc: this.ssrc,
      fractionLost,
      packetsLost: Math.max(MIN_PACKETS_LOST, Math.min(MAX_PACKETS_LOST, lost)),
      highestSequence: this.#maxExt >>> 0,
      jitter: Math.floor(this.#jitterQ4 / 16),
      lsr: this.#lastSrArrivalMs === undefined ? 0 : this.#lastSrNtp,
      dlsr,
    };
  }

  #init(seq: number): void {
    this.#started = true;
    this.#maxExt = seq;
    this.#baseExt = seq;
    this.#badSeq = undefined;
    this.#received = 0;
    this.#expectedPrior = 0;
    this.#receivedPrior = 0;
    this.#seen.fill(0);
    this.#seen[this.#slot(seq)] = 1;
    // A restart usually comes with a timestamp discontinuity: the first transit of the new run must not
    // be compared with the old one. The jitter estimate itself carries over, as in A.1's init_seq.
    this.#hasTransit = false;
  }

  #advanceTo(ext: number): void {
    const size = this.#seen.length;
    if (ext - this.#maxExt >= size) {
      this.#seen.fill(0);
    } else {
      for (let e = this.#maxExt + 1; e < ext; e++) this.#seen[this.#slot(e)] = 0;
    }
    this.#seen[this.#slot(ext)] = 1;
    this.#maxExt = ext;
  }

  #slot(ext: number): number {
    const size = this.#seen.length;
    return ((ext % size) + size) % size;
  }

  #updateJitter(rtpTimestamp: number, arrivalMs: number, clockRate: number): void {
    if (this.#hasTransit) {
      // D(i-1, i) of §6.4.1 from differences, so neither clock's absolute value (nor the 32-bit
      // timestamp wrap) matters.
      const arrivalDelta = Math.round(((arrivalMs - this.#lastArrivalMs) * clockRate) / 1000);
      const timestampDelta = (rtpTimestamp - this.#lastTimestamp) | 0;
      const d = Math.abs(arrivalDelta - timestampDelta);
      if (d < 5 * clockRate) this.#jitterQ4 += d - ((this.#jitterQ4 + 8) >> 4);
    }
    this.#hasTransit = true;
    this.#lastArrivalMs = arrivalMs;
    this.#lastTimestamp = rtpTimestamp >>> 0;
  }
}
