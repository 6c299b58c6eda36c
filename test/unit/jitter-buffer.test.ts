import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  JitterBuffer,
  type JitterBufferOptions,
  type JitterPacket,
  type PopResult,
} from "../../src/media/jitter-buffer.ts";
import { seededRandom } from "../helpers/signals.ts";

// Opus TOC bytes (RFC 6716 §3.1) giving the packet durations the buffer reads.
const TOC_10MS = 30 << 3; // CELT FB 10 ms
const TOC_20MS = 31 << 3; // CELT FB 20 ms
const TOC_40MS = 10 << 3; // SILK WB 40 ms

interface TestPacket extends JitterPacket {
  /** Index in the sender's stream, to check order without thinking about wrap-around. */
  index: number;
}

interface StreamOptions {
  count: number;
  firstSeq?: number;
  firstTs?: number;
  samples?: number;
  toc?: number;
  firstIndex?: number;
}

function stream(options: StreamOptions): TestPacket[] {
  const samples = options.samples ?? 960;
  const first = options.firstIndex ?? 0;
  return Array.from({ length: options.count }, (_, i) => ({
    index: first + i,
    sequenceNumber: ((options.firstSeq ?? 1000) + i) & 0xffff,
    timestamp: ((options.firstTs ?? 123_456) + i * samples) >>> 0,
    payload: Uint8Array.of(options.toc ?? TOC_20MS, i & 0xff),
  }));
}

interface Arrival {
  packet: TestPacket;
  atMs: number;
}

/**
 * Sent every `intervalMs` (by stream index, so dropped packets leave their slot empty) from t = 0 for the
 * first packet given, arriving after `delay(index)` ms.
 */
function arrivals(packets: TestPacket[], delay: (i: number) => number = () => 0, intervalMs = 20): Arrival[] {
  const first = packets[0]?.index ?? 0;
  return packets.map((packet) => ({
    packet,
    atMs: (packet.index - first) * intervalMs + delay(packet.index - first),
  }));
}

type Out = { tickMs: number; result: PopResult<TestPacket> };
type Frame = Exclude<PopResult<TestPacket>, { kind: "empty" }>;
type Lost = Extract<PopResult<TestPacket>, { kind: "lost" }>;

interface SimResult {
  outputs: Out[];
  /**
   * Packet and lost results in output order, up to the last packet played. The concealment after the
   * last packet (the buffer cannot know the stream ended) is counted in `tailLost` instead.
   */
  frames: Frame[];
  played: TestPacket[];
  lost: Lost[];
  tailLost: number;
  /** First empty reason of each tick (the one that ended the tick). */
  emptyReasons: string[];
  maxDepthMs: number;
}

/**
 * Drives the buffer like the egress owner does: pushes every arrival due before a tick, then pops until
 * `empty`, with ticks every 20 ms at `phaseMs` + n × 20.
 */
function simulate(
  jb: JitterBuffer<TestPacket>,
  events: Arrival[],
  options: { untilMs?: number; phaseMs?: number; onTick?: (tickMs: number) => void } = {},
): SimResult {
  const sorted = [...events].sort((a, b) => a.atMs - b.atMs);
  const last = sorted.length > 0 ? sorted[sorted.length - 1].atMs : 0;
  const until = options.untilMs ?? last + 400;
  const phase = options.phaseMs ?? 7;
  const result: SimResult = {
    outputs: [],
    frames: [],
    played: [],
    lost: [],
    tailLost: 0,
    emptyReasons: [],
    maxDepthMs: 0,
  };
  let next = 0;
  for (let tick = phase; tick <= until; tick += 20) {
    while (next < sorted.length && sorted[next].atMs <= tick) {
      jb.push(sorted[next].packet, sorted[next].atMs);
      result.maxDepthMs = Math.max(result.maxDepthMs, jb.stats.currentDepthMs);
      next++;
    }
    options.onTick?.(tick);
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 20, "pop never returned empty within one tick");
      const r = jb.pop(tick);
      result.outputs.push({ tickMs: tick, result: r });
      if (r.kind === "empty") {
        result.emptyReasons.push(r.reason);
        break;
      }
      result.frames.push(r);
      if (r.kind === "packet") result.played.push(r.packet);
      else result.lost.push(r);
    }
  }
  let end = result.frames.length;
  while (end > 0 && result.frames[end - 1].kind === "lost") end--;
  result.tailLost = result.frames.length - end;
  result.frames.length = end;
  result.lost = result.frames.filter((f): f is Lost => f.kind === "lost");
  return result;
}

const indices = (packets: TestPacket[]): number[] => packets.map((p) => p.index);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe("JitterBuffer: ordering", () => {
  test("an in-order stream plays every packet once, in order, after one frame of buffering", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 500 });
    const sim = simulate(jb, arrivals(packets));
    assert.deepEqual(indices(sim.played), range(0, 500));
    assert.equal(sim.lost.length, 0);
    const s = jb.stats;
    assert.equal(s.received, 500);
    assert.equal(s.played, 500);
    assert.equal(sim.tailLost, 3); // the stream just stops: three slots concealed, then underrun
    assert.equal(
      s.concealed - sim.tailLost + s.late + s.duplicates + s.overflowDrops + s.skipped + s.holds,
      0,
    );
    assert.equal(s.targetMs, 20);
    // Packet 0 arrives at t=0 and is played at the first tick (t=7): no more delay than needed.
    assert.equal(sim.outputs.find((o) => o.result.kind === "packet")?.tickMs, 7);
    // Each packet is played at the first tick after its arrival: depth never exceeds one frame.
    assert.ok(sim.maxDepthMs <= 20, "sim.maxDepthMs <= 20");
  });

  test("adjacent pairs swapped: in order, zero loss", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 400 });
    // Packet 2k is sent first but arrives right after 2k+1, 20 ms late.
    const sim = simulate(
      jb,
      arrivals(packets, (i) => (i % 2 === 0 ? 20.5 : 0)),
    );
    assert.deepEqual(indices(sim.played), range(0, 400));
    assert.equal(sim.lost.length, 0);
    assert.equal(jb.stats.late, 0);
    assert.equal(jb.stats.targetMs, 40);
  });

  test("random permutations within 40 ms windows: in order, zero loss", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seededRandom(seed);
      const jb = new JitterBuffer<TestPacket>();
      const packets = stream({ count: 500, firstSeq: Math.floor(random() * 65_536) });
      const events: Arrival[] = [];
      // Each 40 ms window's packets arrive together, shuffled, when the window closes.
      for (let w = 0; w < packets.length / 2; w++) {
        shuffle(packets.slice(2 * w, 2 * w + 2), random).forEach((packet, k) => {
          events.push({ packet, atMs: w * 40 + 20 + k * 0.1 });
        });
      }
      const sim = simulate(jb, events, { phaseMs: Math.floor(random() * 20) });
      assert.deepEqual(indices(sim.played), range(0, 500), `seed ${seed}`);
      assert.equal(sim.lost.length, 0, `seed ${seed}`);
    }
  });

  test("random permutations within 60 ms windows need a larger maxTargetMs, and get zero loss with it", () => {
    const random = seededRandom(9);
    const packets = stream({ count: 600 });
    const events: Arrival[] = [];
    for (let w = 0; w < packets.length / 3; w++) {
      shuffle(packets.slice(3 * w, 3 * w + 3), random).forEach((packet, k) => {
        events.push({ packet, atMs: w * 60 + 40 + k * 0.1 });
      });
    }
    const wide = new JitterBuffer<TestPacket>({ maxTargetMs: 60 });
    let top = 0;
    const sim = simulate(wide, events, { onTick: () => (top = Math.max(top, wide.stats.targetMs)) });
    assert.deepEqual(indices(sim.played), range(0, 600));
    assert.equal(sim.lost.length, 0);
    assert.ok(top > 55 && top <= 60, `target ${top}`);
    // With the default bounds the same input still plays in order; the target just cannot follow.
    const tight = new JitterBuffer<TestPacket>();
    top = 0;
    const tightSim = simulate(tight, events, { onTick: () => (top = Math.max(top, tight.stats.targetMs)) });
    assert.equal(top, 40);
    assert.ok(
      tightSim.played.every((p, i, all) => i === 0 || p.index > all[i - 1].index),
      "tightSim.played.every((p, i, all) => i === 0 || p.index > all[i - 1].index)",
    );
  });

  test("16-bit sequence and 32-bit timestamp wrap-around", () => {
    // Deep enough that the packet after the losses is always here in time for FEC.
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 60, maxTargetMs: 60 });
    const packets = stream({ count: 300, firstSeq: 65_400, firstTs: 2 ** 32 - 960 * 100 });
    const dropped = new Set([134, 135, 136]); // sequence numbers 65534, 65535, 0
    const random = seededRandom(4);
    const events = arrivals(
      packets.filter((p) => !dropped.has(p.index)),
      () => random() * 15,
    );
    const sim = simulate(jb, events);
    const frames = sim.frames.map((f) => (f.kind === "packet" ? f.packet.sequenceNumber : f.sequenceNumber));
    assert.deepEqual(
      frames,
      packets.map((p) => p.sequenceNumber),
    );
    assert.deepEqual(
      sim.lost.map((l) => [l.sequenceNumber, l.timestamp, l.samples]),
      [...dropped].map((i) => [packets[i].sequenceNumber, packets[i].timestamp, 960]),
    );
    assert.ok(
      sim.lost.some((l) => l.sequenceNumber === 0),
      "sim.lost.some((l) => l.sequenceNumber === 0)",
    );
    // The loss right before the wrap and right after it both have their next packet for FEC.
    assert.equal(sim.lost[2].next?.sequenceNumber, 1);
  });
});

describe("JitterBuffer: loss", () => {
  test("5 % random loss: every gap is reported as lost exactly once and the frame sequence is continuous", () => {
    const random = seededRandom(42);
    const packets = stream({ count: 2000 });
    const kept = packets.filter((p) => p.index === 0 || p.index === 1999 || random() >= 0.05);
    const droppedCount = packets.length - kept.length;
    assert.ok(droppedCount > 60 && droppedCount < 140, `dropped ${droppedCount}`);
    const jb = new JitterBuffer<TestPacket>();
    const sim = simulate(jb, arrivals(kept));
    const seqs = sim.frames.map((f) => (f.kind === "packet" ? f.packet.sequenceNumber : f.sequenceNumber));
    assert.deepEqual(
      seqs,
      packets.map((p) => p.sequenceNumber),
    );
    const keptSet = new Set(kept.map((p) => p.sequenceNumber));
    assert.deepEqual(
      sim.lost.map((l) => l.sequenceNumber),
      packets.filter((p) => !keptSet.has(p.sequenceNumber)).map((p) => p.sequenceNumber),
    );
    for (const l of sim.lost) {
      const original = packets.find((p) => p.sequenceNumber === l.sequenceNumber);
      assert.equal(l.timestamp, original?.timestamp);
    }
    assert.equal(jb.stats.concealed - sim.tailLost, droppedCount);
    assert.equal(jb.stats.played, kept.length);
  });

  test("with a deeper buffer the packet after a loss is offered for FEC", () => {
    const random = seededRandom(7);
    const packets = stream({ count: 1000 });
    const kept = packets.filter((p) => p.index < 2 || random() >= 0.05);
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 40 });
    const sim = simulate(jb, arrivals(kept));
    const keptSeq = new Set(kept.map((p) => p.sequenceNumber));
    let withNext = 0;
    for (const l of sim.lost) {
      const following = (l.sequenceNumber + 1) & 0xffff;
      if (keptSeq.has(following)) {
        assert.equal(l.next?.sequenceNumber, following);
        withNext++;
      } else {
        assert.equal(l.next, undefined);
      }
    }
    assert.ok(withNext > 20, `only ${withNext} losses had FEC available`);
    // The FEC packet is not consumed: it is played right after the lost slot.
    for (let i = 0; i + 1 < sim.frames.length; i++) {
      const f = sim.frames[i];
      if (f.kind === "lost" && f.next !== undefined) {
        const after = sim.frames[i + 1];
        assert.equal(after.kind === "packet" ? after.packet : undefined, f.next);
      }
    }
  });

  test("a late packet (its slot already concealed) is dropped and counted, never played", () => {
    const packets = stream({ count: 100 });
    const jb = new JitterBuffer<TestPacket>();
    const sim = simulate(
      jb,
      arrivals(packets, (i) => (i === 50 ? 100 : 0)),
    );
    assert.deepEqual(
      sim.lost.map((l) => l.sequenceNumber),
      [packets[50].sequenceNumber],
    );
    assert.equal(jb.stats.late, 1);
    assert.ok(!sim.played.includes(packets[50]), "!sim.played.includes(packets[50])");
    assert.deepEqual(indices(sim.played), [...range(0, 50), ...range(51, 100)]);
  });

  test("duplicates, whether still buffered or already played, are dropped and counted", () => {
    const packets = stream({ count: 200 });
    const events: Arrival[] = [];
    for (const a of arrivals(packets)) {
      events.push(a, { packet: { ...a.packet }, atMs: a.atMs + 0.5 }); // while buffered
      if (a.packet.index % 10 === 0) events.push({ packet: { ...a.packet }, atMs: a.atMs + 100 }); // after playing
    }
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 40 });
    const outcomes: string[] = [];
    const sorted = events.sort((x, y) => x.atMs - y.atMs);
    const sim = simulate(jb, []); // warm-up on nothing: stays idle
    assert.equal(sim.played.length, 0);
    let next = 0;
    const played: TestPacket[] = [];
    for (let tick = 7; tick < 5000; tick += 20) {
      while (next < sorted.length && sorted[next].atMs <= tick) {
        outcomes.push(jb.push(sorted[next].packet, sorted[next].atMs));
        next++;
      }
      for (let r = jb.pop(tick); r.kind !== "empty"; r = jb.pop(tick))
        if (r.kind === "packet") played.push(r.packet);
    }
    assert.deepEqual(indices(played), range(0, 200));
    assert.equal(jb.stats.duplicates, 220);
    assert.equal(outcomes.filter((o) => o === "duplicate").length, 220);
    assert.equal(jb.stats.late, 0);
    assert.equal(jb.stats.concealed, 3); // only the three slots after the stream stopped
  });

  test("a long hole is concealed for maxConcealFrames slots, then skipped", () => {
    const packets = stream({ count: 100 });
    // 5 packets lost, and the buffer is deep enough that the packet after the hole is already here.
    const kept = packets.filter((p) => p.index < 40 || p.index >= 45);
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 120, maxTargetMs: 120 });
    const sim = simulate(jb, arrivals(kept));
    assert.deepEqual(
      sim.lost.map((l) => [l.sequenceNumber, l.next]),
      [40, 41, 42].map((i) => [packets[i].sequenceNumber, undefined]),
    );
    assert.equal(jb.stats.skipped, 2);
    assert.equal(jb.stats.underruns, 1); // only the end of the stream
    assert.deepEqual(indices(sim.played), [...range(0, 40), ...range(45, 100)]);
  });

  test("a hole longer than the buffer: concealment, underrun, and the resumed stream accounts for the rest", () => {
    const packets = stream({ count: 100 });
    const kept = packets.filter((p) => p.index < 40 || p.index >= 50);
    const jb = new JitterBuffer<TestPacket>();
    const sim = simulate(jb, arrivals(kept));
    assert.equal(sim.lost.length, 3);
    assert.equal(jb.stats.skipped, 7);
    assert.deepEqual(indices(sim.played), [...range(0, 40), ...range(50, 100)]);
  });
});

describe("JitterBuffer: talk-spurts, restarts and bursts", () => {
  test("talk-spurt end → 3 concealed slots → underrun → clean restart on the next spurt (DTX)", () => {
    const first = stream({ count: 50 });
    // DTX: sequence numbers continue, the timestamp jumps by the 1 s of silence not sent.
    const second = stream({
      count: 50,
      firstSeq: 1050,
      firstTs: 123_456 + 50 * 960 + 48_000,
      firstIndex: 50,
    });
    second[0].marker = true;
    const events = [...arrivals(first), ...arrivals(second).map((a) => ({ ...a, atMs: a.atMs + 2000 }))];
    const jb = new JitterBuffer<TestPacket>();
    const states: string[] = [];
    const sim = simulate(jb, events, { onTick: () => states.push(jb.state) });
    assert.deepEqual(indices(sim.played), range(0, 100));
    assert.equal(sim.lost.length, 3);
    // Starvation losses continue the timeline past the last packet.
    assert.deepEqual(
      sim.lost.map((l) => l.timestamp),
      [50, 51, 52].map((i) => 123_456 + i * 960),
    );
    assert.equal(jb.stats.underruns, 2); // the second spurt ends the same way
    assert.ok(
      sim.emptyReasons.filter((r) => r === "underrun").length > 50,
      'sim.emptyReasons.filter((r) => r === "underrun").length > 50',
    );
    // The second spurt starts with its marker packet and buffers again before playing.
    const restart = sim.frames.findIndex((f) => f.kind === "packet" && f.packet.index === 50);
    assert.equal(sim.frames[restart - 1].kind, "lost");
    const order = states.filter((s, i) => i === 0 || s !== states[i - 1]);
    assert.deepEqual(order, ["buffering", "playing", "underrun", "buffering", "playing", "underrun"]);
  });

  test("a stalled-then-bursting network: concealed slots' packets are late, the rest plays", () => {
    const packets = stream({ count: 100 });
    // Packets 40–49 are held back and arrive all at once at t = 999, just before packet 50.
    const events = arrivals(packets, (i) => (i >= 40 && i < 50 ? 999 - i * 20 : 0));
    const jb = new JitterBuffer<TestPacket>();
    const sim = simulate(jb, events);
    assert.equal(jb.stats.underruns, 2); // the stall, then the end of the stream
    assert.equal(sim.lost.length, 3);
    assert.equal(jb.stats.late, 3);
    // After the underrun, playout resumes from the first packet that is not late, in order. The burst left
    // ~160 ms buffered against a 40 ms target; trimming may take one packet per second of that back.
    const expected = [...range(0, 40), ...range(43, 100)];
    const played = indices(sim.played);
    assert.ok(
      played.every((i, k) => k === 0 || i > played[k - 1]),
      "played.every((i, k) => k === 0 || i > played[k - 1])",
    );
    assert.ok(
      played.every((i) => expected.includes(i)),
      "played.every((i) => expected.includes(i))",
    );
    assert.ok(jb.stats.trimmed <= 2, "jb.stats.trimmed <= 2");
    assert.equal(played.length, expected.length - jb.stats.trimmed);
  });

  test("source restart (sequence and timestamp jump): resync after two consecutive packets", () => {
    const old = stream({ count: 100, firstSeq: 1000 });
    const restarted = stream({ count: 100, firstSeq: 40_000, firstTs: 9_999_999, firstIndex: 100 });
    const events = [...arrivals(old), ...arrivals(restarted).map((a) => ({ ...a, atMs: a.atMs + 2000 }))];
    const jb = new JitterBuffer<TestPacket>();
    const sorted = [...events].sort((a, b) => a.atMs - b.atMs);
    // Restart while still playing: the new stream arrives before the old one ran dry.
    sorted.forEach((e, i) => {
      if (i >= 100) e.atMs = old.length * 20 - 10 + (i - 100) * 20;
    });
    const sim = simulate(jb, sorted);
    assert.equal(jb.stats.resyncs, 1);
    assert.deepEqual(indices(sim.played), range(0, 200));
    // At most the one slot between the old stream running dry and the restart being confirmed.
    assert.ok(sim.lost.length <= 1, `${sim.lost.length} lost`);
  });

  test("source restart: push outcomes are probation, then resync; a lone stray changes nothing", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 20, firstSeq: 100 });
    for (let i = 0; i < 10; i++) {
      assert.equal(jb.push(packets[i], i * 20), "accepted");
      jb.pop(i * 20 + 7);
    }
    const stray: TestPacket = { ...packets[0], index: -1, sequenceNumber: 30_000, timestamp: 5 };
    assert.equal(jb.push(stray, 201), "probation");
    assert.equal(jb.push(packets[10], 202), "accepted");
    assert.equal(jb.stats.strays, 1);
    assert.equal(jb.stats.resyncs, 0);
    const fresh = stream({ count: 5, firstSeq: 50_000, firstTs: 77, firstIndex: 100 });
    assert.equal(jb.push(fresh[0], 220), "probation");
    assert.equal(jb.push(fresh[1], 221), "resync");
    assert.equal(jb.state, "buffering");
    assert.equal(jb.stats.resyncs, 1);
    assert.equal(jb.stats.flushed, 1); // packet 10 was still buffered
    const out: number[] = [];
    for (let t = 227; t < 400; t += 20) {
      const r = jb.pop(t);
      if (r.kind === "packet") out.push(r.packet.index);
    }
    assert.deepEqual(out, [100, 101]);
  });

  test("after an underrun a restarted source is taken at its first packet", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 5 });
    for (const [i, p] of packets.entries()) jb.push(p, i * 20);
    for (let t = 1; jb.state !== "underrun"; t += 20) jb.pop(t);
    const fresh = stream({ count: 2, firstSeq: 30_000, firstTs: 5, firstIndex: 100 });
    assert.equal(jb.push(fresh[0], 1000), "resync");
    assert.equal(jb.state, "buffering");
    const r = jb.pop(1001);
    assert.equal(r.kind === "packet" && r.packet.index, 100);
  });

  test("a 1 s burst never exceeds the cap; the newest audio survives", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 80 });
    for (let i = 0; i < 10; i++) {
      jb.push(packets[i], i * 20);
      jb.pop(i * 20 + 7);
    }
    for (let i = 10; i < 60; i++) {
      jb.push(packets[i], 200);
      assert.ok(jb.stats.currentDepthMs <= 200, `depth ${jb.stats.currentDepthMs} ms after packet ${i}`);
    }
    assert.equal(jb.stats.currentDepthMs, 200);
    assert.equal(jb.stats.overflowDrops, 40);
    const played: number[] = [];
    for (let t = 207; t < 600; t += 20) {
      for (let r = jb.pop(t); r.kind !== "empty"; r = jb.pop(t))
        if (r.kind === "packet") played.push(r.packet.index);
    }
    assert.deepEqual(played, range(50, 60));
    assert.equal(jb.stats.concealed, 3); // the source went quiet after the burst
  });

  test("the cap holds under a custom configuration too", () => {
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 60, maxTargetMs: 100, capMs: 100 });
    const packets = stream({ count: 100 });
    for (const p of packets) {
      jb.push(p, 0);
      assert.ok(jb.stats.currentDepthMs <= 100, "jb.stats.currentDepthMs <= 100");
    }
    assert.equal(jb.stats.overflowDrops, 95);
  });

  test("DTX silence inside the buffer is waited out, not concealed", () => {
    const jb = new JitterBuffer<TestPacket>();
    const a = stream({ count: 5 });
    const b = stream({ count: 5, firstSeq: 1005, firstTs: 123_456 + 8 * 960, firstIndex: 5 });
    // Everything arrives at once: packet 5 starts 3 frames after packet 4 ends.
    for (const p of [...a, ...b]) jb.push(p, 0);
    const reasons: string[] = [];
    const played: number[] = [];
    for (let t = 1; played.length < 10; t += 20) {
      const r = jb.pop(t);
      if (r.kind === "packet") played.push(r.packet.index);
      else if (r.kind === "empty") reasons.push(r.reason);
      else assert.fail("nothing should be concealed");
    }
    assert.deepEqual(played, range(0, 10));
    assert.deepEqual(reasons.slice(0, 3), ["gap", "gap", "gap"]);
  });

  test("40 ms packets: one per two ticks, the tick in between is covered", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 50, samples: 1920, toc: TOC_40MS });
    const sim = simulate(
      jb,
      arrivals(packets, () => 0, 40),
    );
    assert.deepEqual(indices(sim.played), range(0, 50));
    assert.equal(sim.lost.length, 0);
    const ticksWithPacket = new Set(
      sim.outputs.filter((o) => o.result.kind === "packet").map((o) => o.tickMs),
    );
    assert.equal(ticksWithPacket.size, 50);
    assert.ok(
      sim.emptyReasons.filter((r) => r === "covered").length >= 49,
      'sim.emptyReasons.filter((r) => r === "covered").length >= 49',
    );
  });

  test("10 ms packets: two per tick when the owner pops until empty", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 200, samples: 480, toc: TOC_10MS });
    const sim = simulate(
      jb,
      arrivals(packets, () => 0, 10),
    );
    assert.deepEqual(indices(sim.played), range(0, 200));
    assert.equal(sim.lost.length, 0);
    const perTick = new Map<number, number>();
    for (const o of sim.outputs)
      if (o.result.kind === "packet") perTick.set(o.tickMs, (perTick.get(o.tickMs) ?? 0) + 1);
    assert.ok(
      [...perTick.values()].filter((n) => n === 2).length > 90,
      "[...perTick.values()].filter((n) => n === 2).length > 90",
    );
  });
});

describe("JitterBuffer: adaptive target", () => {
  /** The first packet is on time, so the buffer starts with no slack and must learn the jitter. */
  function jittery(seed: number, maxJitterMs: number, count = 500): Arrival[] {
    const random = seededRandom(seed);
    return arrivals(stream({ count }), (i) => (i === 0 ? 0 : random() * maxJitterMs));
  }

  test("no jitter keeps the minimum target", () => {
    const jb = new JitterBuffer<TestPacket>();
    simulate(jb, jittery(1, 0));
    assert.equal(jb.stats.targetMs, 20);
    assert.equal(jb.stats.jitterMs, 0);
  });

  test("the target grows with observed jitter and stays within [min, max]", () => {
    const targets: number[] = [];
    for (const maxJitter of [5, 10, 15, 30, 100]) {
      const jb = new JitterBuffer<TestPacket>();
      let top = 0;
      simulate(jb, jittery(maxJitter, maxJitter), {
        onTick: () => {
          const t = jb.stats.targetMs;
          assert.ok(t >= 20 && t <= 40, `target ${t}`);
          top = Math.max(top, t);
        },
      });
      targets.push(top);
      assert.ok(jb.stats.jitterMs <= maxJitter, "jb.stats.jitterMs <= maxJitter");
      assert.ok(jb.stats.jitterMs > maxJitter * 0.8, `jitter ${jb.stats.jitterMs} for ${maxJitter}`);
    }
    for (let i = 1; i < targets.length; i++) assert.ok(targets[i] >= targets[i - 1], `targets ${targets}`);
    assert.ok(targets[0] > 20 && targets[0] < 30, `targets ${targets}`);
    assert.equal(targets[3], 40);
    assert.equal(targets[4], 40);
  });

  test("custom bounds are respected", () => {
    const jb = new JitterBuffer<TestPacket>({ minTargetMs: 40, maxTargetMs: 120, capMs: 200 });
    let max = 0;
    simulate(jb, jittery(3, 300), { onTick: () => (max = Math.max(max, jb.stats.targetMs)) });
    assert.equal(max, 120);
    const calm = new JitterBuffer<TestPacket>({ minTargetMs: 40, maxTargetMs: 120 });
    simulate(calm, jittery(3, 0));
    assert.equal(calm.stats.targetMs, 40);
    assert.throws(() => new JitterBuffer({ minTargetMs: 50, maxTargetMs: 40 }), RangeError);
    assert.throws(() => new JitterBuffer({ maxTargetMs: 300, capMs: 200 }), RangeError);
    assert.throws(() => new JitterBuffer({ maxConcealFrames: -1 }), RangeError);
  });

  test("the target decays back once the jitter is gone", () => {
    const random = seededRandom(5);
    const packets = stream({ count: 400 });
    const jb = new JitterBuffer<TestPacket>();
    const seen: number[] = [];
    simulate(
      jb,
      arrivals(packets, (i) => (i < 100 ? random() * 20 : 0)),
      { onTick: (t) => seen.push(t < 2000 ? jb.stats.targetMs : 0) },
    );
    assert.ok(Math.max(...seen) > 35, "Math.max(...seen) > 35");
    assert.equal(jb.stats.targetMs, 20);
  });

  test("moderate jitter: adaptation (deeper start, a hold while playing) keeps concealment rare", () => {
    let holds = 0;
    for (const seed of [11, 12, 13]) {
      for (const phaseMs of [1, 7, 15]) {
        const jb = new JitterBuffer<TestPacket>();
        const sim = simulate(jb, jittery(seed, 18, 1000), { phaseMs });
        assert.ok(sim.lost.length <= 3, `seed ${seed} phase ${phaseMs}: ${sim.lost.length} concealed`);
        assert.equal(jb.stats.late, sim.lost.length); // every loss here is a packet that came too late
        holds += jb.stats.holds;
        const order = sim.frames.map((f) =>
          f.kind === "packet" ? f.packet.sequenceNumber : f.sequenceNumber,
        );
        const continuous = order.every((s, i) => i === 0 || s === ((order[i - 1] + 1) & 0xffff));
        const resumed = jb.stats.skipped > 0; // an underrun restarts at the first packet that is not late
        assert.ok(continuous || resumed, "frames not continuous");
      }
    }
    assert.ok(holds > 0, "playout was never deepened while playing");
    // Packet 0 played 15 ms after it arrived leaves 15 ms of slack for 18 ms of jitter: without adaptation
    // about one packet in six is late, for the whole stream.
    const fixed = new JitterBuffer<TestPacket>({ minTargetMs: 20, maxTargetMs: 20 });
    const fixedSim = simulate(fixed, jittery(11, 18, 1000), { phaseMs: 15 });
    assert.ok(fixedSim.lost.length > 50, `fixed target concealed only ${fixedSim.lost.length}`);
    const adaptive = new JitterBuffer<TestPacket>();
    const adaptiveSim = simulate(adaptive, jittery(11, 18, 1000), { phaseMs: 15 });
    assert.ok(adaptiveSim.lost.length <= 2, `adaptive concealed ${adaptiveSim.lost.length}`);
  });

  test("a sender clock running 1 % fast is trimmed instead of piling up to the cap", () => {
    const jb = new JitterBuffer<TestPacket>();
    const packets = stream({ count: 3000 });
    const sim = simulate(
      jb,
      arrivals(packets, () => 0, 19.8),
    );
    assert.ok(jb.stats.trimmed > 0, "never trimmed");
    assert.equal(jb.stats.overflowDrops, 0);
    assert.ok(sim.maxDepthMs <= 100, `depth reached ${sim.maxDepthMs} ms`);
    assert.equal(sim.lost.length, 0);
  });
});

describe("JitterBuffer: pass-through mode (reorder: false)", () => {
  const options: JitterBufferOptions = { reorder: false };

  test("packets leave in arrival order at once, late ones are dropped", () => {
    const jb = new JitterBuffer<TestPacket>(options);
    const [p0, p1, p2, p3] = stream({ count: 4 });
    assert.equal(jb.stats.targetMs, 0);
    jb.push(p0, 0);
    const first = jb.pop(1);
    assert.equal(first.kind === "packet" && first.packet, p0);
    jb.push(p2, 15);
    jb.push(p1, 16); // reordered: still newer than p0, so it stays queued behind p2
    const a = jb.pop(21);
    assert.equal(a.kind === "packet" && a.packet, p2);
    const b = jb.pop(41);
    assert.deepEqual(b, { kind: "empty", reason: "underrun" }); // p1 was late by the time it got out
    assert.equal(jb.stats.late, 1);
    assert.equal(jb.push(p1, 45), "late");
    assert.equal(jb.push(p2, 46), "duplicate");
    jb.push(p3, 50);
    const c = jb.pop(61);
    assert.equal(c.kind === "packet" && c.packet, p3);
    assert.equal(jb.stats.concealed, 0);
  });

  test("no loss reporting and no buffering delay on a lossy in-order stream", () => {
    const random = seededRandom(8);
    const packets = stream({ count: 300 }).filter(() => random() > 0.1);
    const jb = new JitterBuffer<TestPacket>(options);
    const sim = simulate(jb, arrivals(packets));
    assert.deepEqual(sim.played, packets);
    assert.equal(sim.lost.length, 0);
  });
});

describe("JitterBuffer: idle and reset", () => {
  test("pop before any packet is empty/idle; reset returns to idle and a new stream starts cleanly", () => {
    const jb = new JitterBuffer<TestPacket>();
    assert.deepEqual(jb.pop(0), { kind: "empty", reason: "idle" });
    const packets = stream({ count: 10 });
    for (const p of packets.slice(0, 5)) jb.push(p, 0);
    jb.reset();
    assert.equal(jb.state, "idle");
    assert.equal(jb.stats.flushed, 5);
    const other = stream({ count: 3, firstSeq: 7, firstIndex: 50 });
    jb.push(other[0], 100);
    assert.equal(jb.state, "buffering");
    const r = jb.pop(101);
    assert.equal(r.kind === "packet" && r.packet.index, 50);
  });
});
