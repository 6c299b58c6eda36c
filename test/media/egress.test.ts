import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { encodeOpus, publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, fromBytes, speechLike } from "../helpers/signals.ts";
import {
  adapterStatus,
  closeOf,
  receiver,
  rtpPackets,
  sendPaced,
  startEgress,
  startEndpoint,
} from "../helpers/ws-endpoints.ts";

type Item = {
  trackName?: string;
  adapterId?: string;
  sessionId?: string;
  endpoint?: string;
  errorCode?: string;
  errorDescription?: string;
};

describe("egress: a WebRTC track streamed to a WebSocket as PCM", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv.close();
  });

  test("frames arrive numbered from 1, stamped with the source RTP timestamps, matching the source", async () => {
    const source = speechLike(5000, { seed: 21 });
    const payloads = encodeOpus(source);
    const pub = await publishAudio(srv.api, "caller");
    const endpoint = await startEndpoint(() => {}, "/stt?key=k");
    try {
      const conn = endpoint.nextConnection();
      const res = await srv.api.raw<{ tracks: { adapterId?: string; errorCode?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        {
          tracks: [
            {
              location: "remote",
              sessionId: pub.sessionId,
              trackName: "caller",
              endpoint: endpoint.url,
              outputCodec: "pcm",
            },
          ],
        },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const rx = receiver(await conn);
      const sent = await pub.send(payloads, 20);
      const frames = await rx.waitFor(payloads.length);
      assert.deepEqual(
        frames.map((f) => f.sequenceNumber),
        frames.map((_, i) => i + 1),
        "sequence 1, 2, 3… without gaps",
      );
      for (const f of frames) assert.equal(f.payload.length, 3840, "20 ms of 48 kHz stereo s16le");
      assert.deepEqual(
        frames.map((f) => f.timestamp),
        sent.map((p) => p.header.timestamp),
        "timestamps are the source RTP timestamps",
      );
      const pcm = fromBytes(new Uint8Array(Buffer.concat(frames.map((f) => f.payload))));
      const { correlation } = alignAndCorrelate(source, pcm);
      assert.ok(correlation >= 0.9, `PCM matches the source (r=${correlation.toFixed(3)})`);
    } finally {
      await pub.close();
      await endpoint.close();
    }
  });

  test("the source track closed by its publisher (tracks/close force): the endpoint gets 1000 and the adapter a reason", async () => {
    const { pub, endpoint, adapterId, ws } = await startEgress(srv.api, "/stt");
    const stop = new AbortController();
    try {
      const rx = receiver(ws);
      const sending = sendPaced(pub, rtpPackets(encodeOpus(speechLike(5000, { seed: 22 }))), {
        signal: stop.signal,
      });
      await rx.waitFor(25);
      const closed = await srv.api.closeTracks(pub.sessionId, { tracks: [{ mid: pub.mid }], force: true });
      assert.equal(closed.tracks[0].errorCode, undefined, JSON.stringify(closed));
      const seen = await closeOf(ws);
      assert.equal(seen.code, 1000, "the endpoint is told with a normal close");
      assert.match(seen.reason, /source track ended/);
      const status = await adapterStatus(srv.api, adapterId);
      assert.equal(status.state, "closed");
      assert.match(status.closeReason ?? "", /source track ended/);
      assert.equal(status.reconnects, 0);
      assert.ok(status.frames >= 25);
      assert.equal(rx.invalid, 0);
      stop.abort();
      await sending;
    } finally {
      stop.abort();
      await pub.close();
      await endpoint.close();
    }
  });

  test("API: unknown session or track, another app's track → not_found_track_error; jpeg → 406", async () => {
    const pub = await publishAudio(srv.api, "caller");
    const endpoint = await startEndpoint(() => {}, "/stt");
    try {
      const item = (sessionId: string, trackName: string, outputCodec = "pcm") => ({
        location: "remote",
        sessionId,
        trackName,
        endpoint: endpoint.url,
        outputCodec,
      });
      const post = (api: typeof srv.api, ...items: ReturnType<typeof item>[]) =>
        api.raw<{ tracks: Item[]; errorCode?: string }>("POST", "adapters/websocket/new", { tracks: items });

      const cases: [string, typeof srv.api, ReturnType<typeof item>][] = [
        ["unknown session", srv.api, item("0123456789abcdef0123456789abcdef", "caller")],
        ["unknown track", srv.api, item(pub.sessionId, "nobody")],
        ["another app's track", srv.apiB, item(pub.sessionId, "caller")],
      ];
      for (const [what, api, it] of cases) {
        const res = await post(api, it);
        assert.equal(res.status, 503, `${what}: the only item failed: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.tracks.length, 1);
        assert.equal(res.body.tracks[0].errorCode, "not_found_track_error", what);
        assert.equal(res.body.tracks[0].trackName, it.trackName, `${what}: the item names its track`);
        assert.ok(res.body.tracks[0].errorDescription, `${what}: errorDescription`);
        assert.equal(res.body.tracks[0].adapterId, undefined);
      }
      // The handshake completes before the server answers, so a dial would have shown by now.
      assert.equal(endpoint.connections.length, 0, "nothing was dialed for a missing track");

      // Items are independent: one good, one bad → 200 with a per-item error.
      const mixed = await post(srv.api, item(pub.sessionId, "caller"), item(pub.sessionId, "nobody"));
      assert.equal(mixed.status, 200, JSON.stringify(mixed.body));
      const [ok, bad] = mixed.body.tracks;
      assert.match(ok.adapterId ?? "", /^[0-9a-f]{32}$/);
      assert.equal(ok.sessionId, pub.sessionId);
      assert.equal(ok.trackName, "caller");
      assert.equal(ok.endpoint, endpoint.url);
      assert.equal(bad.errorCode, "not_found_track_error");
      // Adapters are per app too: app B cannot see or close app A's adapter.
      const peek = await srv.apiB.raw<{ errorCode?: string }>("GET", `adapters/websocket/${ok.adapterId}`);
      assert.equal(peek.status, 404);
      assert.equal(peek.body.errorCode, "adapter_not_found");
      const steal = await srv.apiB.raw<{ tracks: Item[] }>("POST", "adapters/websocket/close", {
        tracks: [{ adapterId: ok.adapterId }],
      });
      assert.equal(steal.status, 503);
      assert.equal(steal.body.tracks[0].errorCode, "adapter_not_found");
      assert.equal((await adapterStatus(srv.api, ok.adapterId!)).state, "open");

      const jpeg = await post(srv.api, item(pub.sessionId, "caller", "jpeg"));
      assert.equal(jpeg.status, 406, JSON.stringify(jpeg.body));
      assert.equal(jpeg.body.errorCode, "invalid_params");
    } finally {
      await pub.close();
      await endpoint.close();
    }
  });
});
