import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RtpPacket } from "werift";
import { OpusRtpPacketizer } from "../../src/media/rtp-packetizer.ts";

const payload = Uint8Array.of(0xf8, 0xff, 0xfe);

describe("OpusRtpPacketizer", () => {
  it("fills the header: PT 111 by default, SSRC, marker, sequence +1 and timestamp +960 per packet", () => {
    const p = new OpusRtpPacketizer({ ssrc: 0x1234_5678, initialSequence: 100, initialTimestamp: 5000 });
    const packets = [
      p.packetize(payload, { marker: true }),
      p.packetize(payload, { marker: false }),
      p.packetize(payload, { marker: false }),
    ];
    assert.deepEqual(
      packets.map((pk) => [pk.header.sequenceNumber, pk.header.timestamp, pk.header.marker]),
      [
        [100, 5000, true],
        [101, 5960, false],
        [102, 6920, false],
      ],
    );
    for (const pk of packets) {
      assert.ok(pk instanceof RtpPacket);
      assert.equal(pk.header.payloadType, 111);
      assert.equal(pk.header.ssrc, 0x1234_5678);
      assert.equal(pk.header.version, 2);
      assert.deepEqual(new Uint8Array(pk.payload), payload);
    }
    assert.equal(p.nextSequence, 103);
    assert.equal(p.nextTimestamp, 7880);
    assert.equal(p.packetsCreated, 3);
  });

  it("wraps the sequence number at 16 bits", () => {
    const p = new OpusRtpPacketizer({ ssrc: 1, initialSequence: 65534, initialTimestamp: 0 });
    const seqs = Array.from(
      { length: 4 },
      () => p.packetize(payload, { marker: false }).header.sequenceNumber,
    );
    assert.deepEqual(seqs, [65534, 65535, 0, 1]);
  });

  it("wraps the timestamp at 32 bits, including when the wrap falls inside a frame", () => {
    const p = new OpusRtpPacketizer({ ssrc: 1, initialSequence: 0, initialTimestamp: 2 ** 32 - 960 });
    const ts = Array.from({ length: 3 }, () => p.packetize(payload, { marker: false }).header.timestamp);
    assert.deepEqual(ts, [2 ** 32 - 960, 0, 960]);
    const q = new OpusRtpPacketizer({ ssrc: 1, initialSequence: 0, initialTimestamp: 2 ** 32 - 100 });
    q.packetize(payload, { marker: false });
    assert.equal(q.packetize(payload, { marker: false }).header.timestamp, 860);
  });

  it("serializes to RTP that parses back to the same fields and payload", () => {
    const p = new OpusRtpPacketizer({
      ssrc: 0xffff_ffff,
      payloadType: 96,
      initialSequence: 65535,
      initialTimestamp: 0xffff_ffff,
    });
    const opus = Uint8Array.from({ length: 120 }, (_, i) => (i * 7) & 0xff);
    const wire = p.packetize(opus, { marker: true }).serialize();
    assert.equal(wire.length, 12 + 120);
    const parsed = RtpPacket.deSerialize(wire);
    assert.equal(parsed.header.payloadType, 96);
    assert.equal(parsed.header.sequenceNumber, 65535);
    assert.equal(parsed.header.timestamp, 0xffff_ffff);
    assert.equal(parsed.header.ssrc, 0xffff_ffff);
    assert.equal(parsed.header.marker, true);
    assert.equal(parsed.header.padding, false);
    assert.equal(parsed.header.extension, false);
    assert.deepEqual(new Uint8Array(parsed.payload), opus);
  });

  it("keeps payloads of earlier packets intact (no shared scratch buffer)", () => {
    const p = new OpusRtpPacketizer({ ssrc: 1 });
    const a = p.packetize(Uint8Array.of(1, 2, 3), { marker: false });
    const b = p.packetize(Uint8Array.of(4, 5), { marker: false });
    assert.deepEqual([...a.payload], [1, 2, 3]);
    assert.deepEqual([...b.payload], [4, 5]);
  });

  it("respects a payload that is a view into a larger buffer", () => {
    const big = Uint8Array.from({ length: 32 }, (_, i) => i);
    const pk = new OpusRtpPacketizer({ ssrc: 1 }).packetize(big.subarray(5, 9), { marker: false });
    assert.deepEqual([...pk.payload], [5, 6, 7, 8]);
  });

  it("skipFrames advances the timestamp but not the sequence", () => {
    const p = new OpusRtpPacketizer({ ssrc: 1, initialSequence: 10, initialTimestamp: 2 ** 32 - 960 });
    p.packetize(payload, { marker: false });
    p.skipFrames(3);
    const pk = p.packetize(payload, { marker: true });
    assert.equal(pk.header.sequenceNumber, 11);
    assert.equal(pk.header.timestamp, 3 * 960);
    assert.throws(() => p.skipFrames(-1), RangeError);
    assert.throws(() => p.skipFrames(1.5), RangeError);
  });

  it("picks random initial sequence and timestamp within range when not given", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const p = new OpusRtpPacketizer({ ssrc: 7 });
      assert.ok(Number.isInteger(p.nextSequence) && p.nextSequence >= 0 && p.nextSequence <= 0xffff);
      assert.ok(Number.isInteger(p.nextTimestamp) && p.nextTimestamp >= 0 && p.nextTimestamp <= 0xffff_ffff);
      seen.add(`${p.nextSequence}/${p.nextTimestamp}`);
    }
    // 20 draws from 2^48 values: a repeat would mean the values are not random.
    assert.equal(seen.size, 20);
  });

  it("rejects out-of-range header values", () => {
    assert.throws(() => new OpusRtpPacketizer({ ssrc: -1 }), RangeError);
    assert.throws(() => new OpusRtpPacketizer({ ssrc: 2 ** 32 }), RangeError);
    assert.throws(() => new OpusRtpPacketizer({ ssrc: 1.5 }), RangeError);
    assert.throws(() => new OpusRtpPacketizer({ ssrc: 1, payloadType: 128 }), RangeError);
    assert.throws(() => new OpusRtpPacketizer({ ssrc: 1, initialSequence: 65536 }), RangeError);
    assert.throws(() => new OpusRtpPacketizer({ ssrc: 1, initialTimestamp: 2 ** 32 }), RangeError);
  });
});
