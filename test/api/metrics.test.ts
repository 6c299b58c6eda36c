import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { answerSending, avClientPeer } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// /metrics as wired by src/server.ts (the gauges' sources live there), so this file uses a real server on a
// loopback port instead of inject().

let srv: TestServer;

before(async () => {
  srv = await startTestServer();
});
after(async () => {
  await srv.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(`${srv.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  return res.text();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("/metrics needs no auth and counts sessions by state", async () => {
  const before = sample(await scrape(), 'patchbay_sessions{state="new"}') ?? 0;
  await srv.api.newSession();
  await srv.api.newSession();
  assert.equal(sample(await scrape(), 'patchbay_sessions{state="new"}'), before + 2);
});

test("patchbay_tracks counts published tracks by their kind", async () => {
  const text0 = await scrape();
  const audio0 = sample(text0, 'patchbay_tracks{kind="audio"}') ?? 0;
  const video0 = sample(text0, 'patchbay_tracks{kind="video"}') ?? 0;
  // Variant 5 (push without an offer) publishes one track of each kind.
  const { sessionId } = await srv.api.newSession();
  const res = await srv.api.newTracks(sessionId, {
    tracks: [
      { location: "local", trackName: "mic", kind: "audio" },
      { location: "local", trackName: "cam", kind: "video" },
    ],
  });
  assert.deepEqual(
    res.tracks.map((t) => [t.trackName, t.kind, t.errorCode]),
    [
      ["mic", "audio", undefined],
      ["cam", "video", undefined],
    ],
  );
  // Tracks exist once the client's answer completes the negotiation.
  const pc = avClientPeer();
  try {
    const { answer } = await answerSending(pc, res.sessionDescription!);
    await srv.api.renegotiate(sessionId, answer);
  } finally {
    await pc.close();
  }
  const text = await scrape();
  assert.equal(sample(text, 'patchbay_tracks{kind="audio"}'), audio0 + 1, "audio tracks");
  assert.equal(sample(text, 'patchbay_tracks{kind="video"}'), video0 + 1, "video tracks");
});
