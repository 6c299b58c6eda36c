// The Twilio dialect in a call (issue 14): a bot written only from Twilio's Media Streams message format
// (test/helpers/twilio-bot.ts, base64 µ-law at 8 kHz) talks with Chromium through Patchbay, both ways.
// Chromium's microphone says a known clip (--use-file-for-fake-audio-capture); the bot hears it as Twilio
// `media` and answers with its own clip, which the page hears on the reply track and records (Web Audio).
// Both directions are compared with their source after Opus and µ-law: envelope correlation ≥ 0.9.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { float32ToInt16, int16ToFloat32, resample } from "../../src/media/resample.ts";
import { type BrowserHarness, launchBrowser } from "../helpers/browser.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, speechLike, windowCorrelations } from "../helpers/signals.ts";
import { startTwilioBot, type TwilioBot, type TwilioMessage } from "../helpers/twilio-bot.ts";
import { closeOf } from "../helpers/ws-endpoints.ts";

const MIC_MS = 4000;
const BOT_MS = 3000;

/** Left channel of a 48 kHz stereo clip. */
function leftOf(stereo: Int16Array): Int16Array {
  const out = new Int16Array(stereo.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = stereo[2 * i];
  return out;
}

function rate(pcm: Int16Array, from: number, to: number): Int16Array {
  return float32ToInt16(resample(int16ToFloat32(pcm), 1, from, to));
}

function wav(pcm: Int16Array, sampleRate: number): Buffer {
  const data = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

describe("twilio dialect: a Twilio Media Streams bot and Chromium in one call", { timeout: 120_000 }, () => {
  const mic = leftOf(speechLike(MIC_MS, { seed: 91 }));
  const botVoice = rate(leftOf(speechLike(BOT_MS, { seed: 92 })), 48_000, 8000);
  let dir: string;
  let server: TestServer;
  let browser: BrowserHarness;
  let bot: TwilioBot;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "patchbay-twilio-"));
    const micFile = join(dir, "mic.wav");
    writeFileSync(micFile, wav(mic, 48_000));
    server = await startTestServer();
    browser = await launchBrowser(server.url, [`--use-file-for-fake-audio-capture=${micFile}`]);
    bot = await startTwilioBot();
  });
  after(async () => {
    await browser?.close();
    await bot?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the bot hears the browser and the browser hears the bot (r ≥ 0.9 after µ-law); marks and stop as Twilio sends them", async () => {
    const page = await browser.open();
    // No voice processing: the microphone should reach the bot as the file says it.
    const published = await page.publish("audio", "mic", {
      constraints: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const callP = bot.nextCall();
    const res = await server.api.raw<{
      tracks: {
        adapterId: string;
        sessionId: string;
        trackName: string;
        sourceSessionId: string;
        sourceTrackName: string;
        errorCode?: string;
      }[];
    }>("POST", "adapters/websocket/new", {
      tracks: [
        {
          location: "remote",
          dialect: "twilio",
          sessionId: published.sessionId,
          trackName: "mic",
          replyTrackName: "agent",
          endpoint: bot.url,
          customParameters: { caller: "chromium" },
        },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const item = res.body.tracks[0];
    assert.equal(item.errorCode, undefined, JSON.stringify(item));
    assert.equal(item.trackName, "agent");
    assert.equal(item.sourceSessionId, published.sessionId);
    assert.notEqual(item.sessionId, published.sessionId, "the reply track lives in its own session");
    const call = await callP;

    // Twilio's opening: connected, then start with the stream's metadata, then media.
    await call.waitUntil((m) => m.filter((x) => x.event === "media").length >= 300, 20_000, "6 s of media");
    const [connected, start] = call.messages;
    assert.deepEqual(connected, { event: "connected", protocol: "Call", version: "1.0.0" });
    assert.equal(start.event, "start");
    assert.equal(start.sequenceNumber, "1");
    assert.match(start.streamSid ?? "", /^MZ[0-9a-f]{32}$/);
    assert.equal(start.start?.streamSid, start.streamSid);
    assert.match(start.start?.callSid ?? "", /^CA[0-9a-f]{32}$/);
    assert.match(start.start?.accountSid ?? "", /^AC[0-9a-f]{32}$/);
    assert.deepEqual(start.start?.tracks, ["inbound"]);
    assert.deepEqual(start.start?.mediaFormat, { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 });
    assert.deepEqual(start.start?.customParameters, { caller: "chromium" });
    const media = call.messages.filter(
      (m): m is TwilioMessage & { media: NonNullable<TwilioMessage["media"]> } => Boolean(m.media),
    );
    media.forEach((m, i) => {
      assert.equal(m.streamSid, start.streamSid);
      assert.equal(m.media.track, "inbound");
      assert.equal(m.media.chunk, String(i + 1), "chunks count from 1 without gaps");
      assert.equal(m.media.timestamp, String(i * 20), "timestamps in ms from the stream start");
      assert.equal(Buffer.from(m.media.payload, "base64").length, 160, "20 ms of 8 kHz µ-law");
    });
    call.messages.slice(1).forEach((m, i) => {
      assert.equal(m.sequenceNumber, String(i + 1), "sequence numbers count every message after connected");
    });

    // Browser → bot: the microphone file loops; find one loop in the last 6 s the bot heard.
    const heard = rate(call.inboundAudio().subarray(-6 * 8000), 8000, 48_000);
    const toBot = alignAndCorrelate(mic, heard, { channels: 1, maxLagSamples: mic.length });
    console.log(
      `browser → bot: r=${toBot.correlation.toFixed(3)} (lag ${toBot.lagSamples}, rms ${rms(heard).toFixed(0)})`,
    );
    assert.ok(
      toBot.correlation >= 0.9,
      `the bot hears the browser's microphone (r=${toBot.correlation.toFixed(3)})`,
    );

    // Bot → browser: the page pulls the reply track and records while the bot speaks and marks the end.
    const pull = await page.pullWithOffer("audio", { sessionId: item.sessionId, trackName: "agent" });
    const recording = page.recordAudio(pull.label, BOT_MS + 2500);
    await new Promise((r) => setTimeout(r, 300)); // the recorder is running before the bot speaks
    call.sendAudio(botVoice);
    call.sendMark("said-it");
    const marksBefore = call.messages.length;
    const heardByPage = await recording;
    await call.waitUntil(
      (m) => m.slice(marksBefore).some((x) => x.event === "mark" && x.mark?.name === "said-it"),
      5000,
      "the mark comes back once the audio played",
    );
    const reference = rate(Int16Array.from(botVoice), 8000, 48_000);
    const toPage = alignAndCorrelate(reference, heardByPage, {
      channels: 1,
      maxLagSamples: heardByPage.length,
    });
    console.log(
      `bot → browser: r=${toPage.correlation.toFixed(3)} (lag ${(toPage.lagSamples / 48).toFixed(0)} ms, ` +
        `recorded ${(heardByPage.length / 48).toFixed(0)} ms, rms ${rms(heardByPage).toFixed(0)})`,
    );
    const [rx] = await page.statsOfType(pull.label, "inbound-rtp");
    console.log(
      `page receiver: ${rx?.packetsReceived} packets, ${rx?.packetsLost} lost, concealed ${rx?.concealedSamples} samples ` +
        `(${rx?.concealmentEvents} events), accelerated ${rx?.removedSamplesForAcceleration}, decelerated ` +
        `${rx?.insertedSamplesForDeceleration}, jitter buffer delay ${rx?.jitterBufferDelay} s for ${rx?.jitterBufferEmittedCount}`,
    );
    // Chromium's jitter buffer may shift the onset of a talk-spurt by a few ms: judged per 500 ms window.
    const windows = windowCorrelations(reference, heardByPage, toPage.lagSamples, { channels: 1 });
    console.log(`bot → browser per 500 ms: ${windows.map((r) => r.toFixed(3)).join(" ")}`);
    assert.ok(
      Math.min(...windows) >= 0.9,
      `the browser hears the bot's whole clip (r per 500 ms ≥ 0.9: ${windows.map((r) => r.toFixed(3)).join(" ")})`,
    );

    // Closing the adapter: Twilio's `stop`, then the close.
    const closed = closeOf(call.ws);
    const close = await server.api.raw("POST", "adapters/websocket/close", {
      tracks: [{ adapterId: item.adapterId }],
    });
    assert.equal(close.status, 200);
    assert.equal((await closed).code, 1000);
    const last = call.messages.at(-1);
    assert.equal(last?.event, "stop");
    assert.equal(last?.stop?.callSid, start.start?.callSid);
  });
});
