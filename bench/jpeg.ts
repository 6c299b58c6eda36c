// CPU of one JPEG egress adapter (outputCodec "jpeg") by source resolution. For each resolution Chromium
// publishes its fake camera at that size to a Patchbay server in its own process; the server's CPU is
// measured over a window with the track published and no adapter (baseline), then over a window with one
// JPEG adapter streaming to a local WebSocket sink. Reported: the ffmpeg decoder's CPU (from /proc), the
// server's extra CPU, images per second, their size and the resolution actually decoded (Chromium adapts
// its send resolution to bandwidth, so the decoded size is what counts).
//
//   node --import tsx bench/jpeg.ts [--resolutions 320x240,640x480,1280x720] [--window 10] [--codec VP8|H264]

import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import jpeg from "jpeg-js";
import { launchBrowser } from "../test/helpers/browser.ts";
import { receiver, startEndpoint } from "../test/helpers/ws-endpoints.ts";
import { sleep } from "./lib/async.ts";
import { benchRun, startBenchServer } from "./lib/bench-run.ts";
import { ROOT, runBenchMain, stopChild } from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";
import { BENCH_APP, request, type ServerSnapshot } from "./protocol.ts";

const TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** utime + stime of a process and its waited-for children, in ms (/proc/<pid>/stat fields 14–17). */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
}

function ffmpegPids(): number[] {
  try {
    return execFileSync("pgrep", ["-f", "patchbay-jpeg-.*in\\.sdp"])
      .toString()
      .trim()
      .split("\n")
      .map(Number)
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

const cpuPct = (a: ServerSnapshot, b: ServerSnapshot) =>
  (100 * (b.cpuUserUs - a.cpuUserUs + b.cpuSystemUs - a.cpuSystemUs)) / (b.wallUs - a.wallUs);

interface Row {
  requested: string;
  decoded: string;
  ffmpegCpuPct: number;
  serverBaselinePct: number;
  serverWithAdapterPct: number;
  serverExtraPct: number;
  imagesPerSecond: number;
  meanJpegKiB: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      resolutions: { type: "string", default: "320x240,640x480,1280x720" },
      window: { type: "string", default: "10" },
      codec: { type: "string", default: "VP8" },
      out: { type: "string" },
    },
  });
  const resolutions = values.resolutions.split(",").map((r) => r.trim());
  const windowMs = Number(values.window) * 1000;
  const codec = `video/${values.codec}`;
  const run = benchRun("jpeg");
  const { stamp, resultsDir, log, machine, git } = run;
  process.stdout.write(
    `JPEG egress CPU by source resolution (${codec}, ${windowMs / 1000} s windows), commit ${git.commit ?? "?"}, ` +
      `${machine.cores} × ${machine.cpuModel}, load ${machine.loadavgAtStart.map((x) => x.toFixed(2)).join(" ")}\n`,
  );
  const { server, api: client, url } = await startBenchServer(run);
  const snap = async () =>
    (await request<{ id: number; snapshot: ServerSnapshot }>(server, { type: "snapshot" }, 10_000)).snapshot;
  const browser = await launchBrowser(url);
  const rows: Row[] = [];
  try {
    for (const res of resolutions) {
      const [width, height] = res.split("x").map(Number);
      const page = await browser.open(BENCH_APP);
      const published = await page.publish("video", `cam-${res}`, {
        codec,
        ...(codec === "video/H264" ? { fmtp: "packetization-mode=1" } : {}),
        constraints: { width: { exact: width }, height: { exact: height }, frameRate: 30 },
      });
      await sleep(3000);
      const a0 = await snap();
      await sleep(windowMs);
      const a1 = await snap();
      const sink = await startEndpoint(() => {}, "/frames");
      const conn = sink.nextConnection();
      const r = await client.raw<{
        tracks: { adapterId?: string; errorCode?: string; errorDescription?: string }[];
      }>("POST", "adapters/websocket/new", {
        tracks: [
          {
            location: "remote",
            sessionId: published.sessionId,
            trackName: published.trackName,
            endpoint: sink.url,
            outputCodec: "jpeg",
          },
        ],
      });
      if (r.status !== 200) throw new Error(`jpeg adapter: ${JSON.stringify(r.body)}`);
      const rx = receiver(await conn);
      await rx.waitFor(2, 30_000);
      const [pid] = ffmpegPids();
      const b0 = await snap();
      const f0 = procCpuMs(pid);
      const n0 = rx.packets.length;
      await sleep(windowMs);
      const b1 = await snap();
      const f1 = procCpuMs(pid);
      const got = rx.packets.slice(n0);
      const lastImg = got.length ? jpeg.decode(Buffer.from(got[got.length - 1].payload)) : undefined;
      const row: Row = {
        requested: res,
        decoded: lastImg ? `${lastImg.width}x${lastImg.height}` : "-",
        ffmpegCpuPct: (100 * (f1 - f0)) / ((b1.wallUs - b0.wallUs) / 1000),
        serverBaselinePct: cpuPct(a0, a1),
        serverWithAdapterPct: cpuPct(b0, b1),
        serverExtraPct: cpuPct(b0, b1) - cpuPct(a0, a1),
        imagesPerSecond: got.length / ((b1.wallUs - b0.wallUs) / 1e6),
        meanJpegKiB: got.reduce((s, p) => s + p.payload.length, 0) / Math.max(1, got.length) / 1024,
      };
      rows.push(row);
      process.stdout.write(
        `${res}: decoded ${row.decoded}, ffmpeg ${f(row.ffmpegCpuPct)} %, server +${f(row.serverExtraPct)} %, ` +
          `${f(row.imagesPerSecond, 2)} images/s\n`,
      );
      await sink.close();
      await page.page.close();
      await sleep(500);
    }
  } finally {
    await browser.close();
    await stopChild(server, { type: "shutdown" }, 10_000);
  }
  const table = renderTable(
    [
      "requested",
      "decoded",
      "ffmpeg CPU %",
      "server base %",
      "server w/ adapter %",
      "server extra %",
      "images/s",
      "KiB/image",
    ],
    rows.map((r) => [
      r.requested,
      r.decoded,
      f(r.ffmpegCpuPct),
      f(r.serverBaselinePct),
      f(r.serverWithAdapterPct),
      f(r.serverExtraPct),
      f(r.imagesPerSecond, 2),
      f(r.meanJpegKiB),
    ]),
    2,
  );
  process.stdout.write(
    `\n${table}\n\nCPU % = of one core. ffmpeg decodes every frame (the fps filter picks one per second after decoding), so its\ncost follows the source's resolution and frame rate; the server's share is forwarding plain RTP to it over loopback.\n`,
  );
  const out = values.out ?? join(resultsDir, `jpeg-${stamp}.json`);
  writeFileSync(
    out,
    `${JSON.stringify({ benchmark: "jpeg", date: new Date().toISOString(), git, machine, codec, windowMs, rows }, null, 2)}\n`,
  );
  process.stdout.write(`JSON: ${relative(ROOT, out)}\n`);
  await new Promise<void>((r) => log.end(() => r()));
}

runBenchMain("jpeg", main);
