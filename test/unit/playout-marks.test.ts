import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PlayoutMarks } from "../../src/media/playout-marks.ts";

describe("PlayoutMarks", () => {
  test("a mark completes once every frame queued before it (and the partial one) has played, in order", () => {
    const m = new PlayoutMarks();
    assert.ok(m.add("a", 0, 3, false)); // after frames 1..3
    assert.ok(m.add("b", 0, 5, true)); // after frames 1..5 and a partial 6th
    assert.deepEqual(m.onPlayed(2), []);
    assert.deepEqual(m.onPlayed(3), [{ name: "a", status: "played" }]);
    assert.deepEqual(m.onPlayed(5), []);
    assert.deepEqual(m.onPlayed(6), [{ name: "b", status: "played" }]);
    assert.equal(m.pending, 0);
  });

  test("a mark with nothing queued is done at once; several can complete on one frame", () => {
    const m = new PlayoutMarks();
    m.add("now", 7, 0, false);
    assert.deepEqual(m.onPlayed(7), [{ name: "now", status: "played" }]);
    m.add("x", 7, 1, false);
    m.add("y", 7, 1, false);
    assert.deepEqual(
      m.onPlayed(8).map((r) => r.name),
      ["x", "y"],
    );
  });

  test("clear: every pending mark is cleared, in order; later marks count from the new position", () => {
    const m = new PlayoutMarks();
    m.add("a", 0, 10, false);
    m.add("b", 0, 20, false);
    assert.deepEqual(m.clear(), [
      { name: "a", status: "cleared" },
      { name: "b", status: "cleared" },
    ]);
    assert.deepEqual(m.onPlayed(20), []);
    m.add("c", 4, 2, false);
    assert.deepEqual(m.onPlayed(6), [{ name: "c", status: "played" }]);
  });

  test("at most maxPending marks wait", () => {
    const m = new PlayoutMarks(2);
    assert.ok(m.add("1", 0, 1, false));
    assert.ok(m.add("2", 0, 1, false));
    assert.equal(m.add("3", 0, 1, false), false);
  });
});
