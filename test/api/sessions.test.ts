import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RTCPeerConnection } from "werift";
import {
  assertError,
  buildTestApi,
  candidates,
  closePeers,
  type TestApi,
  within,
} from "../helpers/api-inject.ts";
import { clientPeer } from "../helpers/rtc-client.ts";

// SPEC §1.3: sessions/new and GET sessions/{id}, including 404/410.

type Answered = { sessionId: string; sessionDescription: { type: string; sdp: string } };

let api: TestApi;
let fastExpiry: TestApi;
const peers: RTCPeerConnection[] = [];

before(async () => {
  [api, fastExpiry] = await Promise.all([
    buildTestApi(),
    buildTestApi(["--session-connect-timeout-ms", "200"]),
  ]);
});
after(async () => {
  await closePeers(peers);
  await Promise.all([api.close(), fastExpiry.close()]);
});

async function sendonlyOffer(count = 1): Promise<string> {
  const pc = clientPeer();
  peers.push(pc);
  for (let i = 0; i < count; i++) pc.addTransceiver("audio", { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription!.sdp;
}

describe("POST sessions/new", () => {
  test("without an offer: 201 {sessionId} with 32 lowercase hex characters, unique", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const res = await api.a.request<{ sessionId: string }>("POST", "sessions/new");
      assert.equal(res.status, 201, res.text);
      assert.deepEqual(Object.keys(res.body), ["sessionId"]);
      assert.match(res.body.sessionId, /^[0-9a-f]{32}$/);
      ids.add(res.body.sessionId);
    }
    assert.equal(ids.size, 5);
  });

  test("with an offer: 201 with an ICE-lite, DTLS-passive answer carrying only loopback host candidates", async () => {
    const offer = await sendonlyOffer(2);
    const res = await api.a.request<Answered>("POST", "sessions/new", {
      body: { sessionDescription: { type: "offer", sdp: offer } },
    });
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(Object.keys(res.body).sort(), ["sessionDescription", "sessionId"]);
    assert.match(res.body.sessionId, /^[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(res.body.sessionDescription).sort(), ["sdp", "type"]);
    assert.equal(res.body.sessionDescription.type, "answer");
    const sdp = res.body.sessionDescription.sdp;
    assert.match(sdp, /^v=0\r\n/);
    assert.match(sdp, /^a=setup:passive$/m);
    assert.doesNotMatch(sdp, /^a=setup:(active|actpass)$/m);
    assert.match(sdp, /^a=ice-lite$/m);
    assert.match(sdp, /^a=end-of-candidates$/m);
    // Opus on payload type 111 as Cloudflare does.
    assert.match(sdp, /^a=rtpmap:111 opus\/48000\/2$/m);
    const found = candidates(sdp);
    assert.ok(
      found.some((c) => c.address === "127.0.0.1" && c.type === "host"),
      `no 127.0.0.1 host candidate in\n${sdp}`,
    );
    const foreign = found.filter((c) => c.address !== "127.0.0.1");
    assert.deepEqual(
      foreign.map((c) => c.line),
      [],
      "the default rtc-listen-ip is 127.0.0.1: no other address",
    );
    // Both offered m-lines are answered, BUNDLEd.
    assert.match(sdp, /^a=group:BUNDLE 0 1$/m);
  });

  test("an offer of type answer is 400 invalid_request and creates no session", async () => {
    const before = api.stateA.sessionCount;
    const res = await api.a.request("POST", "sessions/new", {
      body: { sessionDescription: { type: "answer", sdp: await sendonlyOffer() } },
    });
    assertError(res, 400, "invalid_request");
    assert.equal(api.stateA.sessionCount, before);
  });

  test("garbage sdp is 400 and creates no session", async () => {
    const before = api.stateA.sessionCount;
    for (const sdp of ["hello", "", "v=0\r\n", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"]) {
      const res = await api.a.request("POST", "sessions/new", {
        body: { sessionDescription: { type: "offer", sdp } },
      });
      assertError(res, 400, "invalid_request");
    }
    // Looks like SDP, but werift cannot apply it: 400 negotiation_error, the session is dropped.
    const res = await api.a.request("POST", "sessions/new", {
      body: { sessionDescription: { type: "offer", sdp: "v=0\r\nm=garbage\r\n" } },
    });
    assertError(res, 400, "negotiation_error");
    assert.equal(api.stateA.sessionCount, before);
  });
});

describe("GET sessions/{id}", () => {
  test("a fresh session lists no tracks and dataChannels: []", async () => {
    const { body } = await api.a.request<{ sessionId: string }>("POST", "sessions/new");
    const res = await api.a.request("GET", `sessions/${body.sessionId}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { tracks: [], dataChannels: [] });
  });

  test("an id that never existed is 404 session_error (hex or not)", async () => {
    for (const id of ["0".repeat(32), "f".repeat(32), "not-a-session"]) {
      assertError(await api.a.request("GET", `sessions/${id}`), 404, "session_error");
      assertError(
        await api.a.request("POST", `sessions/${id}/tracks/new`, {
          body: { tracks: [{ location: "local", trackName: "x", kind: "audio" }] },
        }),
        404,
        "session_error",
      );
      assertError(
        await api.a.request("PUT", `sessions/${id}/tracks/close`, { body: { tracks: [{ mid: "0" }] } }),
        404,
        "session_error",
      );
      assertError(
        await api.a.request("PUT", `sessions/${id}/renegotiate`, {
          body: { sessionDescription: { type: "answer", sdp: "v=0\r\nm=audio 9 X 111\r\n" } },
        }),
        404,
        "session_error",
      );
    }
  });

  test("a session closed in-process is 410 session_error on every session route", async () => {
    const { body } = await api.a.request<Answered>("POST", "sessions/new", {
      body: { sessionDescription: { type: "offer", sdp: await sendonlyOffer() } },
    });
    const id = body.sessionId;
    assert.equal((await api.a.request("GET", `sessions/${id}`)).status, 200);
    api.sessionA(id).close("closed by the test");
    assertError(await api.a.request("GET", `sessions/${id}`), 410, "session_error");
    assertError(await api.a.request("GET", `/apps/${api.a.appId}/sessions/${id}`), 410, "session_error");
    assertError(
      await api.a.request("POST", `sessions/${id}/tracks/new`, {
        body: { tracks: [{ location: "local", trackName: "x", kind: "audio" }] },
      }),
      410,
      "session_error",
    );
    assertError(
      await api.a.request("PUT", `sessions/${id}/tracks/close`, { body: { tracks: [{ mid: "0" }] } }),
      410,
      "session_error",
    );
    assertError(
      await api.a.request("PUT", `sessions/${id}/renegotiate`, {
        body: { sessionDescription: { type: "answer", sdp: "v=0\r\nm=audio 9 X 111\r\n" } },
      }),
      410,
      "session_error",
    );
  });

  test("a closed session of app A is still 404 (not 410) for app B", async () => {
    const { body } = await api.a.request<{ sessionId: string }>("POST", "sessions/new");
    api.sessionA(body.sessionId).close("closed by the test");
    assertError(
      await api.b.request("GET", `/v1/apps/${api.b.appId}/sessions/${body.sessionId}`),
      404,
      "session_error",
    );
  });

  test("a session that never connects expires after --session-connect-timeout-ms: 410 session_error", async () => {
    const created = await fastExpiry.a.request<{ sessionId: string }>("POST", "sessions/new");
    assert.equal(created.status, 201, created.text);
    const id = created.body.sessionId;
    const session = fastExpiry.sessionA(id);
    assert.equal((await fastExpiry.a.request("GET", `sessions/${id}`)).status, 200);
    const reason = session.closeReason ?? (await within(session.closed.next(), 5_000, "connect timeout"));
    assert.match(reason, /never connected/);
    assertError(await fastExpiry.a.request("GET", `sessions/${id}`), 410, "session_error");
  });
});
