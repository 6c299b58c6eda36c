// Sender side of RTCP for one outbound stream (RFC 3550 §6.4.1, §6.2): what goes into a sender report,
// when the next report is due, and the round trip derived from a receiver's report block. Sans-IO: times
// are arguments, the random source is injectable.
//
// Time base: `nowMs` values are Unix epoch milliseconds (Date.now(), or performance.timeOrigin +
// performance.now() for sub-millisecond precision), because the SR's NTP timestamp is wall-clock time
// and receivers use it to line audio and video up against each other.

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** The 64-bit NTP timestamp (32.32 fixed point seconds) of a Unix time in milliseconds. */
export function ntpFromUnixMs(unixMs: number): bigint {
  const seconds = Math.floor(unixMs / 1000);
  // Split before scaling: unixMs × 2^32 would exceed 2^53 and lose the low bits.
  const fraction = Math.floor(((unixMs - seconds * 1000) * 0x1_0000_0000) / 1000);
  return (BigInt(seconds + NTP_UNIX_OFFSET_S) << 32n) | BigInt(fraction);
}

/** The middle 32 bits of a 64-bit NTP timestamp: the LSR/DLSR "compact NTP" form (16.16 seconds). */
export function ntpMiddle32(ntp: bigint): number {
  return Number((ntp >> 16n) & 0xffff_ffffn);
}

/**
 * Round trip time in ms from a report block about our stream (RFC 3550 §6.4.1: A − LSR − DLSR), or
 * undefined when the receiver has not seen a sender report yet (LSR 0). A negative result (clock steps,
 * a receiver that lies about DLSR) is reported as 0 rather than as a huge unsigned value.
 */
export function roundTripMs(nowMs: number, lsr: number, dlsr: number): number | undefined {
  if (lsr === 0) return undefined;
  const units = (ntpMiddle32(ntpFromUnixMs(nowMs)) - lsr - dlsr) | 0;
  return units <= 0 ? 0 : (units * 1000) / 65536;
}

export interface SenderReportInfo {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

export class SenderReportState {
  #packetCount = 0;
  #octetCount = 0;
  #hasPacket = false;
  // The newest RTP timestamp sent and when its first packet left. The first packet of a frame is the
  // best available stand-in for its capture time: the later packets of a video frame are paced out over
  // tens of ms, and anchoring on them would make every SR's timestamp lag the wall clock by that much,
  // which a receiver sees as A/V sync error.
  #anchorTimestamp = 0;
  #anchorMs = 0;

  get packetCount(): number {
    return this.#packetCount;
  }

  get octetCount(): number {
    return this.#octetCount;
  }

  /**
   * Call for every RTP packet sent on this SSRC (retransmissions too when they reuse the SSRC: RFC 3550
   * counts packets transmitted). `payloadBytes` excludes header and padding, per the SR's octet count.
   */
  onPacketSent(rtpTimestamp: number, payloadBytes: number, nowMs: number): void {
    const ts = rtpTimestamp >>> 0;
    // The counts wrap modulo 2^32 (RFC 3550 §6.4.1).
    this.#packetCount = (this.#packetCount + 1) >>> 0;
    this.#octetCount = (this.#octetCount + payloadBytes) >>> 0;
    // Only a newer timestamp moves the anchor: a retransmission carries an old one, and re-anchoring it
    // at the current time would pull the SR's timestamp back by the retransmission delay.
    if (!this.#hasPacket || ((ts - this.#anchorTimestamp) | 0) > 0) {
      this.#anchorTimestamp = ts;
      this.#anchorMs = nowMs;
    }
    this.#hasPacket = true;
  }

  /** The sender-info fields of an SR sent at `nowMs`, or undefined before the first packet (nothing to map). */
  report(nowMs: number, clockRate: number): SenderReportInfo | undefined {
    if (!this.#hasPacket) return undefined;
    if (!(clockRate > 0)) throw new RangeError(`clockRate must be > 0, got ${clockRate}`);
    const elapsed = Math.round(((nowMs - this.#anchorMs) * clockRate) / 1000);
    return {
      ntpTimestamp: ntpFromUnixMs(nowMs),
      rtpTimestamp: (this.#anchorTimestamp + elapsed) >>> 0,
      packetCount: this.#packetCount,
      octetCount: this.#octetCount,
    };
  }
}

export interface RtcpIntervalsOptions {
  /** Selects libwebrtc's default interval: 5000 ms for audio, 1000 ms for video. Default "video". */
  media?: "audio" | "video";
  /** Mean interval between reports; overrides the media default. */
  intervalMs?: number;
  /** Uniform in [0, 1), like Math.random (the default). */
  random?: () => number;
}

/**
 * When the next regular RTCP report is due. Each interval is randomised in [0.5, 1.5] × the mean
 * (RFC 3550 §6.3.1) so that streams started together do not report in lockstep; the first one is halved
 * (§6.2) so a new receiver gets a report, and with it A/V sync, quickly. RFC 3550's bandwidth-scaled
 * interval is deliberately not computed: WebRTC sessions have a handful of members and libwebrtc uses
 * fixed intervals as well.
 */
export class RtcpIntervals {
  readonly intervalMs: number;
  readonly #random: () => number;
  #nextDueMs: number | undefined;

  constructor(options: RtcpIntervalsOptions = {}) {
    const intervalMs = options.intervalMs ?? (options.media === "audio" ? 5000 : 1000);
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
      throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    }
    this.intervalMs = intervalMs;
    this.#random = options.random ?? Math.random;
  }

  /** When the next report is due, or undefined before the first due() call. */
  get nextDueMs(): number | undefined {
    return this.#nextDueMs;
  }

  /**
   * True when a report should be sent now; the next one is then scheduled from `nowMs`, so a scheduler
   * that woke late does not fire a catch-up burst. The first call starts the schedule and returns false.
   */
  due(nowMs: number): boolean {
    if (this.#nextDueMs === undefined) {
      this.#nextDueMs = nowMs + this.#randomInterval() / 2;
      return false;
    }
    if (nowMs < this.#nextDueMs) return false;
    this.#nextDueMs = nowMs + this.#randomInterval();
    return true;
  }

  #randomInterval(): number {
    const r = Math.min(1, Math.max(0, this.#random()));
    return this.intervalMs * (0.5 + r);
  }
}
