// Cost and quality of the streaming resampler (src/media/stream-resampler.ts) for the adapter rates
// {8, 16, 24} kHz ↔ 48 kHz, mono and stereo, against two baselines measured in the same run:
// - quality: ffmpeg's default resampler (swresample), run once per rate pair on the same probe signal;
// - cost: the block resampler resample() (src/media/resample.ts) called on each 20 ms frame, and G.711
//   µ-law encode + decode of a 20 ms 8 kHz frame (what a PCMU endpoint costs instead).
//
// Cost is process CPU time (user + system) per 20 ms frame, the median over --runs runs of --seconds of
// speech-like audio each, after one warm-up run. Quality comes from one probe stream per pair: a sequence
// of 200 ms tone segments, measured in each segment's interior (30 ms guards, more than any filter's reach):
// - ripple: worst |gain| in dB over tones from 1 % to 43 % of the lower rate (least-squares tone fit);
// - downsampling, aliasing: worst output RMS relative to the input RMS for tones between the two Nyquist
//   frequencies (everything there must be removed, so any output is alias);
// - upsampling, imaging: worst power at the image frequencies m·lower ± f (m ≥ 1) relative to the tone, for
//   every passband tone f, fitted after subtracting the tone itself.
//
//   npm run bench:resample [-- --seconds 3 --runs 7 --out file.json]   (at least 2 s and 5 runs)

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { decodeMulaw, encodeMulaw } from "../src/media/g711.ts";
import { resample } from "../src/media/resample.ts";
import { StreamResampler } from "../src/media/stream-resampler.ts";
import { bandLimitedSpeech, dB, fitTone, fromBytes, toBytes } from "../test/helpers/signals.ts";
import { BENCH_DIR, ROOT, runBenchMain } from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";
import { fileStamp, gitInfo, machineInfo } from "./lib/system.ts";

const PAIRS: [number, number][] = [
  [8000, 48000],
  [48000, 8000],
  [16000, 48000],
  [48000, 16000],
  [24000, 48000],
  [48000, 24000],
];
const FRAME_MS = 20;
const SEGMENT_S = 0.2;
const GUARD_S = 0.03;

interface Quality {
  /** Worst |passband gain|, dB. */
  rippleDb: number;
  /** Worst alias (downsampling) or image (upsampling) level, dB relative to the tone. */
  rejectionDb: number;
}

interface Row {
  fromRate: number;
  toRate: number;
  channels: number;
  usPerFrame: number;
  usPerFrameRuns: number[];
  tapsPerOutput: number;
  delayFrames: number;
  delayMs: number;
  ours: Quality;
  /** ffmpeg's default resampler, mono (run once per pair). */
  ffmpeg: Quality;
  blockResampleUsPerFrame: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function cpuUs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

interface Segment {
  kind: "pass" | "stop";
  freq: number;
  amplitude: number;
}

function probeSegments(from: number, to: number): Segment[] {
  const lower = Math.min(from, to);
  const segments: Segment[] = [];
  const count = 20;
  for (let i = 0; i < count; i++) {
    segments.push({ kind: "pass", freq: lower * (0.01 + (0.42 * i) / (count - 1)), amplitude: 0.5 });
  }
  if (from > to) {
    for (const freq of [0.52 * to, 0.5625 * to, 0.75 * to, 1.25 * to, 2.5 * to, 0.48 * from]) {
      if (freq > to / 2 && freq < from / 2) segments.push({ kind: "stop", freq, amplitude: 0.9 });
    }
  }
  return segments;
}

/** The segments one after another; channel c plays them in its own order (rotated), so channels differ. */
function probeSignal(rate: number, segments: Segment[], channels: number): Int16Array {
  const segFrames = Math.round(rate * SEGMENT_S);
  const out = new Int16Array(segFrames * segments.length * channels);
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < segments.length; k++) {
      const s = segments[(k + c * 7) % segments.length];
      const w = (2 * Math.PI * s.freq) / rate;
      for (let i = 0; i < segFrames; i++) {
        out[(k * segFrames + i) * channels + c] = Math.round(s.amplitude * 32767 * Math.sin(w * i));
      }
    }
  }
  return out;
}

/**
 * Ripple and alias/image rejection of `output` (at `to`, delayed by `lag` frames) for the probe built from
 * `segments` at `from`.
 */
function measure(
  output: Int16Array,
  channels: number,
  from: number,
  to: number,
  lag: number,
  segments: Segment[],
): Quality {
  const lower = Math.min(from, to);
  const segOut = Math.round(to * SEGMENT_S);
  const guard = Math.round(to * GUARD_S);
  let rippleDb = 0;
  let rejectionDb = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < segments.length; k++) {
      const s = segments[(k + c * 7) % segments.length];
      const start = lag + k * segOut + guard;
      const end = lag + (k + 1) * segOut - guard;
      if (end * channels > output.length)
        throw new Error(`output too short: ${output.length / channels} frames`);
      const x = new Float64Array(end - start);
      for (let i = start; i < end; i++) x[i - start] = output[i * channels + c] / 32767;
      if (s.kind === "stop") {
        const rms = Math.sqrt(x.reduce((sum, v) => sum + v * v, 0) / x.length);
        rejectionDb = Math.max(rejectionDb, dB(rms / (s.amplitude / Math.SQRT2)));
        continue;
      }
      const tone = fitTone(x, to, s.freq);
      rippleDb = Math.max(rippleDb, Math.abs(dB(tone.amplitude / s.amplitude)));
      if (to > from) {
        const residual = x.map((v, i) => v - tone.fitted[i]);
        let power = 0;
        for (let m = 1; m * lower - s.freq < to / 2; m++) {
          for (const image of [m * lower - s.freq, m * lower + s.freq]) {
            if (image < to / 2) power += fitTone(residual, to, image).amplitude ** 2;
          }
        }
        rejectionDb = Math.max(rejectionDb, dB(Math.sqrt(power) / s.amplitude));
      }
    }
  }
  return { rippleDb, rejectionDb };
}

function oursQuality(from: number, to: number, channels: number): Quality & { delayFrames: number } {
  const segments = probeSegments(from, to);
  const r = new StreamResampler({ fromRate: from, toRate: to, channels });
  // Fed in 20 ms frames like an adapter would, then padded with silence to get the delayed tail out.
  const input = probeSignal(from, segments, channels);
  const chunk = (from * FRAME_MS * channels) / 1000;
  const parts: Int16Array[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(r.process(input.subarray(i, i + chunk)));
  parts.push(r.process(new Int16Array(chunk * 5)));
  const output = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    output.set(p, offset);
    offset += p.length;
  }
  return { ...measure(output, channels, from, to, r.delayFrames, segments), delayFrames: r.delayFrames };
}

function ffmpegQuality(from: number, to: number, dir: string): Quality {
  const segments = probeSegments(from, to);
  const input = join(dir, `probe-${from}-${to}.raw`);
  const output = join(dir, `probe-${from}-${to}-out.raw`);
  writeFileSync(input, toBytes(probeSignal(from, segments, 1)));
  execFileSync(
    "ffmpeg",
    ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"].concat([
      "-f",
      "s16le",
      "-ar",
      `${from}`,
      "-ac",
      "1",
      "-i",
      input,
      "-ar",
      `${to}`,
      "-f",
      "s16le",
      output,
    ]),
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  // swresample compensates its own filter delay: output frame n is input time n / to.
  return measure(fromBytes(new Uint8Array(readFileSync(output))), 1, from, to, 0, segments);
}

/** CPU µs per frame of each of `runs` calls of `pass` (which handles `frames` frames), after one warm-up. */
function costPerFrame(frames: number, runs: number, pass: () => void): number[] {
  pass();
  return Array.from({ length: runs }, () => cpuUs(pass) / frames);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "3" },
      runs: { type: "string", default: "7" },
      out: { type: "string" },
    },
  });
  const seconds = Math.max(2, Number(values.seconds));
  const runs = Math.max(5, Math.floor(Number(values.runs)));
  const machine = machineInfo();
  const git = gitInfo();
  const stamp = fileStamp();
  process.stdout.write(
    `Streaming resampler: CPU per ${FRAME_MS} ms frame (median of ${runs} runs of ${seconds} s) and quality, ` +
      `commit ${git.commit ?? "?"}${git.srcDirty ? " (src has uncommitted changes)" : ""}, ` +
      `${machine.cores} × ${machine.cpuModel}, node ${machine.node}, ` +
      `load ${machine.loadavgAtStart.map((x) => x.toFixed(2)).join(" ")}\n\n`,
  );
  const dir = mkdtempSync(join(tmpdir(), "patchbay-resample-bench-"));
  const rows: Row[] = [];
  try {
    const ffmpegByPair = new Map<string, Quality>();
    for (const [from, to] of PAIRS) ffmpegByPair.set(`${from}/${to}`, ffmpegQuality(from, to, dir));

    for (const [from, to] of PAIRS) {
      for (const channels of [1, 2]) {
        const totalFrames = Math.round((seconds * 1000) / FRAME_MS);
        const chunk = (from * FRAME_MS * channels) / 1000;
        const audio = bandLimitedSpeech(
          from,
          totalFrames * (chunk / channels),
          channels,
          0.45 * from,
          from + to + channels,
        );
        const frames = Array.from({ length: totalFrames }, (_, i) =>
          audio.subarray(i * chunk, (i + 1) * chunk),
        );
        let sink = 0;
        const streamRuns = costPerFrame(totalFrames, runs, () => {
          const r = new StreamResampler({ fromRate: from, toRate: to, channels });
          for (const frame of frames) sink += r.process(frame).length;
        });
        const floatFrames = frames.map((fr) => Float32Array.from(fr, (v) => v / 32768));
        const blockRuns = costPerFrame(totalFrames, runs, () => {
          for (const fr of floatFrames) sink += resample(fr, channels, from, to).length;
        });
        if (sink === 0) throw new Error("no output");
        const ours = oursQuality(from, to, channels);
        const probe = new StreamResampler({ fromRate: from, toRate: to, channels });
        const row: Row = {
          fromRate: from,
          toRate: to,
          channels,
          usPerFrame: median(streamRuns),
          usPerFrameRuns: streamRuns,
          tapsPerOutput: probe.tapsPerOutput,
          delayFrames: ours.delayFrames,
          delayMs: (1000 * ours.delayFrames) / to,
          ours: { rippleDb: ours.rippleDb, rejectionDb: ours.rejectionDb },
          ffmpeg: ffmpegByPair.get(`${from}/${to}`)!,
          blockResampleUsPerFrame: median(blockRuns),
        };
        rows.push(row);
        process.stdout.write(
          `${from} → ${to} × ${channels}: ${f(row.usPerFrame)} µs/frame, ripple ${f(row.ours.rippleDb, 4)} dB, ` +
            `${from > to ? "alias" : "image"} ${f(row.ours.rejectionDb)} dB\n`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // G.711 µ-law: encode + decode of one 20 ms 8 kHz mono frame.
  const g711Frames = Math.round((seconds * 1000) / FRAME_MS);
  const pcm = bandLimitedSpeech(8000, g711Frames * 160, 1, 3600, 711);
  const codes = new Uint8Array(160);
  const decoded = new Int16Array(160);
  // About a microsecond per frame: repeat the pass so a run lasts long enough for the CPU clock.
  const g711Repeats = 50;
  const g711Runs = costPerFrame(g711Frames * g711Repeats, runs, () => {
    for (let k = 0; k < g711Repeats; k++) {
      for (let i = 0; i < g711Frames; i++) {
        encodeMulaw(pcm.subarray(i * 160, (i + 1) * 160), codes);
        decodeMulaw(codes, decoded);
      }
    }
  });
  const g711UsPerFrame = median(g711Runs);

  const table = renderTable(
    [
      "pair",
      "ch",
      "µs/20ms",
      "taps/out",
      "delay ms",
      "ripple dB",
      "alias/image dB",
      "ffmpeg ripple dB",
      "ffmpeg alias/image dB",
      "resample() µs/20ms",
    ],
    rows.map((r) => [
      `${r.fromRate / 1000}k → ${r.toRate / 1000}k`,
      `${r.channels}`,
      f(r.usPerFrame),
      `${r.tapsPerOutput}`,
      f(r.delayMs, 3),
      f(r.ours.rippleDb, 4),
      f(r.ours.rejectionDb),
      f(r.ffmpeg.rippleDb, 4),
      f(r.ffmpeg.rejectionDb),
      f(r.blockResampleUsPerFrame),
    ]),
    2,
  );
  process.stdout.write(
    `\n${table}\n\nG.711 µ-law encode + decode, 20 ms at 8 kHz mono: ${f(g711UsPerFrame, 2)} µs\n\n` +
      "µs/20ms = process CPU per 20 ms frame (median). alias/image = worst alias (downsampling: tones between the\n" +
      "two Nyquist frequencies, output RMS vs input RMS) or worst image (upsampling: power at m·lower ± f vs the\n" +
      "tone). ffmpeg = its default resampler on the same probe, mono, once per pair (same numbers on both rows).\n" +
      "resample() = the block resampler called on each 20 ms frame on its own (float in/out, zero-padded edges).\n",
  );
  const resultsDir = join(BENCH_DIR, "results");
  mkdirSync(resultsDir, { recursive: true });
  const out = values.out ?? join(resultsDir, `resample-${stamp}.json`);
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        benchmark: "resample",
        date: new Date().toISOString(),
        git,
        machine,
        seconds,
        runs,
        rows,
        g711: { usPerFrame: g711UsPerFrame, usPerFrameRuns: g711Runs },
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`JSON: ${relative(ROOT, out)}\n`);
  return 0;
}

runBenchMain("resample", main);
