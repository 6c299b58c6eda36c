import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { selectLayer } from "../../src/media/layer-selector.ts";

const NONE = { priorityOrdering: "none", ridNotAvailable: "none" } as const;
const ASCII = { priorityOrdering: "none", ridNotAvailable: "asciibetical" } as const;
// Chromium's usual naming, in the publisher's order low → high: q(uarter), h(alf), f(ull).
const RIDS = ["q", "h", "f"];

describe("selectLayer (Cloudflare's simulcast preferences)", () => {
  it("the preferred rid when it is being sent", () => {
    assert.equal(selectLayer(RIDS, [true, true, true], { ...NONE, preferredRid: "h" }), 1);
    assert.equal(selectLayer(RIDS, [true, true, true], { ...NONE, preferredRid: "q" }), 0);
  });

  it("ridNotAvailable none: nothing while the preferred rid is not sent", () => {
    assert.equal(selectLayer(RIDS, [true, false, true], { ...NONE, preferredRid: "h" }), undefined);
  });

  it("ridNotAvailable asciibetical: the next active rid after it in a–z order, wrapping", () => {
    // a–z: f, h, q. After h comes q.
    assert.equal(selectLayer(RIDS, [true, false, true], { ...ASCII, preferredRid: "h" }), 0);
    // After q wraps to f.
    assert.equal(selectLayer(RIDS, [false, true, true], { ...ASCII, preferredRid: "q" }), 2);
    assert.equal(selectLayer(RIDS, [false, false, false], { ...ASCII, preferredRid: "q" }), undefined);
  });

  it("no preferred rid: the server picks the first active layer in a–z order (a/f = highest)", () => {
    assert.equal(selectLayer(RIDS, [true, true, true], NONE), 2);
    assert.equal(selectLayer(RIDS, [true, true, false], NONE), 1);
    assert.equal(selectLayer(["a", "b"], [true, true], NONE), 0);
    assert.equal(selectLayer(RIDS, [false, false, false], NONE), undefined);
  });

  it("an unknown preferred rid counts as no preference", () => {
    assert.equal(selectLayer(RIDS, [true, true, true], { ...NONE, preferredRid: "zz" }), 2);
  });

  it("a track without layers has layer 0 while it is active", () => {
    assert.equal(selectLayer([], [true], NONE), 0);
    assert.equal(selectLayer([], [false], NONE), undefined);
  });
});
