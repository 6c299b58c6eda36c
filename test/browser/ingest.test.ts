import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type BrowserHarness, launchBrowser } from "../helpers/browser.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import { createIngest, type Endpoint, startEndpoint, ttsBurst } from "../helpers/ws-endpoints.ts";

describe("browser: Chromium pulls an ingest track the way Cloudflare's TTS player does", {
  timeout: 60_000,
}, () => {
  let server: TestServer;
  let browser: BrowserHarness;
  let endpoint: Endpoint;

  before(async () => {
    server = await startTestServer();
    browser = await launchBrowser(server.url);
  });

  after(async () => {
    await browser?.close();
    await endpoint?.close();
    await server?.close();
  });

  test("its own recvonly offer (variant 4); audio arrives with audioLevel > 0 and packets growing", async () => {
    // The endpoint holds its clip until the page has pulled, so what the page hears is the TTS audio.
    const clip = speechLike(6000, { seed: 5 });
    endpoint = await startEndpoint();
    const created = await createIngest(server.api, endpoint.url, "tts");
    const page = await browser.open();
    const pull = await page.pullWithOffer("audio", { sessionId: created.sessionId, trackName: "tts" });
    assert.equal(pull.requiresImmediateRenegotiation, false);
    assert.ok(pull.msidLines.length > 0, "the answer carries a=msid");
    assert.equal(pull.streamCount, 1, "event.streams[0] exists");
    ttsBurst(clip)(endpoint.connections[0]);
    const flow = await page.waitFlowing(pull.label, "audio", { timeoutMs: 15_000, minAudioLevel: 0.05 });
    assert.ok(flow.last.packetsReceived > flow.first.packetsReceived, "packetsReceived grows");
    assert.ok(flow.maxAudioLevel >= 0.05, `speech is heard (audioLevel max ${flow.maxAudioLevel})`);
    assert.match(flow.last.codec ?? "", /audio\/opus/i);
  });
});
