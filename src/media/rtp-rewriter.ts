import { seqAdd, tsAdd } from "./rtp.ts";

/**
 * Per-subscriber sequence/timestamp rewriting. Each subscriber gets its own random starting point
 * (so SSRC + sequence space look like a fresh stream to the receiver) and a fixed offset from the
 * source; the inverse mapping answers NACKs from the track's cache.
 */
export class RtpRewriter {
  private seqOffset: number | undefined;
  private tsOffset = 0;
  constructor(
    private readonly firstSeq = Math.floor(Math.random() * 0x8000),
    private readonly firstTs = Math.floor(Math.random() * 0x7fffffff),
  ) {}

  map(sequenceNumber: number, timestamp: number): { sequenceNumber: number; timestamp: number } {
    if (this.seqOffset === undefined) {
      this.seqOffset = (this.firstSeq - sequenceNumber) & 0xffff;
      this.tsOffset = (this.firstTs - timestamp) >>> 0;
    }
    return {
      sequenceNumber: seqAdd(sequenceNumber, this.seqOffset),
      timestamp: tsAdd(timestamp, this.tsOffset),
    };
  }

  /** The source sequence number for an output one, or undefined before the first packet. */
  toSource(outputSeq: number): number | undefined {
    return this.seqOffset === undefined ? undefined : seqAdd(outputSeq, -this.seqOffset);
  }
}
