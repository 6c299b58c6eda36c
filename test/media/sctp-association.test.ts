// Data channels' transport (issue 12, and issue 11's "data channels keep working; measure"): an SCTP
// association on each of two addon peers, carried in DTLS application data over real UDP on loopback. The
// client side opens a channel in-band (DCEP, as a browser's createDataChannel does) and both sides exchange
// 10 000 ordered messages of every kind (string, binary, empty); hostile records never throw.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import {
  type DcepOpen,
  dcepOpen,
  PPID,
  SctpAssociation,
  type SctpMessage,
} from "../../src/rtc/sctp-association.ts";
import { connectPair, type Side, side, until } from "../helpers/native-peers.ts";

const N = 10_000;

function associate(s: Side, isServer: boolean, maxQueuedBytes = 64 << 20): SctpAssociation {
  const a = new SctpAssociation({
    isServer,
    maxQueuedBytes,
    sendRecord: (r) => s.peer.sendApplicationData(r),
  });
  s.onRecord = (r) => a.receiveRecord(r);
  return a;
}

/** Message i: a string, a binary blob or an empty one, of varying sizes up to 4 KiB. */
function message(i: number): { ppid: number; data: Buffer } {
  if (i % 50 === 49)
    return { ppid: i % 100 === 99 ? PPID.STRING_EMPTY : PPID.BINARY_EMPTY, data: Buffer.alloc(0) };
  if (i % 2 === 0) return { ppid: PPID.STRING, data: Buffer.from(`message ${i} ${"x".repeat(i % 300)}`) };
  return { ppid: PPID.BINARY, data: randomBytes(1 + ((i * 131) % 4096)) };
}

describe("SCTP over the native plane's DTLS application data", { timeout: 60_000 }, () => {
  test("DCEP open, then 10 000 messages each way, in order and intact; garbage records are counted, not thrown", async () => {
    const serverSide = side("srvU", "server-password-0123456789");
    const clientSide = side("cliU", "client-password-0123456789");
    const server = associate(serverSide, true);
    const client = associate(clientSide, false);
    const timer = setInterval(() => {
      serverSide.peer.tick();
      clientSide.peer.tick();
    }, 10);
    try {
      const tick = await connectPair(serverSide, clientSide);
      server.start();
      client.start();
      await until("SCTP up", () => server.connected && client.connected, tick);

      const opened: DcepOpen[] = [];
      server.onDcepOpen.subscribe((o) => opened.push(o));
      const atServer: SctpMessage[] = [];
      const atClient: SctpMessage[] = [];
      server.onMessage.subscribe((m) => atServer.push(m));
      client.onMessage.subscribe((m) => atClient.push(m));
      // A client channel opened in-band on stream 1 (odd: the DTLS client's half of the id space).
      assert.equal(client.send(1, PPID.DCEP, dcepOpen("server-events", "json")), true);
      await until("DCEP open", () => opened.length === 1, tick);
      assert.deepEqual(opened[0], { streamId: 1, label: "server-events", protocol: "json", ordered: true });

      const sent = Array.from({ length: N }, (_, i) => message(i));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const m of sent) {
        assert.ok(client.send(1, m.ppid, m.data));
        assert.ok(server.send(2, m.ppid, m.data));
      }
      await until(
        "every message both ways",
        () => atServer.length >= N && atClient.length >= N,
        tick,
        45_000,
      );
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const bytes = sent.reduce((n, m) => n + m.data.length, 0);
      console.log(
        `${2 * N} messages (${((2 * bytes) / 1e6).toFixed(1)} MB) in ${ms.toFixed(0)} ms: ` +
          `${((2 * N) / (ms / 1000)).toFixed(0)} messages/s, ${((cpu.user + cpu.system) / (2 * N)).toFixed(1)} µs CPU per message ` +
          "(both ends of the association, DTLS and UDP included, in this process)",
      );
      for (const [got, stream] of [
        [atServer, 1],
        [atClient, 2],
      ] as const) {
        assert.equal(got.length, N);
        got.forEach((m, i) => {
          assert.equal(m.streamId, stream);
          assert.equal(m.ppid, sent[i].ppid, `message ${i}: PPID`);
          assert.ok(m.data.equals(sent[i].data), `message ${i}: content, in order`);
        });
      }

      // The queue bound: a message beyond it is refused, not queued.
      assert.equal(client.send(1, PPID.BINARY, Buffer.alloc(65 << 20)), false);

      // Hostile records: short, garbage with a bad checksum, an INIT bundled with other chunks.
      const before = server.malformed;
      for (const r of [
        Buffer.alloc(3),
        randomBytes(64),
        Buffer.from("0000000000000000010000080000000002", "hex"),
      ])
        server.receiveRecord(r);
      await until("garbage counted", () => server.malformed >= before + 2, tick);
      assert.ok(server.connected, "the association survives garbage");
      assert.ok(client.send(1, PPID.STRING, Buffer.from("still here")));
      await until(
        "a message after the garbage",
        () => atServer.at(-1)?.data.toString() === "still here",
        tick,
      );
    } finally {
      clearInterval(timer);
      client.close();
      server.close();
      clientSide.close();
      serverSide.close();
    }
  });
});
