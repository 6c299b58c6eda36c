import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RedialPolicy } from "../../src/adapters/websocket/redial-policy.ts";

describe("RedialPolicy", () => {
  test("backs off exponentially to the cap and gives up a window after the first failure", () => {
    const p = new RedialPolicy({ windowMs: 15_000 });
    let now = 0;
    const delays: number[] = [];
    for (;;) {
      const d = p.failed(now);
      if (d.kind === "give-up") {
        assert.equal(d.failingForMs, 15_000);
        break;
      }
      delays.push(d.delayMs);
      now += d.delayMs;
    }
    assert.deepEqual(delays.slice(0, 6), [100, 200, 400, 800, 1600, 2000]);
    assert.ok(delays.length <= 14, `${delays.length} attempts in 15 s`);
  });

  // The audit: an endpoint that accepts and closes at once was redialled ~10×/s forever, because each
  // successful handshake restarted the window.
  test("an endpoint that accepts then drops at once is given up on, with backoff", () => {
    const p = new RedialPolicy({ windowMs: 15_000 });
    let now = 0;
    let attempts = 0;
    for (;;) {
      const d = p.failed(now + 5); // dropped 5 ms after the handshake
      if (d.kind === "give-up") break;
      now += 5 + d.delayMs;
      p.connected(now);
      attempts++;
      assert.ok(attempts < 50, "gives up");
    }
    assert.ok(now >= 14_000 && now <= 15_100, `gave up ${now} ms after the first failure`);
    assert.ok(attempts <= 14, `${attempts} redials, not ~150`);
  });

  test("a connection that stayed up for the stable time starts a fresh run", () => {
    const p = new RedialPolicy({ windowMs: 15_000, stableMs: 5_000 });
    assert.deepEqual(p.failed(0), { kind: "retry", delayMs: 100 });
    p.connected(100);
    assert.deepEqual(p.failed(60_000), { kind: "retry", delayMs: 100 }, "backoff reset");
    p.connected(60_100);
    const d = p.failed(62_000); // up for only 1.9 s: same run as the failure at 60 s
    assert.deepEqual(d, { kind: "retry", delayMs: 200 });
  });

  test("the last delay never overshoots the window", () => {
    const p = new RedialPolicy({ windowMs: 1_000, maxDelayMs: 2_000 });
    assert.deepEqual(p.failed(0), { kind: "retry", delayMs: 100 });
    assert.deepEqual(p.failed(950), { kind: "retry", delayMs: 50 });
    assert.equal(p.failed(1_000).kind, "give-up");
  });
});
