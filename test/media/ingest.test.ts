import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RtpPacket } from "werift";
import { seqDiff } from "../../src/media/rtp.ts";
import { decodeOpus, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, speechLike } from "../helpers/signals.ts";
import { startEndpoint, ttsBurst } from "../helpers/ws-endpoints.ts";

interface Arrival {
  packet: RtpPacket;
  at: number;
}

function assertContinuous(packets: RtpPacket[]): void {
  for (let i = 1; i < packets.length; i++) {
    assert.equal(
      seqDiff(packets[i].header.sequenceNumber, packets[i - 1].header.sequenceNumber),
      1,
      `seq gap at ${i}`,
    );
    assert.equal(
      (packets[i].header.timestamp - packets[i - 1].header.timestamp) >>> 0,
      960,
      `ts step at ${i}`,
    );
  }
}

describe("ingest: PCM over WebSocket becomes a live Opus track", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("a 10 s TTS burst in 16 KiB chunks plays out at real time and matches the source", async () => {
    const clip = speechLike(10_000, { seed: 11 });
    const endpoint = await startEndpoint();
    const res = await srv.api.raw<{ tracks: { adapterId: string; sessionId: string; trackName: string }[] }>(
      "POST",
      "adapters/websocket/new",
      {
        tracks: [
          { location: "local", trackName: "tts", endpoint: endpoint.url, inputCodec: "pcm", mode: "buffer" },
        ],
      },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { adapterId, sessionId } = res.body.tracks[0];
    const ws = endpoint.connections[0];
    assert.ok(ws, "the server dialed before answering");
    const sub = await pullAudio(srv.api, { sessionId, trackName: "tts" });
    const arrivals: Arrival[] = [];
    const collected = () => {
      for (let i = arrivals.length; i < sub.packets.length; i++)
        arrivals.push({ packet: sub.packets[i], at: sub.times[i] });
      return arrivals;
    };
    try {
      ttsBurst(clip)(ws);
      // Audio frames are the non-silence ones (silence packets are 3 bytes).
      const deadline = performance.now() + 15_000;
      while (
        collected().filter((a) => a.packet.payload.length > 3).length < 500 &&
        performance.now() < deadline
      )
        await new Promise((r) => setTimeout(r, 100));
      const audio = arrivals.filter((a) => a.packet.payload.length > 3);
      assert.ok(audio.length >= 499 && audio.length <= 501, `≈500 audio frames, got ${audio.length}`);
      const first = arrivals.findIndex((a) => a.packet.payload.length > 3);
      const window = arrivals.slice(first, first + audio.length);
      assertContinuous(window.map((a) => a.packet));
      // Paced, not dumped: the exact slot timing is asserted on a fake clock (test/unit/ingest-pacing.test.ts);
      // here only a lower bound, which a loaded machine cannot break (late wakes only stretch the spread).
      const spread = window[window.length - 1].at - window[0].at;
      assert.ok(spread > 9_000, `arrival spread over ≈10 s (real time), got ${spread.toFixed(0)} ms`);
      const pcm = decodeOpus(window.map((a) => a.packet.payload));
      assert.ok(rms(pcm) > 500);
      const { correlation } = alignAndCorrelate(clip, pcm);
      assert.ok(correlation >= 0.9, `decoded matches the clip (r=${correlation.toFixed(3)})`);
      assert.ok(Math.abs(pcm.length / 96 - 10_000) <= 40, `duration ${pcm.length / 96} ms within ±40 ms`);
      const state = await srv.api.raw<{ state: string; frames: number; bytesProcessed: number }>(
        "GET",
        `adapters/websocket/${adapterId}`,
      );
      assert.equal(state.body.state, "open");
      assert.equal(state.body.bytesProcessed, clip.length * 2);
    } finally {
      await sub.close();
      await endpoint.close();
    }
  });
});
