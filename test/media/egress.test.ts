import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { WebSocket } from "ws";
import { decodePacket, type WirePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { encodeOpus, publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, fromBytes, speechLike } from "../helpers/signals.ts";
import { startEndpoint } from "../helpers/ws-endpoints.ts";

/** Collects the Packets an egress endpoint receives. */
function receiver(ws: WebSocket): {
  packets: WirePacket[];
  waitFor(n: number, ms?: number): Promise<WirePacket[]>;
} {
  const packets: WirePacket[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  ws.on("message", (data) => {
    const r = decodePacket(data as Buffer);
    if (r.ok) packets.push({ ...r.packet, payload: r.packet.payload.slice() });
    if (waiter && packets.length >= waiter.n) waiter.resolve();
  });
  return {
    packets,
    waitFor(n, ms = 15_000) {
      if (packets.length >= n) return Promise.resolve(packets);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${packets.length}/${n} frames`)), ms);
        waiter = {
          n,
          resolve: () => {
            clearTimeout(t);
            resolve(packets);
          },
        };
      });
    },
  };
}

describe("egress: a WebRTC track streamed to a WebSocket as PCM", () => {
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
});
