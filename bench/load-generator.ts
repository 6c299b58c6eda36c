// Load generator for the forwarding benchmark (--generator werift): N werift publisher peers, each sending a
// real Opus stream at 50 packets/s, and S werift subscriber peers per publisher that pull it through the
// HTTP API and count what arrives. Runs in its own process (forked by bench/forwarding.ts, IPC channel) so
// the server's CPU numbers are not mixed with ours. Pacing, accounting and the report are shared with the
// native generator (bench/lib/forwarding-load.ts); werift costs ~100 µs of CPU per packet, so this one
// saturates long before the server (bench/native-load-generator.ts does not).

import { type MediaStreamTrack, type RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import { ApiClient } from "../src/client/api-client.ts";
import { pool, withTimeout } from "./lib/async.ts";
import {
  LoadAccounting,
  loopPacket,
  MEDIA,
  runPaced,
  StreamCounter,
  type StreamOrigin,
  serveLoadGenerator,
  streamOrigin,
} from "./lib/forwarding-load.ts";
import { publishAudioTrack, pullAudioTrack } from "./lib/peers.ts";
import type { RunReport, RunRequest, SetupRequest, SetupResult } from "./protocol.ts";

interface PublisherPeer extends StreamOrigin {
  index: number;
  pc: RTCPeerConnection;
  track: MediaStreamTrack;
  sessionId: string;
  trackName: string;
}

if (MEDIA !== "audio") throw new Error("the werift load generator sends audio only (use --generator native)");

const load = new LoadAccounting();
const publishers: PublisherPeer[] = [];
const subscribers: { pc: RTCPeerConnection; counter: StreamCounter }[] = [];

/** Variant 1 (push with the client's offer), as test/helpers/rtc-client.ts publishAudio does. */
async function createPublisher(api: ApiClient, index: number, timeoutMs: number): Promise<void> {
  const { pc, track, sessionId, trackName } = await publishAudioTrack(api, `bench-${index}`, timeoutMs);
  publishers[index] = { index, pc, track, sessionId, trackName, ...streamOrigin(index) };
}

/** Variant 3 (server offer, answer through PUT renegotiate), as pullAudio does, but counting instead of storing. */
async function createSubscriber(api: ApiClient, pub: PublisherPeer, timeoutMs: number): Promise<void> {
  const counter = new StreamCounter(pub, load);
  const pc = await pullAudioTrack(api, pub, timeoutMs, (rtp) => {
    if (!load.run) return;
    counter.onPacket(rtp.header.sequenceNumber, rtp.payload, performance.now());
  });
  subscribers.push({ pc, counter });
}

async function setup(req: SetupRequest): Promise<SetupResult> {
  const started = performance.now();
  const api = new ApiClient(`${req.url}/v1`, req.appId, req.secret);
  const failures: string[] = [];
  const work = (async () => {
    await pool(
      Array.from({ length: req.publishers }, (_, i) => i),
      req.concurrency,
      (i) => createPublisher(api, i, req.peerTimeoutMs),
    );
    const pairs: PublisherPeer[] = [];
    for (const p of publishers) for (let s = 0; s < req.subscribersPerPublisher; s++) pairs.push(p);
    await pool(pairs, req.concurrency, (p) => createSubscriber(api, p, req.peerTimeoutMs));
  })();
  try {
    await withTimeout(work, req.setupTimeoutMs, "setup");
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  }
  return {
    setupMs: performance.now() - started,
    publishers: publishers.filter(Boolean).length,
    subscribers: subscribers.length,
    failures,
  };
}

function run(req: RunRequest): Promise<RunReport> {
  const pubs = publishers.filter(Boolean);
  return runPaced(
    req,
    load,
    subscribers.map((s) => s.counter),
    {
      publishers: pubs,
      sendTick(n) {
        for (let i = 0; i < pubs.length; i++) {
          const p = pubs[i];
          const header = new RtpHeader({
            payloadType: 111,
            sequenceNumber: (p.seqBase + n) & 0xffff,
            timestamp: (p.tsBase + n * 960) >>> 0,
            ssrc: 0,
            marker: n === 0,
          });
          p.track.writeRtp(new RtpPacket(header, loopPacket(p.phase, n)));
        }
      },
    },
  );
}

async function closeAll(): Promise<void> {
  const pcs = [...subscribers.map((s) => s.pc), ...publishers.filter(Boolean).map((p) => p.pc)];
  await withTimeout(
    pool(pcs, 16, (pc) => pc.close().catch(() => {})),
    15_000,
    "closing peers",
  ).catch(() => {});
}

serveLoadGenerator("bench/load-generator.ts", { setup, run, close: closeAll });
