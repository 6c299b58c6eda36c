// Interop with a second, independent WebRTC stack: libdatachannel (through node-datachannel) publishes
// to and pulls from Patchbay over the Cloudflare-compatible HTTP API, with werift on the other side.
// Loopback only: both stacks bind 127.0.0.1 and use no STUN/TURN server.

import assert from "node:assert/strict";
import { after, before, describe, type TestContext, test } from "node:test";
import type { PeerConnection } from "node-datachannel";
import { RtpPacket } from "werift";
import {
  type NdcSubscriber,
  ndcCleanup,
  ndcPublishAudio,
  ndcPullAudio,
  ndcPullAudioWithOffer,
} from "../helpers/ndc-client.ts";
import { decodeOpus, encodeOpus, publishAudio, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";

const DURATION_MS = 3_000;
const SPACING_MS = 5;
const MIN_RATIO = 0.98;
const MIN_CORRELATION = 0.9;
/**
 * ICE + DTLS on loopback takes tens of ms. A server that drops the DTLS ClientHello libjuice sends
 * right after its first successful check (before nominating) waits for the 1 s retransmission instead.
 */
const MAX_CONNECT_MS = 900;

/** Both ends of the selected ICE pair are loopback. */
function assertLoopback(pc: PeerConnection): void {
  const pair = pc.getSelectedCandidatePair();
  assert.ok(pair, "no selected candidate pair");
  assert.equal(pair.local.address, "127.0.0.1");
  assert.equal(pair.remote.address, "127.0.0.1");
}

/** RFC 8839: `a=ice-lite` is session-level (libdatachannel only reads it there). */
function assertSessionLevelIceLite(sdp: string): void {
  const [session, ...media] = sdp.split(/\r\nm=/);
  assert.match(session, /^a=ice-lite$/m, "a=ice-lite at session level");
  for (const m of media) assert.doesNotMatch(m, /^a=ice-lite$/m, "no media-level a=ice-lite");
}

/** Received packets in arrival order → payloads indexed by sequence offset (a hole stays undefined). */
function bySequence(packets: { sequenceNumber: number; payload: Uint8Array }[]): (Uint8Array | undefined)[] {
  if (packets.length === 0) return [];
  const first = packets[0].sequenceNumber;
  const out: (Uint8Array | undefined)[] = [];
  for (const p of packets) out[(p.sequenceNumber - first) & 0xffff] = p.payload;
  return out;
}

/** Each sequence number is the previous one + 1 (mod 2¹⁶), except where packets were lost. */
function assertInOrder(seqs: number[]): void {
  for (let i = 1; i < seqs.length; i++) {
    const step = (seqs[i] - seqs[i - 1]) & 0xffff;
    assert.ok(
      step >= 1 && step < 0x8000,
      `sequence went backwards or repeated at ${i}: ${seqs[i - 1]} → ${seqs[i]}`,
    );
  }
}

function assertCorrelates(
  t: TestContext,
  reference: Int16Array,
  payloads: (Uint8Array | undefined)[],
  label: string,
): void {
  const decoded = decodeOpus(payloads);
  // Opus is lossy: compare 1 ms RMS envelopes (see signals.ts), not waveforms.
  const r = alignAndCorrelate(reference, decoded);
  t.diagnostic(
    `${label}: envelope ${r.envelope.toFixed(3)}, waveform ${r.waveform.toFixed(3)}, lag ${r.lagSamples} samples`,
  );
  assert.ok(
    r.correlation >= MIN_CORRELATION,
    `${label}: envelope correlation ${r.correlation.toFixed(3)} < ${MIN_CORRELATION} (lag ${r.lagSamples}, waveform ${r.waveform.toFixed(3)})`,
  );
}

describe("interop: libdatachannel ↔ Patchbay", () => {
  let srv: TestServer;
  const reference = speechLike(DURATION_MS, { seed: 4242 });
  const opus = encodeOpus(reference);

  before(async () => {
    srv = await startTestServer();
  });

  after(async () => {
    await srv?.close();
    ndcCleanup();
  });

  test("libdatachannel publishes Opus (variant 1), a werift subscriber receives it intact", async (t) => {
    const pub = await ndcPublishAudio(srv.api, { trackName: "ndc-voice", mid: "0", ssrc: 0x0badcafe });
    const sub = await pullAudio(srv.api, { sessionId: pub.sessionId, trackName: "ndc-voice" });
    try {
      t.diagnostic(`libdatachannel publisher connected in ${pub.connectMs.toFixed(0)} ms`);
      assertLoopback(pub.pc);
      assert.match(pub.answerSdp, /^a=setup:passive$/m);
      assert.match(pub.answerSdp, /^a=rtpmap:111 opus\/48000\/2$/m);
      assertSessionLevelIceLite(pub.answerSdp);
      assert.ok(pub.connectMs < MAX_CONNECT_MS, `connected after ${pub.connectMs.toFixed(0)} ms`);
      const sent = await pub.send(opus, SPACING_MS);
      await sub.waitFor(Math.ceil(sent.length * MIN_RATIO), 10_000);
      await new Promise((r) => setTimeout(r, 200)); // stragglers
      const got = sub.packets;
      t.diagnostic(`werift subscriber received ${got.length} of ${sent.length} packets`);
      assert.ok(got.length >= sent.length * MIN_RATIO, `received ${got.length} of ${sent.length}`);
      assert.ok(got.length <= sent.length, `received ${got.length} > sent ${sent.length}`);
      assertInOrder(got.map((p) => p.header.sequenceNumber));
      for (const p of got) assert.equal(p.header.payloadType, 111);
      assertCorrelates(
        t,
        reference,
        bySequence(got.map((p) => ({ sequenceNumber: p.header.sequenceNumber, payload: p.payload }))),
        "libdatachannel → werift",
      );
      const info = await srv.api.getSession(pub.sessionId);
      assert.deepEqual(
        info.tracks.map((t) => [t.location, t.mid, t.trackName, t.status]),
        [["local", "0", "ndc-voice", "active"]],
      );
    } finally {
      await sub.close();
      pub.close();
    }
  });

  for (const [variant, pull] of [
    ["variant 4: recvonly offer", ndcPullAudioWithOffer],
    ["variant 3: server offer + PUT renegotiate", ndcPullAudio],
  ] as const) {
    test(`libdatachannel pulls Opus from a werift publisher (${variant})`, async (t) => {
      const pub = await publishAudio(srv.api, "werift-voice");
      let sub: NdcSubscriber | undefined;
      try {
        sub = await pull(srv.api, { sessionId: pub.sessionId, trackName: "werift-voice" });
        t.diagnostic(`libdatachannel subscriber connected in ${sub.connectMs.toFixed(0)} ms`);
        assertLoopback(sub.pc);
        assert.match(sub.serverSdp, new RegExp(`^a=msid:${pub.sessionId} werift-voice$`, "m"));
        assertSessionLevelIceLite(sub.serverSdp);
        // libdatachannel copies media-level attributes it does not know into its answer; it is a full agent.
        assert.doesNotMatch(sub.localSdp, /^a=ice-lite$/m);
        assert.ok(sub.connectMs < MAX_CONNECT_MS, `connected after ${sub.connectMs.toFixed(0)} ms`);
        const sent = await pub.send(opus, SPACING_MS);
        await sub.waitFor(Math.ceil(sent.length * MIN_RATIO), 10_000);
        await new Promise((r) => setTimeout(r, 200));
        const got = sub.rtp.map((b) => RtpPacket.deSerialize(b));
        t.diagnostic(
          `libdatachannel received ${got.length} of ${sent.length} RTP packets (+${sub.rtcpCount} RTCP)`,
        );
        assert.ok(got.length >= sent.length * MIN_RATIO, `received ${got.length} of ${sent.length}`);
        assert.ok(got.length <= sent.length, `received ${got.length} > sent ${sent.length}`);
        assertInOrder(got.map((p) => p.header.sequenceNumber));
        for (const p of got) assert.equal(p.header.payloadType, 111);
        assert.equal(new Set(got.map((p) => p.header.ssrc)).size, 1, "one SSRC");
        // Timestamps advance by 960 per packet, as sent.
        for (let i = 1; i < got.length; i++) {
          const dSeq = (got[i].header.sequenceNumber - got[i - 1].header.sequenceNumber) & 0xffff;
          assert.equal((got[i].header.timestamp - got[i - 1].header.timestamp) >>> 0, dSeq * 960);
        }
        assertCorrelates(
          t,
          reference,
          bySequence(got.map((p) => ({ sequenceNumber: p.header.sequenceNumber, payload: p.payload }))),
          `werift → libdatachannel (${variant})`,
        );
      } finally {
        sub?.close();
        await pub.close();
      }
    });
  }
});
