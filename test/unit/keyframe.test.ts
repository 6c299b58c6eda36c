import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { codecNameOf, isKeyframeStart, type VideoCodecName } from "../../src/media/keyframe.ts";
import { seededRandom } from "../helpers/signals.ts";

const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);

/** Every strict prefix of a payload, each of which must be rejected as truncated. */
function prefixes(p: Uint8Array): Uint8Array[] {
  return Array.from({ length: p.length }, (_, n) => p.subarray(0, n));
}

describe("codecNameOf", () => {
  test("maps video mime types case-insensitively", () => {
    assert.equal(codecNameOf("video/VP8"), "vp8");
    assert.equal(codecNameOf("video/vp9"), "vp9");
    assert.equal(codecNameOf("VIDEO/H264"), "h264");
    assert.equal(codecNameOf("video/AV1"), "av1");
    assert.equal(codecNameOf(" video/Vp8 "), "vp8");
  });

  test("rejects everything else", () => {
    assert.equal(codecNameOf("audio/opus"), undefined);
    assert.equal(codecNameOf("video/rtx"), undefined);
    assert.equal(codecNameOf("video/H265"), undefined);
    assert.equal(codecNameOf("vp8"), undefined);
    assert.equal(codecNameOf("audio/VP8"), undefined);
    assert.equal(codecNameOf(""), undefined);
  });
});

describe("VP8", () => {
  // Byte after the descriptor is the VP8 frame tag; bit 0 is the inverse key-frame flag.
  const KEY = 0x10;
  const DELTA = 0x11;

  test("minimal descriptor: S=1, PID=0 and a key frame tag", () => {
    assert.equal(isKeyframeStart("vp8", b(0x10, KEY, 0x02, 0x9d)), true);
    assert.equal(isKeyframeStart("vp8", b(0x10, DELTA, 0x02)), false);
  });

  test("not the start of partition 0", () => {
    assert.equal(isKeyframeStart("vp8", b(0x00, KEY)), false, "S=0");
    assert.equal(isKeyframeStart("vp8", b(0x11, KEY)), false, "PID=1");
    assert.equal(isKeyframeStart("vp8", b(0x17, KEY)), false, "PID=7");
  });

  test("N and reserved bits do not matter", () => {
    assert.equal(isKeyframeStart("vp8", b(0x70, KEY)), true);
  });

  test("7-bit PictureID", () => {
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x80, 0x05, KEY)), true);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x80, 0x05, DELTA)), false);
    // If the descriptor were misparsed as 15-bit, 0x10 would be read as the PictureID's low byte.
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x80, 0x7f, KEY)), true);
  });

  test("15-bit PictureID", () => {
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x80, 0x81, 0x22, KEY)), true);
    // 0x22 has bit 0 clear: reading it as the frame tag would wrongly say "key frame".
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x80, 0x81, 0x22, DELTA)), false);
  });

  test("every optional field: I(15) L T K", () => {
    assert.equal(isKeyframeStart("vp8", b(0x90, 0xf0, 0x81, 0x23, 0x06, 0x45, KEY)), true);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0xf0, 0x81, 0x23, 0x06, 0x45, DELTA)), false);
  });

  test("L without I, T without K, K without T", () => {
    // Field values chosen so that failing to skip a field flips the answer.
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x40, 0x07, KEY)), true);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x40, 0x06, DELTA)), false);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x20, 0x41, KEY)), true);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x10, 0x03, KEY)), true);
    assert.equal(isKeyframeStart("vp8", b(0x90, 0x10, 0x02, DELTA)), false);
  });

  test("truncated descriptors are rejected", () => {
    for (const p of prefixes(b(0x90, 0xf0, 0x81, 0x23, 0x06, 0x45, KEY))) {
      assert.equal(isKeyframeStart("vp8", p), false, `length ${p.length}`);
    }
  });
});

describe("VP9", () => {
  const DATA = 0x82;
  // First byte bits: I P L F B E V Z
  const I = 0x80;
  const P = 0x40;
  const L = 0x20;
  const F = 0x10;
  const B = 0x08;
  const E = 0x04;
  const V = 0x02;

  test("start of a non-inter-predicted frame", () => {
    assert.equal(isKeyframeStart("vp9", b(B, DATA)), true);
    assert.equal(isKeyframeStart("vp9", b(B | E, DATA)), true);
  });

  test("inter-predicted or not the start of a frame", () => {
    assert.equal(isKeyframeStart("vp9", b(B | P, DATA)), false);
    assert.equal(isKeyframeStart("vp9", b(E, DATA)), false);
    assert.equal(isKeyframeStart("vp9", b(0, DATA)), false);
    assert.equal(isKeyframeStart("vp9", b(I | P | F | B, 0x05, 0x03, DATA)), false);
  });

  test("7- and 15-bit PictureID", () => {
    assert.equal(isKeyframeStart("vp9", b(I | B, 0x05, DATA)), true);
    assert.equal(isKeyframeStart("vp9", b(I | B, 0x81, 0x23, DATA)), true);
    // Nothing after the descriptor: no frame data.
    assert.equal(isKeyframeStart("vp9", b(I | B, 0x05)), false);
    assert.equal(isKeyframeStart("vp9", b(I | B, 0x81, 0x23)), false);
  });

  test("non-flexible mode carries TL0PICIDX after the layer byte", () => {
    assert.equal(isKeyframeStart("vp9", b(I | L | B, 0x05, 0x00, 0x07, DATA)), true);
    // Same bytes minus the data: the last byte is TL0PICIDX, so there is no frame data.
    assert.equal(isKeyframeStart("vp9", b(I | L | B, 0x05, 0x00, 0x07)), false);
  });

  test("flexible mode has no TL0PICIDX", () => {
    assert.equal(isKeyframeStart("vp9", b(I | L | F | B, 0x05, 0x00, DATA)), true);
    assert.equal(isKeyframeStart("vp9", b(L | F | B, 0x00, DATA)), true);
  });

  test("only spatial layer 0 is a starting point", () => {
    // Layer byte: TID(3) U SID(3) D
    assert.equal(isKeyframeStart("vp9", b(L | F | B, 0x02, DATA)), false, "sid 1");
    assert.equal(isKeyframeStart("vp9", b(L | B, 0x0e, 0x07, DATA)), false, "sid 7");
    assert.equal(isKeyframeStart("vp9", b(L | F | B, 0x40, DATA)), true, "tid 2, sid 0");
    assert.equal(isKeyframeStart("vp9", b(L | F | B, 0xf1, DATA)), true, "tid 7, U, D, sid 0");
  });

  test("scalability structure with resolutions and picture groups", () => {
    // SS: N_S=1 (two layers), Y, G; two WxH; N_G=2; group 0: T=0 U=0 R=1 +1 P_DIFF; group 1: R=2 +2.
    const ss = [0x38, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x02, 0x04, 0x01, 0x28, 0x01, 0x02];
    const full = b(I | L | B | V, 0x81, 0x23, 0x00, 0x07, ...ss, DATA);
    assert.equal(isKeyframeStart("vp9", full), true);
    for (const p of prefixes(full)) assert.equal(isKeyframeStart("vp9", p), false, `length ${p.length}`);
  });

  test("scalability structure without Y or G", () => {
    assert.equal(isKeyframeStart("vp9", b(B | V, 0x00, DATA)), true);
    assert.equal(isKeyframeStart("vp9", b(B | V, 0x00)), false);
    // Y with one layer needs 4 bytes; only 3 plus the data byte here.
    assert.equal(isKeyframeStart("vp9", b(B | V, 0x10, 0x02, 0x80, 0x01)), false);
    assert.equal(isKeyframeStart("vp9", b(B | V, 0x10, 0x02, 0x80, 0x01, 0xe0, DATA)), true);
  });

  test("empty payload", () => {
    assert.equal(isKeyframeStart("vp9", b()), false);
  });
});

describe("H.264", () => {
  test("single NAL units: IDR and SPS start, others do not", () => {
    assert.equal(isKeyframeStart("h264", b(0x65, 0x88, 0x84)), true, "IDR");
    assert.equal(isKeyframeStart("h264", b(0x67, 0x42, 0xc0)), true, "SPS");
    assert.equal(isKeyframeStart("h264", b(0x25, 0x88)), true, "IDR with nri 1");
    assert.equal(isKeyframeStart("h264", b(0x68, 0xce)), false, "PPS");
    assert.equal(isKeyframeStart("h264", b(0x41, 0x9a)), false, "non-IDR slice");
    assert.equal(isKeyframeStart("h264", b(0x06, 0x05)), false, "SEI");
    assert.equal(isKeyframeStart("h264", b(0x09, 0xf0)), false, "AUD");
  });

  test("malformed single NAL units", () => {
    assert.equal(isKeyframeStart("h264", b()), false);
    assert.equal(isKeyframeStart("h264", b(0x65)), false, "header only");
    assert.equal(isKeyframeStart("h264", b(0xe5, 0x88)), false, "forbidden bit");
    assert.equal(isKeyframeStart("h264", b(0x60, 0x88)), false, "type 0");
  });

  test("STAP-A containing an SPS or IDR", () => {
    const spsPps = b(0x78, 0x00, 0x03, 0x67, 0x42, 0xc0, 0x00, 0x02, 0x68, 0xce);
    assert.equal(isKeyframeStart("h264", spsPps), true);
    const seiIdr = b(0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88);
    assert.equal(isKeyframeStart("h264", seiIdr), true);
  });

  test("STAP-A without an SPS or IDR", () => {
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x41, 0x9a)), false);
  });

  test("malformed STAP-A", () => {
    assert.equal(isKeyframeStart("h264", b(0x78)), false, "header only");
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00)), false, "half a size field");
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00, 0x05, 0x67, 0x42)), false, "unit overruns");
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00, 0x02, 0x67, 0x42, 0x00)), false, "trailing byte");
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00, 0x00, 0x00, 0x02, 0x67, 0x42)), false, "empty unit");
    assert.equal(isKeyframeStart("h264", b(0x78, 0x00, 0x02, 0xe7, 0x42)), false, "forbidden bit inside");
    assert.equal(
      isKeyframeStart("h264", b(0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x09, 0x68, 0xce)),
      false,
      "SPS followed by a truncated unit",
    );
  });

  test("FU-A: start fragment of an IDR or SPS", () => {
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x85, 0x88, 0x84)), true, "S, IDR");
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x87, 0x42)), true, "S, SPS");
    assert.equal(isKeyframeStart("h264", b(0x5c, 0x85, 0x88)), true, "nri 2");
  });

  test("FU-A: other fragments and types", () => {
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x05, 0x88)), false, "middle");
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x45, 0x88)), false, "end");
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x81, 0x9a)), false, "S, non-IDR");
    assert.equal(isKeyframeStart("h264", b(0x7c, 0x85)), false, "no fragment data");
    assert.equal(isKeyframeStart("h264", b(0x7c)), false, "indicator only");
  });

  test("unsupported aggregation/fragmentation types are not starts", () => {
    assert.equal(isKeyframeStart("h264", b(0x79, 0x00, 0x00, 0x02, 0x65, 0x88)), false, "STAP-B");
    assert.equal(isKeyframeStart("h264", b(0x7a, 0x00, 0x02, 0x65, 0x88)), false, "MTAP16");
    assert.equal(isKeyframeStart("h264", b(0x7d, 0x85, 0x00, 0x00, 0x88)), false, "FU-B");
    assert.equal(isKeyframeStart("h264", b(0x7e, 0x85, 0x88)), false, "type 30");
  });
});

describe("AV1", () => {
  test("N bit starts a new coded video sequence", () => {
    assert.equal(isKeyframeStart("av1", b(0x08, 0x0a, 0x0b)), true);
    assert.equal(isKeyframeStart("av1", b(0x18, 0x0a)), true, "W=1");
    assert.equal(isKeyframeStart("av1", b(0x48, 0x0a)), true, "Y=1");
  });

  test("without N, or inconsistent with Z", () => {
    assert.equal(isKeyframeStart("av1", b(0x10, 0x0a)), false);
    assert.equal(isKeyframeStart("av1", b(0x40, 0x32)), false);
    assert.equal(isKeyframeStart("av1", b(0x88, 0x0a)), false, "Z and N");
  });

  test("truncated", () => {
    assert.equal(isKeyframeStart("av1", b()), false);
    assert.equal(isKeyframeStart("av1", b(0x08)), false);
  });
});

describe("robustness", () => {
  test("an unknown codec name is never a keyframe", () => {
    assert.equal(isKeyframeStart("h265" as VideoCodecName, b(0x10, 0x10)), false);
  });

  test("random and truncated payloads never throw", () => {
    const random = seededRandom(7);
    const codecs: VideoCodecName[] = ["vp8", "vp9", "h264", "av1"];
    let trueCount = 0;
    for (let n = 0; n < 4000; n++) {
      const p = Uint8Array.from({ length: Math.floor(random() * 12) }, () => Math.floor(random() * 256));
      for (const codec of codecs) {
        const r = isKeyframeStart(codec, p);
        assert.equal(typeof r, "boolean");
        if (r) trueCount++;
      }
    }
    // Sanity: random bytes do sometimes look like keyframes, and mostly do not.
    assert.ok(trueCount > 0 && trueCount < 8000, `${trueCount}`);
  });
});
