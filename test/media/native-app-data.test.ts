import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { loadNative, type NativePeer, type NativePeerState } from "../../src/native/addon.ts";

// DTLS application data (what SCTP for data channels rides on) through the addon, end to end over real UDP
// on loopback: a server peer (ICE-lite) and a client-mode peer (controlling ICE, DTLS client) exchange records;
// each side's receive batch carries them as kind 2, in order, never mistaken for RTP or RTCP.

const native = loadNative();
const FINGERPRINT = native.certificateFingerprint();

interface Side {
  peer: NativePeer;
  port: number;
  records: Buffer[];
  other: number;
  states: NativePeerState[];
  close(): void;
}

function side(ufrag: string, pwd: string): Side {
  const socket = new native.UdpSocket();
  const port = socket.bind("127.0.0.1", 0, false);
  const s: Side = {
    peer: undefined as unknown as NativePeer,
    port,
    records: [],
    other: 0,
    states: [],
    close() {
      s.peer.close();
      socket.close();
    },
  };
  s.peer = new native.Peer(
    socket,
    ufrag,
    pwd,
    (batch, count) => {
      let at = 0;
      for (let i = 0; i < count; i++) {
        const len = batch.readUInt16BE(at);
        const kind = batch[at + 2];
        if (kind === 2) s.records.push(Buffer.from(batch.subarray(at + 4, at + 4 + len)));
        else s.other++;
        at += 4 + len;
      }
    },
    (state) => s.states.push(state),
  );
  return s;
}

async function until(what: string, ok: () => boolean, tick: () => void, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    tick();
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("native peer: DTLS application data", () => {
  test("records cross both ways in order, as kind 2 of the receive batch, only once DTLS is up", async () => {
    const server = side("srvU", "server-password-0123456789");
    const client = side("cliU", "client-password-0123456789");
    try {
      assert.equal(client.peer.sendApplicationData(Buffer.from("too early")), false);
      server.peer.setRemote("cliU", [["sha-256", FINGERPRINT]], false);
      client.peer.setRemote("srvU", [["sha-256", FINGERPRINT]], true, {
        ip: "127.0.0.1",
        port: server.port,
        pwd: "server-password-0123456789",
      });
      const tick = () => {
        client.peer.tick();
        server.peer.tick();
      };
      await until(
        "both connected",
        () => server.states.includes("connected") && client.states.includes("connected"),
        tick,
      );
      const up = Array.from({ length: 50 }, (_, i) => randomBytes(1 + ((i * 97) % 1200)));
      for (const r of up) assert.equal(client.peer.sendApplicationData(r), true);
      const down = Array.from({ length: 50 }, (_, i) => randomBytes(1 + ((i * 31) % 1200)));
      for (const r of down) assert.equal(server.peer.sendApplicationData(r), true);
      await until(
        "every record delivered",
        () => server.records.length >= 50 && client.records.length >= 50,
        tick,
      );
      assert.deepEqual(server.records, up);
      assert.deepEqual(client.records, down);
      assert.equal(server.other + client.other, 0, "no record was taken for RTP or RTCP");
      assert.equal(server.peer.sendApplicationData(Buffer.alloc(0)), false);
      assert.equal(server.peer.sendApplicationData(Buffer.alloc(16385)), false);
    } finally {
      client.close();
      server.close();
    }
  });
});
