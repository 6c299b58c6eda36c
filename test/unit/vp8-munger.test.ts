import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVp8Descriptor, Vp8Munger } from "../../src/media/vp8-munger.ts";

interface Fields {
  pid?: number;
  bits?: 7 | 15;
  tl0?: number;
  tid?: number;
  y?: boolean;
  keyIdx?: number;
  start?: boolean;
  part?: number;
  body?: number[];
}

/** Builds an RFC 7741 payload: descriptor followed by `body` (a key frame tag by default). */
function vp8(f: Fields): Uint8Array {
  const hasX = f.pid !== undefined || f.tl0 !== undefined || f.tid !== undefined || f.keyIdx !== undefined;
  const bytes = [(hasX ? 0x80 : 0) | ((f.start ?? true) ? 0x10 : 0) | (f.part ?? 0)];
  if (hasX) {
    bytes.push(
      (f.pid !== undefined ? 0x80 : 0) |
        (f.tl0 !== undefined ? 0x40 : 0) |
        (f.tid !== undefined ? 0x20 : 0) |
        (f.keyIdx !== undefined ? 0x10 : 0),
    );
    if (f.pid !== undefined) {
      if ((f.bits ?? 15) === 15) bytes.push(0x80 | (f.pid >> 8), f.pid & 0xff);
      else bytes.push(f.pid);
    }
    if (f.tl0 !== undefined) bytes.push(f.tl0);
    if (f.tid !== undefined || f.keyIdx !== undefined) {
      bytes.push(((f.tid ?? 0) << 6) | (f.y ? 0x20 : 0) | (f.keyIdx ?? 0));
    }
  }
  bytes.push(...(f.body ?? [0x10, 0xab, 0xcd]));
  return Uint8Array.from(bytes);
}

/** PictureID, TL0PICIDX, KEYIDX of a payload, read back through the parser. */
function ids(p: Uint8Array): [number | undefined, number | undefined, number | undefined] {
  const d = parseVp8Descriptor(p);
  assert.ok(d, "rewritten payload must parse");
  return [d.pictureId, d.tl0PicIdx, d.keyIdx];
}

const same = { switched: false };
const switched = { switched: true };

describe("parseVp8Descriptor", () => {
  test("mandatory byte only", () => {
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x10, 0x10)), {
      start: true,
      partitionId: 0,
      headerLength: 1,
    });
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x03, 0x99)), {
      start: false,
      partitionId: 3,
      headerLength: 1,
    });
  });

  test("all extensions with a 15-bit PictureID", () => {
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x90, 0xf0, 0xab, 0xcd, 0x42, 0xa5, 0x10)), {
      start: true,
      partitionId: 0,
      pictureId: 0x2bcd,
      pictureIdBits: 15,
      tl0PicIdx: 0x42,
      tid: 2,
      keyIdx: 5,
      headerLength: 6,
    });
  });

  test("7-bit PictureID", () => {
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x90, 0x80, 0x7f, 0x10)), {
      start: true,
      partitionId: 0,
      pictureId: 127,
      pictureIdBits: 7,
      headerLength: 3,
    });
  });

  test("T without K and K without T share the same byte", () => {
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x80, 0x20, 0x7f, 0x00)), {
      start: false,
      partitionId: 0,
      tid: 1,
      headerLength: 3,
    });
    assert.deepEqual(parseVp8Descriptor(Uint8Array.of(0x80, 0x10, 0xdf, 0x00)), {
      start: false,
      partitionId: 0,
      keyIdx: 31,
      headerLength: 3,
    });
  });

  test("a descriptor with nothing after it still parses", () => {
    assert.equal(parseVp8Descriptor(Uint8Array.of(0x90, 0x80, 0x05))?.headerLength, 3);
  });

  test("truncated descriptors", () => {
    for (const bytes of [
      [],
      [0x80],
      [0x90, 0x80],
      [0x90, 0x80, 0x81],
      [0x90, 0x40],
      [0x90, 0x20],
      [0x90, 0x10],
      [0x90, 0xf0, 0x81, 0x23, 0x06],
    ]) {
      assert.equal(parseVp8Descriptor(Uint8Array.from(bytes)), undefined, `${bytes}`);
    }
  });

  test("the builder used below round-trips", () => {
    assert.deepEqual(ids(vp8({ pid: 300, tl0: 9, tid: 1, keyIdx: 4 })), [300, 9, 4]);
    assert.deepEqual(ids(vp8({ pid: 100, bits: 7 })), [100, undefined, undefined]);
  });
});

describe("Vp8Munger: buffers", () => {
  test("payloads without a PictureID are returned as is", () => {
    const m = new Vp8Munger();
    const plain = vp8({});
    assert.equal(m.rewrite(plain, same), plain);
    const tl0Only = vp8({ tl0: 4, keyIdx: 2 });
    assert.equal(m.rewrite(tl0Only, switched), tl0Only);
  });

  test("truncated payloads are returned as is", () => {
    const m = new Vp8Munger();
    const p = Uint8Array.of(0x90, 0x80, 0x81);
    assert.equal(m.rewrite(p, same), p);
  });

  test("returns a new buffer and never mutates the input", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 10, tl0: 1, keyIdx: 1 }), same);
    const input = vp8({ pid: 500, tl0: 80, tid: 2, y: true, keyIdx: 9, body: [0x10, 1, 2, 3] });
    const before = input.slice();
    const out = m.rewrite(input, switched);
    assert.notEqual(out, input);
    assert.deepEqual(input, before);
    assert.deepEqual(ids(out), [11, 2, 2]);
  });

  test("everything but the three counters is copied unchanged", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 10, tl0: 1, keyIdx: 1 }), same);
    const input = vp8({ pid: 500, tl0: 80, tid: 2, y: true, keyIdx: 9, part: 0, body: [0x10, 1, 2, 3] });
    const out = m.rewrite(input, switched);
    assert.deepEqual(
      [...out],
      [
        0x90,
        0xf0,
        0x80,
        11,
        2,
        (2 << 6) | 0x20 | 2, // TID and Y kept
        0x10,
        1,
        2,
        3,
      ],
    );
  });

  test("the first packet keeps its values", () => {
    for (const opts of [same, switched]) {
      const m = new Vp8Munger();
      assert.deepEqual(ids(m.rewrite(vp8({ pid: 1234, tl0: 56, keyIdx: 7 }), opts)), [1234, 56, 7]);
    }
  });
});

describe("Vp8Munger: continuity", () => {
  test("a switch continues each counter from the last value sent", () => {
    const m = new Vp8Munger();
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 100, tl0: 5, keyIdx: 3 }), same)), [100, 5, 3]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 101, tl0: 5, keyIdx: 3 }), same)), [101, 5, 3]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 102, tl0: 6, keyIdx: 3 }), same)), [102, 6, 3]);
    // Layer B has unrelated counters.
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 9000, tl0: 200, keyIdx: 17 }), switched)), [103, 7, 4]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 9001, tl0: 200, keyIdx: 17 }), same)), [104, 7, 4]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 9002, tl0: 201, keyIdx: 17 }), same)), [105, 8, 4]);
  });

  test("all packets of one picture get the same id, including the switch picture", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 50, tl0: 1 }), same);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 7000, tl0: 90, start: true }), switched)), [51, 2, undefined]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 7000, tl0: 90, start: false }), same)), [51, 2, undefined]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 7000, tl0: 90, start: false, part: 1 }), same)), [
      51,
      2,
      undefined,
    ]);
  });

  test("switching back and forth keeps counting", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 10, tl0: 10, keyIdx: 10 }), same);
    m.rewrite(vp8({ pid: 2000, tl0: 0, keyIdx: 0 }), switched); // 11, 11, 11
    m.rewrite(vp8({ pid: 2001, tl0: 1, keyIdx: 0 }), same); // 12, 12, 11
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 40, tl0: 30, keyIdx: 12 }), switched)), [13, 13, 12]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 41, tl0: 30, keyIdx: 12 }), same)), [14, 13, 12]);
  });

  test("late pictures within a layer keep the layer's offset", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 100, tl0: 1 }), same);
    m.rewrite(vp8({ pid: 5000, tl0: 40 }), switched); // offset -4899 -> 101, tl0 2
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 5002, tl0: 41 }), same)), [103, 3, undefined]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 5001, tl0: 40 }), same)), [102, 2, undefined]);
  });

  test("a late picture does not pull back the value the next switch continues from", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 100, tl0: 20, keyIdx: 5 }), same);
    m.rewrite(vp8({ pid: 102, tl0: 21, keyIdx: 6 }), same);
    m.rewrite(vp8({ pid: 101, tl0: 20, keyIdx: 5 }), same);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 3, tl0: 3, keyIdx: 3 }), switched)), [103, 22, 7]);
  });

  test("a counter absent from the switch packet is rebased when it first appears", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 100, tl0: 10, keyIdx: 2 }), same);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 900 }), switched)), [101, undefined, undefined]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 901, tl0: 77, keyIdx: 20 }), same)), [102, 11, 3]);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 902, tl0: 78, keyIdx: 20 }), same)), [103, 12, 3]);
  });
});

describe("Vp8Munger: widths and wrap-around", () => {
  test("7-bit PictureID wraps mod 128 at a switch", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 126, bits: 7 }), same);
    m.rewrite(vp8({ pid: 127, bits: 7 }), same);
    const out = m.rewrite(vp8({ pid: 40, bits: 7 }), switched);
    assert.deepEqual(ids(out), [0, undefined, undefined]);
    assert.equal(parseVp8Descriptor(out)?.pictureIdBits, 7);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 41, bits: 7 }), same)), [1, undefined, undefined]);
  });

  test("7-bit PictureID wraps mod 128 within a layer", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 10, bits: 7 }), same);
    m.rewrite(vp8({ pid: 125, bits: 7 }), switched); // offset +14 -> 11
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 127, bits: 7 }), same))[0], 13);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 0, bits: 7 }), same))[0], 14);
    m.rewrite(vp8({ pid: 120, bits: 7 }), switched); // continues at 15
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 121, bits: 7 }), same))[0], 16);
  });

  test("a 7-bit picture after the wrap counts as newer for the next switch", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 126, bits: 7 }), same);
    m.rewrite(vp8({ pid: 1, bits: 7 }), same);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 60, bits: 7 }), switched))[0], 2);
  });

  test("15-bit PictureID wraps mod 32768", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 32766 }), same);
    m.rewrite(vp8({ pid: 32767 }), same);
    const out = m.rewrite(vp8({ pid: 5 }), switched);
    assert.deepEqual(ids(out), [0, undefined, undefined]);
    assert.equal(out[2], 0x80, "M bit set, high bits zero");
    assert.equal(out[3], 0x00);
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 6 }), same))[0], 1);
  });

  test("15-bit PictureID wraps mod 32768 within a layer", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 5 }), same);
    m.rewrite(vp8({ pid: 32760 }), switched); // -> 6
    assert.equal(ids(m.rewrite(vp8({ pid: 32767 }), same))[0], 13);
    assert.equal(ids(m.rewrite(vp8({ pid: 0 }), same))[0], 14);
    assert.equal(ids(m.rewrite(vp8({ pid: 32759 }), same))[0], 5, "late picture from before the wrap");
  });

  test("a 7-bit layer after a 15-bit one stays 7-bit", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 1000 }), same);
    const input = vp8({ pid: 3, bits: 7, tl0: 1 });
    const out = m.rewrite(input, switched);
    assert.equal(out.length, input.length);
    assert.equal(parseVp8Descriptor(out)?.pictureIdBits, 7);
    assert.equal(ids(out)[0], 1001 % 128);
    assert.equal(ids(m.rewrite(vp8({ pid: 4, bits: 7 }), same))[0], 106);
  });

  test("a 15-bit layer after a 7-bit one stays 15-bit", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 120, bits: 7 }), same);
    const out = m.rewrite(vp8({ pid: 30000 }), switched);
    assert.equal(parseVp8Descriptor(out)?.pictureIdBits, 15);
    assert.equal(ids(out)[0], 121);
    assert.equal(ids(m.rewrite(vp8({ pid: 30001 }), same))[0], 122);
  });

  test("TL0PICIDX wraps mod 256 and KEYIDX mod 32", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 1, tl0: 255, tid: 3, keyIdx: 31 }), same);
    const out = m.rewrite(vp8({ pid: 2000, tl0: 100, tid: 3, y: true, keyIdx: 4 }), switched);
    assert.deepEqual(ids(out), [2, 0, 0]);
    assert.equal(parseVp8Descriptor(out)?.tid, 3);
    assert.equal(out[5] & 0x20, 0x20, "Y bit kept");
    assert.deepEqual(ids(m.rewrite(vp8({ pid: 2001, tl0: 101, keyIdx: 5 }), same)), [3, 1, 1]);
  });

  test("TL0PICIDX wraps within a layer", () => {
    const m = new Vp8Munger();
    m.rewrite(vp8({ pid: 1, tl0: 10 }), same);
    m.rewrite(vp8({ pid: 500, tl0: 250 }), switched); // -> 11
    assert.equal(ids(m.rewrite(vp8({ pid: 501, tl0: 255 }), same))[1], 16);
    assert.equal(ids(m.rewrite(vp8({ pid: 502, tl0: 0 }), same))[1], 17);
    assert.equal(ids(m.rewrite(vp8({ pid: 503, tl0: 1 }), same))[1], 18);
  });
});
