// OpusRtpPacketizer: RTP framing for the ingest track's own Opus stream (RFC 3550, RFC 7587). Pure state:
// sequence and timestamp are advanced by packetize() alone, never from a clock — the scheduler's slot
// count is the clock, and a slot that sends a packet (audio or silence) advances both by one frame.
//
// Random initial sequence and timestamp (RFC 3550 §5.1) come from node:crypto, as the RFC's security
// section asks for unpredictable starting values; tests pass them explicitly.

import { randomInt } from "node:crypto";
import { RtpHeader, RtpPacket } from "werift";
import { RTP_TICKS_PER_FRAME } from "./audio-format.ts";

export interface OpusRtpPacketizerOptions {
  ssrc: number;
  /** Default 111, the payload type Patchbay (and Cloudflare) negotiate for opus/48000/2. */
  payloadType?: number;
  /** 16-bit; default random. */
  initialSequence?: number;
  /** 32-bit; default random. */
  initialTimestamp?: number;
  /** RTP clock ticks per packet. Default 960 (20 ms at 48 kHz). */
  ticksPerPacket?: number;
}

export interface PacketizeOptions {
  /** First packet of a talk-spurt (after silence or at the start), RFC 3551 §4.1. */
  marker: boolean;
}

function checkUint(name: string, value: number, bits: 7 | 16 | 32): number {
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer in [0, ${max}], got ${value}`);
  }
  return value;
}

export class OpusRtpPacketizer {
  readonly ssrc: number;
  readonly payloadType: number;
  readonly ticksPerPacket: number;
  #sequence: number;
  #timestamp: number;
  #packets = 0;

  constructor(options: OpusRtpPacketizerOptions) {
    this.ssrc = checkUint("ssrc", options.ssrc, 32);
    this.payloadType = checkUint("payloadType", options.payloadType ?? 111, 7);
    this.ticksPerPacket = checkUint("ticksPerPacket", options.ticksPerPacket ?? RTP_TICKS_PER_FRAME, 32);
    this.#sequence = checkUint("initialSequence", options.initialSequence ?? randomInt(0, 0x1_0000), 16);
    this.#timestamp = checkUint(
      "initialTimestamp",
      options.initialTimestamp ?? randomInt(0, 0x1_0000_0000),
      32,
    );
  }

  /** Sequence number the next packet will carry. */
  get nextSequence(): number {
    return this.#sequence;
  }

  /** RTP timestamp the next packet will carry. */
  get nextTimestamp(): number {
    return this.#timestamp;
  }

  get packetsCreated(): number {
    return this.#packets;
  }

  /**
   * Wraps one 20 ms Opus packet. The payload is referenced, not copied; pass a buffer nobody will mutate
   * (OpusEncoder returns fresh ones).
   */
  packetize(opusPayload: Uint8Array, options: PacketizeOptions): RtpPacket {
    const header = new RtpHeader({
      payloadType: this.payloadType,
      sequenceNumber: this.#sequence,
      timestamp: this.#timestamp,
      ssrc: this.ssrc,
      marker: options.marker,
    });
    const payload = Buffer.from(opusPayload.buffer, opusPayload.byteOffset, opusPayload.byteLength);
    this.#sequence = (this.#sequence + 1) & 0xffff;
    this.#timestamp = (this.#timestamp + this.ticksPerPacket) >>> 0;
    this.#packets++;
    return new RtpPacket(header, payload);
  }

  /**
   * Advances the timestamp over `frames` slots that send no packet (e.g. slots a scheduler skipped), so
   * the timeline stays true without inventing lost sequence numbers.
   */
  skipFrames(frames: number): void {
    if (!Number.isInteger(frames) || frames < 0)
      throw new RangeError(`frames must be a non-negative integer`);
    this.#timestamp = (this.#timestamp + ((frames * this.ticksPerPacket) % 0x1_0000_0000)) >>> 0;
  }
}
