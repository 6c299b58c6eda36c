import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MediaStreamTrack, type RTCPeerConnection, type RTCRtpTransceiver } from "werift";
import {
  assertError,
  buildTestApi,
  bundledClientPeer,
  closePeers,
  type InjectClient,
  mediaSection,
  type TestApi,
} from "../helpers/api-inject.ts";
import { clientPeer, waitConnected } from "../helpers/rtc-client.ts";

// SPEC §1.4 at the signalling level: tracks/new (six variants), renegotiate, tracks/close, serialization.

interface Item {
  location?: string;
  mid?: string;
  trackName?: string;
  sessionId?: string;
  kind?: string;
  errorCode?: string;
  errorDescription?: string;
}
interface Negotiation {
  requiresImmediateRenegotiation: boolean;
  sessionDescription?: { type: "offer" | "answer"; sdp: string };
  tracks: Item[];
}
interface SessionInfo {
  tracks: { location: string; mid: string; trackName: string; sessionId?: string; status: string }[];
  dataChannels: unknown[];
}

let api: TestApi;
const peers: RTCPeerConnection[] = [];

before(async () => {
  api = await buildTestApi();
});
after(async () => {
  await closePeers(peers);
  await api.close();
});

/** `bundled` for offers with several m-lines (see bundledClientPeer). */
function peer(bundled = false): RTCPeerConnection {
  const pc = bundled ? bundledClientPeer() : clientPeer();
  peers.push(pc);
  return pc;
}

async function newSession(client: InjectClient = api.a): Promise<string> {
  const res = await client.request<{ sessionId: string }>("POST", "sessions/new");
  assert.equal(res.status, 201, res.text);
  return res.body.sessionId;
}

async function tracksNew(sessionId: string, body: unknown, client: InjectClient = api.a) {
  const res = await client.request<Negotiation>("POST", `sessions/${sessionId}/tracks/new`, { body });
  assert.equal(res.status, 200, res.text);
  return res.body;
}

async function getSession(sessionId: string): Promise<SessionInfo> {
  const res = await api.a.request<SessionInfo>("GET", `sessions/${sessionId}`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

async function offer(pc: RTCPeerConnection) {
  await pc.setLocalDescription(await pc.createOffer());
  return { type: "offer" as const, sdp: pc.localDescription!.sdp };
}

/** Client answers a server offer; returns the answer to PUT. */
async function answer(pc: RTCPeerConnection, serverOffer: { type: "offer" | "answer"; sdp: string }) {
  await pc.setRemoteDescription(serverOffer);
  await pc.setLocalDescription(await pc.createAnswer());
  return { type: "answer" as const, sdp: pc.localDescription!.sdp };
}

interface Published {
  pc: RTCPeerConnection;
  transceiver: RTCRtpTransceiver;
  sessionId: string;
  mid: string;
  trackName: string;
  result: Negotiation;
}

/** Variant 1: push with the client's offer (no media is ever sent). */
async function publish(
  trackName: string,
  direction: "sendonly" | "sendrecv" = "sendonly",
  client: InjectClient = api.a,
): Promise<Published> {
  const pc = peer();
  const transceiver = pc.addTransceiver("audio", { direction });
  const sessionDescription = await offer(pc);
  const sessionId = await newSession(client);
  const result = await tracksNew(
    sessionId,
    { sessionDescription, tracks: [{ location: "local", mid: transceiver.mid, trackName }] },
    client,
  );
  assert.equal(result.sessionDescription?.type, "answer", JSON.stringify(result));
  await pc.setRemoteDescription(result.sessionDescription!);
  return { pc, transceiver, sessionId, mid: transceiver.mid!, trackName, result };
}

async function renegotiate(sessionId: string, sdp: { type: "answer"; sdp: string }, prefix = "/v1") {
  const res = await api.a.request("PUT", `${prefix}/apps/${api.a.appId}/sessions/${sessionId}/renegotiate`, {
    body: { sessionDescription: sdp },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, "{}");
  assert.deepEqual(res.body, {});
}

function direction(sdp: string, mid: string): string | undefined {
  return /^a=(sendrecv|sendonly|recvonly|inactive)$/m.exec(mediaSection(sdp, mid) ?? "")?.[1];
}

describe("tracks/new", () => {
  test("variant 1: push with the client's offer → answer, items echo trackName and mid", async () => {
    const pub = await publish("mic-1");
    assert.deepEqual(pub.result, {
      requiresImmediateRenegotiation: false,
      sessionDescription: pub.result.sessionDescription,
      tracks: [{ location: "local", trackName: "mic-1", mid: pub.mid, kind: "audio" }],
    });
    assert.equal(pub.result.sessionDescription!.type, "answer");
    assert.equal(direction(pub.result.sessionDescription!.sdp, pub.mid), "recvonly");
    assert.match(pub.result.sessionDescription!.sdp, /^a=setup:passive$/m);
    assert.deepEqual(await getSession(pub.sessionId), {
      tracks: [{ location: "local", mid: pub.mid, trackName: "mic-1", status: "active" }],
      dataChannels: [],
    });
  });

  test("variant 1 on the session created with the offer (sessions/new offer, then tracks/new offer)", async () => {
    const pc = peer(true);
    pc.addTransceiver("audio", { direction: "sendonly" });
    const first = await api.a.request<{
      sessionId: string;
      sessionDescription: { type: "answer"; sdp: string };
    }>("POST", "sessions/new", { body: { sessionDescription: await offer(pc) } });
    assert.equal(first.status, 201, first.text);
    await pc.setRemoteDescription(first.body.sessionDescription);
    const tr = pc.addTransceiver("audio", { direction: "sendonly" });
    const res = await tracksNew(first.body.sessionId, {
      sessionDescription: await offer(pc),
      tracks: [{ location: "local", mid: tr.mid, trackName: "second" }],
    });
    assert.equal(res.requiresImmediateRenegotiation, false);
    assert.equal(res.sessionDescription?.type, "answer");
    assert.deepEqual(res.tracks, [{ location: "local", trackName: "second", mid: tr.mid, kind: "audio" }]);
    await pc.setRemoteDescription(res.sessionDescription!);
  });

  test("variant 1: a local track with an offer but without mid is 400 invalid_request", async () => {
    const pc = peer();
    pc.addTransceiver("audio", { direction: "sendonly" });
    const sessionId = await newSession();
    const res = await api.a.request("POST", `sessions/${sessionId}/tracks/new`, {
      body: { sessionDescription: await offer(pc), tracks: [{ location: "local", trackName: "x" }] },
    });
    assertError(res, 400, "invalid_request");
  });

  test("variant 2: autoDiscover with an offer of 2 sendonly m-lines → two items with trackName, mid, kind", async () => {
    const pc = peer(true);
    const t0 = pc.addTransceiver("audio", { direction: "sendonly" });
    const t1 = pc.addTransceiver("audio", { direction: "sendonly" });
    const sessionId = await newSession();
    const res = await tracksNew(sessionId, { sessionDescription: await offer(pc), autoDiscover: true });
    assert.equal(res.requiresImmediateRenegotiation, false);
    assert.equal(res.sessionDescription?.type, "answer");
    assert.equal(res.tracks.length, 2, JSON.stringify(res.tracks));
    assert.deepEqual(
      res.tracks.map((t) => t.mid),
      [t0.mid, t1.mid],
    );
    for (const item of res.tracks) {
      assert.deepEqual(Object.keys(item).sort(), ["kind", "location", "mid", "trackName"]);
      assert.equal(item.location, "local");
      assert.equal(item.kind, "audio");
      assert.equal(typeof item.trackName, "string");
      assert.ok(item.trackName!.length > 0);
    }
    assert.notEqual(res.tracks[0].trackName, res.tracks[1].trackName);
    await pc.setRemoteDescription(res.sessionDescription!);
    const info = await getSession(sessionId);
    assert.deepEqual(
      info.tracks,
      res.tracks.map((t) => ({ location: "local", mid: t.mid, trackName: t.trackName, status: "active" })),
    );
    // The discovered tracks can be pulled by name.
    const sub = await newSession();
    const pulled = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId, trackName: res.tracks[1].trackName }],
    });
    assert.equal(pulled.tracks[0].errorCode, undefined, JSON.stringify(pulled.tracks));
  });

  test("variant 2: autoDiscover without an offer is 400 invalid_request; with neither tracks nor autoDiscover too", async () => {
    const sessionId = await newSession();
    assertError(
      await api.a.request("POST", `sessions/${sessionId}/tracks/new`, { body: { autoDiscover: true } }),
      400,
      "invalid_request",
    );
    for (const body of [{}, { tracks: [] }, undefined]) {
      assertError(
        await api.a.request("POST", `sessions/${sessionId}/tracks/new`, { body }),
        400,
        "invalid_request",
      );
    }
  });

  test("variant 3: pull without an offer → server offer, requiresImmediateRenegotiation, then PUT renegotiate → 200 {}", async () => {
    const pub = await publish("mic-3");
    const pc = peer();
    const sub = await newSession();
    const res = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "mic-3" }],
    });
    assert.equal(res.requiresImmediateRenegotiation, true);
    assert.equal(res.sessionDescription?.type, "offer");
    assert.equal(res.tracks.length, 1);
    const mid = res.tracks[0].mid;
    assert.equal(typeof mid, "string");
    assert.deepEqual(res.tracks, [{ location: "remote", sessionId: pub.sessionId, trackName: "mic-3", mid }]);
    const sdp = res.sessionDescription!.sdp;
    assert.equal(direction(sdp, mid!), "sendonly");
    assert.match(mediaSection(sdp, mid!)!, /^a=msid:\S+ \S+$/m);
    assert.match(sdp, /^a=ice-lite$/m);
    assert.match(sdp, /^a=setup:actpass$/m);
    await renegotiate(sub, await answer(pc, res.sessionDescription!));

    assert.deepEqual(await getSession(sub), {
      tracks: [{ location: "remote", mid, trackName: "mic-3", sessionId: pub.sessionId, status: "active" }],
      dataChannels: [],
    });
  });

  test("variant 3: tracks/new and PUT renegotiate also work without /v1", async () => {
    const pub = await publish("mic-3b");
    const pc = peer();
    const sub = await newSession();
    const raw = await api.a.request<Negotiation>("POST", `/apps/${api.a.appId}/sessions/${sub}/tracks/new`, {
      body: { tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "mic-3b" }] },
    });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.body.requiresImmediateRenegotiation, true);
    await renegotiate(sub, await answer(pc, raw.body.sessionDescription!), "");
  });

  test("renegotiate with an offer, or with garbage, is 400", async () => {
    const sessionId = await newSession();
    const pc = peer();
    pc.addTransceiver("audio", { direction: "recvonly" });
    const anOffer = await offer(pc);
    assertError(
      await api.a.request("PUT", `sessions/${sessionId}/renegotiate`, {
        body: { sessionDescription: anOffer },
      }),
      400,
      "invalid_request",
    );
    assertError(
      await api.a.request("PUT", `sessions/${sessionId}/renegotiate`, {
        body: { sessionDescription: { type: "answer", sdp: "nonsense" } },
      }),
      400,
      "invalid_request",
    );
  });

  test("variant 4: pull with the client's recvonly offer → answer with a=msid, no renegotiation", async () => {
    const pub = await publish("mic-4");
    const pc = peer();
    const tr = pc.addTransceiver("audio", { direction: "recvonly" });
    const sub = await newSession();
    const res = await tracksNew(sub, {
      sessionDescription: await offer(pc),
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "mic-4" }],
    });
    assert.equal(res.requiresImmediateRenegotiation, false);
    assert.equal(res.sessionDescription?.type, "answer");
    assert.deepEqual(res.tracks, [
      { location: "remote", sessionId: pub.sessionId, trackName: "mic-4", mid: tr.mid },
    ]);
    const sdp = res.sessionDescription!.sdp;
    assert.match(sdp, /^a=msid:/m);
    assert.match(mediaSection(sdp, tr.mid!)!, /^a=msid:\S+ \S+$/m);
    assert.equal(direction(sdp, tr.mid!), "sendonly");
    assert.match(sdp, /^a=setup:passive$/m);
    await pc.setRemoteDescription(res.sessionDescription!);
    const info = await getSession(sub);
    assert.deepEqual(info.tracks, [
      { location: "remote", mid: tr.mid, trackName: "mic-4", sessionId: pub.sessionId, status: "active" },
    ]);
  });

  test("variant 4: two recvonly m-lines are bound to two pulled tracks in order", async () => {
    const [p1, p2] = [await publish("first"), await publish("second")];
    const pc = peer(true);
    const t0 = pc.addTransceiver("audio", { direction: "recvonly" });
    const t1 = pc.addTransceiver("audio", { direction: "recvonly" });
    const sub = await newSession();
    const res = await tracksNew(sub, {
      sessionDescription: await offer(pc),
      tracks: [
        { location: "remote", sessionId: p1.sessionId, trackName: "first" },
        { location: "remote", sessionId: p2.sessionId, trackName: "second" },
      ],
    });
    assert.deepEqual(res.tracks, [
      { location: "remote", sessionId: p1.sessionId, trackName: "first", mid: t0.mid },
      { location: "remote", sessionId: p2.sessionId, trackName: "second", mid: t1.mid },
    ]);
    assert.equal(direction(res.sessionDescription!.sdp, t0.mid!), "sendonly");
    assert.equal(direction(res.sessionDescription!.sdp, t1.mid!), "sendonly");
    await pc.setRemoteDescription(res.sessionDescription!);
  });

  test("variant 5: push without an offer (kind given) → server offer; the client's answer completes it", async () => {
    const pc = peer();
    const sessionId = await newSession();
    const res = await tracksNew(sessionId, {
      tracks: [{ location: "local", trackName: "gen", kind: "audio", bidirectionalMediaStream: false }],
    });
    assert.equal(res.requiresImmediateRenegotiation, true);
    assert.equal(res.sessionDescription?.type, "offer");
    const mid = res.tracks[0]?.mid;
    assert.equal(typeof mid, "string");
    assert.deepEqual(res.tracks, [{ location: "local", trackName: "gen", kind: "audio", mid }]);
    assert.equal(direction(res.sessionDescription!.sdp, mid!), "recvonly");
    // Registered only once the client's answer arrives (transactional negotiation).
    assert.deepEqual((await getSession(sessionId)).tracks, []);
    // The client attaches its track to the transceiver the server's offer created, as a browser would.
    await pc.setRemoteDescription(res.sessionDescription!);
    const tr = pc.getTransceivers()[0];
    tr.setDirection("sendonly");
    tr.sender.replaceTrack(new MediaStreamTrack({ kind: "audio" }));
    await pc.setLocalDescription(await pc.createAnswer());
    await renegotiate(sessionId, { type: "answer", sdp: pc.localDescription!.sdp });
    assert.deepEqual((await getSession(sessionId)).tracks, [
      { location: "local", mid, trackName: "gen", status: "active" },
    ]);
  });

  test("variant 5: a local track without an offer needs kind and trackName (item invalid_request)", async () => {
    const sessionId = await newSession();
    const res = await tracksNew(sessionId, {
      tracks: [
        { location: "local", trackName: "no-kind" },
        { location: "local", kind: "audio" },
      ],
    });
    assert.equal(res.requiresImmediateRenegotiation, false);
    assert.equal(res.sessionDescription, undefined);
    assert.equal(res.tracks.length, 2);
    for (const item of res.tracks) {
      assert.equal(item.errorCode, "invalid_request");
      assert.ok(item.errorDescription);
    }
  });

  test("variant 6: mid '#<trackName>' pulls into the transceiver that published trackName", async () => {
    const source = await publish("remote-voice");
    const local = await publish("talk", "sendrecv");
    const res = await tracksNew(local.sessionId, {
      tracks: [
        {
          location: "remote",
          sessionId: source.sessionId,
          trackName: "remote-voice",
          mid: `#${local.trackName}`,
        },
      ],
    });
    assert.deepEqual(res.tracks, [
      { location: "remote", sessionId: source.sessionId, trackName: "remote-voice", mid: local.mid },
    ]);
    assert.equal(res.requiresImmediateRenegotiation, true);
    assert.equal(res.sessionDescription?.type, "offer");
    const sdp = res.sessionDescription!.sdp;
    // Still one m-line: the published transceiver now also sends.
    assert.equal(sdp.match(/^m=/gm)?.length, 1, sdp);
    assert.equal(direction(sdp, local.mid), "sendrecv");
    assert.match(mediaSection(sdp, local.mid)!, /^a=msid:\S+ \S+$/m);
    await renegotiate(local.sessionId, await answer(local.pc, res.sessionDescription!));
    assert.deepEqual((await getSession(local.sessionId)).tracks, [
      { location: "local", mid: local.mid, trackName: "talk", status: "active" },
      {
        location: "remote",
        mid: local.mid,
        trackName: "remote-voice",
        sessionId: source.sessionId,
        status: "active",
      },
    ]);
  });

  test("variant 6: '#<name>' that this session did not publish is an item error", async () => {
    const source = await publish("v6-src");
    const sub = await newSession();
    const res = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: source.sessionId, trackName: "v6-src", mid: "#nothing" }],
    });
    assert.equal(res.requiresImmediateRenegotiation, false);
    assert.equal(res.sessionDescription, undefined);
    assert.equal(res.tracks.length, 1);
    assert.equal(res.tracks[0].errorCode, "invalid_request");
    assert.ok(res.tracks[0].errorDescription);
  });

  test("pull of an unknown track or session → 200 with item not_found_track_error", async () => {
    const pub = await publish("exists");
    const sub = await newSession();
    for (const [sessionId, trackName] of [
      [pub.sessionId, "does-not-exist"],
      ["0".repeat(32), "exists"],
    ]) {
      const res = await tracksNew(sub, { tracks: [{ location: "remote", sessionId, trackName }] });
      assert.equal(res.requiresImmediateRenegotiation, false);
      assert.equal(res.sessionDescription, undefined);
      assert.equal(res.tracks.length, 1);
      const { errorDescription, ...rest } = res.tracks[0];
      assert.deepEqual(rest, {
        location: "remote",
        sessionId,
        trackName,
        errorCode: "not_found_track_error",
      });
      assert.ok(typeof errorDescription === "string" && errorDescription.length > 0);
    }
    assert.deepEqual((await getSession(sub)).tracks, []);
  });

  test("a mixed batch reports the failure per item and still negotiates the rest", async () => {
    const pub = await publish("mixed");
    const pc = peer();
    const sub = await newSession();
    const res = await tracksNew(sub, {
      tracks: [
        { location: "remote", sessionId: pub.sessionId, trackName: "nope" },
        { location: "remote", sessionId: pub.sessionId, trackName: "mixed" },
      ],
    });
    assert.equal(res.requiresImmediateRenegotiation, true);
    assert.equal(res.tracks[0].errorCode, "not_found_track_error");
    assert.equal(res.tracks[1].errorCode, undefined);
    assert.equal(typeof res.tracks[1].mid, "string");
    await renegotiate(sub, await answer(pc, res.sessionDescription!));
  });

  test("pull of a track that exists but has not received media yet succeeds", async () => {
    const pub = await publish("silent");
    assert.equal(api.sessionA(pub.sessionId).localTrack("silent")?.packetsIn, 0);
    const sub = await newSession();
    const res = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "silent" }],
    });
    assert.equal(res.tracks[0].errorCode, undefined, JSON.stringify(res.tracks[0]));
    assert.equal(res.requiresImmediateRenegotiation, true);
  });

  test("a remote track without sessionId or trackName is 400 invalid_request", async () => {
    const sub = await newSession();
    for (const t of [
      { location: "remote", trackName: "x" },
      { location: "remote", sessionId: "0".repeat(32) },
    ]) {
      assertError(
        await api.a.request("POST", `sessions/${sub}/tracks/new`, { body: { tracks: [t] } }),
        400,
        "invalid_request",
      );
    }
  });
});

describe("app isolation", () => {
  test("app B cannot pull app A's track (item not_found_track_error) nor see its session", async () => {
    const pub = await publish("private");
    const subB = await newSession(api.b);
    const res = await tracksNew(
      subB,
      { tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "private" }] },
      api.b,
    );
    assert.equal(res.tracks.length, 1);
    assert.equal(res.tracks[0].errorCode, "not_found_track_error");
    assert.equal(res.sessionDescription, undefined);
    assertError(
      await api.b.request("GET", `/v1/apps/${api.b.appId}/sessions/${pub.sessionId}`),
      404,
      "session_error",
    );
    // A's own app can pull it.
    const subA = await newSession();
    const ok = await tracksNew(subA, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "private" }],
    });
    assert.equal(ok.tracks[0].errorCode, undefined);
  });

  test("app B's session cannot be reached through app A's path", async () => {
    const idB = await newSession(api.b);
    assertError(await api.a.request("GET", `sessions/${idB}`), 404, "session_error");
  });
});

describe("tracks/close", () => {
  test("closing a published mid with force → item {mid}; GET shows it inactive, for the subscriber too", async () => {
    const pub = await publish("to-close");
    const pc = peer();
    const sub = await newSession();
    const pulled = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "to-close" }],
    });
    await renegotiate(sub, await answer(pc, pulled.sessionDescription!));

    const res = await api.a.request("PUT", `sessions/${pub.sessionId}/tracks/close`, {
      body: { tracks: [{ mid: pub.mid }], force: true },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { tracks: [{ mid: pub.mid }], requiresImmediateRenegotiation: false });

    assert.deepEqual((await getSession(pub.sessionId)).tracks, [
      { location: "local", mid: pub.mid, trackName: "to-close", status: "inactive" },
    ]);
    assert.deepEqual((await getSession(sub)).tracks, [
      {
        location: "remote",
        mid: pulled.tracks[0].mid,
        trackName: "to-close",
        sessionId: pub.sessionId,
        status: "inactive",
      },
    ]);
    // A closed track can no longer be pulled.
    const again = await tracksNew(await newSession(), {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "to-close" }],
    });
    assert.equal(again.tracks[0].errorCode, "not_found_track_error");
  });

  test("closing the publisher's session ends the pulled track: the subscriber lists it inactive", async () => {
    const pub = await publish("session-ends");
    const sub = await newSession();
    const pulled = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "session-ends" }],
    });
    await renegotiate(sub, await answer(peer(), pulled.sessionDescription!));
    // Let the publisher's DTLS handshake finish first: werift keeps retransmitting a cut handshake for ~30 s.
    await waitConnected(pub.pc);
    api.sessionA(pub.sessionId).close("closed by the test");
    await pub.pc.close();
    assertError(await api.a.request("GET", `sessions/${pub.sessionId}`), 410, "session_error");
    assert.deepEqual((await getSession(sub)).tracks, [
      {
        location: "remote",
        mid: pulled.tracks[0].mid,
        trackName: "session-ends",
        sessionId: pub.sessionId,
        status: "inactive",
      },
    ]);
    // A pulled mid whose source ended is no longer open: closing it is an item error.
    const res = await api.a.request<{ tracks: Item[] }>("PUT", `sessions/${sub}/tracks/close`, {
      body: { tracks: [{ mid: pulled.tracks[0].mid }], force: true },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.tracks[0].errorCode, "close_track_error");
  });

  test("closing again, or an unknown mid → item close_track_error", async () => {
    const pub = await publish("twice");
    const first = await api.a.request("PUT", `/apps/${api.a.appId}/sessions/${pub.sessionId}/tracks/close`, {
      body: { tracks: [{ mid: pub.mid }], force: true },
    });
    assert.equal(first.status, 200, first.text);
    for (const mid of [pub.mid, "42", ""]) {
      const res = await api.a.request<{ tracks: Item[]; requiresImmediateRenegotiation: boolean }>(
        "PUT",
        `sessions/${pub.sessionId}/tracks/close`,
        { body: { tracks: [{ mid }], force: true } },
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.requiresImmediateRenegotiation, false);
      assert.equal(res.body.tracks.length, 1);
      const { errorDescription, ...rest } = res.body.tracks[0];
      assert.deepEqual(rest, { mid, errorCode: "close_track_error" });
      assert.ok(typeof errorDescription === "string" && errorDescription.length > 0);
    }
  });

  test("an empty tracks list is 400 invalid_request", async () => {
    const pub = await publish("empty-close");
    assertError(
      await api.a.request("PUT", `sessions/${pub.sessionId}/tracks/close`, {
        body: { tracks: [], force: true },
      }),
      400,
      "invalid_request",
    );
  });

  test("closing with an offer returns an answer", async () => {
    const pub = await publish("close-with-offer");
    pub.transceiver.setDirection("inactive");
    const res = await api.a.request<Negotiation>("PUT", `sessions/${pub.sessionId}/tracks/close`, {
      body: { tracks: [{ mid: pub.mid }], sessionDescription: await offer(pub.pc) },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.requiresImmediateRenegotiation, false);
    assert.deepEqual(res.body.tracks, [{ mid: pub.mid }]);
    assert.equal(res.body.sessionDescription?.type, "answer");
    assert.equal(direction(res.body.sessionDescription!.sdp, pub.mid), "inactive");
    await pub.pc.setRemoteDescription(res.body.sessionDescription!);
    assert.equal((await getSession(pub.sessionId)).tracks[0].status, "inactive");
  });

  test("closing a pulled mid without force or offer → server offer to renegotiate", async () => {
    const pub = await publish("unsubscribe");
    const pc = peer();
    const sub = await newSession();
    const pulled = await tracksNew(sub, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: "unsubscribe" }],
    });
    await renegotiate(sub, await answer(pc, pulled.sessionDescription!));
    const mid = pulled.tracks[0].mid!;
    const res = await api.a.request<Negotiation>("PUT", `sessions/${sub}/tracks/close`, {
      body: { tracks: [{ mid }] },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.tracks, [{ mid }]);
    assert.equal(res.body.requiresImmediateRenegotiation, true);
    assert.equal(res.body.sessionDescription?.type, "offer");
    assert.equal(direction(res.body.sessionDescription!.sdp, mid), "inactive");
    await renegotiate(sub, await answer(pc, res.body.sessionDescription!));
    // The publisher's track is untouched.
    assert.equal((await getSession(pub.sessionId)).tracks[0].status, "active");
    assert.equal((await getSession(sub)).tracks[0].status, "inactive");
  });
});

describe("serialization", () => {
  test("two concurrent tracks/new on one session both succeed with distinct mids", async () => {
    const [p1, p2] = [await publish("c1"), await publish("c2")];
    const pc = peer();
    const sub = await newSession();
    const [r1, r2] = await Promise.all(
      [p1, p2].map((p) =>
        api.a.request<Negotiation>("POST", `sessions/${sub}/tracks/new`, {
          body: { tracks: [{ location: "remote", sessionId: p.sessionId, trackName: p.trackName }] },
        }),
      ),
    );
    for (const r of [r1, r2]) {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.tracks.length, 1);
      assert.equal(r.body.tracks[0].errorCode, undefined, JSON.stringify(r.body.tracks[0]));
      assert.equal(typeof r.body.tracks[0].mid, "string");
      assert.equal(r.body.requiresImmediateRenegotiation, true);
      assert.equal(r.body.sessionDescription?.type, "offer");
    }
    assert.notEqual(r1.body.tracks[0].mid, r2.body.tracks[0].mid);
    // The later offer covers both transceivers; answering it completes the negotiation.
    const offers = [r1, r2].map((r) => r.body.sessionDescription!);
    const latest = offers.reduce((a, b) =>
      (b.sdp.match(/^m=/gm)?.length ?? 0) > (a.sdp.match(/^m=/gm)?.length ?? 0) ? b : a,
    );
    for (const r of [r1, r2]) assert.ok(mediaSection(latest.sdp, r.body.tracks[0].mid!));
    await renegotiate(sub, await answer(pc, latest));
    assert.equal((await getSession(sub)).tracks.length, 2);
  });

  test("a concurrent pull and push-with-offer on one session are serialized", async () => {
    const src = await publish("c3");
    const pc = peer();
    const tr = pc.addTransceiver("audio", { direction: "sendonly" });
    const sessionId = await newSession();
    const pushOffer = await offer(pc);
    const [push, pull] = await Promise.all([
      api.a.request<Negotiation>("POST", `sessions/${sessionId}/tracks/new`, {
        body: {
          sessionDescription: pushOffer,
          tracks: [{ location: "local", mid: tr.mid, trackName: "own" }],
        },
      }),
      api.a.request<Negotiation>("POST", `sessions/${sessionId}/tracks/new`, {
        body: { tracks: [{ location: "remote", sessionId: src.sessionId, trackName: "c3" }] },
      }),
    ]);
    assert.equal(push.status, 200, push.text);
    assert.equal(pull.status, 200, pull.text);
    assert.deepEqual(push.body.tracks, [{ location: "local", trackName: "own", mid: tr.mid, kind: "audio" }]);
    assert.equal(pull.body.tracks[0].errorCode, undefined);
    assert.notEqual(pull.body.tracks[0].mid, tr.mid);
  });
});
