import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  browserSuite,
  type ClientPage,
  type FlowResult,
  type PublishResult,
  type PullResult,
  pollUntil,
} from "../helpers/browser.ts";

const TEST_TIMEOUT = 30_000;

/** The publisher's outbound-rtp video entry (numbers only), for keyframe-request accounting. */
async function outbound(page: ClientPage, label: string): Promise<Record<string, number>> {
  const [o] = await page.statsOfType(label, "outbound-rtp");
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o ?? {})) if (typeof v === "number") out[k] = v;
  return out;
}

function assertDecoding(flow: FlowResult, codec: RegExp): void {
  assert.ok((flow.last.framesDecoded ?? 0) > 0, `frames decoded: ${JSON.stringify(flow.last)}`);
  assert.ok((flow.last.framesDecoded ?? 0) > (flow.first.framesDecoded ?? 0), "framesDecoded grows");
  assert.ok(flow.last.packetsReceived > flow.first.packetsReceived, "packetsReceived grows");
  assert.ok((flow.last.keyFramesDecoded ?? 0) >= 1, "a keyframe was decoded");
  assert.match(flow.last.codec ?? "", codec);
}

function describeFlow(name: string, pull: PullResult, flow: FlowResult): string {
  const s = flow.last;
  return (
    `${name}: connected in ${pull.connectMs.toFixed(0)} ms, decoding ${flow.elapsedMs.toFixed(0)} ms later ` +
    `(${s.framesDecoded} frames ${s.frameWidth}x${s.frameHeight}, ${s.packetsReceived} packets, ` +
    `lost ${s.packetsLost}, pli ${s.pliCount}, ${s.codec})`
  );
}

describe("browser video: Chromium publishes its fake camera, Chromium pulls it", { timeout: 150_000 }, () => {
  const env = browserSuite();
  let pageA2: ClientPage;
  let camera: PublishResult;

  test("page A2 publishes its camera (VP8, the browser's default)", { timeout: TEST_TIMEOUT }, async () => {
    pageA2 = await env.browser.open();
    camera = await pageA2.publish("video", "cam");
    assert.equal(camera.trackName, "cam");
    // Let the encoder run past its first keyframe, so subscribers can only decode after a keyframe
    // request (PLI/FIR) travels subscriber → SFU → publisher.
    await pollUntil(
      () => outbound(pageA2, camera.label),
      (o) => (o.framesEncoded ?? 0) >= 10,
      { what: "publisher encoding 10 frames" },
    );
    console.log(`camera published, connected in ${camera.connectMs.toFixed(0)} ms`);
  });

  test("page D pulls the camera with its own offer (variant 4) and decodes frames", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    assert.ok(camera, "needs the publisher");
    const before = await outbound(pageA2, camera.label);
    const pageD = await env.browser.open();
    const pull = await pageD.pullWithOffer("video", camera);
    assert.equal(pull.trackKind, "video");
    assert.equal(pull.streamCount, 1, "the answer's a=msid gives event.streams[0]");
    const flow = await pageD.waitFlowing(pull.label, "video", { timeoutMs: 15_000 });
    assertDecoding(flow, /video\/VP8/i);
    const after = await outbound(pageA2, camera.label);
    const requests = (o: Record<string, number>) => (o.pliCount ?? 0) + (o.firCount ?? 0);
    assert.ok(
      requests(after) > requests(before),
      `the subscriber's keyframe request reached the publisher (pli+fir ${requests(before)} → ${requests(after)})`,
    );
    console.log(describeFlow("variant 4 VP8", pull, flow));
  });

  test("page D2 pulls the camera without an offer (variant 3) and decodes frames", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    assert.ok(camera, "needs the publisher");
    const pageD2 = await env.browser.open();
    const pull = await pageD2.pullWithoutOffer("video", camera);
    assert.equal(pull.requiresImmediateRenegotiation, true);
    assert.equal(pull.trackKind, "video");
    assert.equal(pull.streamCount, 1);
    const flow = await pageD2.waitFlowing(pull.label, "video", { timeoutMs: 15_000 });
    assertDecoding(flow, /video\/VP8/i);
    console.log(describeFlow("variant 3 VP8", pull, flow));
  });

  test("H.264: the publisher prefers H.264, both pull variants decode it", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const pageA3 = await env.browser.open();
    const h264 = await pageA3.publish("video", "cam-h264", {
      codec: "video/H264",
      fmtp: "packetization-mode=1;profile-level-id=42e01f",
    });
    const [sent] = await pageA3.statsOfType(h264.label, "outbound-rtp");
    const codecId = sent?.codecId as string | undefined;
    assert.match(codecId ?? "", /packetization-mode=1/, "the publisher sends H.264 packetization-mode=1");
    // A browser offer puts VP8 first: the SFU must rewrite H.264's payload type to this subscriber's.
    const pageD3 = await env.browser.open();
    const withOffer = await pageD3.pullWithOffer("video", h264);
    const flow4 = await pageD3.waitFlowing(withOffer.label, "video", { timeoutMs: 15_000 });
    assertDecoding(flow4, /video\/H264/i);
    console.log(describeFlow("variant 4 H.264", withOffer, flow4));
    const pageD4 = await env.browser.open();
    const withoutOffer = await pageD4.pullWithoutOffer("video", h264);
    const flow3 = await pageD4.waitFlowing(withoutOffer.label, "video", { timeoutMs: 15_000 });
    assertDecoding(flow3, /video\/H264/i);
    console.log(describeFlow("variant 3 H.264", withoutOffer, flow3));
  });
});
