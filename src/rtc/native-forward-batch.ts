import type { RtpPacket } from "../media/rtp.ts";
import type { NativePeer } from "../native/addon.ts";

const FIELDS = 5;

/**
 * The forwarding instructions gathered while one native receive batch is handled. The control plane still
 * decides everything per subscriber (layer, sequence number, timestamp: ForwardingSendStream and its munger);
 * what it would have serialised and sent packet by packet becomes five numbers here, and the addon rewrites,
 * encrypts and sends them all in one call at the end of the batch (NativePeer.forward). Only the packet being
 * delivered from the batch right now can go this way: a cached packet (NACK), an ingest packet or a rewritten
 * VP8 payload takes the ordinary path.
 */
export class NativeForwardBatch {
  private source: NativePeer | undefined;
  private packet: RtpPacket | undefined;
  private index = 0;
  private instructions = new Uint32Array(FIELDS * 256);
  private count = 0;

  begin(source: NativePeer): void {
    this.source = source;
    this.packet = undefined;
    this.count = 0;
  }

  /** The batch entry now handed to the sinks (undefined between packets). */
  deliver(packet: RtpPacket | undefined, index: number): void {
    this.packet = packet;
    this.index = index;
  }

  /** Queues `packet` for a destination's route; false when it is not the packet being delivered. */
  push(packet: RtpPacket, destination: number, route: number, seq: number, ts: number): boolean {
    if (this.source === undefined || packet !== this.packet) return false;
    if ((this.count + 1) * FIELDS > this.instructions.length) {
      const grown = new Uint32Array(this.instructions.length * 2);
      grown.set(this.instructions);
      this.instructions = grown;
    }
    const at = this.count * FIELDS;
    const ins = this.instructions;
    ins[at] = this.index;
    ins[at + 1] = destination;
    ins[at + 2] = route;
    ins[at + 3] = seq;
    ins[at + 4] = ts;
    this.count++;
    return true;
  }

  /** Sends what was queued; the instructions refer to the batch, so this runs before onMedia returns. */
  end(): void {
    const source = this.source;
    const count = this.count;
    this.source = undefined;
    this.packet = undefined;
    this.count = 0;
    if (source && count > 0) this.sent += source.forward(this.instructions, count);
  }

  /** Packets the addon sent from forwarding instructions, since the process started. */
  sent = 0;
}

/** One per process: receive batches are handled one at a time on the event loop. */
export const nativeForwardBatch = new NativeForwardBatch();
