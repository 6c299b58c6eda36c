// WebSocket → WebRTC track → WebSocket: an ingest adapter (a TTS-like burst) feeds an egress adapter that
// subscribes to the ingest track. The PCM out matches the PCM in; the end-to-end delay is printed. When
// the ingest endpoint hangs up, the ingest adapter plays out and ends its track, and the egress adapter
// follows with a 1000 close (SPEC §2.6: the source track or its session ends).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";
import {
  adapterStatus,
  closeOf,
  createEgress,
  createIngest,
  frameRms,
  pcmOf,
  receiver,
  startEndpoint,
  ttsBurst,
} from "../helpers/ws-endpoints.ts";

/** Decoded Opus silence is digital zero; speech frames are hundreds to thousands. */
const SILENT_RMS = 30;

describe("round trip: ingest → track → egress", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("a 5 s TTS burst comes back out of an egress adapter on the ingest track (r ≥ 0.9)", async () => {
    const clip = speechLike(5000, { seed: 61 });
    // The burst waits until the egress adapter is listening, so its first frame is not missed.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let firstByteAt = Number.NaN;
    const tts = await startEndpoint((ws) => {
      void gate.then(() => {
        firstByteAt = performance.now();
        ttsBurst(clip)(ws);
      });
    }, "/tts?token=abc");
    const stt = await startEndpoint(() => {}, "/stt?token=xyz");
    try {
      const ttsConn = tts.nextConnection();
      const ingest = await createIngest(srv.api, tts.url, "tts");
      const ttsWs = await ttsConn;
      const sttConn = stt.nextConnection();
      const egress = await createEgress(srv.api, { sessionId: ingest.sessionId, trackName: "tts" }, stt.url);
      assert.equal(egress.sessionId, ingest.sessionId);
      const sttWs = await sttConn;
      const rx = receiver(sttWs);
      release();

      const clipFrames = clip.length / 1920;
      const isSound = (i: number) => frameRms(rx.packets[i]) > SILENT_RMS;
      let start = -1;
      await rx.waitUntil(
        (p) => {
          if (start < 0) start = p.findIndex((_, i) => isSound(i));
          return start >= 0 && p.length >= start + clipFrames + 10;
        },
        15_000,
        "the clip at the egress endpoint",
      );
      const firstSoundDelay = rx.times[start] - firstByteAt;
      const from = Math.max(0, start - 5);
      const out = pcmOf(rx.packets.slice(from, start + clipFrames + 10));
      const { correlation, lagSamples } = alignAndCorrelate(clip, out);
      // Where the clip's first sample landed: frame `from` + lag; when that frame reached the endpoint.
      const landing = from + Math.floor(lagSamples / 960);
      const clipStartDelay = rx.times[landing] - firstByteAt + (lagSamples % 960) / 48;
      console.log(
        `round trip: first non-silent frame ${firstSoundDelay.toFixed(0)} ms after the first TTS byte; ` +
          `clip start aligned ${clipStartDelay.toFixed(0)} ms after it (lag ${lagSamples} samples into frame ` +
          `${from}); r=${correlation.toFixed(3)}`,
      );
      assert.ok(correlation >= 0.9, `PCM out matches PCM in (r=${correlation.toFixed(3)})`);
      assert.ok(
        firstSoundDelay > 0 && firstSoundDelay < 1000,
        `end-to-end delay ${firstSoundDelay.toFixed(0)} ms`,
      );

      // The TTS side hangs up: ingest plays out its queue and ends the track; egress closes with 1000.
      ttsWs.close(1000, "done");
      const sttClose = await closeOf(sttWs);
      assert.equal(sttClose.code, 1000);
      assert.match(sttClose.reason, /source track ended/);
      const status = await adapterStatus(srv.api, egress.adapterId);
      assert.equal(status.state, "closed");
      assert.match(status.closeReason ?? "", /source track ended/);
      assert.equal(rx.invalid, 0);
    } finally {
      release();
      await tts.close();
      await stt.close();
    }
  });
});
