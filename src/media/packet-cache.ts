import type { RtpPacket } from "./rtp.ts";

/**
 * Recent packets of one track by sequence number, for answering NACKs. One cache per published track
 * (not per subscriber): subscribers map their own sequence numbers back to the source's.
 */
export class PacketCache {
  private readonly slots: (RtpPacket | undefined)[];
  constructor(readonly size = 512) {
    this.slots = new Array(size);
  }

  put(packet: RtpPacket): void {
    this.slots[packet.header.sequenceNumber % this.size] = packet;
  }

  get(sequenceNumber: number): RtpPacket | undefined {
    const p = this.slots[sequenceNumber % this.size];
    return p && p.header.sequenceNumber === sequenceNumber ? p : undefined;
  }

  clear(): void {
    this.slots.fill(undefined);
  }
}
