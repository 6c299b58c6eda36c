// The binary WebSocket message codec (SPEC §2.2): one proto3 `Packet` per message, generated from
// proto/packet.proto into src/gen (regenerate with `npx buf generate`).
//
// Decoding runs in two steps:
// 1. A wire scan walks every tag once. It validates the framing (varints, lengths, wire types, field
//    number 0) so that errors name the byte offset, and it checks that the three known fields carry the
//    wire type the schema expects. @bufbuild/protobuf does not check the latter: it reads field 1 with
//    whatever reader the schema names, so a fixed32 or length-delimited field 1 would be silently
//    misparsed into garbage values. Google's parsers keep such a field as "unknown"; we reject the whole
//    message instead, because a peer that sends `payload` as a varint has a bug that a silently empty
//    payload would hide.
// 2. `fromBinary` with `readUnknownFields: false`, so skipped unknown fields are not retained per message.
//
// Aliasing: `fromBinary` returns `payload` as a `subarray` of the input (checked against
// @bufbuild/protobuf 2.17: `BinaryReader.bytes()` returns `buf.subarray(...)`), so no copy is made. The
// decoded payload is only valid as long as the caller does not reuse the input buffer; `ws` hands out a
// fresh Buffer per message, so keeping the view is safe there. Copy (`payload.slice()`) before
// queueing bytes whose backing buffer may be recycled.
//
// Encoding: proto3 omits zero values, so `sequenceNumber: 0`, `timestamp: 0` and an empty payload add no
// bytes; an all-default packet serializes to zero bytes, which is also what an "end of segment" message
// looks like.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PacketSchema } from "../../gen/packet_pb.ts";

export interface WirePacket {
  sequenceNumber: number;
  timestamp: number;
  payload: Uint8Array;
}

export type DecodeResult = { ok: true; packet: WirePacket } | { ok: false; error: string };

/** SPEC §2.5: largest serialized message accepted by default. */
export const DEFAULT_MAX_MESSAGE_BYTES = 32_768;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;

const KNOWN_FIELDS: ReadonlyMap<number, { name: string; wireType: number }> = new Map([
  [1, { name: "sequenceNumber", wireType: WIRE_VARINT }],
  [2, { name: "timestamp", wireType: WIRE_VARINT }],
  [5, { name: "payload", wireType: WIRE_LEN }],
]);

// Groups are deprecated but legal on the wire; nesting is bounded so hostile input cannot recurse deeply.
const MAX_GROUP_DEPTH = 32;

class WireError extends Error {}

/**
 * Reads a varint at `pos` and returns the position after it. Values are not needed by the scan, only
 * their extent; protobuf varints are at most 10 bytes.
 */
function skipVarint(bytes: Uint8Array, pos: number, what: string): number {
  const start = pos;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new WireError(`truncated ${what} varint at offset ${start}`);
    if ((bytes[pos++] & 0x80) === 0) return pos;
  }
  throw new WireError(`${what} varint longer than 10 bytes at offset ${start}`);
}

/** Reads a varint that must fit in 32 bits (tags, lengths). Returns [value, nextPos]. */
function readVarint32(bytes: Uint8Array, pos: number, what: string): [number, number] {
  const start = pos;
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (pos >= bytes.length) throw new WireError(`truncated ${what} varint at offset ${start}`);
    const b = bytes[pos++];
    if (shift === 28 && b > 0x0f) throw new WireError(`${what} at offset ${start} does not fit in 32 bits`);
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
  }
  throw new WireError(`${what} at offset ${start} does not fit in 32 bits`);
}

/**
 * Walks the fields from `pos` to the end (or to the END_GROUP of `group`) and returns where it stopped.
 */
function scanFields(bytes: Uint8Array, pos: number, group: number, depth: number): number {
  while (pos < bytes.length) {
    const tagAt = pos;
    let tag: number;
    [tag, pos] = readVarint32(bytes, pos, "tag");
    const fieldNo = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (fieldNo === 0) throw new WireError(`invalid field number 0 at offset ${tagAt}`);
    if (wireType > 5)
      throw new WireError(`invalid wire type ${wireType} for field ${fieldNo} at offset ${tagAt}`);
    if (wireType === WIRE_END_GROUP) {
      if (fieldNo !== group)
        throw new WireError(`unexpected end-group tag for field ${fieldNo} at offset ${tagAt}`);
      return pos;
    }
    if (group === 0) {
      const known = KNOWN_FIELDS.get(fieldNo);
      if (known !== undefined && known.wireType !== wireType) {
        throw new WireError(
          `field ${fieldNo} (${known.name}) has wire type ${wireType}, expected ${known.wireType} (offset ${tagAt})`,
        );
      }
    }
    switch (wireType) {
      case WIRE_VARINT:
        pos = skipVarint(bytes, pos, `field ${fieldNo}`);
        break;
      case WIRE_FIXED64:
      case WIRE_FIXED32: {
        const size = wireType === WIRE_FIXED64 ? 8 : 4;
        if (pos + size > bytes.length)
          throw new WireError(`truncated fixed${size * 8} field ${fieldNo} at offset ${tagAt}`);
        pos += size;
        break;
      }
      case WIRE_LEN: {
        let len: number;
        [len, pos] = readVarint32(bytes, pos, `field ${fieldNo} length`);
        if (pos + len > bytes.length) {
          throw new WireError(
            `field ${fieldNo} length ${len} runs past the end of the message (offset ${tagAt}, ${bytes.length} bytes)`,
          );
        }
        pos += len;
        break;
      }
      case WIRE_START_GROUP:
        if (depth >= MAX_GROUP_DEPTH) throw new WireError(`groups nested deeper than ${MAX_GROUP_DEPTH}`);
        pos = scanFields(bytes, pos, fieldNo, depth + 1);
        break;
    }
  }
  if (group !== 0) throw new WireError(`group for field ${group} is not closed`);
  return pos;
}

/**
 * Decodes one binary WebSocket message. Never throws: malformed input yields `{ ok: false, error }`.
 * Accepts any field order, repeated fields (last one wins, as proto3 requires), missing fields (zero /
 * empty), unknown fields of every wire type, a zero-length message and an empty payload. The returned
 * payload aliases `bytes` (see the note at the top of the file).
 */
export function decodePacket(bytes: Uint8Array): DecodeResult {
  try {
    scanFields(bytes, 0, 0, 0);
    const message = fromBinary(PacketSchema, bytes, { readUnknownFields: false });
    return {
      ok: true,
      packet: {
        sequenceNumber: message.sequenceNumber,
        timestamp: message.timestamp,
        payload: message.payload,
      },
    };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { ok: false, error: `malformed Packet (${bytes.length} bytes): ${reason}` };
  }
}

function assertUint32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`${name} must be an integer in [0, 2^32), got ${value}`);
  }
}

/**
 * Serializes one packet. Throws RangeError for a sequence number or timestamp outside uint32: that is a
 * caller bug (wrap counters with `>>> 0`), not a wire condition.
 */
export function encodePacket(packet: WirePacket): Uint8Array {
  assertUint32("sequenceNumber", packet.sequenceNumber);
  assertUint32("timestamp", packet.timestamp);
  return toBinary(
    PacketSchema,
    create(PacketSchema, {
      sequenceNumber: packet.sequenceNumber,
      timestamp: packet.timestamp,
      payload: packet.payload,
    }),
  );
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/**
 * Worst-case bytes a serialized Packet adds around a payload of `payloadBytes` bytes: both uint32 fields
 * at their largest (tag + 5-byte varint each), plus the payload's tag and length prefix. The exact size is
 * smaller when the sequence number or timestamp are small; chunking must plan for the worst case.
 */
export function packetOverhead(payloadBytes: number): number {
  if (!Number.isInteger(payloadBytes) || payloadBytes < 0) {
    throw new RangeError(`payloadBytes must be a non-negative integer, got ${payloadBytes}`);
  }
  const headerFields = 2 * (1 + 5);
  return payloadBytes === 0 ? headerFields : headerFields + 1 + varintSize(payloadBytes);
}

/**
 * Largest payload whose serialized Packet never exceeds `limit` bytes, whatever the sequence number and
 * timestamp (32 752 for the default 32 768). Returns 0 when not even a one-byte payload fits.
 */
export function maxPayloadForMessageSize(limit = DEFAULT_MAX_MESSAGE_BYTES): number {
  if (!Number.isInteger(limit) || limit < 0)
    throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
  // The overhead grows by one byte only at varint boundaries, so starting from the largest overhead the
  // limit allows and stepping down converges in at most a few iterations.
  let payload = Math.max(0, limit - packetOverhead(Math.max(1, limit)));
  while (payload > 0 && payload + packetOverhead(payload) > limit) payload--;
  while (payload + 1 + packetOverhead(payload + 1) <= limit) payload++;
  return payload;
}
