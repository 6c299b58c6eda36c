// Browser → egress: Chromium publishes its fake microphone (a short beep every ~500 ms), an egress adapter
// on that track streams it to a WebSocket endpoint as PCM.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EgressAdapter } from "../../src/adapters/websocket/egress.ts";
import { browserSuite } from "../helpers/browser.ts";
import {
  adapterStatus,
  assertEgressContinuous,
  createEgress,
  frameRms,
  receiver,
  startEndpoint,
} from "../helpers/ws-endpoints.ts";

/** Decoded digital silence is ~0; the fake microphone's beeps are thousands. */
const SOUND_RMS = 1000;
const SILENT_RMS = 30;

describe("browser egress: Chromium's microphone out of an egress adapter", { timeout: 120_000 }, () => {
  const env = browserSuite();

  test("non-silent PCM frames with contiguous sequence numbers and timestamps", {
    timeout: 60_000,
  }, async () => {
    const page = await env.browser.open();
    const published = await page.publish("audio", "mic");
    const endpoint = await startEndpoint(() => {}, "/stt");
    try {
      const conn = endpoint.nextConnection();
      const { adapterId } = await createEgress(
        env.server.api,
        { sessionId: published.sessionId, trackName: "mic" },
        endpoint.url,
      );
      const rx = receiver(await conn);
      const frames = await rx.waitFor(150, 20_000); // 3 s
      const t = rx.times;
      const levels = frames.map(frameRms);
      const loud = levels.filter((l) => l > SOUND_RMS).length;
      const silent = levels.filter((l) => l < SILENT_RMS).length;
      const status = await adapterStatus(env.server.api, adapterId);
      const adapter = env.server.server.adapters(env.server.api.appId)!.get(adapterId) as EgressAdapter;
      console.log(
        `${frames.length} frames in ${(t[frames.length - 1] - t[0]).toFixed(0)} ms: ${loud} with beeps ` +
          `(max rms ${Math.max(...levels).toFixed(0)}), ${silent} silent; ${adapter.concealedFrames} concealed, ` +
          `dropped ${status.droppedFrames}`,
      );
      assertEgressContinuous(frames, "browser microphone", { firstSeq: 1 });
      assert.equal(rx.invalid, 0);
      assert.ok(loud >= 3, `the beeps come through (${loud} frames above rms ${SOUND_RMS})`);
      assert.ok(silent > loud, "and the pauses between them stay quiet (it is the beep pattern, not noise)");
      const spread = t[frames.length - 1] - t[0];
      assert.ok(Math.abs(spread - 149 * 20) < 300, `frames at real-time rate (${spread.toFixed(0)} ms)`);
      assert.equal(status.state, "open");
      assert.equal(status.droppedFrames, 0);
    } finally {
      await endpoint.close();
    }
  });
});
