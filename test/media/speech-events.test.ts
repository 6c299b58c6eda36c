import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { encodeOpus, publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { concatPcm, fromBytes, rms, silence, sine } from "../helpers/signals.ts";
import { createEgress, startEndpoint } from "../helpers/ws-endpoints.ts";

// Egress with speechEvents: true (issue 14): a werift publisher talks, pauses, talks; the STT endpoint gets
// start/end-of-speech text frames in order with the PCM Packets, each naming the Packet where speech starts or
// last sounds.

type Msg = { kind: "pcm"; seq: number; level: number } | { kind: "event"; state: string; seq: number };

describe("egress speech events", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  test("talk, pause, talk: start/end/start/end, each naming the right Packet", async () => {
    const pub = await publishAudio(srv.api, "mic");
    const endpoint = await startEndpoint(() => {}, "/stt");
    try {
      const conn = endpoint.nextConnection();
      await createEgress(srv.api, { sessionId: pub.sessionId, trackName: "mic" }, endpoint.url, {
        speechEvents: true,
      });
      const ws = await conn;
      const msgs: Msg[] = [];
      ws.on("message", (data, isBinary) => {
        if (!isBinary) {
          const e = JSON.parse(data.toString()) as { event: string; state: string; sequenceNumber: number };
          assert.equal(e.event, "speech");
          msgs.push({ kind: "event", state: e.state, seq: e.sequenceNumber });
          return;
        }
        const r = decodePacket(data as Buffer);
        if (r.ok)
          msgs.push({ kind: "pcm", seq: r.packet.sequenceNumber, level: rms(fromBytes(r.packet.payload)) });
      });
      const pcm = concatPcm(
        silence(400),
        sine(300, 1000, 0.3),
        silence(1000),
        sine(300, 600, 0.3),
        silence(800),
      );
      await pub.send(encodeOpus(pcm), 20);
      const deadline = Date.now() + 5000;
      while (msgs.filter((m) => m.kind === "event").length < 4 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));

      const evs = msgs.filter((m): m is Extract<Msg, { kind: "event" }> => m.kind === "event");
      assert.deepEqual(
        evs.map((e) => e.state),
        ["start", "end", "start", "end"],
      );
      const pcmMsgs = msgs.filter((m): m is Extract<Msg, { kind: "pcm" }> => m.kind === "pcm");
      const levelOf = (seq: number) => pcmMsgs.find((m) => m.seq === seq)?.level ?? 0;
      for (const [i, e] of evs.entries()) {
        // The named Packet is loud; on the silent side of it is the pause (start: the one before, end: after).
        assert.ok(levelOf(e.seq) > 1000, `event ${i} names a loud frame (${levelOf(e.seq)})`);
        const outside = e.state === "start" ? e.seq - 1 : e.seq + 1;
        assert.ok(levelOf(outside) < 100, `event ${i}: frame ${outside} is the pause (${levelOf(outside)})`);
        // In order: the event follows the Packet it names.
        const at = msgs.indexOf(e);
        assert.ok(
          msgs.slice(0, at).some((m) => m.kind === "pcm" && m.seq === e.seq),
          `event ${i} comes after Packet ${e.seq}`,
        );
      }
      // Talk-spurt lengths: ≈ 1 s and ≈ 0.6 s of frames.
      assert.ok(
        Math.abs(evs[1].seq - evs[0].seq + 1 - 50) <= 2,
        `first spurt ${evs[1].seq - evs[0].seq + 1} frames`,
      );
      assert.ok(
        Math.abs(evs[3].seq - evs[2].seq + 1 - 30) <= 2,
        `second spurt ${evs[3].seq - evs[2].seq + 1} frames`,
      );
    } finally {
      await endpoint.close();
      await pub.close();
    }
  });

  test("speechEvents on an ingest item, or not a boolean: refused", async () => {
    const bad = await srv.api.raw<{ errorCode: string; errorDescription: string }>(
      "POST",
      "adapters/websocket/new",
      {
        tracks: [
          {
            location: "local",
            trackName: "t",
            endpoint: "ws://127.0.0.1:9/x",
            inputCodec: "pcm",
            speechEvents: true,
          },
        ],
      },
    );
    assert.equal(bad.status, 406);
    assert.match(bad.body.errorDescription, /speechEvents applies to remote \(egress\) items/);
    const type = await srv.api.raw<{ errorCode: string }>("POST", "adapters/websocket/new", {
      tracks: [
        {
          location: "remote",
          sessionId: "s",
          trackName: "t",
          endpoint: "ws://127.0.0.1:9/x",
          outputCodec: "pcm",
          speechEvents: "yes",
        },
      ],
    });
    assert.equal(type.status, 400);
    assert.equal(type.body.errorCode, "decoding_error");
  });
});
