import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { browserSuite, type ClientPage, type PublishResult } from "../helpers/browser.ts";

const TEST_TIMEOUT = 30_000;

describe("browser audio: Chromium publishes its fake microphone, Chromium pulls it", {
  timeout: 120_000,
}, () => {
  const env = browserSuite();
  let pageA: ClientPage;
  let published: PublishResult;

  test("page A publishes its microphone with its own offer (variant 1)", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    pageA = await env.browser.open();
    published = await pageA.publish("audio", "mic");
    assert.equal(published.trackName, "mic");
    assert.ok(published.mid, "tracks/new echoes the mid");
    const info = await env.server.api.raw<{
      tracks: { trackName: string; status: string; location: string }[];
    }>("GET", `sessions/${published.sessionId}`);
    assert.equal(info.status, 200);
    assert.deepEqual(
      info.body.tracks.map((t) => [t.location, t.trackName, t.status]),
      [["local", "mic", "active"]],
    );
    console.log(`publish connected in ${published.connectMs.toFixed(0)} ms`);
  });

  test("page B pulls with its own recvonly offer (variant 4) and hears audio", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    assert.ok(published, "needs the publisher");
    const pageB = await env.browser.open();
    const pull = await pageB.pullWithOffer("audio", published);
    assert.equal(pull.requiresImmediateRenegotiation, false);
    assert.equal(pull.trackKind, "audio");
    assert.ok(pull.msidLines.length > 0, `the answer carries a=msid:\n${pull.serverSdp}`);
    assert.equal(pull.streamCount, 1, "the track event has event.streams[0]");
    assert.ok(pull.streamId, "the stream has an id");

    const flow = await pageB.waitFlowing(pull.label, "audio", { timeoutMs: 15_000 });
    assert.ok(flow.last.packetsReceived > flow.first.packetsReceived, "packetsReceived grows");
    assert.ok(flow.maxAudioLevel >= 0.1, `the fake mic's beeps are heard: ${JSON.stringify(flow.last)}`);
    assert.ok((flow.last.totalAudioEnergy ?? 0) > 0, "totalAudioEnergy > 0");
    assert.match(flow.last.codec ?? "", /audio\/opus/i);
    console.log(
      `variant 4: connected in ${pull.connectMs.toFixed(0)} ms, flowing ${flow.elapsedMs.toFixed(0)} ms later ` +
        `(${flow.last.packetsReceived} packets, audioLevel max ${flow.maxAudioLevel.toFixed(3)}, ` +
        `energy ${flow.last.totalAudioEnergy?.toFixed(4)}, ${flow.last.codec})`,
    );
  });

  test("page C pulls without an offer (variant 3, PUT renegotiate) and hears audio", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    assert.ok(published, "needs the publisher");
    const pageC = await env.browser.open();
    const pull = await pageC.pullWithoutOffer("audio", published);
    assert.equal(pull.requiresImmediateRenegotiation, true);
    assert.ok(pull.mid, "the item carries the new mid");
    assert.equal(pull.trackKind, "audio");
    assert.equal(pull.streamCount, 1, "the server offer's a=msid gives event.streams[0]");

    const flow = await pageC.waitFlowing(pull.label, "audio", { timeoutMs: 15_000 });
    assert.ok(flow.last.packetsReceived > flow.first.packetsReceived, "packetsReceived grows");
    assert.ok(flow.maxAudioLevel >= 0.1, `the fake mic's beeps are heard: ${JSON.stringify(flow.last)}`);
    assert.ok((flow.last.totalAudioEnergy ?? 0) > 0, "totalAudioEnergy > 0");
    console.log(
      `variant 3: connected in ${pull.connectMs.toFixed(0)} ms, flowing ${flow.elapsedMs.toFixed(0)} ms later ` +
        `(${flow.last.packetsReceived} packets, audioLevel max ${flow.maxAudioLevel.toFixed(3)}, ` +
        `energy ${flow.last.totalAudioEnergy?.toFixed(4)}, ${flow.last.codec})`,
    );
  });
});
