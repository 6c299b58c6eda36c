// Load generator for the forwarding benchmark (--generator native, the default): the same IPC protocol,
// pacing, accounting and report as the werift generator (bench/lib/forwarding-load.ts), but every peer is
// the addon's own transport in client mode (native/src/ice_client.h, peer_client.cc): its own UDP socket on
// 127.0.0.1, the controlling ICE agent checking the server's host candidate, the DTLS client, SRTP in C++.
// Offers and answers are SDP text built here (bench/lib/native-sdp.ts). Publishers send one RTP packet per
// call; subscribers get one callback per receive batch and parse RTP headers straight from the buffer.
// ICE retransmissions, consent checks and DTLS retransmissions are ticked by one shared timer during setup
// and by the pacer (a tenth of the peers per firing) during runs: no timer per peer.

import { randomBytes, randomInt } from "node:crypto";
import { ApiClient } from "../src/client/api-client.ts";
import {
  loadNative,
  type NativePeer,
  type NativePeerState,
  type NativeUdpSocket,
} from "../src/native/addon.ts";
import { pool, withTimeout } from "./lib/async.ts";
import {
  LOOP,
  LoadAccounting,
  loopPacket,
  MEDIA,
  PACKETS_PER_TICK,
  runPaced,
  StreamCounter,
  type StreamOrigin,
  serveLoadGenerator,
  streamOrigin,
  TS_PER_TICK,
} from "./lib/forwarding-load.ts";
import {
  type ClientTransport,
  parseServerSdp,
  publisherOffer,
  sectionPt,
  subscriberAnswer,
} from "./lib/native-sdp.ts";
import type { RunReport, RunRequest, SetupRequest, SetupResult } from "./protocol.ts";

const native = loadNative();
const FINGERPRINT = native.certificateFingerprint();
/** The setup-time tick (ICE checks back off from 50 ms; DTLS retransmits from 1 s). */
const IDLE_TICK_MS = 20;
/** During a run the pacer ticks one peer in this many per firing (every peer about every 200 ms). */
const RUN_TICK_SPREAD = 10;

/** ICE credentials per RFC 8445 §5.3: ufrag ≥ 4 and pwd ≥ 22 characters of ice-char. */
function iceToken(bytes: number): string {
  return randomBytes(bytes)
    .toString("base64")
    .replace(/[^A-Za-z0-9]/g, "x");
}

/** One client peer on its own socket; `connected` settles on the first connected / failed / closed. */
class ClientPeer {
  readonly socket: NativeUdpSocket;
  readonly peer: NativePeer;
  readonly transport: ClientTransport;
  readonly connected: Promise<void>;
  private settle!: (err?: Error) => void;
  private closed = false;

  constructor(onMedia: (batch: Buffer, count: number) => void) {
    this.socket = new native.UdpSocket();
    try {
      const port = this.socket.bind("127.0.0.1", 0, false);
      this.transport = { ufrag: iceToken(6), pwd: iceToken(18), fingerprint: FINGERPRINT, port };
      this.connected = new Promise<void>((resolve, reject) => {
        this.settle = (err) => (err ? reject(err) : resolve());
      });
      this.connected.catch(() => {});
      this.peer = new native.Peer(this.socket, this.transport.ufrag, this.transport.pwd, onMedia, (s, d) =>
        this.onState(s, d),
      );
    } catch (err) {
      this.socket.close();
      throw err;
    }
    peers.add(this);
  }

  private onState(state: NativePeerState, detail: string): void {
    if (state === "connected") this.settle();
    else if (state === "failed" || state === "closed")
      this.settle(new Error(`native peer ${state}${detail ? `: ${detail}` : ""}`));
  }

  /** The server's description: its ICE-lite candidate is checked by us (controlling), we are the DTLS client. */
  start(serverSdp: string): void {
    const remote = parseServerSdp(serverSdp);
    this.peer.setRemote(remote.ufrag, remote.fingerprints, true, {
      ip: remote.candidate.ip,
      port: remote.candidate.port,
      pwd: remote.pwd,
    });
  }

  async waitConnected(timeoutMs: number): Promise<void> {
    await withTimeout(this.connected, timeoutMs, "native peer connect");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    peers.delete(this);
    this.peer.close();
    this.socket.close();
  }
}

/** Every live client peer, ticked by the idle timer or the pacer. */
const peers = new Set<ClientPeer>();
let tickList: ClientPeer[] = [];
let tickRound = 0;
let idleTimer: NodeJS.Timeout | undefined;

function startIdleTicks(): void {
  idleTimer ??= setInterval(() => {
    for (const p of peers) p.peer.tick();
  }, IDLE_TICK_MS);
}
function stopIdleTicks(): void {
  if (idleTimer) clearInterval(idleTimer);
  idleTimer = undefined;
}

interface Publisher extends StreamOrigin {
  client: ClientPeer;
  sessionId: string;
  trackName: string;
  ssrc: number;
  pt: number;
  /** Header + the largest payload: each packet is written in place and sent as a view. */
  buf: Buffer;
}

const load = new LoadAccounting();
const publishers: Publisher[] = [];
const subscribers: { client: ClientPeer; counter: StreamCounter }[] = [];

async function createPublisher(api: ApiClient, index: number, timeoutMs: number): Promise<void> {
  const client = new ClientPeer(() => {}); // RTCP from the server (receiver reports): not accounted
  try {
    const trackName = `bench-${index}`;
    const ssrc = randomInt(1, 2 ** 32 - 1);
    const offer = publisherOffer(client.transport, ssrc, trackName, MEDIA);
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      sessionDescription: { type: "offer", sdp: offer },
      tracks: [{ location: "local", mid: "0", trackName }],
    });
    if (res.tracks[0]?.errorCode) throw new Error(`publish failed: ${res.tracks[0].errorCode}`);
    if (!res.sessionDescription) throw new Error("publish: no answer from the server");
    client.start(res.sessionDescription.sdp);
    const section = parseServerSdp(res.sessionDescription.sdp).sections[0];
    const pt = section && sectionPt(section, MEDIA);
    if (pt === undefined) throw new Error(`publish: the server's answer has no ${MEDIA} codec`);
    await client.waitConnected(timeoutMs);
    const maxPayload = Math.max(...LOOP.map((p) => p.length));
    const buf = Buffer.alloc(12 + maxPayload);
    publishers[index] = { client, sessionId, trackName, ssrc, pt, buf, ...streamOrigin(index) };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** RTP header length (CSRCs, extension) and padding, straight from the batch. */
function onSubscriberBatch(counter: StreamCounter, batch: Buffer, count: number): void {
  if (!load.run) return;
  const now = performance.now();
  let at = 0;
  for (let i = 0; i < count && at + 4 <= batch.length; i++) {
    const len = (batch[at] << 8) | batch[at + 1];
    const kind = batch[at + 2];
    const start = at + 4;
    at = start + len;
    if (kind !== 0 || len < 12 || at > batch.length) continue;
    const b0 = batch[start];
    let off = 12 + 4 * (b0 & 0x0f);
    if (b0 & 0x10) {
      if (off + 4 > len) continue;
      off += 4 + 4 * ((batch[start + off + 2] << 8) | batch[start + off + 3]);
    }
    let end = len;
    if (b0 & 0x20) end -= batch[start + len - 1];
    if (off > end) continue;
    const seq = (batch[start + 2] << 8) | batch[start + 3];
    counter.onPacket(seq, batch.subarray(start + off, start + end), now);
  }
}

async function createSubscriber(api: ApiClient, pub: Publisher, timeoutMs: number): Promise<void> {
  const counter = new StreamCounter(pub, load);
  const client = new ClientPeer((batch, count) => onSubscriberBatch(counter, batch, count));
  try {
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      tracks: [{ location: "remote", sessionId: pub.sessionId, trackName: pub.trackName }],
    });
    if (res.tracks[0]?.errorCode)
      throw new Error(`pull failed: ${res.tracks[0].errorCode} ${res.tracks[0].errorDescription}`);
    if (!res.sessionDescription) throw new Error("pull: no offer from the server");
    const offerSdp = res.sessionDescription.sdp;
    const answer = subscriberAnswer(client.transport, parseServerSdp(offerSdp), MEDIA);
    await api.renegotiate(sessionId, { type: "answer", sdp: answer });
    client.start(offerSdp);
    await client.waitConnected(timeoutMs);
    subscribers.push({ client, counter });
  } catch (err) {
    client.close();
    throw err;
  }
}

async function setup(req: SetupRequest): Promise<SetupResult> {
  const started = performance.now();
  const api = new ApiClient(`${req.url}/v1`, req.appId, req.secret);
  const failures: string[] = [];
  startIdleTicks();
  const work = (async () => {
    await pool(
      Array.from({ length: req.publishers }, (_, i) => i),
      req.concurrency,
      (i) => createPublisher(api, i, req.peerTimeoutMs),
    );
    const pairs: Publisher[] = [];
    for (const p of publishers) if (p) for (let s = 0; s < req.subscribersPerPublisher; s++) pairs.push(p);
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

async function run(req: RunRequest): Promise<RunReport> {
  const pubs = publishers.filter(Boolean);
  stopIdleTicks();
  tickList = [...peers];
  try {
    return await runPaced(
      req,
      load,
      subscribers.map((s) => s.counter),
      {
        publishers: pubs,
        sendTick(n) {
          // Audio: the marker on the first packet; video: on the last packet of each tick's frame.
          const video = PACKETS_PER_TICK > 1;
          for (let i = 0; i < pubs.length; i++) {
            const p = pubs[i];
            const b = p.buf;
            for (let k = 0; k < PACKETS_PER_TICK; k++) {
              const m = n * PACKETS_PER_TICK + k;
              const payload = loopPacket(p.phase, m);
              const marker = video ? k === PACKETS_PER_TICK - 1 : n === 0;
              b[0] = 0x80;
              b[1] = (marker ? 0x80 : 0) | p.pt;
              b.writeUInt16BE((p.seqBase + m) & 0xffff, 2);
              b.writeUInt32BE((p.tsBase + n * TS_PER_TICK) >>> 0, 4);
              b.writeUInt32BE(p.ssrc, 8);
              payload.copy(b, 12);
              p.client.peer.sendRtp(b.subarray(0, 12 + payload.length));
            }
          }
        },
        onTimer() {
          // ICE consent checks and any DTLS timer: a slice of the peers per firing.
          const r = tickRound++ % RUN_TICK_SPREAD;
          for (let i = r; i < tickList.length; i += RUN_TICK_SPREAD) tickList[i].peer.tick();
        },
      },
    );
  } finally {
    startIdleTicks();
  }
}

async function closeAll(): Promise<void> {
  stopIdleTicks();
  for (const p of [...peers]) p.close();
}

serveLoadGenerator("bench/native-load-generator.ts", { setup, run, close: closeAll });
