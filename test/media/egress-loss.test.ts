// Egress under loss, reordering, mono sources and event-loop stalls (SPEC §2.6): the PCM stream the
// endpoint gets is gapless (one frame per 20 ms of source timeline, every lost packet concealed), in
// order, numbered 1, 2, 3…, and stamped with the source timestamps.
//
// The publisher writes raw RTP itself (sendRaw) on an absolute 20 ms clock, in a chosen order: that is the
// only way to get reordering and loss through a real werift peer connection on loopback.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Encoder } from "@evan/opus";
import type { RtpPacket } from "werift";
import type { EgressAdapter } from "../../src/adapters/websocket/egress.ts";
import type { WirePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { parseOpusPacket } from "../../src/media/opus-decoder.ts";
import { encodeOpus, publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, seededRandom, speechLike } from "../helpers/signals.ts";
import {
  assertEgressContinuous,
  createEgress,
  type FrameReceiver,
  frameRms,
  pcmOf,
  receiver,
  rtpPackets,
  sendPaced,
  startEndpoint,
} from "../helpers/ws-endpoints.ts";

/** Slots after the last packet the jitter buffer conceals before it declares an underrun (maxConcealFrames). */
const MAX_TAIL = 3;

interface Schedule {
  slots: (RtpPacket | undefined)[];
  dropped: number[];
  swaps: number[];
}

/**
 * Seeded loss and reordering: exactly `lossRate` of the packets dropped (never the first 10, never the
 * last, never two in a row), and here and there an adjacent pair swapped (packet i+1 leaves in i's slot);
 * a swapped pair never touches a drop. A dropped packet's slot stays empty.
 */
function lossySchedule(packets: RtpPacket[], seed: number, lossRate: number, swapRate: number): Schedule {
  const random = seededRandom(seed);
  const n = packets.length;
  const drop = new Set<number>();
  const want = Math.round(n * lossRate);
  while (drop.size < want) {
    const i = 10 + Math.floor(random() * (n - 11));
    if (!drop.has(i - 1) && !drop.has(i + 1)) drop.add(i);
  }
  const order = packets.map((_, i) => i);
  const swaps: number[] = [];
  for (let i = 10; i < n - 2; i++) {
    if (random() >= swapRate) continue;
    if ([i - 1, i, i + 1, i + 2].some((j) => drop.has(j))) continue;
    [order[i], order[i + 1]] = [order[i + 1], order[i]];
    swaps.push(i);
    i += 2; // pairs never overlap or touch
  }
  return {
    slots: order.map((i) => (drop.has(i) ? undefined : packets[i])),
    dropped: [...drop].sort((a, b) => a - b),
    swaps,
  };
}

/** Index of a frame's timestamp on the source timeline that starts at `ts0` (modulo 2^32). */
function frameIndex(timestamp: number, ts0: number): number {
  return ((timestamp - ts0) >>> 0) / 960;
}

describe("egress: loss, reordering, mono, stalls", { timeout: 120_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  interface EgressRun {
    pub: Awaited<ReturnType<typeof publishAudio>>;
    rx: FrameReceiver;
    adapter: EgressAdapter;
    /**
     * Resolves with every frame once the frame stamped `lastTs` arrived and the jitter buffer then starved
     * (it conceals up to 3 slots after the last packet, then reports an underrun; no event: polled).
     */
    playedOut(lastTs: number): Promise<WirePacket[]>;
  }

  /** Publisher + egress adapter + endpoint on a fresh track; the adapter is closed by API afterwards. */
  async function withEgress(trackName: string, run: (ctx: EgressRun) => Promise<void>): Promise<void> {
    const pub = await publishAudio(srv.api, trackName);
    const endpoint = await startEndpoint(() => {}, "/stt");
    let adapterId: string | undefined;
    try {
      const conn = endpoint.nextConnection();
      adapterId = (await createEgress(srv.api, { sessionId: pub.sessionId, trackName }, endpoint.url))
        .adapterId;
      const rx = receiver(await conn);
      const adapter = srv.server.adapters(srv.api.appId)!.get(adapterId) as EgressAdapter;
      const playedOut = async (lastTs: number) => {
        await rx.waitUntil((p) => p.some((f) => f.timestamp === lastTs), 5000, "the last frame");
        const underruns = adapter.status().underruns;
        const deadline = performance.now() + 2000;
        while (adapter.status().underruns === underruns) {
          if (performance.now() > deadline) throw new Error("no underrun 2 s after the last packet");
          await new Promise((r) => setTimeout(r, 20));
        }
        return rx.packets;
      };
      await run({ pub, rx, adapter, playedOut });
      const closed = await srv.api.raw<{ tracks: { bytesProcessed?: number }[] }>(
        "POST",
        "adapters/websocket/close",
        { tracks: [{ adapterId }] },
      );
      assert.ok(
        (closed.body.tracks[0].bytesProcessed ?? 0) > 0,
        "closed by API: bytesProcessed (PCM bytes sent)",
      );
      adapterId = undefined;
    } finally {
      if (adapterId)
        await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] }).catch(() => {});
      await pub.close();
      await endpoint.close();
    }
  }

  test("reordering + 5 % loss: a gapless, ordered PCM timeline; every loss concealed, no silent frame in speech", async () => {
    const source = speechLike(8000, { seed: 31 });
    const ts0 = 2 ** 32 - 960 * 50; // RTP timestamps wrap after 1 s, sequence numbers after 36 packets
    const packets = rtpPackets(encodeOpus(source), 65_500, ts0);
    const { slots, dropped, swaps } = lossySchedule(packets, 7, 0.05, 0.08);
    const n = packets.length;
    await withEgress("lossy", async ({ pub, rx, adapter, playedOut }) => {
      // Packets land mid-way between two slots. The buffer's real waiting time is that phase plus whole
      // frames, and a swapped packet is exactly 20 ms late: with a phase near 0 it would miss its slot by
      // a hair whatever the target, so the phase is fixed rather than left to chance (see the report).
      await sendPaced(pub, slots, { startAt: gridAligned(adapter, 10) });
      const frames = await playedOut(packets[n - 1].header.timestamp);
      const diag = diagnostics(adapter, srv);
      assertEgressContinuous(frames, `lossy stream (${diag})`, { firstSeq: 1 });
      assert.equal(frames[0].timestamp, ts0, "starts with the first source packet");
      const inRange = frames.filter((f) => frameIndex(f.timestamp, ts0) < n);
      const tail = frames.length - inRange.length;
      assert.equal(inRange.length, n, "one frame per source frame between the first and last packet");
      assert.ok(tail <= MAX_TAIL, `at most ${MAX_TAIL} concealed frames after the end (${tail})`);

      // Every dropped packet concealed once. A swapped packet arrives 20 ms late; the buffer's target
      // (20 ms until it has seen reordering, then at most 40 ms) absorbs that, but scheduling noise on a
      // loaded machine can push one beyond it: it is then judged lost, concealed, and discarded when it
      // comes. Unloaded that is 0–1 of the swaps; a buffer that concealed reorderings would be at ~all.
      const misjudged = adapter.concealedFrames - tail - dropped.length;
      console.log(
        `${n} packets, ${dropped.length} dropped, ${swaps.length} swapped pairs: ${adapter.concealedFrames} ` +
          `concealed (${tail} after the end, ${misjudged} swap(s) judged lost), ${adapter.frames} frames`,
      );
      assert.ok(misjudged >= 0, "every dropped packet is concealed");
      assert.ok(
        misjudged <= 2,
        `reordered packets are put back in order, not concealed (${misjudged} of ${swaps.length}; ${diag})`,
      );
      assert.equal(adapter.droppedFrames, 0);
      assert.equal(rx.invalid, 0);

      // No silent frame inside the speech: where the source is loud (this frame and the one before, for
      // the codec's lookahead), the output frame is too — concealed frames included.
      const frameRmsOf = (k: number) => rms(source.subarray(k * 1920, (k + 1) * 1920));
      const sourceRms = packets.map((_, k) => frameRmsOf(k));
      const loud = 0.3 * Math.max(...sourceRms);
      let checked = 0;
      let worst = Number.POSITIVE_INFINITY;
      for (let k = 1; k < n; k++) {
        if (sourceRms[k] < loud || sourceRms[k - 1] < loud) continue;
        const out = frameRms(inRange[k]);
        const ratio = out / sourceRms[k];
        worst = Math.min(worst, ratio);
        checked++;
        assert.ok(
          ratio > 0.1,
          `frame ${k}${dropped.includes(k) ? " (dropped, concealed)" : ""}: rms ${out.toFixed(0)} where the ` +
            `source has ${sourceRms[k].toFixed(0)}`,
        );
      }
      const concealedLoud = dropped.filter((k) => sourceRms[k] >= loud && sourceRms[k - 1] >= loud).length;
      console.log(
        `${checked} loud frames checked (${concealedLoud} of them concealed): worst rms ratio ${worst.toFixed(2)}`,
      );
      assert.ok(checked > n / 4 && concealedLoud >= 3, "the check covers speech, concealed frames included");

      const { correlation, lagSamples } = alignAndCorrelate(source, pcmOf(inRange), { maxLagSamples: 4800 });
      assert.ok(correlation >= 0.9, `matches the source (r=${correlation.toFixed(3)})`);
      assert.ok(Math.abs(lagSamples) < 960, `frame k is source frame k (lag ${lagSamples})`);
    });
  });

  test("a mono Opus source arrives as two identical channels, concealed frames included, matching the source", async () => {
    const stereo = speechLike(5000, { seed: 32 });
    const mono = new Int16Array(stereo.length / 2);
    for (let i = 0; i < mono.length; i++) mono[i] = stereo[i * 2];
    // voip + in-band FEC: SILK/hybrid packets, so a loss is rebuilt from the next packet's FEC, the path
    // where libopus' stereo output of a mono stream is not naturally identical.
    const enc = new Encoder({ channels: 1, sample_rate: 48000, application: "voip" });
    enc.inband_fec = true;
    enc.packet_loss = 10;
    const payloads: Uint8Array[] = [];
    for (let i = 0; i + 960 <= mono.length; i += 960)
      payloads.push(enc.encode(mono.subarray(i, i + 960)).slice());
    const info = parseOpusPacket(payloads[100])!;
    assert.equal(info.stereo, false, "the packets are mono");
    const packets = rtpPackets(payloads);
    const dropped = [40, 71, 130, 171, 200];
    const slots = packets.map((p, i) => (dropped.includes(i) ? undefined : p));
    await withEgress("mono", async ({ pub, rx, adapter, playedOut }) => {
      await sendPaced(pub, slots);
      const frames = await playedOut(packets.at(-1)!.header.timestamp);
      assertEgressContinuous(frames, "mono stream", { firstSeq: 1 });
      console.log(
        `mono ${info.mode} packets: ${frames.length} frames, ${adapter.concealedFrames} concealed (${dropped.length} dropped)`,
      );
      assert.ok(adapter.concealedFrames >= dropped.length);
      assert.equal(rx.invalid, 0);
      const pcm = pcmOf(frames);
      for (let i = 0; i < pcm.length; i += 2) {
        if (pcm[i] !== pcm[i + 1])
          assert.fail(
            `frame ${Math.floor(i / 1920)} sample ${(i % 1920) / 2}: L ${pcm[i]} ≠ R ${pcm[i + 1]}`,
          );
      }
      assert.ok(rms(pcm) > 500, "not silence");
      const reference = new Int16Array(mono.length * 2);
      for (let i = 0; i < mono.length; i++) reference[i * 2] = reference[i * 2 + 1] = mono[i];
      const { correlation, lagSamples } = alignAndCorrelate(reference, pcm, { maxLagSamples: 4800 });
      assert.ok(correlation >= 0.9, `matches the mono source (r=${correlation.toFixed(3)})`);
      assert.ok(Math.abs(lagSamples) < 960, `aligned (lag ${lagSamples})`);
    });
  });

  // A late scheduler wake runs every missed slot at once. Each slot must be a frame of playout (before the
  // fix the jitter buffer granted one frame per wake: each stall added its length to the latency, later
  // trimmed away as uncompensated 20 ms jumps in the timestamps, and 100 ms stalls overflowed it).
  // Slots run after the wake's I/O, so packets that queued up during a stall are played, not concealed.
  // Here the publisher shares the stalled process and Node runs its overdue timer one loop turn after the
  // scheduler's, so a few of its packets can still come too late (a remote publisher's would already be
  // waiting in the socket): up to 3 concealed frames per stall are tolerated, never a gap.
  test("event-loop stalls (3 × 100 ms) leave the timeline whole: one frame per slot, nothing trimmed or skipped", async () => {
    const source = speechLike(5000, { seed: 33 });
    const packets = rtpPackets(encodeOpus(source));
    await withEgress("stalls", async ({ pub, rx, adapter, playedOut }) => {
      const stall = () => {
        const end = performance.now() + 100;
        while (performance.now() < end) {} // a synchronous stall of the whole process
      };
      const timers = [1000, 2200, 3400].map((t) => setTimeout(stall, t));
      try {
        await sendPaced(pub, packets);
      } finally {
        for (const t of timers) clearTimeout(t);
      }
      const frames = await playedOut(packets.at(-1)!.header.timestamp);
      const diag = diagnostics(adapter, srv);
      assertEgressContinuous(frames, `stalled stream (${diag})`, { firstSeq: 1 });
      const tail = frames.length - packets.length;
      assert.ok(tail >= 0 && tail <= MAX_TAIL, `one frame per packet (+${tail} after the end)`);
      assert.deepEqual(
        frames.slice(0, packets.length).map((f) => f.timestamp),
        packets.map((p) => p.header.timestamp),
      );
      const concealed = adapter.concealedFrames - tail;
      console.log(`3 stalls of 100 ms: ${concealed} frame(s) concealed`);
      assert.ok(
        concealed <= 3 * MAX_TAIL,
        `a stall costs at most a few concealed frames (${concealed}; ${diag})`,
      );
      assert.equal(rx.invalid, 0);
    });
  });
});

/**
 * A time `offsetMs` after an instant of the server's 20 ms media grid (where the adapter's slots fall),
 * at least 100 ms from now. A publisher paced from there delivers each packet `offsetMs` after a slot.
 */
function gridAligned(adapter: EgressAdapter, offsetMs: number): number {
  const { startMs } = (adapter as unknown as { registration: { startMs: number } }).registration;
  return startMs + Math.ceil((performance.now() + 100 - startMs) / 20) * 20 + offsetMs;
}

/** The adapter's jitter-buffer and the server scheduler's counters, for failure messages. */
function diagnostics(adapter: EgressAdapter, srv: TestServer): string {
  const jitter = adapter.jitterStats;
  return `jitter ${JSON.stringify(jitter)}; scheduler ${JSON.stringify(srv.server.scheduler.stats)}`;
}
