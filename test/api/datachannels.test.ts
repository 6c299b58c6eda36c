import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RTCDataChannel, RTCPeerConnection } from "werift";
import { clientPeer, waitConnected } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// datachannels/new as Cloudflare documents it, with werift as the client (a second stack besides Chromium,
// test/browser/datachannels.test.ts): publish and subscribe named channels, 1 000 messages through the SFU;
// every invalid request gets Cloudflare's error shape naming the field; the routes not built yet say so.

type Item = {
  id?: number;
  status?: string;
  canReply?: boolean;
  repliesReceived?: number;
  waitForAck?: boolean;
  waitingForAck?: boolean;
  messagesReceived?: number;
  messagesDelivered?: number;
  location?: string;
  dataChannelName?: string;
  sessionId?: string;
  errorCode?: string;
  errorDescription?: string;
};

describe("datachannels routes", { timeout: 60_000 }, () => {
  let server: TestServer;
  const peers: RTCPeerConnection[] = [];
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    for (const pc of peers) await pc.close();
    await server.close();
  });

  /** A session whose first offer carried a data channel (Cloudflare's pattern), connected. */
  async function dataSession(): Promise<{ pc: RTCPeerConnection; sessionId: string }> {
    const pc = clientPeer();
    peers.push(pc);
    pc.addTransceiver("audio", { direction: "inactive" });
    pc.createDataChannel("server-events");
    await pc.setLocalDescription(await pc.createOffer());
    const res = await server.api.raw<{
      sessionId: string;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", "sessions/new", { sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.sessionDescription.sdp, /m=application 9 UDP\/DTLS\/SCTP webrtc-datachannel/);
    assert.match(res.body.sessionDescription.sdp, /a=sctp-port:5000/);
    await pc.setRemoteDescription(res.body.sessionDescription);
    await waitConnected(pc);
    return { pc, sessionId: res.body.sessionId };
  }

  function opened(dc: RTCDataChannel): Promise<void> {
    return new Promise((r) =>
      dc.readyState === "open" ? r() : dc.stateChanged.subscribe((s) => s === "open" && r()),
    );
  }

  async function until(check: () => Promise<boolean>): Promise<void> {
    while (!(await check())) await new Promise((r) => setTimeout(r, 20));
  }

  async function channelsOf(sessionId: string): Promise<Item[]> {
    return (await server.api.raw<{ dataChannels: Item[] }>("GET", `sessions/${sessionId}`)).body.dataChannels;
  }

  async function newChannels(sessionId: string, items: unknown[]) {
    return server.api.raw<{ dataChannels: Item[]; errorCode?: string; errorDescription?: string }>(
      "POST",
      `sessions/${sessionId}/datachannels/new`,
      { dataChannels: items },
    );
  }

  test("werift publisher → werift subscriber: 1 000 messages in order through negotiated channels", async () => {
    const a = await dataSession();
    const b = await dataSession();
    const pub = await newChannels(a.sessionId, [{ location: "local", dataChannelName: "scores" }]);
    assert.equal(pub.status, 200, JSON.stringify(pub.body));
    const pubId = pub.body.dataChannels[0].id!;
    const sub = await newChannels(b.sessionId, [
      { location: "remote", sessionId: a.sessionId, dataChannelName: "scores" },
    ]);
    const subId = sub.body.dataChannels[0].id!;
    assert.equal(typeof subId, "number");
    const out = a.pc.createDataChannel("scores", { negotiated: true, id: pubId });
    const inn = b.pc.createDataChannel("scores-in", { negotiated: true, id: subId });
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      inn.onMessage.subscribe((m) => {
        got.push(m.toString());
        if (got.length === 1000) resolve();
      }),
    );
    await Promise.all([
      new Promise<void>((r) =>
        out.readyState === "open" ? r() : out.stateChanged.subscribe((s) => s === "open" && r()),
      ),
      new Promise<void>((r) =>
        inn.readyState === "open" ? r() : inn.stateChanged.subscribe((s) => s === "open" && r()),
      ),
    ]);
    for (let i = 0; i < 1000; i++) out.send(`score ${i}`);
    await all;
    assert.deepEqual(
      got,
      Array.from({ length: 1000 }, (_, i) => `score ${i}`),
    );
    assert.deepEqual(await channelsOf(a.sessionId), [
      {
        location: "local",
        dataChannelName: "scores",
        id: pubId,
        status: "active",
        messagesReceived: 1000,
        repliesReceived: 0,
      },
    ]);
    const [subInfo] = await channelsOf(b.sessionId);
    assert.equal(subInfo.messagesDelivered, 1000);
    // Publishing the same name again answers the same id.
    const again = await newChannels(a.sessionId, [{ location: "local", dataChannelName: "scores" }]);
    assert.equal(again.body.dataChannels[0].id, pubId);
  });

  test("waitForAck: nothing reaches the subscriber before its first message, which is consumed", async () => {
    const a = await dataSession();
    const b = await dataSession();
    const pubId = (await newChannels(a.sessionId, [{ location: "local", dataChannelName: "gated" }])).body
      .dataChannels[0].id!;
    const sub = await newChannels(b.sessionId, [
      { location: "remote", sessionId: a.sessionId, dataChannelName: "gated", waitForAck: true },
    ]);
    const out = a.pc.createDataChannel("gated", { negotiated: true, id: pubId });
    const inn = b.pc.createDataChannel("gated-in", { negotiated: true, id: sub.body.dataChannels[0].id! });
    const atPublisher: string[] = [];
    out.onMessage.subscribe((m) => atPublisher.push(m.toString()));
    const got: string[] = [];
    let gotLate!: () => void;
    const late = new Promise<void>((r) => {
      gotLate = r;
    });
    inn.onMessage.subscribe((m) => {
      got.push(m.toString());
      if (m.toString() === "late") gotLate();
    });
    await Promise.all([opened(out), opened(inn)]);
    out.send("early");
    await until(async () => (await channelsOf(a.sessionId))[0].messagesReceived === 1); // the SFU has it
    assert.equal((await channelsOf(b.sessionId))[0].waitingForAck, true);
    inn.send("ack");
    await until(async () => (await channelsOf(b.sessionId))[0].waitingForAck === undefined);
    out.send("late");
    await late;
    assert.deepEqual(
      got,
      ["late"],
      "the message before the acknowledgment was held back, not delivered later",
    );
    assert.deepEqual(atPublisher, [], "the acknowledgment is consumed, not forwarded");
  });

  test("per-item errors: no such session, no such channel, a session without a data channel transport", async () => {
    const a = await dataSession();
    const missingSession = await newChannels(a.sessionId, [
      { location: "remote", sessionId: "0".repeat(32), dataChannelName: "x" },
    ]);
    assert.equal(missingSession.status, 200);
    assert.equal(missingSession.body.dataChannels[0].errorCode, "not_found_datachannel_error");
    const missingChannel = await newChannels(a.sessionId, [
      { location: "remote", sessionId: a.sessionId, dataChannelName: "never-published" },
    ]);
    assert.equal(missingChannel.body.dataChannels[0].errorCode, "not_found_datachannel_error");
    assert.match(
      missingChannel.body.dataChannels[0].errorDescription ?? "",
      /publishes no data channel "never-published"/,
    );
    const { sessionId: bare } = await server.api.newSession();
    const noTransport = await newChannels(bare, [{ location: "local", dataChannelName: "x" }]);
    assert.equal(noTransport.body.dataChannels[0].errorCode, "datachannel_error");
    assert.match(noTransport.body.dataChannels[0].errorDescription ?? "", /no data channel transport/);
  });

  const refused: [string, unknown, number, string, RegExp][] = [
    ["no items", { dataChannels: [] }, 406, "invalid_params", /dataChannels must hold 1 to 16 items, got 0/],
    [
      "a bad location",
      { dataChannels: [{ location: "up", dataChannelName: "x" }] },
      406,
      "invalid_params",
      /location must be "local" or "remote"/,
    ],
    [
      "no name",
      { dataChannels: [{ location: "local" }] },
      406,
      "invalid_params",
      /dataChannelName must be 1 to 256 characters/,
    ],
    [
      "remote without sessionId",
      { dataChannels: [{ location: "remote", dataChannelName: "x" }] },
      406,
      "invalid_params",
      /sessionId is required for a remote channel/,
    ],
    [
      "a name that is not a string",
      { dataChannels: [{ location: "local", dataChannelName: 7 }] },
      400,
      "decoding_error",
      /dataChannelName/,
    ],
  ];
  for (const [what, body, status, code, description] of refused) {
    test(`datachannels/new with ${what} → ${status} ${code}`, async () => {
      const { sessionId } = await server.api.newSession();
      const res = await server.api.raw<{ errorCode: string; errorDescription: string }>(
        "POST",
        `sessions/${sessionId}/datachannels/new`,
        body,
      );
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.errorCode, code);
      assert.match(res.body.errorDescription, description);
    });
  }

  test("establish: Patchbay offers the transport to a session that had none (PUT renegotiate), or answers the peer's offer", async () => {
    // Variant 1: a session made without a data channel; Patchbay offers m=application.
    const a = clientPeer();
    peers.push(a);
    a.addTransceiver("audio", { direction: "recvonly" }); // werift starts no transport for an inactive-only offer
    await a.setLocalDescription(await a.createOffer());
    const sa = await server.api.raw<{
      sessionId: string;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", "sessions/new", { sessionDescription: { type: "offer", sdp: a.localDescription!.sdp } });
    await a.setRemoteDescription(sa.body.sessionDescription);
    await waitConnected(a);
    const aId = sa.body.sessionId;
    const before = await newChannels(aId, [{ location: "local", dataChannelName: "x" }]);
    assert.equal(before.body.dataChannels[0].errorCode, "datachannel_error");
    const est = await server.api.raw<{
      requiresImmediateRenegotiation: boolean;
      dataChannel: { dataChannelName: string; id: number };
      sessionDescription: { type: "offer"; sdp: string };
    }>("POST", `sessions/${aId}/datachannels/establish`, {
      dataChannel: { location: "remote", dataChannelName: "server-events" },
    });
    assert.equal(est.status, 200, JSON.stringify(est.body));
    assert.equal(est.body.requiresImmediateRenegotiation, true);
    assert.deepEqual(est.body.dataChannel, { dataChannelName: "server-events", id: 0 });
    assert.match(est.body.sessionDescription.sdp, /m=application 9 UDP\/DTLS\/SCTP webrtc-datachannel/);
    await a.setRemoteDescription(est.body.sessionDescription);
    await a.setLocalDescription(await a.createAnswer());
    const reneg = await server.api.raw("PUT", `sessions/${aId}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: a.localDescription!.sdp },
    });
    assert.equal(reneg.status, 200, JSON.stringify(reneg.body));

    // Variant 2: the peer offers m=application itself on a session made without one.
    const b = clientPeer();
    peers.push(b);
    b.addTransceiver("audio", { direction: "recvonly" }); // werift starts no transport for an inactive-only offer
    await b.setLocalDescription(await b.createOffer());
    const sb = await server.api.raw<{
      sessionId: string;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", "sessions/new", { sessionDescription: { type: "offer", sdp: b.localDescription!.sdp } });
    await b.setRemoteDescription(sb.body.sessionDescription);
    await waitConnected(b);
    const bId = sb.body.sessionId;
    // Negotiated, as establish answers it (id 0): werift numbers an in-band channel only when it starts SCTP
    // itself, which it does not on a renegotiation.
    b.createDataChannel("server-events", { negotiated: true, id: 0 });
    await b.setLocalDescription(await b.createOffer());
    const estB = await server.api.raw<{
      requiresImmediateRenegotiation: boolean;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", `sessions/${bId}/datachannels/establish`, {
      dataChannel: { location: "remote", dataChannelName: "server-events" },
      sessionDescription: { type: "offer", sdp: b.localDescription!.sdp },
    });
    assert.equal(estB.status, 200, JSON.stringify(estB.body));
    assert.equal(estB.body.requiresImmediateRenegotiation, false);
    await b.setRemoteDescription(estB.body.sessionDescription);

    // Both now carry channels: A publishes, B subscribes, a message crosses.
    const pubId = (await newChannels(aId, [{ location: "local", dataChannelName: "late" }])).body
      .dataChannels[0].id!;
    const subId = (await newChannels(bId, [{ location: "remote", sessionId: aId, dataChannelName: "late" }]))
      .body.dataChannels[0].id!;
    const out = a.createDataChannel("late", { negotiated: true, id: pubId });
    const inn = b.createDataChannel("late-in", { negotiated: true, id: subId });
    await Promise.all([opened(out), opened(inn)]);
    const got = new Promise<string>((r) => inn.onMessage.subscribe((m) => r(m.toString())));
    out.send("over a transport added later");
    assert.equal(await got, "over a transport added later");

    const wrong = await server.api.raw<{ errorCode: string }>(
      "POST",
      `sessions/${aId}/datachannels/establish`,
      {
        dataChannel: { location: "local", dataChannelName: "chat" },
      },
    );
    assert.equal(wrong.status, 406);
    assert.equal(wrong.body.errorCode, "invalid_params");
  });

  test("canReply: one subscriber's messages go back to the publisher; granting another replaces it; revoked, nothing", async () => {
    const a = await dataSession();
    const b = await dataSession();
    const c = await dataSession();
    const pubId = (await newChannels(a.sessionId, [{ location: "local", dataChannelName: "room" }])).body
      .dataChannels[0].id!;
    const subB = (
      await newChannels(b.sessionId, [
        { location: "remote", sessionId: a.sessionId, dataChannelName: "room", canReply: true },
      ])
    ).body.dataChannels[0];
    const subC = (
      await newChannels(c.sessionId, [
        { location: "remote", sessionId: a.sessionId, dataChannelName: "room" },
      ])
    ).body.dataChannels[0];
    const out = a.pc.createDataChannel("room", { negotiated: true, id: pubId });
    const inB = b.pc.createDataChannel("room-b", { negotiated: true, id: subB.id! });
    const inC = c.pc.createDataChannel("room-c", { negotiated: true, id: subC.id! });
    await Promise.all([opened(out), opened(inB), opened(inC)]);
    const atPublisher: string[] = [];
    out.onMessage.subscribe((m) => atPublisher.push(m.toString()));
    const atC: string[] = [];
    inC.onMessage.subscribe((m) => atC.push(m.toString()));
    assert.equal((await channelsOf(b.sessionId))[0].canReply, true);

    inB.send("from b (can reply)");
    inC.send("from c (cannot)");
    await until(async () => atPublisher.length === 1);
    assert.deepEqual(atPublisher, ["from b (can reply)"]);

    // Granting C replaces B (at most one replier per channel).
    const grant = await server.api.raw<{ dataChannels: Item[] }>(
      "PUT",
      `sessions/${c.sessionId}/datachannels/update`,
      {
        dataChannels: [
          { location: "remote", sessionId: a.sessionId, dataChannelName: "room", canReply: true },
        ],
      },
    );
    assert.deepEqual(grant.body.dataChannels, [
      { location: "remote", sessionId: a.sessionId, dataChannelName: "room", id: subC.id, canReply: true },
    ]);
    assert.equal((await channelsOf(b.sessionId))[0].canReply, undefined);
    inB.send("from b (no longer)");
    inC.send("from c (now can)");
    await until(async () => atPublisher.length === 2);
    assert.deepEqual(atPublisher, ["from b (can reply)", "from c (now can)"]);
    assert.deepEqual(atC, [], "replies are not fanned out to other subscribers");

    const revoke = await server.api.raw<{ dataChannels: Item[] }>(
      "PUT",
      `sessions/${c.sessionId}/datachannels/update`,
      {
        dataChannels: [
          { location: "remote", sessionId: a.sessionId, dataChannelName: "room", canReply: false },
        ],
      },
    );
    assert.equal(revoke.body.dataChannels[0].canReply, false);
    assert.equal((await channelsOf(a.sessionId))[0].repliesReceived, 2);
  });

  test("close: a subscription ends; a published channel ends for its subscribers (inactive); unknown ids are item errors", async () => {
    const a = await dataSession();
    const b = await dataSession();
    const pubId = (
      await newChannels(a.sessionId, [{ location: "local", dataChannelName: "news", ordered: false }])
    ).body.dataChannels[0].id!;
    const subId = (
      await newChannels(b.sessionId, [
        { location: "remote", sessionId: a.sessionId, dataChannelName: "news" },
      ])
    ).body.dataChannels[0].id!;
    const close = (sessionId: string, ids: number[]) =>
      server.api.raw<{ dataChannels: Item[] }>("PUT", `sessions/${sessionId}/datachannels/close`, {
        dataChannels: ids.map((id) => ({ id })),
      });
    const closedPub = await close(a.sessionId, [pubId, 999]);
    assert.equal(closedPub.status, 200);
    assert.deepEqual(closedPub.body.dataChannels[0], {
      location: "local",
      dataChannelName: "news",
      id: pubId,
    });
    assert.equal(closedPub.body.dataChannels[1].errorCode, "not_found_datachannel_error");
    assert.deepEqual(await channelsOf(a.sessionId), []);
    const [sub] = await channelsOf(b.sessionId);
    assert.equal(sub.status, "inactive", "the publisher closed it");
    const closedSub = await close(b.sessionId, [subId]);
    assert.deepEqual(closedSub.body.dataChannels[0], {
      location: "remote",
      sessionId: a.sessionId,
      dataChannelName: "news",
      id: subId,
    });
    assert.deepEqual(await channelsOf(b.sessionId), []);
    const again = await close(b.sessionId, [subId]);
    assert.equal(again.body.dataChannels[0].errorCode, "not_found_datachannel_error");
  });

  test("the session and the token are checked first (404 session_error, 401)", async () => {
    const missing = await server.api.raw<{ errorCode: string }>(
      "POST",
      `sessions/${"0".repeat(32)}/datachannels/new`,
      {},
    );
    assert.equal(missing.status, 404);
    assert.equal(missing.body.errorCode, "session_error");
    const res = await fetch(
      `${server.url}/v1/apps/${"a".repeat(32)}/sessions/${"0".repeat(32)}/datachannels/new`,
      {
        method: "POST",
        headers: { Authorization: "Bearer wrong" },
      },
    );
    assert.equal(res.status, 401);
  });
});
