import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GenericNack, RtcpTransportLayerFeedback, type RtpPacket } from "werift";
import { seqDiff } from "../../src/media/rtp.ts";
import { nativeForwardBatch } from "../../src/rtc/native-forward-batch.ts";
import {
  decodeOpus,
  encodeOpus,
  publishAudio,
  pullAudio,
  pullAudioWithOffer,
} from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, rms, speechLike } from "../helpers/signals.ts";

/** The plane the suite runs on (test/helpers/server.ts passes PATCHBAY_MEDIA_PLANE; native is the default). */
const PLANE = process.env.PATCHBAY_MEDIA_PLANE ?? "native";

const SOURCE = speechLike(3000, { seed: 7 });
const PAYLOADS = encodeOpus(SOURCE);

/** Every packet once, consecutive sequence numbers and +960 timestamps (no loss, no reordering). */
function assertInOrder(packets: RtpPacket[], expected: number): void {
  assert.equal(packets.length, expected, "packet count");
  for (let i = 1; i < packets.length; i++) {
    assert.equal(
      seqDiff(packets[i].header.sequenceNumber, packets[i - 1].header.sequenceNumber),
      1,
      `seq step at ${i}`,
    );
    assert.equal(
      (packets[i].header.timestamp - packets[i - 1].header.timestamp) >>> 0,
      960,
      `ts step at ${i}`,
    );
  }
  assert.equal(packets[0].header.payloadType, 111);
}

function assertSameAudio(packets: RtpPacket[]): void {
  const pcm = decodeOpus(packets.map((p) => p.payload));
  assert.ok(rms(pcm) > 500, `decoded audio is not silent (rms ${rms(pcm)})`);
  const { correlation, lagSamples } = alignAndCorrelate(SOURCE, pcm);
  assert.ok(correlation >= 0.9, `decoded audio matches the source (envelope r=${correlation.toFixed(3)})`);
  assert.ok(Math.abs(lagSamples) < 48 * 30, `aligned within 30 ms (lag ${lagSamples} samples)`);
}

describe("forwarding over real werift peers", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("one subscriber gets every packet in order and the audio matches the source", async () => {
    const pub = await publishAudio(srv.api, "one");
    const sub = await pullAudio(srv.api, pub);
    try {
      await pub.send(PAYLOADS);
      const got = await sub.waitFor(PAYLOADS.length);
      assertInOrder(got, PAYLOADS.length);
      for (let i = 0; i < got.length; i++)
        assert.deepEqual(got[i].payload, Buffer.from(PAYLOADS[i]), `payload ${i}`);
      assertSameAudio(got);
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });

  test("three subscribers (both pull variants) each get the full stream with their own SSRC", async () => {
    const pub = await publishAudio(srv.api, "three");
    const subs = [
      await pullAudio(srv.api, pub),
      await pullAudioWithOffer(srv.api, pub),
      await pullAudio(srv.api, pub),
    ];
    try {
      const nativeBefore = nativeForwardBatch.sent;
      await pub.send(PAYLOADS);
      const ssrcs = new Set<number>();
      for (const sub of subs) {
        const got = await sub.waitFor(PAYLOADS.length);
        assertInOrder(got, PAYLOADS.length);
        assertSameAudio(got);
        ssrcs.add(got[0].header.ssrc);
      }
      assert.equal(ssrcs.size, 3, "per-subscriber SSRC");
      // On the native plane every copy is rewritten and sent by the addon (NativePeer.forward), none by JS.
      assert.equal(
        nativeForwardBatch.sent - nativeBefore,
        PLANE === "native" ? 3 * PAYLOADS.length : 0,
        "copies sent by the addon's forwarding path",
      );
    } finally {
      await Promise.all([pub.close(), ...subs.map((s) => s.close())]);
    }
  });

  test("a pull made before any media flows starts receiving when the publisher starts", async () => {
    const pub = await publishAudio(srv.api, "later");
    const sub = await pullAudio(srv.api, pub);
    try {
      const session = await srv.api.getSession(sub.sessionId);
      assert.equal(session.tracks[0].status, "active");
      assert.equal(sub.packets.length, 0, "nothing before the publisher sends");
      await pub.send(PAYLOADS.slice(0, 50));
      assertInOrder(await sub.waitFor(50), 50);
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });

  test("closing the published track ends it for every subscriber", async () => {
    const pub = await publishAudio(srv.api, "closing");
    const sub = await pullAudio(srv.api, pub);
    try {
      await pub.send(PAYLOADS.slice(0, 20));
      await sub.waitFor(20);
      const res = await srv.api.closeTracks(pub.sessionId, { tracks: [{ mid: pub.mid }], force: true });
      assert.deepEqual(res.tracks, [{ mid: pub.mid }]);
      const pubState = await srv.api.getSession(pub.sessionId);
      assert.equal(pubState.tracks[0].status, "inactive");
      const subState = await srv.api.getSession(sub.sessionId);
      assert.equal(subState.tracks[0].status, "inactive", "the subscriber's pulled track is inactive");
      // The server-side track is gone: nothing the publisher still sends is forwarded, and it can't be pulled.
      const before = sub.packets.length;
      await pub.send(PAYLOADS.slice(20, 40));
      const probe = await pullAudio(srv.api, pub).catch((e: Error) => e);
      assert.ok(
        probe instanceof Error && /not_found_track_error/.test(probe.message),
        "closed track is not pullable",
      );
      assert.equal(sub.packets.length, before, "no packets after the close");
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });

  test("a subscriber's NACK is answered from the track's packet cache", async () => {
    const pub = await publishAudio(srv.api, "nack");
    const sub = await pullAudio(srv.api, pub);
    try {
      await pub.send(PAYLOADS.slice(0, 30));
      const got = await sub.waitFor(30);
      const wanted = [got[5].header.sequenceNumber, got[17].header.sequenceNumber];
      const receiver = sub.transceiver.receiver;
      const nack = new RtcpTransportLayerFeedback({
        feedback: new GenericNack({ senderSsrc: 1, mediaSourceSsrc: got[0].header.ssrc, lost: wanted }),
      });
      await receiver.dtlsTransport.sendRtcp([nack]);
      const again = await sub.waitFor(32);
      const resent = again.slice(30);
      assert.deepEqual(
        resent.map((p) => p.header.sequenceNumber),
        wanted,
        "exactly the NACKed packets come back, with the subscriber's sequence numbers",
      );
      assert.deepEqual(resent[0].payload, got[5].payload);
      assert.deepEqual(resent[1].payload, got[17].payload);
      const metrics = await fetch(`${srv.url}/metrics`).then((r) => r.text());
      assert.match(metrics, /patchbay_nack_retransmits_total [1-9]/);
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });
});
