import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodePacket,
  encodePacket,
  maxPayloadForMessageSize,
  packetOverhead,
  type WirePacket,
} from "../../src/adapters/websocket/packet-codec.ts";
import { seededRandom } from "../helpers/signals.ts";

// Wire bytes are built by hand here, independently of the codec under test.
function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const tag = (field: number, wireType: number): number[] => varint(field * 8 + wireType);
const seqField = (v: number | bigint): number[] => [...tag(1, 0), ...varint(v)];
const tsField = (v: number | bigint): number[] => [...tag(2, 0), ...varint(v)];
const payloadField = (bytes: number[]): number[] => [...tag(5, 2), ...varint(bytes.length), ...bytes];

function decodeOk(bytes: number[] | Uint8Array): WirePacket {
  const result = decodePacket(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  assert.equal(result.ok, true, result.ok ? "" : result.error);
  if (!result.ok) throw new Error("unreachable");
  return result.packet;
}

function decodeError(bytes: number[]): string {
  const result = decodePacket(Uint8Array.from(bytes));
  assert.equal(result.ok, false, `expected ${JSON.stringify(bytes)} to be rejected`);
  if (result.ok) throw new Error("unreachable");
  return result.error;
}

describe("packet codec: round trip", () => {
  test("values survive encode → decode, including the uint32 extremes", () => {
    const random = seededRandom(1);
    const cases: WirePacket[] = [
      { sequenceNumber: 1, timestamp: 960, payload: Uint8Array.from({ length: 3840 }, (_, i) => i & 0xff) },
      { sequenceNumber: 0xffff_ffff, timestamp: 0xffff_ffff, payload: Uint8Array.of(1) },
      { sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) },
    ];
    for (let i = 0; i < 200; i++) {
      cases.push({
        sequenceNumber: Math.floor(random() * 2 ** 32),
        timestamp: Math.floor(random() * 2 ** 32),
        payload: Uint8Array.from({ length: Math.floor(random() * 5000) }, () => Math.floor(random() * 256)),
      });
    }
    for (const packet of cases) {
      const decoded = decodeOk(encodePacket(packet));
      assert.equal(decoded.sequenceNumber, packet.sequenceNumber);
      assert.equal(decoded.timestamp, packet.timestamp);
      assert.deepEqual(decoded.payload, packet.payload);
    }
  });

  test("encoding matches the proto3 wire format byte for byte", () => {
    const bytes = encodePacket({ sequenceNumber: 300, timestamp: 1, payload: Uint8Array.of(7, 8) });
    assert.deepEqual([...bytes], [...seqField(300), ...tsField(1), ...payloadField([7, 8])]);
    // proto3 omits zero values: an all-default packet is the empty message.
    assert.equal(encodePacket({ sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) }).length, 0);
  });

  test("encode rejects values outside uint32", () => {
    const payload = new Uint8Array(0);
    assert.throws(() => encodePacket({ sequenceNumber: -1, timestamp: 0, payload }), RangeError);
    assert.throws(() => encodePacket({ sequenceNumber: 2 ** 32, timestamp: 0, payload }), RangeError);
    assert.throws(() => encodePacket({ sequenceNumber: 0, timestamp: 1.5, payload }), RangeError);
    assert.throws(() => encodePacket({ sequenceNumber: 0, timestamp: Number.NaN, payload }), RangeError);
  });

  test("the decoded payload is a view of the input, not a copy", () => {
    const bytes = encodePacket({ sequenceNumber: 1, timestamp: 2, payload: Uint8Array.of(10, 20, 30) });
    const packet = decodeOk(bytes);
    assert.equal(packet.payload.buffer, bytes.buffer);
    bytes[bytes.length - 1] = 99;
    assert.equal(packet.payload[2], 99);
  });
});

describe("packet codec: tolerant decoding (SPEC §2.2)", () => {
  test("fields in reverse order", () => {
    const p = decodeOk([...payloadField([1, 2, 3]), ...tsField(123_456), ...seqField(42)]);
    assert.deepEqual(p, { sequenceNumber: 42, timestamp: 123_456, payload: Uint8Array.of(1, 2, 3) });
  });

  test("unknown fields of every wire type are skipped, before, between and after known ones", () => {
    const unknownVarint = [...tag(3, 0), ...varint(2n ** 63n)];
    const unknownFixed64 = [...tag(4, 1), 1, 2, 3, 4, 5, 6, 7, 8];
    const unknownLen = [...tag(6, 2), ...varint(4), 0xde, 0xad, 0xbe, 0xef];
    const unknownFixed32 = [...tag(7, 5), 9, 9, 9, 9];
    const unknownGroup = [...tag(8, 3), ...tag(1, 0), 5, ...tag(9, 3), ...tag(9, 4), ...tag(8, 4)];
    const highField = [...tag(536_870_911, 0), 1]; // the largest legal field number
    const p = decodeOk([
      ...unknownVarint,
      ...seqField(7),
      ...unknownFixed64,
      ...unknownLen,
      ...payloadField([5, 6]),
      ...unknownFixed32,
      ...unknownGroup,
      ...tsField(99),
      ...highField,
    ]);
    assert.deepEqual(p, { sequenceNumber: 7, timestamp: 99, payload: Uint8Array.of(5, 6) });
  });

  test("zero-length message: all fields default", () => {
    assert.deepEqual(decodeOk([]), { sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) });
  });

  test("missing fields default independently", () => {
    assert.deepEqual(decodeOk(payloadField([1])), {
      sequenceNumber: 0,
      timestamp: 0,
      payload: Uint8Array.of(1),
    });
    assert.deepEqual(decodeOk(seqField(5)), { sequenceNumber: 5, timestamp: 0, payload: new Uint8Array(0) });
  });

  test("empty payload, explicitly present", () => {
    const p = decodeOk([...seqField(3), ...payloadField([])]);
    assert.equal(p.payload.length, 0);
    assert.equal(p.sequenceNumber, 3);
  });

  test("a repeated field: the last occurrence wins", () => {
    const p = decodeOk([...seqField(1), ...payloadField([1]), ...seqField(2), ...payloadField([2, 2])]);
    assert.equal(p.sequenceNumber, 2);
    assert.deepEqual(p.payload, Uint8Array.of(2, 2));
  });

  test("a varint wider than 32 bits is truncated to uint32, as proto3 requires", () => {
    assert.equal(decodeOk(seqField(2n ** 35n + 5n)).sequenceNumber, 5);
    assert.equal(decodeOk(tsField(2n ** 64n - 1n)).timestamp, 0xffff_ffff);
  });

  test("non-minimal varints are accepted", () => {
    // 1 written in three bytes; field tag 1 written in two.
    assert.equal(decodeOk([0x88, 0x00, 0x81, 0x80, 0x00]).sequenceNumber, 1);
  });
});

describe("packet codec: malformed input", () => {
  const cases: [string, number[], RegExp][] = [
    ["truncated varint value", [...tag(1, 0), 0x80], /truncated field 1 varint/],
    ["truncated tag", [0x80], /truncated tag/],
    ["varint longer than 10 bytes", [...tag(1, 0), ...Array(10).fill(0xff), 0x01], /longer than 10 bytes/],
    ["length past the end", [...tag(5, 2), 5, 1, 2], /length 5 runs past the end/],
    ["huge length", [...tag(5, 2), 0xff, 0xff, 0xff, 0xff, 0x0f], /runs past the end/],
    ["truncated length", [...tag(5, 2), 0x80], /truncated field 5 length/],
    ["wire type 6", [...tag(1, 6), 0], /invalid wire type 6/],
    ["wire type 7", [...tag(3, 7), 0], /invalid wire type 7/],
    ["field number 0", [...tag(0, 0), 1], /field number 0/],
    ["field number 0 with length", [...tag(0, 2), 0], /field number 0/],
    ["truncated fixed64", [...tag(4, 1), 1, 2, 3], /truncated fixed64/],
    ["truncated fixed32", [...tag(4, 5), 1], /truncated fixed32/],
    ["unclosed group", [...tag(8, 3), ...tag(1, 0), 1], /not closed/],
    ["stray end-group", [...tag(8, 4)], /end-group/],
    ["mismatched end-group", [...tag(8, 3), ...tag(9, 4)], /end-group/],
    ["tag beyond 32 bits", [0xff, 0xff, 0xff, 0xff, 0x7f], /32 bits/],
    ["payload as a varint", [...tag(5, 0), 3], /field 5 \(payload\) has wire type 0, expected 2/],
    ["sequenceNumber as fixed32", [...tag(1, 5), 1, 0, 0, 0], /field 1 \(sequenceNumber\) has wire type 5/],
    ["timestamp as bytes", [...tag(2, 2), 1, 9], /field 2 \(timestamp\) has wire type 2/],
  ];
  for (const [name, bytes, message] of cases) {
    test(`${name} → ok:false with a useful message`, () => {
      const error = decodeError(bytes);
      assert.match(error, message);
      assert.match(error, /^malformed Packet \(\d+ bytes\): /);
    });
  }

  test("deeply nested groups are rejected, not recursed into", () => {
    const open: number[] = [];
    const close: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      open.push(...tag(8, 3));
      close.push(...tag(8, 4));
    }
    assert.match(decodeError([...open, ...close]), /nested deeper/);
  });

  test("fuzz: 5 000 random byte strings never throw and always give a well-typed answer", () => {
    const random = seededRandom(20_240_601);
    const valid = encodePacket({
      sequenceNumber: 123_456,
      timestamp: 987_654_321,
      payload: Uint8Array.of(1, 2, 3, 4),
    });
    let okCount = 0;
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256));
      } else {
        // Mutations of a valid message reach deeper into the parser than pure noise.
        bytes = valid.slice(0, Math.floor(random() * (valid.length + 1)));
        for (let k = 0; k < 3; k++)
          if (bytes.length > 0) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      const result = decodePacket(bytes);
      if (result.ok) {
        okCount++;
        assert.ok(
          Number.isInteger(result.packet.sequenceNumber) && result.packet.sequenceNumber >= 0,
          "Number.isInteger(result.packet.sequenceNumber) && result.packet.sequenceNumber >= 0",
        );
        assert.ok(result.packet.sequenceNumber <= 0xffff_ffff, "result.packet.sequenceNumber <= 0xffff_ffff");
        assert.ok(
          Number.isInteger(result.packet.timestamp) && result.packet.timestamp >= 0,
          "Number.isInteger(result.packet.timestamp) && result.packet.timestamp >= 0",
        );
        assert.ok(result.packet.payload instanceof Uint8Array, "result.packet.payload instanceof Uint8Array");
        assert.ok(
          result.packet.payload.length <= bytes.length,
          "result.packet.payload.length <= bytes.length",
        );
      } else {
        assert.equal(typeof result.error, "string");
        assert.ok(result.error.length > 0, "result.error.length > 0");
      }
    }
    // Both outcomes must occur, or the fuzzer is not exercising the decoder.
    assert.ok(okCount > 100 && okCount < 4900, `ok count ${okCount}`);
  });
});

describe("packet codec: sizing for the 32 768-byte message limit", () => {
  test("packetOverhead is an upper bound, reached with the largest header values", () => {
    const random = seededRandom(7);
    for (const size of [0, 1, 127, 128, 3840, 16_383, 16_384, 32_752, 100_000]) {
      const payload = new Uint8Array(size);
      const worst = encodePacket({ sequenceNumber: 0xffff_ffff, timestamp: 0xffff_ffff, payload });
      assert.equal(worst.length - size, packetOverhead(size), `size ${size}`);
      for (let i = 0; i < 20; i++) {
        const p = encodePacket({
          sequenceNumber: Math.floor(random() * 2 ** 32),
          timestamp: Math.floor(random() * 2 ** 32),
          payload,
        });
        assert.ok(p.length - size <= packetOverhead(size), "p.length - size <= packetOverhead(size)");
      }
    }
    assert.equal(packetOverhead(3840), 15);
    assert.throws(() => packetOverhead(-1), RangeError);
  });

  test("maxPayloadForMessageSize is the largest payload that always fits", () => {
    assert.equal(DEFAULT_MAX_MESSAGE_BYTES, 32_768);
    assert.equal(maxPayloadForMessageSize(), 32_752);
    for (const limit of [0, 5, 12, 13, 14, 15, 140, 141, 142, 143, 16_400, 32_768, 65_536, 1_000_000]) {
      const max = maxPayloadForMessageSize(limit);
      const at = (n: number) =>
        encodePacket({ sequenceNumber: 0xffff_ffff, timestamp: 0xffff_ffff, payload: new Uint8Array(n) })
          .length;
      if (max > 0) assert.ok(at(max) <= limit, `limit ${limit}: ${max} does not fit`);
      assert.ok(at(max + 1) > limit, `limit ${limit}: ${max + 1} would also fit`);
    }
    assert.throws(() => maxPayloadForMessageSize(-1), RangeError);
  });
});
