import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, before, describe, test } from "node:test";
import { decodeOpus, encodeOpus, publishAudio, pullAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { alignAndCorrelate, speechLike } from "../helpers/signals.ts";

// --rtc-shared-port: every session of the native media plane on one UDP port, demultiplexed by ICE username
// then 5-tuple. Media of four sessions must not mix, and datagrams from strangers must not disturb them.

const SOURCE = speechLike(2000, { seed: 11 });
const PAYLOADS = encodeOpus(SOURCE);

async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function candidatePorts(sdp: string): number[] {
  return [...sdp.matchAll(/^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gim)].map((m) => Number(m[1]));
}

/** A STUN Binding request (RFC 8489 header + USERNAME) for a ufrag no session owns. */
function strangerStun(): Buffer {
  const user = Buffer.from("nobody:x");
  const attr = Buffer.alloc(4 + 12);
  attr.writeUInt16BE(0x0006, 0);
  attr.writeUInt16BE(user.length, 2);
  user.copy(attr, 4);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0001, 0);
  head.writeUInt16BE(attr.length, 2);
  head.writeUInt32BE(0x2112a442, 4);
  head.fill(7, 8);
  return Buffer.concat([head, attr]);
}

describe("native media plane on one shared UDP port", () => {
  let srv: TestServer;
  let port: number;
  before(async () => {
    port = await freeUdpPort();
    srv = await startTestServer(["--media-plane", "native", "--rtc-shared-port", String(port)]);
  });
  after(async () => {
    await srv.close();
  });

  test("a publisher and three subscribers share the port, each gets the whole stream, strangers are ignored", async () => {
    const pub = await publishAudio(srv.api, "shared");
    const subs = [];
    for (let i = 0; i < 3; i++) subs.push(await pullAudio(srv.api, pub));
    const stranger = createSocket("udp4");
    try {
      for (const pc of [pub.pc, ...subs.map((s) => s.pc)]) {
        const ports = candidatePorts(pc.remoteDescription!.sdp);
        assert.ok(ports.length > 0, "the answer has host candidates");
        assert.deepEqual(new Set(ports), new Set([port]), "every candidate is on the shared port");
      }
      // Garbage and STUN for an unknown ufrag, interleaved with the media.
      const noise = setInterval(() => {
        stranger.send(strangerStun(), port, "127.0.0.1");
        stranger.send(Buffer.from([0x80, 0x6f, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 9, 9]), port, "127.0.0.1");
        stranger.send(Buffer.from([0x16, 0xfe, 0xfd, 0, 0]), port, "127.0.0.1");
      }, 5);
      try {
        await pub.send(PAYLOADS);
        for (const sub of subs) {
          const got = await sub.waitFor(PAYLOADS.length);
          assert.equal(got.length, PAYLOADS.length, "every packet once");
          const ssrcs = new Set(got.map((p) => p.header.ssrc));
          assert.equal(ssrcs.size, 1, "one SSRC per subscriber");
          const { correlation } = alignAndCorrelate(SOURCE, decodeOpus(got.map((p) => p.payload)));
          assert.ok(correlation >= 0.9, `audio matches the source (r=${correlation.toFixed(3)})`);
        }
        const ssrcs = subs.map((s) => s.packets[0].header.ssrc);
        assert.equal(new Set(ssrcs).size, subs.length, "each subscriber has its own SSRC");
      } finally {
        clearInterval(noise);
      }
    } finally {
      stranger.close();
      await Promise.all([pub.close(), ...subs.map((s) => s.close())]);
    }
  });

  test("the port outlives its sessions: a later session connects and carries media on it", async () => {
    const pub = await publishAudio(srv.api, "later");
    const sub = await pullAudio(srv.api, pub);
    try {
      assert.deepEqual(new Set(candidatePorts(sub.pc.remoteDescription!.sdp)), new Set([port]));
      await pub.send(PAYLOADS.slice(0, 50));
      assert.equal((await sub.waitFor(50)).length, 50);
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });
});
