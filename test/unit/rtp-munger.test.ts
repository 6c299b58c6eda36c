import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RtpMunger } from "../../src/media/rtp-munger.ts";
import { seededRandom } from "../helpers/signals.ts";

const CLOCK = 90_000;

function munger(initialSequence = 1000, initialTimestamp = 50_000): RtpMunger {
  return new RtpMunger({ initialSequence, initialTimestamp, clockRate: CLOCK });
}

interface Pkt {
  seq: number;
  ts?: number;
  layer?: number;
  now?: number;
  dropped?: boolean;
}

/** Maps one packet; returns just the output sequence number (undefined = not sent). */
function seqOf(m: RtpMunger, p: Pkt): number | undefined {
  return map(m, p)?.sequenceNumber;
}

function map(m: RtpMunger, p: Pkt): { sequenceNumber: number; timestamp: number } | undefined {
  return m.map({
    sequenceNumber: p.seq,
    timestamp: p.ts ?? 0,
    layer: p.layer ?? 0,
    nowMs: p.now ?? 0,
    dropped: p.dropped,
  });
}

/** Maps a run of sequence numbers of layer 0; negative numbers mean "dropped". */
function run(m: RtpMunger, seqs: number[]): (number | undefined)[] {
  return seqs.map((s) =>
    Object.is(s, -0) || s < 0 ? seqOf(m, { seq: -s, dropped: true }) : seqOf(m, { seq: s }),
  );
}

describe("RtpMunger: construction", () => {
  test("the first packet gets the initial sequence number and timestamp", () => {
    const m = munger(1000, 50_000);
    assert.deepEqual(map(m, { seq: 30_000, ts: 4_000_000_000 }), { sequenceNumber: 1000, timestamp: 50_000 });
    assert.deepEqual(map(m, { seq: 30_001, ts: 4_000_003_000 }), { sequenceNumber: 1001, timestamp: 53_000 });
  });

  test("random defaults stay within 16/32 bits", () => {
    for (let i = 0; i < 50; i++) {
      const m = new RtpMunger({ clockRate: CLOCK });
      const out = map(m, { seq: 5, ts: 5 });
      assert.ok(out);
      assert.ok(
        Number.isInteger(out.sequenceNumber) && out.sequenceNumber >= 0 && out.sequenceNumber <= 0xffff,
      );
      assert.ok(Number.isInteger(out.timestamp) && out.timestamp >= 0 && out.timestamp <= 0xffff_ffff);
      assert.equal(seqOf(m, { seq: 6 }), (out.sequenceNumber + 1) & 0xffff);
    }
  });

  test("initial values are taken modulo 2^16 / 2^32", () => {
    const m = munger(0x1_0005, 2 ** 32 + 7);
    assert.deepEqual(map(m, { seq: 1, ts: 1 }), { sequenceNumber: 5, timestamp: 7 });
  });

  test("rejects a non-positive clock rate", () => {
    assert.throws(() => new RtpMunger({ clockRate: 0 }), RangeError);
    assert.throws(() => new RtpMunger({ clockRate: Number.NaN }), RangeError);
  });

  test("lastOutput is undefined before anything is sent", () => {
    const m = munger();
    assert.equal(m.lastOutput, undefined);
    assert.equal(m.layer, undefined);
    seqOf(m, { seq: 1, dropped: true });
    assert.equal(m.lastOutput, undefined);
    assert.equal(m.layer, 0);
  });
});

describe("RtpMunger: drops, loss, reordering, duplicates", () => {
  test("dropped packets leave no hole", () => {
    assert.deepEqual(run(munger(), [10, -11, 12, -13, -14, 15, 16]), [
      1000,
      undefined,
      1001,
      undefined,
      undefined,
      1002,
      1003,
    ]);
  });

  test("lost packets keep their numbers and fill in when they arrive late", () => {
    const m = munger();
    assert.deepEqual(run(m, [10, 13, 14]), [1000, 1003, 1004]);
    assert.equal(seqOf(m, { seq: 12 }), 1002);
    assert.equal(seqOf(m, { seq: 11 }), 1001);
  });

  test("a late packet older than a drop maps with the offset of its own position", () => {
    const m = munger();
    assert.deepEqual(run(m, [20, 22, -23, -24, 25, -26, 27]), [
      1000,
      1002,
      undefined,
      undefined,
      1003,
      undefined,
      1004,
    ]);
    assert.equal(seqOf(m, { seq: 21 }), 1001);
  });

  test("a late packet newer than a drop maps after it", () => {
    const m = munger();
    assert.deepEqual(run(m, [10, -11, 13]), [1000, undefined, 1002]);
    assert.equal(seqOf(m, { seq: 12 }), 1001);
  });

  test("late packets keep the layer's timestamp offset", () => {
    const m = munger(1000, 50_000);
    map(m, { seq: 10, ts: 900 });
    map(m, { seq: 12, ts: 6900 });
    assert.deepEqual(map(m, { seq: 11, ts: 3900 }), { sequenceNumber: 1001, timestamp: 53_000 });
  });

  test("duplicates map to the same number", () => {
    const m = munger();
    assert.deepEqual(run(m, [10, 11, 11, 12, 10, 12]), [1000, 1001, 1001, 1002, 1000, 1002]);
  });

  test("duplicates of dropped packets are not sent, and do not disturb the mapping", () => {
    const m = munger();
    assert.deepEqual(run(m, [10, -11, 12, 11, -11, 13]), [1000, undefined, 1001, undefined, undefined, 1002]);
    assert.equal(seqOf(m, { seq: 12 }), 1001);
  });

  test("a packet dropped after newer ones were sent leaves its hole", () => {
    const m = munger();
    assert.deepEqual(run(m, [10, 12, 13, -11, 14]), [1000, 1002, 1003, undefined, 1004]);
    // A later copy of a packet the caller sent still maps to its number.
    assert.deepEqual(run(m, [-12, 12]), [undefined, 1002]);
  });

  test("late, dropped and duplicate packets do not move lastOutput", () => {
    const m = munger(1000, 50_000);
    map(m, { seq: 10, ts: 0 });
    map(m, { seq: 12, ts: 3000 });
    map(m, { seq: 11, ts: 1500 });
    map(m, { seq: 12, ts: 3000 });
    map(m, { seq: 13, ts: 4500, dropped: true });
    assert.deepEqual(m.lastOutput, { sequenceNumber: 1002, timestamp: 53_000 });
  });

  test("packets older than the window are refused", () => {
    const m = munger(0);
    for (let s = 0; s <= 3000; s++) seqOf(m, { seq: s });
    assert.equal(seqOf(m, { seq: 3000 - 2047 }), 953);
    assert.equal(seqOf(m, { seq: 3000 - 2048 }), undefined);
    assert.equal(seqOf(m, { seq: 5 }), undefined);
  });

  test("a jump longer than the window", () => {
    const m = munger(0);
    assert.deepEqual(run(m, [10, 5000]), [0, 4990]);
    assert.equal(seqOf(m, { seq: 4999 }), 4989);
    assert.equal(seqOf(m, { seq: 5000 - 2047 }), 2943);
    assert.equal(seqOf(m, { seq: 11 }), undefined);
    assert.equal(seqOf(m, { seq: 10 }), undefined);
  });

  test("the drop record covers the whole window", () => {
    const m = munger(0);
    seqOf(m, { seq: 0 });
    seqOf(m, { seq: 2, dropped: true }); // 1 is missing
    for (let s = 3; s <= 2048; s++) seqOf(m, { seq: s });
    // 1 is now 2047 behind: still known, and still before the drop.
    assert.equal(seqOf(m, { seq: 1 }), 1);
    assert.equal(seqOf(m, { seq: 2048 }), 2047);
  });
});

describe("RtpMunger: wrap-around", () => {
  test("input and output sequence numbers wrap", () => {
    const m = munger(65_534);
    assert.deepEqual(run(m, [65_533, 65_534, -65_535, 0, -1, 2, 3]), [
      65_534,
      65_535,
      undefined,
      0,
      undefined,
      1,
      2,
    ]);
    assert.deepEqual(m.lastOutput?.sequenceNumber, 2);
  });

  test("late packets across the wrap", () => {
    const m = munger(65_535);
    assert.deepEqual(run(m, [65_534, 1, 2]), [65_535, 2, 3]);
    assert.equal(seqOf(m, { seq: 0 }), 1);
    assert.equal(seqOf(m, { seq: 65_535 }), 0);
  });

  test("a drop across the wrap followed by a late packet", () => {
    const m = munger(100);
    assert.deepEqual(run(m, [65_533, 65_535, -0, 1]), [100, 102, undefined, 103]);
    assert.equal(seqOf(m, { seq: 65_534 }), 101);
  });

  test("timestamps wrap both ways", () => {
    const m = munger(0, 0xffff_f000);
    assert.equal(map(m, { seq: 1, ts: 10 })?.timestamp, 0xffff_f000);
    assert.equal(map(m, { seq: 2, ts: 3010 })?.timestamp, (0xffff_f000 + 3000) >>> 0);
    assert.equal(map(m, { seq: 3, ts: 6010 })?.timestamp, 6000 - 4096);

    const n = munger(0, 100);
    assert.equal(map(n, { seq: 1, ts: 0xffff_ff00 })?.timestamp, 100);
    assert.equal(map(n, { seq: 2, ts: 0x100 })?.timestamp, 100 + 0x200);
  });

  test("long run: 200 000 packets through several sequence wraps", () => {
    const m = munger(7);
    let expected = 7;
    for (let i = 0; i < 200_000; i++) {
      const seq = (60_000 + i) & 0xffff;
      if (i % 10 === 3) {
        assert.equal(seqOf(m, { seq, dropped: true }), undefined);
        continue;
      }
      const out = seqOf(m, { seq });
      if (out !== expected) assert.fail(`packet ${i}: ${out} !== ${expected}`);
      expected = (expected + 1) & 0xffff;
    }
  });
});

describe("RtpMunger: layer switches", () => {
  test("the switch packet continues sequence and timestamp; the new layer keeps that offset", () => {
    const m = munger(1000, 50_000);
    map(m, { seq: 100, ts: 9000, now: 0 });
    map(m, { seq: 101, ts: 9000, now: 1 });
    assert.deepEqual(map(m, { seq: 102, ts: 12_000, now: 33 }), { sequenceNumber: 1002, timestamp: 53_000 });
    // 40 ms after the last packet sent: 3600 ticks at 90 kHz.
    assert.deepEqual(map(m, { seq: 7000, ts: 1_234_567, layer: 1, now: 73 }), {
      sequenceNumber: 1003,
      timestamp: 56_600,
    });
    assert.equal(m.layer, 1);
    assert.deepEqual(map(m, { seq: 7001, ts: 1_234_567, layer: 1, now: 74 }), {
      sequenceNumber: 1004,
      timestamp: 56_600,
    });
    assert.deepEqual(map(m, { seq: 7002, ts: 1_237_567, layer: 1, now: 106 }), {
      sequenceNumber: 1005,
      timestamp: 59_600,
    });
  });

  test("the elapsed time is rounded to ticks and counts from the last packet sent", () => {
    const m = new RtpMunger({ initialSequence: 0, initialTimestamp: 0, clockRate: 48_000 });
    map(m, { seq: 1, ts: 0, now: 1000 });
    map(m, { seq: 2, ts: 960, now: 1020 });
    map(m, { seq: 3, ts: 1920, now: 1040, dropped: true });
    // 12.34 ms after the packet at 1020 -> 592.32 ticks -> 592.
    assert.deepEqual(map(m, { seq: 500, ts: 77, layer: 2, now: 1032.34 }), {
      sequenceNumber: 2,
      timestamp: 1552,
    });
  });

  test("a switch with no time elapsed still advances the timestamp by one tick", () => {
    const m = munger(0, 0);
    map(m, { seq: 1, ts: 500, now: 10 });
    assert.deepEqual(map(m, { seq: 900, ts: 0, layer: 1, now: 10 }), { sequenceNumber: 1, timestamp: 1 });
    assert.deepEqual(map(m, { seq: 50, ts: 0, layer: 2, now: 5 }), { sequenceNumber: 2, timestamp: 2 });
  });

  test("switch timestamps wrap", () => {
    const m = munger(0, 0xffff_ffff);
    map(m, { seq: 1, ts: 0, now: 0 });
    assert.equal(map(m, { seq: 2, ts: 0, layer: 1, now: 1 })?.timestamp, 89);
  });

  test("stragglers of the old layer are refused", () => {
    const m = munger(1000);
    run(m, [100, 101, 103]);
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), 1004);
    assert.equal(seqOf(m, { seq: 102 }), undefined, "late");
    assert.equal(seqOf(m, { seq: 103 }), undefined, "duplicate");
    assert.equal(seqOf(m, { seq: 5001, layer: 1 }), 1005);
    assert.equal(m.layer, 1);
  });

  test("packets of the new layer from before the switch point are refused", () => {
    const m = munger(1000);
    run(m, [100, 101]);
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), 1002);
    assert.equal(seqOf(m, { seq: 4999, layer: 1 }), undefined);
    assert.equal(seqOf(m, { seq: 5002, layer: 1 }), 1004);
    assert.equal(seqOf(m, { seq: 5001, layer: 1 }), 1003);
  });

  test("drops before a switch do not leave a hole at the switch", () => {
    const m = munger(1000);
    assert.deepEqual(run(m, [100, -101, -102]), [1000, undefined, undefined]);
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), 1001);
  });

  test("a dropped packet of another layer is not a switch", () => {
    const m = munger(1000);
    run(m, [100]);
    assert.equal(seqOf(m, { seq: 5000, layer: 1, dropped: true }), undefined);
    assert.equal(m.layer, 0);
    assert.equal(seqOf(m, { seq: 101 }), 1001);
  });

  test("switching back to a layer continues, and its old packets stay refused", () => {
    const m = munger(1000);
    run(m, [100, 101]); // 1000, 1001
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), 1002);
    assert.equal(seqOf(m, { seq: 101 }), undefined);
    assert.equal(seqOf(m, { seq: 5001, layer: 1 }), 1003);
    assert.equal(seqOf(m, { seq: 140 }), 1004, "switch back");
    assert.equal(m.layer, 0);
    assert.equal(seqOf(m, { seq: 139 }), undefined, "before the new epoch");
    assert.equal(seqOf(m, { seq: 101 }), undefined, "from the first epoch");
    assert.equal(seqOf(m, { seq: 5001, layer: 1 }), undefined, "layer 1 straggler");
    assert.equal(seqOf(m, { seq: 141 }), 1005);
  });

  test("a left layer whose numbers look much older is re-entered (they wrapped meanwhile)", () => {
    const m = munger(1000);
    run(m, [40_000]);
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), 1001);
    assert.equal(seqOf(m, { seq: 40_000 - 2047 }), undefined, "inside the window: a straggler");
    assert.equal(m.layer, 1);
    assert.equal(seqOf(m, { seq: 40_000 - 2048 }), 1002, "beyond it: a switch back");
    assert.equal(m.layer, 0);
    assert.equal(seqOf(m, { seq: 5000, layer: 1 }), undefined, "layer 1 straggler");
  });

  test("late packets and drops in the new layer", () => {
    const m = munger(1000);
    run(m, [100]);
    assert.equal(seqOf(m, { seq: 65_535, layer: 1 }), 1001);
    assert.equal(seqOf(m, { seq: 1, layer: 1 }), 1003);
    assert.equal(seqOf(m, { seq: 2, layer: 1, dropped: true }), undefined);
    assert.equal(seqOf(m, { seq: 3, layer: 1 }), 1004);
    assert.equal(seqOf(m, { seq: 0, layer: 1 }), 1002);
  });

  test("a first packet that is dropped anchors the stream", () => {
    const m = munger(1000, 50_000);
    assert.equal(map(m, { seq: 10, ts: 9000, dropped: true }), undefined);
    assert.deepEqual(map(m, { seq: 11, ts: 12_000 }), { sequenceNumber: 1000, timestamp: 53_000 });
  });

  test("a switch before anything was sent starts at the initial values", () => {
    const m = munger(1000, 50_000);
    map(m, { seq: 10, ts: 9000, dropped: true, now: 0 });
    assert.deepEqual(map(m, { seq: 400, ts: 1, layer: 1, now: 500 }), {
      sequenceNumber: 1000,
      timestamp: 50_000,
    });
  });
});

describe("RtpMunger: toSource (NACKs)", () => {
  test("maps outputs back to source sequence number and layer", () => {
    const m = munger(65_534);
    run(m, [10, -11, 12]); // 65534, 65535
    seqOf(m, { seq: 300, layer: 1 }); // 0
    seqOf(m, { seq: 302, layer: 1 }); // 2 (301 lost)
    assert.deepEqual(m.toSource(65_534), { sequenceNumber: 10, layer: 0 });
    assert.deepEqual(m.toSource(65_535), { sequenceNumber: 12, layer: 0 });
    assert.deepEqual(m.toSource(0), { sequenceNumber: 300, layer: 1 });
    assert.deepEqual(m.toSource(2), { sequenceNumber: 302, layer: 1 });
  });

  test("lost packets are unknown until they arrive", () => {
    const m = munger(0);
    run(m, [10, 12]);
    assert.equal(m.toSource(1), undefined);
    seqOf(m, { seq: 11 });
    assert.deepEqual(m.toSource(1), { sequenceNumber: 11, layer: 0 });
  });

  test("nothing before the first packet, nothing in the future", () => {
    const m = munger(0);
    assert.equal(m.toSource(0), undefined);
    assert.equal(m.toSource(65_535), undefined);
    run(m, [10, 11]);
    assert.equal(m.toSource(2), undefined);
    assert.equal(m.toSource(65_535), undefined);
  });

  test("remembers the last 1024 outputs", () => {
    const m = munger(0);
    for (let s = 0; s < 3000; s++) seqOf(m, { seq: s });
    assert.deepEqual(m.toSource(2999), { sequenceNumber: 2999, layer: 0 });
    assert.deepEqual(m.toSource(2999 - 1023), { sequenceNumber: 2999 - 1023, layer: 0 });
    assert.equal(m.toSource(2999 - 1024), undefined);
    assert.equal(m.toSource(5), undefined);
  });

  test("the bound holds when newer outputs in the same slot were lost", () => {
    const m = munger(0);
    for (let s = 0; s < 1024; s++) seqOf(m, { seq: s });
    // 1024 is lost, so nothing overwrites what output 0 left in the history.
    assert.equal(seqOf(m, { seq: 1025 }), 1025);
    assert.equal(m.toSource(0), undefined);
    assert.equal(m.toSource(1), undefined);
    assert.deepEqual(m.toSource(2), { sequenceNumber: 2, layer: 0 });
    assert.equal(m.toSource(1024), undefined);
  });

  test("outputs are remembered across the output wrap", () => {
    const m = munger(65_000);
    for (let s = 0; s < 1000; s++) seqOf(m, { seq: 20_000 + s, layer: 3 });
    assert.deepEqual(m.toSource(65_535), { sequenceNumber: 20_535, layer: 3 });
    assert.deepEqual(m.toSource(0), { sequenceNumber: 20_536, layer: 3 });
    assert.deepEqual(m.toSource((65_000 + 999) & 0xffff), { sequenceNumber: 20_999, layer: 3 });
  });
});

describe("RtpMunger: randomized stream", () => {
  // Drops are decided per packet and only ever hit packets that arrive in order (the caller sees
  // padding / other temporal layers as they come); other packets are lost, delayed or duplicated.
  // Then every packet sent must get initial + (its position) - (drops before it).
  for (const seed of [1, 2, 3, 4, 5]) {
    test(`seed ${seed}`, () => {
      const random = seededRandom(seed);
      const first = 64_000 + seed * 100;
      const count = 6000;
      const initial = 65_000;
      const dropped = new Set<number>();
      const lost = new Set<number>();
      // Packet 0 arrives first and is sent: it anchors both offsets.
      for (let i = 1; i < count; i++) {
        const r = random();
        if (r < 0.1) dropped.add(i);
        else if (r < 0.13) lost.add(i);
      }
      const arrival: number[] = [];
      const held: { index: number; release: number }[] = [];
      for (let i = 0; i < count; i++) {
        for (const h of held.filter((x) => x.release === i)) arrival.push(h.index);
        if (lost.has(i)) continue;
        if (i > 0 && !dropped.has(i) && random() < 0.08) {
          held.push({ index: i, release: i + 1 + Math.floor(random() * 40) });
          continue;
        }
        arrival.push(i);
        if (!dropped.has(i) && random() < 0.03) arrival.push(i);
      }
      for (const h of held.filter((x) => x.release >= count)) arrival.push(h.index);

      const dropsBefore: number[] = [];
      let d = 0;
      for (let i = 0; i < count; i++) {
        dropsBefore.push(d);
        if (dropped.has(i)) d++;
      }

      const m = munger(initial, 0);
      const sent = new Map<number, number>();
      for (const i of arrival) {
        const out = map(m, {
          seq: (first + i) & 0xffff,
          ts: (0xffff_0000 + Math.floor(i / 3) * 3000) >>> 0,
          dropped: dropped.has(i),
        });
        if (dropped.has(i)) {
          assert.equal(out, undefined);
          continue;
        }
        const want = (initial + i - dropsBefore[i]) & 0xffff;
        if (out?.sequenceNumber !== want)
          assert.fail(`packet ${i}: got ${out?.sequenceNumber}, want ${want}`);
        const wantTs = Math.floor(i / 3) * 3000;
        if (out.timestamp !== wantTs) assert.fail(`packet ${i}: ts ${out.timestamp}, want ${wantTs}`);
        sent.set(want, i);
      }
      assert.ok(sent.size > count * 0.8);

      // Every packet that arrived was sent under its own number.
      assert.equal(sent.size, count - dropped.size - lost.size);

      let newest = count - 1;
      while (dropped.has(newest) || lost.has(newest)) newest--;
      const lastOut = initial + newest - dropsBefore[newest];
      assert.equal(m.lastOutput?.sequenceNumber, lastOut & 0xffff);

      // The newest 1024 outputs answer NACKs; lost packets' numbers have no source.
      for (let k = 0; k < 1024; k++) {
        const o = (lastOut - k) & 0xffff;
        const src = m.toSource(o);
        const i = sent.get(o);
        if (i === undefined) assert.equal(src, undefined);
        else assert.deepEqual(src, { sequenceNumber: (first + i) & 0xffff, layer: 0 });
      }
    });
  }
});
