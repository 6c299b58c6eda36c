import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MediaStreamTrack, type RTCPeerConnection, type RTCRtpTransceiver, type RtpPacket } from "werift";
import { seqDiff } from "../../src/media/rtp.ts";
import {
  clientPeer,
  decodeOpus,
  encodeOpus,
  onReceivedRtp,
  sendRealtime,
  waitConnected,
} from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";

// Cloudflare's OpenAI relay example, call for call (realtime-examples/openai-webrtc-relay): a browser
// session publishes its mic on a sendrecv transceiver with bidirectionalMediaStream; a `?thirdparty=true`
// session pushes "ai-generated-voice" without an offer (bidirectional), its offer goes to a third-party
// ICE-lite WebRTC server whose answer comes back through PUT renegotiate; then each side pulls the other's
// track into its own bidirectional transceiver with `mid: "#<trackName>"`, without renegotiating.
// The third party here is a werift peer running ICE-lite, as realtime AI endpoints do.

const USER = speechLike(2000, { seed: 5 });
const AI = speechLike(2000, { seed: 6 });

/** Packets received on one transceiver's m-line. */
function collect(pc: RTCPeerConnection, transceiver: () => RTCRtpTransceiver | undefined): RtpPacket[] {
  const got: RtpPacket[] = [];
  onReceivedRtp(pc, (mid, rtp) => {
    if (mid === transceiver()?.mid) got.push(rtp.clone());
  });
  return got;
}

function assertHeard(packets: RtpPacket[], source: Int16Array, who: string): void {
  assert.ok(packets.length >= 80, `${who}: ${packets.length} packets`);
  const sorted = [...packets].sort((a, b) => seqDiff(a.header.sequenceNumber, b.header.sequenceNumber));
  const r = alignAndCorrelate(source, decodeOpus(sorted.map((p) => p.payload))).correlation;
  assert.ok(r >= 0.9, `${who} hears the right voice (r=${r.toFixed(3)})`);
}

describe("the OpenAI relay flow: bidirectionalMediaStream, #name pulls, a thirdparty session", () => {
  let srv: TestServer;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    for (const c of closers) await c().catch(() => {});
    await srv.close();
  });

  test("the user hears the AI and the AI hears the user, each on its one sendrecv transceiver", async () => {
    // 1–2. Session A: the browser's sendrecv offer, pushed with bidirectionalMediaStream.
    const browser = clientPeer();
    closers.push(() => browser.close());
    const micTrack = new MediaStreamTrack({ kind: "audio" });
    const browserTr = browser.addTransceiver(micTrack, { direction: "sendrecv" });
    const fromAi = collect(browser, () => browserTr);
    await browser.setLocalDescription(await browser.createOffer());
    const { sessionId: a } = await srv.api.newSession();
    const pushA = await srv.api.newTracks(a, {
      sessionDescription: { type: "offer", sdp: browser.localDescription!.sdp },
      tracks: [
        {
          location: "local",
          trackName: "user-mic",
          bidirectionalMediaStream: true,
          kind: "audio",
          mid: browserTr.mid!,
        },
      ],
    });
    assert.equal(pushA.tracks[0].errorCode, undefined, JSON.stringify(pushA.tracks[0]));

    // 3–6. Session B (thirdparty): Patchbay offers, the ICE-lite server answers.
    const { sessionId: b } = await srv.api.newSession(undefined, { thirdparty: true });
    const pushB = await srv.api.newTracks(b, {
      tracks: [
        { location: "local", trackName: "ai-generated-voice", bidirectionalMediaStream: true, kind: "audio" },
      ],
    });
    assert.equal(pushB.requiresImmediateRenegotiation, true);
    assert.doesNotMatch(pushB.sessionDescription!.sdp, /a=ice-lite/, "Patchbay is the full ICE agent here");
    const ai = clientPeer({ iceLite: true });
    closers.push(() => ai.close());
    const fromUser = collect(ai, () => ai.getTransceivers()[0]);
    await ai.setRemoteDescription(pushB.sessionDescription!);
    const aiTr = ai.getTransceivers()[0];
    const aiVoice = new MediaStreamTrack({ kind: "audio" });
    aiTr.setDirection("sendrecv");
    await aiTr.sender.replaceTrack(aiVoice);
    await ai.setLocalDescription(await ai.createAnswer());
    assert.match(ai.localDescription!.sdp, /a=ice-lite/, "the third party is ICE-lite");
    await srv.api.renegotiate(b, { type: "answer", sdp: ai.localDescription!.sdp });

    // 7. The browser applies A's answer.
    await browser.setRemoteDescription(pushA.sessionDescription!);
    await Promise.all([waitConnected(browser), waitConnected(ai)]);

    // 8. Cross pulls into the bidirectional transceivers: no renegotiation on either side.
    const intoA = await srv.api.newTracks(a, {
      tracks: [{ location: "remote", sessionId: b, trackName: "ai-generated-voice", mid: "#user-mic" }],
    });
    const intoB = await srv.api.newTracks(b, {
      tracks: [{ location: "remote", sessionId: a, trackName: "user-mic", mid: "#ai-generated-voice" }],
    });
    for (const r of [intoA, intoB]) {
      assert.equal(r.tracks[0].errorCode, undefined, JSON.stringify(r.tracks[0]));
      assert.equal(r.requiresImmediateRenegotiation, false);
      assert.equal(r.sessionDescription, undefined);
    }
    assert.equal(intoA.tracks[0].mid, browserTr.mid);

    await Promise.all([sendRealtime(micTrack, encodeOpus(USER)), sendRealtime(aiVoice, encodeOpus(AI))]);
    await new Promise((r) => setTimeout(r, 300));
    assertHeard(fromAi, AI, "the browser");
    assertHeard(fromUser, USER, "the AI server");
  });
});
