/**
 * The project's RTP packet type. werift's `RtpPacket`/`RtpHeader` are plain data classes with a fast
 * parser/serializer; using them as the packet type avoids a copy per packet at the werift boundary.
 * Convention across the whole code base: a packet handed to a sink is shared and MUST NOT be mutated.
 */
export { RtpHeader, RtpPacket } from "werift";

/** 16-bit RTP sequence arithmetic. */
export const seqAdd = (a: number, b: number): number => (a + b) & 0xffff;
/** Signed distance a - b in the 16-bit circle, in [-32768, 32767]. */
export const seqDiff = (a: number, b: number): number => ((((a - b) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
export const tsAdd = (a: number, b: number): number => (a + b) >>> 0;
