import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SnapshotKeyframes } from "../../src/media/snapshot-keyframes.ts";

/** Runs `k` on a 20 ms grid from `from` to `to` (ms), with packets while `packets(t)`, images at `images`. */
function drive(
  k: SnapshotKeyframes,
  from: number,
  to: number,
  packets: (t: number) => boolean,
  images: number[] = [],
): number[] {
  const requests: number[] = [];
  for (let t = from; t < to; t += 20) {
    if (packets(t)) k.onPacket(t);
    if (images.includes(t)) k.onImage(t);
    if (k.poll(t)) requests.push(t);
  }
  return requests;
}

describe("SnapshotKeyframes (fake clock)", () => {
  test("asks at once when packets flow, then every retryMs until the first image", () => {
    const k = new SnapshotKeyframes(0, { retryMs: 1000, stallMs: 3000 });
    const r = drive(k, 0, 3500, () => true, [2600]);
    assert.deepEqual(r, [0, 1000, 2000]);
  });

  test("nothing flowing: no requests (a muted publisher is not asked)", () => {
    const k = new SnapshotKeyframes(0);
    assert.deepEqual(
      drive(k, 0, 5000, () => false),
      [],
    );
  });

  test("images coming: silent; images stop while packets flow: asks after stallMs, then every retryMs", () => {
    const k = new SnapshotKeyframes(0, { retryMs: 1000, stallMs: 3000 });
    const images = [200, 1200, 2200, 3200];
    const r = drive(k, 0, 9000, () => true, images);
    // First request at 0 (no image yet); last image 3200 → stalled from 6200, then 7200, 8200.
    assert.deepEqual(r, [0, 6200, 7200, 8200]);
    assert.equal(k.requests, 4);
  });

  test("packets stop, then resume: asks only once they are back", () => {
    const k = new SnapshotKeyframes(0, { retryMs: 1000, stallMs: 3000 });
    const r = drive(k, 0, 8000, (t) => t >= 5000);
    assert.deepEqual(r, [5000, 6000, 7000]);
  });

  test("rejects a non-positive interval", () => {
    assert.throws(() => new SnapshotKeyframes(0, { retryMs: 0 }), RangeError);
  });
});
