// Ingest pacing on a fake clock: a burst arrives at once over a real socket, and the adapter plays it out
// one frame per 20 ms slot of the shared scheduler, exactly on the slot times. This replaces a wall-clock
// assertion ("arrival spread 9.5–10.5 s") that failed on loaded machines.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { IngestAdapter } from "../../src/adapters/websocket/ingest.ts";
import { DEFAULTS } from "../../src/config.ts";
import type { RtpPacket } from "../../src/media/rtp.ts";
import { MediaScheduler } from "../../src/media/scheduler.ts";
import { AppState } from "../../src/sfu/app-state.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { speechLike } from "../helpers/signals.ts";
import { chunkPackets, EMPTY_PACKET, startEndpoint } from "../helpers/ws-endpoints.ts";

test("a 2 s burst plays out one frame per slot, on the slot times, then silence", async () => {
  const clock = new FakeClock(0);
  const scheduler = new MediaScheduler({ clock, timers: clock, phases: 1 });
  const app = new AppState({
    createTransport: () => {
      throw new Error("an ingest session has no peer");
    },
    timings: DEFAULTS.session,
    onError: (err) => {
      throw err;
    },
  });
  const clip = speechLike(2000, { seed: 7 }); // 100 frames
  const endpoint = await startEndpoint((ws) => {
    for (const m of chunkPackets(clip, 16 * 1024)) ws.send(m);
    ws.send(EMPTY_PACKET);
  });
  const ws = new WebSocket(endpoint.url);
  // Paused at open, as dial() does, so nothing arrives before the adapter listens.
  await new Promise((r, j) =>
    ws
      .once("open", () => {
        ws.pause();
        r(undefined);
      })
      .once("error", j),
  );
  const session = app.createSession({ peer: false });
  const adapter = new IngestAdapter("a1", "tts", endpoint.url, session, {
    highWaterMs: 60_000,
    lowWaterMs: 30_000,
    opusFec: false,
    opusComplexity: 5,
    now: () => clock.now(),
    pingIntervalMs: 10_000,
    maxMessagesPerSecond: 1000,
    maxMessageBytes: 32_768,
  });
  const sent: { at: number; packet: RtpPacket }[] = [];
  adapter.track.subscribe({
    onPacket: (packet: RtpPacket) => sent.push({ at: clock.now(), packet }),
    onTrackEnded: () => {},
  });
  try {
    adapter.start(ws, scheduler);
    // The whole burst arrives before the media clock moves (real IO, fake time).
    while (adapter.bytesProcessed < clip.byteLength) await new Promise((r) => setImmediate(r));
    assert.equal(adapter.status().queuedMs, 2000);
    clock.advance(3000);
    assert.equal(adapter.status().frames, 100, "every frame of the burst played, none dropped or repeated");
    // Plus one: the first silent slot encodes real zeros to flush the encoder's lookahead (opus-encoder.ts).
    const audio = sent.filter((s) => s.packet.payload.length > 3);
    assert.equal(audio.length, 101);
    const first = audio[0].at;
    for (const [n, s] of audio.entries()) assert.equal(s.at, first + n * 20, `frame ${n} on its slot`);
    for (let i = 1; i < sent.length; i++) {
      assert.equal(sent[i].at - sent[i - 1].at, 20, "one packet per slot, silence included");
      assert.equal((sent[i].packet.header.timestamp - sent[i - 1].packet.header.timestamp) >>> 0, 960);
    }
    assert.ok(sent.length >= 149, `silence follows the burst (${sent.length} packets in 3 s)`);
  } finally {
    adapter.close("test over");
    scheduler.close();
    ws.terminate();
    await endpoint.close();
  }
});
