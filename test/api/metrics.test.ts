import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { answerSending, avClientPeer } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { sine } from "../helpers/signals.ts";
import {
  adapterStatus,
  closeOf,
  createEgress,
  createIngest,
  pollAdapter,
  receiver,
  startEndpoint,
  ttsBurst,
} from "../helpers/ws-endpoints.ts";

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

// ---- adapters (issue 10 item 8) ------------------------------------------------------------------------

/** Samples of a series whose labels include `labels` (in any order), keyed by their `le` when they have one. */
function series(text: string, name: string, labels: Record<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) out.set(got.le ?? "", Number(m[3]));
  }
  return out;
}

function delta(after: Map<string, number>, before: Map<string, number>, key: string): number {
  return (after.get(key) ?? Number.NaN) - (before.get(key) ?? 0);
}

test("ingest: time queued and processing time are two histograms; a burst queues for seconds, processing stays short", async () => {
  const ingest = { direction: "ingest" };
  const text0 = await scrape();
  const queue0 = series(text0, "patchbay_adapter_queue_seconds_bucket", ingest);
  const proc0 = series(text0, "patchbay_adapter_latency_seconds_bucket", ingest);
  const frames = 60; // 1.2 s sent at once, as the TTS example does: the last frame waits ≈ 1.2 s for its slot
  const ep = await startEndpoint(ttsBurst(sine(440, frames * 20)), "/burst");
  try {
    const { adapterId } = await createIngest(srv.api, ep.url, "burst");
    await pollAdapter(srv.api, adapterId, (s) => s.frames >= frames && s.queuedMs === 0, {
      timeoutMs: 10_000,
    });
    const text = await scrape();
    const queue = series(text, "patchbay_adapter_queue_seconds_bucket", ingest);
    const proc = series(text, "patchbay_adapter_latency_seconds_bucket", ingest);
    const queued = delta(queue, queue0, "+Inf");
    assert.ok(queued >= frames, `every frame observed once in the queue histogram (${queued})`);
    assert.ok(queue.has("120"), "queue buckets reach 120 s");
    assert.equal(delta(queue, queue0, "120"), queued, "no frame beyond 120 s");
    assert.ok(delta(queue, queue0, "0.5") < queued - 20, "the burst's later frames waited over 0.5 s");
    assert.equal(delta(proc, proc0, "+Inf"), queued, "processing observed for the same frames");
    assert.equal(delta(proc, proc0, "0.5"), queued, "no frame took 0.5 s to process");
    await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
  } finally {
    await ep.close();
  }
});

test("patchbay_adapters counts live adapters only; closed ones are counted by patchbay_adapters_closed_total", async () => {
  const closed0 = sample(await scrape(), 'patchbay_adapters_closed_total{direction="ingest"}') ?? 0;
  const ep = await startEndpoint(() => {}, "/idle");
  try {
    const { adapterId } = await createIngest(srv.api, ep.url, "idle");
    const open = series(await scrape(), "patchbay_adapters", { direction: "ingest", state: "open" });
    assert.ok((open.get("") ?? 0) >= 1, "the open adapter is counted");
    await srv.api.raw("POST", "adapters/websocket/close", { tracks: [{ adapterId }] });
    const text = await scrape();
    assert.equal(
      series(text, "patchbay_adapters", { state: "closed" }).size,
      0,
      "no closed state in the gauge",
    );
    assert.equal(sample(text, 'patchbay_adapters_closed_total{direction="ingest"}'), closed0 + 1);
  } finally {
    await ep.close();
  }
});

test("egress status: messages are the Packets sent, bytesProcessed the PCM bytes sent", async () => {
  const source = await startEndpoint(ttsBurst(sine(440, 1000)), "/source");
  const sink = await startEndpoint(() => {}, "/sink");
  try {
    const ingest = await createIngest(srv.api, source.url, "tone");
    const conn = sink.nextConnection();
    const { adapterId } = await createEgress(
      srv.api,
      { sessionId: ingest.sessionId, trackName: "tone" },
      sink.url,
    );
    const ws = await conn;
    const rx = receiver(ws);
    await rx.waitFor(60);
    const res = await srv.api.raw<{ tracks: { bytesProcessed?: number }[] }>(
      "POST",
      "adapters/websocket/close",
      {
        tracks: [{ adapterId }, { adapterId: ingest.adapterId }],
      },
    );
    await closeOf(ws); // every Packet sent before the close frame has arrived
    const s = await adapterStatus(srv.api, adapterId);
    assert.equal(s.messages, rx.packets.length, "messages = Packets the endpoint received");
    assert.equal(s.frames, s.messages);
    const pcmBytes = rx.packets.reduce((n, p) => n + p.payload.length, 0);
    assert.equal(s.bytesProcessed, pcmBytes, "bytesProcessed = PCM bytes the endpoint received");
    assert.equal(res.body.tracks[0].bytesProcessed, pcmBytes, "the close response reports the same");
  } finally {
    await source.close();
    await sink.close();
  }
});
