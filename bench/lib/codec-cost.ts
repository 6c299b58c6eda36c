// In-process cost of the adapters' codecs, measured with the same classes the adapters use:
// src/media/opus-encoder.ts (ingest: one encode per 20 ms frame) and src/media/opus-decoder.ts (egress: one
// decode per packet). Every frame is timed separately (performance.now() around one call); the first
// `warmupFrames` of each run are not counted.

import { OpusDecoder } from "../../src/media/opus-decoder.ts";
import { OpusEncoder, type OpusEncoderOptions } from "../../src/media/opus-encoder.ts";
import { speechLike } from "../../test/helpers/signals.ts";
import { f, renderTable } from "./format.ts";
import { MsHistogram } from "./histogram.ts";

export interface CodecCost {
  what: string;
  frames: number;
  runs: number;
  medianUs: number;
  p99Us: number;
  meanUs: number;
  /** One stream at 50 frames/s, as % of one core (mean × 50 / 10 000). */
  pctOfCorePerStream: number;
}

function summarize(what: string, h: MsHistogram, runs: number): CodecCost {
  const s = h.summary();
  return {
    what,
    frames: s.count,
    runs,
    medianUs: s.p50Ms * 1000,
    p99Us: s.p99Ms * 1000,
    meanUs: s.meanMs * 1000,
    pctOfCorePerStream: (s.meanMs * 50) / 10,
  };
}

function pcmFrames(ms: number, seed: number): Int16Array[] {
  const pcm = speechLike(ms, { seed });
  const out: Int16Array[] = [];
  for (let i = 0; i + 1920 <= pcm.length; i += 1920) out.push(pcm.subarray(i, i + 1920));
  return out;
}

/** OpusEncoder.encodeSlot() over 10 s of speech-like audio, `runs` times, fresh encoder per run. */
export function measureEncoder(what: string, options: OpusEncoderOptions, runs = 5): CodecCost {
  const frames = pcmFrames(10_000, 99);
  const h = new MsHistogram(0.001, 0, 100); // 1 µs bins
  const warmupFrames = 50;
  for (let r = 0; r < runs; r++) {
    const enc = new OpusEncoder(options);
    for (let i = 0; i < frames.length; i++) {
      const t = performance.now();
      enc.encodeSlot(frames[i]);
      const dt = performance.now() - t;
      if (i >= warmupFrames) h.record(dt);
    }
  }
  return summarize(what, h, runs);
}

/** OpusDecoder.decode() of the packets an encoder with `options` makes from 10 s of speech-like audio. */
export function measureDecoder(what: string, packets: Uint8Array[], runs = 5): CodecCost {
  const h = new MsHistogram(0.001, 0, 100); // 1 µs bins
  const warmupFrames = 50;
  for (let r = 0; r < runs; r++) {
    const dec = new OpusDecoder();
    for (let i = 0; i < packets.length; i++) {
      const t = performance.now();
      dec.decode(packets[i]);
      const dt = performance.now() - t;
      if (i >= warmupFrames) h.record(dt);
    }
    dec.close();
  }
  return summarize(what, h, runs);
}

/** The packets OpusEncoder (the ingest adapter's settings) makes from 10 s of speech-like audio. */
export function ingestPackets(): Uint8Array[] {
  const enc = new OpusEncoder();
  return pcmFrames(10_000, 99).map((f) => enc.encodeSlot(f));
}

/** The codec-cost table both orchestrators print: `firstColumn` names what was measured. */
export function codecCostTable(firstColumn: string, costs: CodecCost[]): string {
  return renderTable(
    [firstColumn, "frames", "median µs", "p99 µs", "mean µs", "% core/stream"],
    costs.map((c) => [
      c.what,
      String(c.frames),
      f(c.medianUs),
      f(c.p99Us),
      f(c.meanUs),
      f(c.pctOfCorePerStream, 2),
    ]),
    1,
  );
}
