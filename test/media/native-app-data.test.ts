import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { connectPair, side, until } from "../helpers/native-peers.ts";

// DTLS application data (what SCTP for data channels rides on) through the addon, end to end over real UDP
// on loopback: a server peer (ICE-lite) and a client-mode peer (controlling ICE, DTLS client) exchange records;
// each side's receive batch carries them as kind 2, in order, never mistaken for RTP or RTCP.

describe("native peer: DTLS application data", () => {
  test("records cross both ways in order, as kind 2 of the receive batch, only once DTLS is up", async () => {
    const server = side("srvU", "server-password-0123456789");
    const client = side("cliU", "client-password-0123456789");
    try {
      assert.equal(client.peer.sendApplicationData(Buffer.from("too early")), false);
      const tick = await connectPair(server, client);
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
