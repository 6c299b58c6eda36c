// examples/twilio-echo-bot.ts, the README's Twilio-dialect sample, run as its own process: a TTS-style
// ingest track is what the "caller" says; the bot repeats it through a twilio adapter into the reply
// track, which an egress adapter hands to a WebSocket endpoint. The caller's words come back (after
// Opus, µ-law at 8 kHz, and Opus again) with envelope correlation ≥ 0.9, and the bot's marks report played.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";
import {
  createEgress,
  createIngest,
  frameRms,
  pcmOf,
  receiver,
  startEndpoint,
  ttsBurst,
} from "../helpers/ws-endpoints.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLIP_MS = 5000;

describe("examples/twilio-echo-bot.ts behind a twilio adapter", { timeout: 60_000 }, () => {
  let srv: TestServer;
  let child: ChildProcess;
  let botUrl: string;
  const output: string[] = [];
  before(async () => {
    srv = await startTestServer();
    child = spawn(process.execPath, ["--import", "tsx", "examples/twilio-echo-bot.ts", "--port", "0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    botUrl = await new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => {
        output.push(...d.toString().split("\n").filter(Boolean));
        const url = output[0]?.match(/ws:\/\/\S+/)?.[0];
        if (url) resolve(url);
      });
      child.once("exit", (code) => reject(new Error(`script exited early with ${code}`)));
    });
  });
  after(async () => {
    if (child?.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    await srv?.close();
  });

  test("the caller hears themself back through the bot (r ≥ 0.9); the bot's marks play", async () => {
    const clip = speechLike(CLIP_MS, { seed: 44 });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const tts = await startEndpoint((ws) => void gate.then(() => ttsBurst(clip)(ws)));
    const listener = await startEndpoint();
    try {
      const caller = await createIngest(srv.api, tts.url, "caller");
      const res = await srv.api.raw<{
        tracks: { sessionId: string; trackName: string; errorCode?: string }[];
      }>("POST", "adapters/websocket/new", {
        tracks: [
          {
            location: "remote",
            dialect: "twilio",
            sessionId: caller.sessionId,
            trackName: "caller",
            replyTrackName: "bot",
            endpoint: botUrl,
          },
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const reply = res.body.tracks[0];
      const conn = listener.nextConnection();
      await createEgress(srv.api, { sessionId: reply.sessionId, trackName: reply.trackName }, listener.url);
      const rx = receiver(await conn);
      release();
      let first = -1;
      const frames = await rx.waitUntil(
        (p) => {
          for (let i = first < 0 ? 0 : p.length; first < 0 && i < p.length; i++)
            if (frameRms(p[i]) > 60) first = i;
          return first >= 0 && p.length >= first + CLIP_MS / 20 + 10;
        },
        20_000,
        "the echo at the listener",
      );
      const heard = pcmOf(frames.slice(Math.max(0, first - 5)));
      const { correlation, lagSamples } = alignAndCorrelate(clip, heard, { maxLagSamples: 24_000 });
      console.log(`caller → bot → caller: r=${correlation.toFixed(3)} (lag ${lagSamples})`);
      assert.ok(correlation >= 0.9, `r=${correlation.toFixed(3)}`);
      await new Promise<void>((resolve) => {
        const check = () => output.some((l) => l.startsWith("played: second-")) && resolve();
        child.stdout!.on("data", check);
        check();
      });
      assert.match(output.join("\n"), /\{"encoding":"audio\/x-mulaw","sampleRate":8000,"channels":1\}/);
    } finally {
      release();
      await tts.close();
      await listener.close();
    }
  });
});
