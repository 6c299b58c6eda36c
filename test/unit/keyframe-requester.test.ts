import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeyframeRequester } from "../../src/media/keyframe-requester.ts";

describe("KeyframeRequester", () => {
  it("defaults to 500 ms and validates its arguments", () => {
    assert.equal(new KeyframeRequester().minIntervalMs, 500);
    assert.equal(new KeyframeRequester({ minIntervalMs: 200 }).minIntervalMs, 200);
    assert.throws(() => new KeyframeRequester({ minIntervalMs: -1 }), RangeError);
    assert.throws(() => new KeyframeRequester({ minIntervalMs: Number.NaN }), RangeError);
    const k = new KeyframeRequester();
    assert.throws(() => k.request(0, -1), RangeError);
    assert.throws(() => k.request(0, 1.5), RangeError);
    assert.throws(() => k.onKeyframe(-1), RangeError);
  });

  it("turns N simultaneous subscriber requests into one", () => {
    const k = new KeyframeRequester();
    const answers = Array.from({ length: 5 }, () => k.request(1000));
    assert.deepEqual(answers, [true, false, false, false, false]);
    assert.deepEqual(k.counters, { requested: 5, sent: 1, suppressed: 4, released: 0 });
  });

  it("releases a request made during the quiet period when the interval has passed", () => {
    const k = new KeyframeRequester();
    assert.equal(k.request(0), true);
    assert.equal(k.request(100), false);
    assert.equal(k.request(300), false);
    assert.equal(k.pending(), true);
    assert.deepEqual(k.poll(499), []);
    assert.deepEqual(k.poll(500), [0]);
    assert.equal(k.pending(), false);
    assert.deepEqual(k.poll(2000), []);
    // The released request starts a new quiet period.
    assert.equal(k.request(600), false);
    assert.deepEqual(k.poll(999), []);
    assert.deepEqual(k.poll(1000), [0]);
    assert.deepEqual(k.counters, { requested: 4, sent: 3, suppressed: 3, released: 2 });
  });

  it("without deferred requests, poll releases nothing", () => {
    const k = new KeyframeRequester();
    assert.deepEqual(k.poll(0), []);
    k.request(0);
    assert.deepEqual(k.poll(10_000), []);
    assert.equal(k.counters.sent, 1);
  });

  it("sends a request immediately once the interval has passed, which also covers the deferred one", () => {
    const k = new KeyframeRequester();
    assert.equal(k.request(0), true);
    assert.equal(k.request(100), false);
    assert.equal(k.request(499), false);
    assert.equal(k.request(500), true);
    assert.deepEqual(k.poll(500), []);
    assert.deepEqual(k.poll(1000), []);
    assert.deepEqual(k.counters, { requested: 4, sent: 2, suppressed: 2, released: 0 });
  });

  it("throttles each layer independently and returns due layers in ascending order", () => {
    const k = new KeyframeRequester();
    assert.equal(k.request(0, 2), true);
    assert.equal(k.request(0, 0), true);
    assert.equal(k.request(0, 1), true);
    assert.equal(k.request(10, 2), false);
    assert.equal(k.request(20, 0), false);
    assert.equal(k.request(250, 3), true);
    assert.equal(k.request(260, 3), false);
    assert.deepEqual([k.pending(0), k.pending(1), k.pending(2), k.pending(3)], [true, false, true, true]);
    assert.deepEqual(k.poll(500), [0, 2]);
    assert.deepEqual(k.poll(749), []);
    assert.deepEqual(k.poll(750), [3]);
  });

  it("drops a deferred request when a keyframe of that layer arrives", () => {
    const k = new KeyframeRequester();
    k.request(0, 0);
    k.request(0, 1);
    k.request(100, 0);
    k.request(100, 1);
    k.onKeyframe(1);
    assert.deepEqual([k.pending(0), k.pending(1)], [true, false]);
    assert.deepEqual(k.poll(500), [0]);
    k.onKeyframe(7); // unknown layer: no effect, no error
    // The keyframe does not reopen the window: the encoder may still be answering the last request.
    assert.equal(k.request(300, 1), false);
  });

  it("with minIntervalMs 0 lets every request through", () => {
    const k = new KeyframeRequester({ minIntervalMs: 0 });
    assert.deepEqual([k.request(0), k.request(0), k.request(1)], [true, true, true]);
    assert.equal(k.counters.suppressed, 0);
  });

  it("honours a configured interval", () => {
    const k = new KeyframeRequester({ minIntervalMs: 200 });
    assert.equal(k.request(1000), true);
    assert.equal(k.request(1199), false);
    assert.deepEqual(k.poll(1199), []);
    assert.deepEqual(k.poll(1200), [0]);
    assert.equal(k.request(1400), true);
  });
});
