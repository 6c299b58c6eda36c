import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { assertError, buildTestApi, type InjectClient, type TestApi } from "../helpers/api-inject.ts";

// tracks/update, simulcast pulls, retries and renegotiation misuse at the HTTP level (in-process). The
// publishers here are real browser offers (test/fixtures/sdp); nothing needs to connect for the API
// contract, media is covered by test/browser/partytracks.test.ts.

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/sdp/${name}.sdp`, import.meta.url), "utf8");

interface Item {
  location?: string;
  mid?: string;
  trackName?: string;
  sessionId?: string;
  simulcast?: Record<string, string>;
  errorCode?: string;
  errorDescription?: string;
}
interface Negotiation {
  requiresImmediateRenegotiation: boolean;
  sessionDescription?: { type: "offer" | "answer"; sdp: string };
  tracks: Item[];
}

let api: TestApi;
before(async () => {
  api = await buildTestApi();
});
after(async () => {
  await api.close();
});

async function newSession(client: InjectClient = api.a): Promise<string> {
  const res = await client.request<{ sessionId: string }>("POST", "sessions/new");
  assert.equal(res.status, 201, res.text);
  return res.body.sessionId;
}

async function post(path: string, body: unknown) {
  const res = await api.a.request<Negotiation>("POST", path, { body });
  assert.equal(res.status, 200, res.text);
  return res.body;
}

async function put(path: string, body: unknown) {
  return api.a.request<Negotiation>("PUT", path, { body });
}

/** Publish Chromium's offer on a new session: mid → track name. */
async function publishFixture(name: string, tracks: Record<string, string>) {
  const sessionId = await newSession();
  const res = await post(`sessions/${sessionId}/tracks/new`, {
    sessionDescription: { type: "offer", sdp: fixture(name) },
    tracks: Object.entries(tracks).map(([mid, trackName]) => ({ location: "local", mid, trackName })),
  });
  for (const t of res.tracks) assert.equal(t.errorCode, undefined, JSON.stringify(t));
  return { sessionId, res };
}

describe("simulcast pulls and tracks/update", () => {
  test("a pull's simulcast preference is echoed; tracks/update changes it; a plain track refuses", async () => {
    const cam = await publishFixture("chromium-simulcast-send.offer", { "0": "cam" });
    const plain = await publishFixture("chromium-av-send.offer", { "0": "mic", "1": "webcam" });
    const sub = await newSession();
    const pref = { preferredRid: "h", priorityOrdering: "none", ridNotAvailable: "asciibetical" };
    const pull = await post(`sessions/${sub}/tracks/new`, {
      tracks: [
        { location: "remote", sessionId: cam.sessionId, trackName: "cam", simulcast: pref },
        { location: "remote", sessionId: plain.sessionId, trackName: "webcam" },
      ],
    });
    assert.deepEqual(pull.tracks[0].simulcast, pref);
    // The subscriber sees one plain video stream (no rid/simulcast lines in its m-line).
    assert.doesNotMatch(pull.sessionDescription!.sdp, /a=simulcast|a=rid:/);
    // Nothing is registered before the answer: updating now finds no pull.
    const early = await put(`sessions/${sub}/tracks/update`, {
      tracks: [{ location: "remote", mid: pull.tracks[0].mid, simulcast: { preferredRid: "q" } }],
    });
    assert.equal(early.status, 200, early.text);
    assert.equal(early.body.tracks[0].errorCode, "update_track_error");
    const answer = pull
      .sessionDescription!.sdp.replace(/a=sendonly/g, "a=recvonly")
      .replace(/a=setup:actpass/g, "a=setup:active")
      .replace(/a=ice-lite\r\n/, "")
      .replace(/a=ssrc:[^\r]*\r\n/g, "")
      .replace(/a=msid:[^\r]*\r\n/g, "");
    const reneg = await put(`sessions/${sub}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: answer },
    });
    assert.equal(reneg.status, 200, reneg.text);
    const update = await put(`sessions/${sub}/tracks/update`, {
      tracks: [
        {
          location: "remote",
          sessionId: cam.sessionId,
          trackName: "cam",
          mid: pull.tracks[0].mid,
          simulcast: { preferredRid: "q" },
        },
        { location: "remote", mid: pull.tracks[1].mid, simulcast: { preferredRid: "q" } },
        { location: "remote", mid: "77", simulcast: { preferredRid: "q" } },
      ],
    });
    assert.equal(update.status, 200, update.text);
    assert.equal(update.body.requiresImmediateRenegotiation, false);
    const [ok, notSimulcast, unknown] = update.body.tracks;
    assert.equal(ok.errorCode, undefined, JSON.stringify(ok));
    assert.deepEqual(ok.simulcast, { preferredRid: "q", priorityOrdering: "none", ridNotAvailable: "none" });
    assert.equal(notSimulcast.errorCode, "update_track_error");
    assert.match(notSimulcast.errorDescription!, /not simulcast/);
    assert.equal(unknown.errorCode, "update_track_error");
  });

  test("tracks/update swaps the track a transceiver carries (same kind and codec) without renegotiation", async () => {
    const a = await publishFixture("chromium-audio-send.offer", { "0": "voice-a" });
    const b = await publishFixture("chromium-audio-send.offer", { "0": "voice-b" });
    const v = await publishFixture("chromium-av-send.offer", { "1": "cam-v" });
    const sub = await newSession();
    const pull = await post(`sessions/${sub}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: fixture("chromium-av-recv.offer") },
      tracks: [{ location: "remote", sessionId: a.sessionId, trackName: "voice-a" }],
    });
    assert.equal(pull.tracks[0].errorCode, undefined, JSON.stringify(pull.tracks[0]));
    const mid = pull.tracks[0].mid!;
    const swap = await put(`sessions/${sub}/tracks/update`, {
      tracks: [{ location: "remote", sessionId: b.sessionId, trackName: "voice-b", mid }],
    });
    assert.equal(swap.status, 200, swap.text);
    assert.deepEqual(swap.body.tracks, [
      { location: "remote", sessionId: b.sessionId, trackName: "voice-b", mid },
    ]);
    const wrongKind = await put(`sessions/${sub}/tracks/update`, {
      tracks: [{ location: "remote", sessionId: v.sessionId, trackName: "cam-v", mid }],
    });
    assert.equal(wrongKind.body.tracks[0].errorCode, "update_track_error");
    assert.match(wrongKind.body.tracks[0].errorDescription!, /audio.*video/);
    const listed = await api.a.request<{ tracks: Item[] }>("GET", `sessions/${sub}`);
    assert.deepEqual(
      listed.body.tracks.map((t) => [t.trackName, t.mid, (t as { status?: string }).status]),
      [
        ["voice-a", mid, "inactive"],
        ["voice-b", mid, "active"],
      ],
    );
  });

  test("an empty tracks list, or a missing mid, is rejected", async () => {
    const sub = await newSession();
    assertError(await put(`sessions/${sub}/tracks/update`, { tracks: [] }), 400, "invalid_request");
    assertError(
      await put(`sessions/${sub}/tracks/update`, { tracks: [{ location: "remote" }] }),
      400,
      "decoding_error",
    );
  });
});

describe("transactional negotiation", () => {
  test("a publish whose answer the client never applied can be retried with the same request", async () => {
    const sessionId = await newSession();
    const body = {
      sessionDescription: { type: "offer", sdp: fixture("chromium-simulcast-send.offer") },
      tracks: [{ location: "local", mid: "0", trackName: "cam" }],
    };
    const first = await post(`sessions/${sessionId}/tracks/new`, body);
    const again = await post(`sessions/${sessionId}/tracks/new`, body);
    assert.equal(again.tracks[0].errorCode, undefined, JSON.stringify(again.tracks[0]));
    assert.deepEqual(again.tracks, first.tracks);
    assert.equal(
      again.sessionDescription?.sdp.split("m=").length,
      first.sessionDescription?.sdp.split("m=").length,
    );
  });

  test("a bad offer changes nothing: the next good request works as if it never came", async () => {
    const sessionId = await newSession();
    await post(`sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: fixture("chromium-av-send.offer") },
      tracks: [{ location: "local", mid: "0", trackName: "mic" }],
    });
    // m-line 0 suddenly has another mid while it is live: refused with the reason.
    const moved = fixture("chromium-av-send.offer")
      .replace("a=mid:0", "a=mid:9")
      .replace("BUNDLE 0 1", "BUNDLE 9 1");
    const bad = await api.a.request("POST", `sessions/${sessionId}/tracks/new`, {
      body: {
        sessionDescription: { type: "offer", sdp: moved },
        tracks: [{ location: "local", mid: "9", trackName: "x" }],
      },
    });
    assertError(bad, 400, "negotiation_error");
    assert.match(
      (bad.body as { errorDescription: string }).errorDescription,
      /only a rejected m-line may be reused/,
    );
    const good = await post(`sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: fixture("chromium-av-send.offer") },
      tracks: [{ location: "local", mid: "1", trackName: "cam" }],
    });
    assert.equal(good.tracks[0].errorCode, undefined, JSON.stringify(good.tracks[0]));
    const listed = await api.a.request<{ tracks: Item[] }>("GET", `sessions/${sessionId}`);
    assert.deepEqual(
      listed.body.tracks.map((t) => t.trackName),
      ["mic", "cam"],
    );
  });

  test("PUT renegotiate without an offer from the server is 400 with the reason", async () => {
    const sessionId = await newSession();
    const res = await put(`sessions/${sessionId}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: fixture("chromium-audio-send.offer") },
    });
    assertError(res, 400, "negotiation_error");
    assert.match(JSON.stringify(res.body), /no offer from Patchbay/);
  });
});

describe("bidirectionalMediaStream and thirdparty at the API level", () => {
  test("a sendrecv push with bidirectionalMediaStream is answered sendrecv; a #name pull then needs no renegotiation", async () => {
    const voice = await publishFixture("chromium-audio-send.offer", { "0": "agent-voice" });
    const sessionId = await newSession();
    const offer = fixture("chromium-audio-sendrecv-datachannel.offer");
    const push = await post(`sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: offer },
      tracks: [
        { location: "local", mid: "0", trackName: "user-mic", bidirectionalMediaStream: true, kind: "audio" },
      ],
    });
    assert.equal(push.tracks[0].errorCode, undefined, JSON.stringify(push.tracks[0]));
    const audio = push.sessionDescription!.sdp.split("m=")[1];
    assert.match(audio, /a=sendrecv/);
    assert.match(audio, /a=ssrc:\d+ cname:/);
    const pull = await post(`sessions/${sessionId}/tracks/new`, {
      tracks: [
        { location: "remote", sessionId: voice.sessionId, trackName: "agent-voice", mid: "#user-mic" },
      ],
    });
    assert.deepEqual(pull.tracks, [
      { location: "remote", sessionId: voice.sessionId, trackName: "agent-voice", mid: "0" },
    ]);
    assert.equal(pull.requiresImmediateRenegotiation, false);
    assert.equal(pull.sessionDescription, undefined);
  });

  test("without the flag a sendrecv push is answered recvonly and a #name pull renegotiates", async () => {
    const voice = await publishFixture("chromium-audio-send.offer", { "0": "agent-voice" });
    const sessionId = await newSession();
    const push = await post(`sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: fixture("chromium-audio-sendrecv-datachannel.offer") },
      tracks: [{ location: "local", mid: "0", trackName: "user-mic" }],
    });
    assert.match(push.sessionDescription!.sdp.split("m=")[1], /a=recvonly/);
    const pull = await post(`sessions/${sessionId}/tracks/new`, {
      tracks: [
        { location: "remote", sessionId: voice.sessionId, trackName: "agent-voice", mid: "#user-mic" },
      ],
    });
    assert.equal(pull.requiresImmediateRenegotiation, true);
    assert.match(pull.sessionDescription!.sdp.split("m=")[1], /a=sendrecv/);
  });

  test("a push without an offer with bidirectionalMediaStream offers a sendrecv m-line", async () => {
    const sessionId = await newSession();
    const res = await post(`sessions/${sessionId}/tracks/new`, {
      tracks: [{ location: "local", trackName: "ai-voice", kind: "audio", bidirectionalMediaStream: true }],
    });
    assert.equal(res.requiresImmediateRenegotiation, true);
    assert.match(res.sessionDescription!.sdp, /a=sendrecv/);
    assert.match(res.sessionDescription!.sdp, /a=ice-lite/);
  });

  test("?thirdparty=true: Patchbay's offer is a full ICE agent's (no a=ice-lite)", async () => {
    const res = await api.a.request<{ sessionId: string }>("POST", "sessions/new?thirdparty=true");
    assert.equal(res.status, 201, res.text);
    const offer = await post(`sessions/${res.body.sessionId}/tracks/new`, {
      tracks: [{ location: "local", trackName: "ai-voice", kind: "audio", bidirectionalMediaStream: true }],
    });
    assert.doesNotMatch(offer.sessionDescription!.sdp, /a=ice-lite/);
    assert.match(offer.sessionDescription!.sdp, /a=setup:actpass/);
  });
});
