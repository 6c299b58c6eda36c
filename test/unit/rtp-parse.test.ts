import assert from "node:assert/strict";
import { test } from "node:test";
import { RtpHeader, RtpPacket } from "werift";
import { parseRtpPacket } from "../../src/media/rtp.ts";

// parseRtpPacket replaces werift's RtpPacket.deSerialize on the native plane's receive path: it must read
// every packet shape the same way, and refuse what is not RTP instead of throwing or reading past the end.

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ""), "hex");
}

function same(buf: Buffer): void {
  const ours = parseRtpPacket(buf);
  assert.ok(ours, "parsed");
  const theirs = RtpPacket.deSerialize(buf);
  assert.deepEqual(ours.header, theirs.header);
  assert.deepEqual(ours.payload, theirs.payload);
}

test("one-byte extensions, CSRCs and marker read as werift reads them", () => {
  same(hex("91ef 1234 01020304 decafbad 11111111 bede0002 109f0040 30000000 61626364"));
  same(
    new RtpPacket(
      new RtpHeader({
        payloadType: 111,
        sequenceNumber: 65535,
        timestamp: 0xffffffff,
        ssrc: 1,
        marker: false,
        extensions: [
          { id: 1, payload: Buffer.from([0x9f]) },
          { id: 4, payload: Buffer.from("audio0") },
          { id: 14, payload: Buffer.alloc(16, 1) },
        ],
      }),
      Buffer.alloc(160, 7),
    ).serialize(),
  );
});

test("two-byte extensions and no extensions read as werift reads them", () => {
  same(hex("9060 0001 00000000 00000001 10000002 0c016c14 00000000 aaaa"));
  same(hex("8060 0001 00000000 00000001 aaaabbbb"));
});

test("padding is left out of the payload", () => {
  const p = parseRtpPacket(hex("a060 0001 00000000 00000001 aaaa 0002"));
  assert.ok(p);
  assert.deepEqual(p.payload, hex("aaaa"));
  assert.equal(p.header.paddingSize, 2);
});

test("anything that is not a whole RTP v2 packet is refused, never read past its end", () => {
  const good = hex("91ef 1234 01020304 decafbad 11111111 bede0002 109f0040 30000000 61626364");
  for (let cut = 0; cut < 24; cut++)
    assert.equal(parseRtpPacket(good.subarray(0, cut)), undefined, `cut ${cut}`);
  assert.equal(parseRtpPacket(hex("51ef 1234 01020304 decafbad")), undefined, "version 1");
  assert.equal(
    parseRtpPacket(hex("a060 0001 00000000 00000001 aaaa 0009")),
    undefined,
    "padding past the start",
  );
  assert.equal(
    parseRtpPacket(hex("a060 0001 00000000 00000001 aaaa 0000")),
    undefined,
    "zero padding length",
  );
  assert.equal(
    parseRtpPacket(hex("9060 0001 00000000 00000001 bede0009 10")),
    undefined,
    "extension past the end",
  );
  // A truncated element inside a complete block ends the walk; the packet itself is whole.
  const p = parseRtpPacket(hex("9060 0001 00000000 00000001 bede0001 3f000000 aa"));
  assert.ok(p);
  assert.deepEqual(p.header.extensions, []);
  assert.deepEqual(p.payload, hex("aa"));
  // Random bytes never throw.
  let seed = 1;
  for (let i = 0; i < 20000; i++) {
    const b = Buffer.alloc(1 + (i % 40));
    for (let j = 0; j < b.length; j++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      b[j] = seed >>> 24;
    }
    b[0] = 0x80 | (b[0] & 0x3f);
    parseRtpPacket(b);
  }
});
