import assert from "node:assert/strict";
import { describe, test } from "node:test";
import jpeg from "jpeg-js";
import { JpegSplitter } from "../../src/media/jpeg-splitter.ts";
import { seededRandom } from "../helpers/signals.ts";

/** A real baseline JPEG (jpeg-js's encoder) of a noisy gradient: entropy data full of stuffed 0xFF bytes. */
function realJpeg(width: number, height: number, seed: number): Buffer {
  const rand = seededRandom(seed);
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    data[i * 4] = (i % width) * 4 + Math.floor(rand() * 64);
    data[i * 4 + 1] = Math.floor(rand() * 256);
    data[i * 4 + 2] = 255;
    data[i * 4 + 3] = 255;
  }
  return Buffer.from(jpeg.encode({ data, width, height }, 90).data);
}

/** Pushes `stream` in chunks of random sizes (1..maxChunk) and collects the images. */
function split(s: JpegSplitter, stream: Buffer, maxChunk: number, seed = 1): Buffer[] {
  const rand = seededRandom(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; ) {
    const n = 1 + Math.floor(rand() * maxChunk);
    out.push(...s.push(stream.subarray(i, i + n)));
    i += n;
  }
  return out;
}

describe("JpegSplitter", () => {
  const a = realJpeg(64, 48, 1);
  const b = realJpeg(32, 32, 2);

  test("real encoder output: images come out whole, in order, whatever the chunking", () => {
    assert.ok(a.includes(Buffer.from([0xff, 0x00])), "the test image has stuffed bytes");
    for (const maxChunk of [1, 7, 100, 100_000]) {
      const got = split(new JpegSplitter(), Buffer.concat([a, b, a]), maxChunk, maxChunk);
      assert.equal(got.length, 3, `chunks up to ${maxChunk}`);
      assert.ok(got[0].equals(a) && got[1].equals(b) && got[2].equals(a));
      const decoded = jpeg.decode(got[1]);
      assert.deepEqual([decoded.width, decoded.height], [32, 32]);
    }
  });

  test("bytes before and between images are skipped and counted", () => {
    const s = new JpegSplitter();
    const junk = Buffer.from([0x00, 0xff, 0x12, 0xff, 0xff, 0x34]);
    const got = split(s, Buffer.concat([junk, a, junk, b]), 13);
    assert.deepEqual(
      got.map((g) => g.length),
      [a.length, b.length],
    );
    assert.equal(s.skippedBytes, 2 * junk.length);
  });

  test("FF D9 inside a segment (a comment) does not end the image", () => {
    const comment = Buffer.from([0xff, 0xfe, 0x00, 0x06, 0xff, 0xd9, 0xff, 0xd9]);
    const withComment = Buffer.concat([a.subarray(0, 2), comment, a.subarray(2)]);
    const got = split(new JpegSplitter(), Buffer.concat([withComment, b]), 5);
    assert.equal(got.length, 2);
    assert.ok(got[0].equals(withComment));
    assert.deepEqual(jpeg.decode(got[0]).width, 64);
  });

  test("restart markers and stuffing inside the scan are part of it", () => {
    // SOI, SOS (length 8 with 6 bytes of header), scan data with FF 00 and RST0, RST7, EOI.
    const img = Buffer.from([
      0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 63, 0, 0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff,
      0xd7, 0x78, 0xff, 0xd9,
    ]);
    const got = split(new JpegSplitter(), Buffer.concat([img, img]), 3);
    assert.deepEqual(got, [img, img]);
  });

  test("a truncated image followed by a whole one: the whole one comes out, the rest is counted", () => {
    const s = new JpegSplitter();
    const cut = a.subarray(0, Math.floor(a.length / 2));
    const got = split(s, Buffer.concat([cut, b]), 11);
    assert.equal(got.length, 1);
    assert.ok(got[0].equals(b));
    assert.equal(s.skippedBytes, cut.length);
  });

  test("an image over the limit is dropped, not buffered; the next one still comes out", () => {
    const s = new JpegSplitter({ maxImageBytes: b.length + 10 });
    const got = split(s, Buffer.concat([a, b]), 64);
    assert.equal(s.oversizeImages, 1);
    assert.equal(got.length, 1);
    assert.ok(got[0].equals(b));
  });

  test("a segment length below 2 is corruption: resynchronized at the next image", () => {
    const bad = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01, 0xaa, 0xbb]);
    const got = split(new JpegSplitter(), Buffer.concat([bad, b]), 4);
    assert.equal(got.length, 1);
    assert.ok(got[0].equals(b));
  });
});
