// A subscriber that stops reading (its peer vanished without a word: no SACKs, no close) must not cost anyone
// else their data channel messages (issue 12): its association's queue fills to its bound and then drops,
// counted, while the publisher and the healthy subscriber go on at full speed.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RTCDataChannel, RTCPeerConnection } from "werift";
import { clientPeer, waitConnected } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Info = { messagesDelivered?: number; messagesDropped?: number; status?: string };

describe("hostile data channel subscribers", { timeout: 90_000 }, () => {
  let server: TestServer;
  const peers: RTCPeerConnection[] = [];
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    for (const pc of peers) await pc.close().catch(() => {});
    await server.close();
  });

  async function dataSession(): Promise<{ pc: RTCPeerConnection; sessionId: string }> {
    const pc = clientPeer();
    peers.push(pc);
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.createDataChannel("server-events", { negotiated: true, id: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await server.api.raw<{
      sessionId: string;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", "sessions/new", { sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp } });
    await pc.setRemoteDescription(res.body.sessionDescription);
    await waitConnected(pc);
    return { pc, sessionId: res.body.sessionId };
  }

  async function open(
    peer: { pc: RTCPeerConnection; sessionId: string },
    item: Record<string, unknown>,
  ): Promise<RTCDataChannel> {
    const res = await server.api.raw<{ dataChannels: { id: number }[] }>(
      "POST",
      `sessions/${peer.sessionId}/datachannels/new`,
      { dataChannels: [item] },
    );
    const dc = peer.pc.createDataChannel(String(item.dataChannelName), {
      negotiated: true,
      id: res.body.dataChannels[0].id,
    });
    if (dc.readyState !== "open")
      await new Promise<void>((r) => dc.stateChanged.subscribe((s) => s === "open" && r()));
    return dc;
  }

  const infoOf = async (sessionId: string): Promise<Info> =>
    (await server.api.raw<{ dataChannels: Info[] }>("GET", `sessions/${sessionId}`)).body.dataChannels[0];

  test("a vanished subscriber: its queue fills to the bound and drops; the healthy one gets every message", async () => {
    const pub = await dataSession();
    const healthy = await dataSession();
    const gone = await dataSession();
    const out = await open(pub, { location: "local", dataChannelName: "feed" });
    const good = await open(healthy, {
      location: "remote",
      sessionId: pub.sessionId,
      dataChannelName: "feed",
    });
    await open(gone, { location: "remote", sessionId: pub.sessionId, dataChannelName: "feed" });
    // The peer disappears without telling the server (no DTLS close_notify reaches it: its socket just closes).
    await gone.pc.close();

    // 7.2 MB in all, more than the 4 MiB a subscriber's association may queue, at ≈ 3 MB/s: a pace the
    // healthy subscriber's leg keeps up with (≈ 4.5 MB/s measured with werift peers).
    const n = 6000;
    const size = 1200;
    let got = 0;
    let inOrder = true;
    good.onMessage.subscribe((m) => {
      if (!Buffer.isBuffer(m) || m.readUInt32LE(0) !== got) inOrder = false;
      got++;
    });
    out.bufferedAmountLowThreshold = 2 * 1024;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (i % 25 === 0) {
        const wait = t0 + (i / 25) * 10 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (out.bufferedAmount > 8 * 1024) await new Promise((r) => out.bufferedAmountLow.once(r));
      const b = Buffer.alloc(size);
      b.writeUInt32LE(i, 0);
      out.send(b);
    }
    const deadline = Date.now() + 30_000;
    while (got < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [healthyInfo, goneInfo] = [await infoOf(healthy.sessionId), await infoOf(gone.sessionId)];
    console.log(`got ${got}; healthy: ${JSON.stringify(healthyInfo)}; vanished: ${JSON.stringify(goneInfo)}`);
    assert.equal(got, n, "the healthy subscriber got every message");
    assert.ok(inOrder, "in order");
    assert.equal(healthyInfo.messagesDropped, 0);
    assert.ok(
      (goneInfo.messagesDropped ?? 0) > 0,
      "the vanished subscriber's queue hit its bound and dropped",
    );
    assert.ok(
      (goneInfo.messagesDelivered ?? 0) * size <= 5 << 20,
      `what was queued for it stayed near the 4 MiB bound (${goneInfo.messagesDelivered} messages)`,
    );
  });
});
