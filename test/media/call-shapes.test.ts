import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Audio, type PeerConnection, type Track } from "node-datachannel";
import type { RtpPacket } from "werift";
import { seqDiff } from "../../src/media/rtp.ts";
import { CallPeer } from "../helpers/call-peer.ts";
import { buildRtp, isRtcp, ndcCleanup, ndcPeer, trackOpen } from "../helpers/ndc-client.ts";
import { decodeOpus, encodeOpus } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";

// The call shape of Cloudflare's own clients with peers nobody here wrote the WebRTC of (werift,
// libdatachannel): every participant publishes AND pulls on its one session, renegotiating as others
// join, unpublish and leave. Each voice is distinct, so "the right audio on the right m-line" is checked
// by correlating the decoded PCM against each speaker's source.

const VOICES = {
  ann: speechLike(2000, { seed: 11 }),
  bob: speechLike(2000, { seed: 22 }),
  cat: speechLike(2000, { seed: 33 }),
  ndc: speechLike(2000, { seed: 44 }),
};
const FRAMES = Object.fromEntries(Object.entries(VOICES).map(([k, v]) => [k, encodeOpus(v)])) as Record<
  keyof typeof VOICES,
  Uint8Array[]
>;

function sortedPayloads(packets: { sequenceNumber: number; payload: Uint8Array }[]): Uint8Array[] {
  return [...packets].sort((a, b) => seqDiff(a.sequenceNumber, b.sequenceNumber)).map((p) => p.payload);
}

/** The decoded audio of `packets` is `voice` (and not another speaker's). */
function assertVoice(
  packets: { sequenceNumber: number; payload: Uint8Array }[],
  voice: keyof typeof VOICES,
  who: string,
) {
  assert.ok(packets.length >= 80, `${who}: ${packets.length} packets of ${voice}`);
  const pcm = decodeOpus(sortedPayloads(packets));
  const mine = alignAndCorrelate(VOICES[voice], pcm).correlation;
  assert.ok(mine >= 0.9, `${who} hears ${voice} (r=${mine.toFixed(3)})`);
  for (const other of Object.keys(VOICES) as (keyof typeof VOICES)[]) {
    if (other === voice) continue;
    const r = alignAndCorrelate(VOICES[other], pcm).correlation;
    assert.ok(r < 0.6, `${who}'s ${voice} track does not carry ${other} (r=${r.toFixed(3)})`);
  }
}

const rtpView = (packets: RtpPacket[]) =>
  packets.map((p) => ({ sequenceNumber: p.header.sequenceNumber, payload: p.payload }));

describe("call shapes: werift participants, each publishing and pulling on one session", () => {
  let srv: TestServer;
  const people: Record<string, CallPeer> = {};
  before(async () => {
    srv = await startTestServer([
      "--session-liveness-timeout-ms",
      "2000",
      "--session-disconnect-grace-ms",
      "500",
    ]);
  });
  after(async () => {
    for (const p of Object.values(people)) await p.close().catch(() => {});
    await srv.close();
  });

  test("three people join one after another; each hears the other two on its own session", async () => {
    const tracks: Record<string, { sessionId: string; trackName: string }> = {};
    for (const name of ["ann", "bob", "cat"] as const) {
      const p = new CallPeer(name, srv.api);
      people[name] = p;
      tracks[name] = await p.publish(`${name}-mic`);
      // The newcomer pulls everyone already there; everyone already there pulls the newcomer.
      for (const other of Object.keys(tracks)) {
        if (other === name) continue;
        await p.pull(tracks[other]);
        await people[other].pull(tracks[name]);
      }
    }
    for (const p of Object.values(people)) assert.equal(p.pc.signalingState, "stable");
    await Promise.all((["ann", "bob", "cat"] as const).map((n) => people[n].send(`${n}-mic`, FRAMES[n])));
    await new Promise((r) => setTimeout(r, 300));
    for (const listener of ["ann", "bob", "cat"] as const)
      for (const speaker of ["ann", "bob", "cat"] as const) {
        if (listener === speaker) continue;
        assertVoice(rtpView(people[listener].packetsFrom(`${speaker}-mic`)), speaker, listener);
      }
    // One session each: published and pulled tracks side by side, all active.
    const annSession = await srv.api.getSession(people.ann.sessionId);
    assert.deepEqual(
      annSession.tracks.map((t) => [t.location, t.trackName, t.status]),
      [
        ["local", "ann-mic", "active"],
        ["remote", "bob-mic", "active"],
        ["remote", "cat-mic", "active"],
      ],
    );
  });

  test("bob unpublishes (his offer closes the m-line): ann and cat stop getting him, keep each other", async () => {
    const { ann, bob, cat } = people;
    await bob.unpublish("bob-mic");
    assert.equal(bob.pc.signalingState, "stable");
    const before = { ann: ann.packetsFrom("bob-mic").length, cat: cat.packetsFrom("cat-mic").length };
    const annFromCat = ann.packetsFrom("cat-mic").length;
    const catFromAnn = cat.packetsFrom("ann-mic").length;
    const bobFromAnn = bob.packetsFrom("ann-mic").length;
    await Promise.all([ann.send("ann-mic", FRAMES.ann), cat.send("cat-mic", FRAMES.cat)]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ann.packetsFrom("bob-mic").length, before.ann, "nothing more of bob");
    assertVoice(rtpView(ann.packetsFrom("cat-mic").slice(annFromCat)), "cat", "ann");
    assertVoice(rtpView(cat.packetsFrom("ann-mic").slice(catFromAnn)), "ann", "cat");
    assertVoice(rtpView(bob.packetsFrom("ann-mic").slice(bobFromAnn)), "ann", "bob (no longer publishing)");
    const listed = await srv.api.getSession(ann.sessionId);
    assert.deepEqual(
      listed.tracks.map((t) => [t.trackName, t.status]),
      [
        ["ann-mic", "active"],
        ["bob-mic", "inactive"],
        ["cat-mic", "active"],
      ],
    );
  });

  test("cat leaves without a word (peer closed): her session closes; ann and a newcomer talk on", async () => {
    const { ann, cat } = people;
    await cat.close();
    delete people.cat;
    const status = async () => (await srv.api.raw("GET", `sessions/${cat.sessionId}`)).status;
    const deadline = Date.now() + 12_000;
    while ((await status()) !== 410) {
      assert.ok(Date.now() < deadline, "cat's session closed after the liveness timeout and grace");
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(
      (await srv.api.getSession(ann.sessionId)).tracks.map((t) => [t.trackName, t.status]),
      [
        ["ann-mic", "active"],
        ["bob-mic", "inactive"],
        ["cat-mic", "inactive"],
      ],
    );
    // dan joins: ann publishes a second track (a new m-line after the closed ones) and pulls dan.
    const dan = new CallPeer("dan", srv.api);
    people.dan = dan;
    const danMic = await dan.publish("dan-mic");
    const annSecond = await ann.publish("ann-mic-2");
    await ann.pull(danMic);
    await dan.pull(annSecond);
    await Promise.all([dan.send("dan-mic", FRAMES.cat), ann.send("ann-mic-2", FRAMES.ann)]);
    await new Promise((r) => setTimeout(r, 300));
    assertVoice(rtpView(ann.packetsFrom("dan-mic")), "cat", "ann (from dan, who plays cat's clip)");
    assertVoice(rtpView(dan.packetsFrom("ann-mic-2")), "ann", "dan");
    assert.equal(ann.pc.signalingState, "stable");
  });
});

describe("call shapes: a libdatachannel participant publishing and pulling on one session", () => {
  let srv: TestServer;
  let pc: PeerConnection | undefined;
  let ann: CallPeer | undefined;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    pc?.close();
    await ann?.close();
    await srv.close();
    ndcCleanup();
  });

  test("libdatachannel publishes with its offer, then pulls a werift participant into the same session", async () => {
    ann = new CallPeer("ann", srv.api);
    const annTrack = await ann.publish("ann-mic");
    pc = ndcPeer("ndc-call");
    const media = new Audio("0", "SendOnly");
    media.addOpusCodec(111, "minptime=10;useinbandfec=1");
    media.addSSRC(0x0dc0_0001, "ndc-cname", "ndc-stream", "ndc-mic");
    const sendTrack = pc.addTrack(media);
    const opened = trackOpen(sendTrack);
    const localDesc = new Promise<{ type: string; sdp: string }>((resolve) =>
      pc!.onGatheringStateChange((s) => {
        if (s === "complete") resolve(pc!.localDescription()!);
      }),
    );
    pc.setLocalDescription("offer");
    const offer = await localDesc;
    const { sessionId } = await srv.api.newSession();
    const pub = await srv.api.newTracks(sessionId, {
      sessionDescription: { type: "offer", sdp: offer.sdp },
      tracks: [{ location: "local", mid: "0", trackName: "ndc-mic" }],
    });
    assert.equal(pub.tracks[0].errorCode, undefined, JSON.stringify(pub.tracks[0]));
    pc.setRemoteDescription(pub.sessionDescription!.sdp, "answer");
    await opened;

    // The pull on the same session: Patchbay offers a new m-line, libdatachannel answers by itself.
    const remote = new Promise<Track>((resolve) => pc!.onTrack(resolve));
    const answered = new Promise<{ type: string; sdp: string }>((resolve) =>
      pc!.onLocalDescription((sdp, type) => {
        if (type.toLowerCase() === "answer") resolve({ type: "answer", sdp });
      }),
    );
    const pull = await srv.api.newTracks(sessionId, { tracks: [{ location: "remote", ...annTrack }] });
    assert.equal(pull.requiresImmediateRenegotiation, true);
    pc.setRemoteDescription(pull.sessionDescription!.sdp, "offer");
    const recvTrack = await remote;
    const received: { sequenceNumber: number; payload: Uint8Array }[] = [];
    recvTrack.onMessage((msg) => {
      const buf = Buffer.from(msg);
      if (isRtcp(buf)) return;
      received.push({
        sequenceNumber: buf.readUInt16BE(2),
        payload: buf.subarray(12 + (buf[0] & 0x0f) * 4 + extLength(buf)),
      });
    });
    const answer = await answered;
    await srv.api.renegotiate(sessionId, { type: "answer", sdp: answer.sdp });
    // ann pulls libdatachannel's track on HER one session too.
    await ann.pull({ sessionId, trackName: "ndc-mic" });

    let seq = 500;
    const t0 = performance.now();
    const ndcSend = (async () => {
      for (let k = 0; k < FRAMES.ndc.length; k++) {
        const wait = t0 + k * 20 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        sendTrack.sendMessageBinary(
          buildRtp({
            payloadType: 111,
            sequenceNumber: seq++,
            timestamp: k * 960,
            ssrc: 0x0dc0_0001,
            payload: FRAMES.ndc[k],
          }),
        );
      }
    })();
    await Promise.all([ndcSend, ann.send("ann-mic", FRAMES.ann)]);
    await new Promise((r) => setTimeout(r, 300));
    assertVoice(received, "ann", "libdatachannel");
    assertVoice(rtpView(ann.packetsFrom("ndc-mic")), "ndc", "ann");
  });
});

/** Length in bytes of an RTP header extension block (after the fixed header and CSRCs), 0 without X. */
function extLength(buf: Buffer): number {
  if ((buf[0] & 0x10) === 0) return 0;
  const at = 12 + (buf[0] & 0x0f) * 4;
  return 4 + buf.readUInt16BE(at + 2) * 4;
}
