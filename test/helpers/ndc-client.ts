// A second, independent WebRTC stack for interop tests: libdatachannel through `node-datachannel`.
//
// Everything stays on loopback: no STUN/TURN servers, UDP bound to 127.0.0.1. libdatachannel gives us
// raw RTP in both directions (no media handler chain), so tests build and parse RTP themselves.
//
// node-datachannel callbacks (`onStateChange`, `onOpen`, `onMessage`, …) are single slots: setting one
// replaces the previous one, so each is set in exactly one place here.
//
// Call `ndcCleanup()` once after the last peer is closed, or the native threads keep the process alive.

import { Audio, cleanup, initLogger, type LogLevel, PeerConnection, type Track } from "node-datachannel";
import type { ApiClient } from "../../src/client/api-client.ts";

// NDC_LOG=Verbose|Debug|Info|Warning|Error prints libdatachannel's (and libjuice's) log.
if (process.env.NDC_LOG)
  initLogger(process.env.NDC_LOG as LogLevel, (level, msg) => console.log(`[ndc ${level}] ${msg}`));

let counter = 0;

/** A libdatachannel peer that only ever uses 127.0.0.1. */
export function ndcPeer(name = `ndc-${++counter}`): PeerConnection {
  return new PeerConnection(name, { iceServers: [], bindAddress: "127.0.0.1", enableIceTcp: false });
}

/** Resolves when ICE gathering is complete (the local description then carries every candidate). */
export function gatheringComplete(pc: PeerConnection, timeoutMs = 5_000): Promise<void> {
  return waitState(
    "gathering",
    (cb) => pc.onGatheringStateChange(cb),
    () => pc.gatheringState(),
    "complete",
    timeoutMs,
  );
}

/** Resolves when the peer connection reports `connected`. */
export function ndcConnected(pc: PeerConnection, timeoutMs = 10_000): Promise<void> {
  return waitState(
    "connection",
    (cb) => pc.onStateChange(cb),
    () => pc.state(),
    "connected",
    timeoutMs,
  );
}

function waitState(
  what: string,
  subscribe: (cb: (s: string) => void) => void,
  current: () => string,
  wanted: string,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (current() === wanted) return resolve();
    const timer = setTimeout(
      () => reject(new Error(`${what} state is ${current()}, not ${wanted}, after ${timeoutMs} ms`)),
      timeoutMs,
    );
    subscribe((s) => {
      if (s === wanted) {
        clearTimeout(timer);
        resolve();
      } else if (s === "failed" || s === "closed") {
        clearTimeout(timer);
        reject(new Error(`${what} state became ${s}`));
      }
    });
  });
}

/** Resolves when a track's DTLS-SRTP transport is up. */
export function trackOpen(track: Track, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (track.isOpen()) return resolve();
    const timer = setTimeout(() => reject(new Error(`track not open after ${timeoutMs} ms`)), timeoutMs);
    track.onOpen(() => {
      clearTimeout(timer);
      resolve();
    });
    track.onError((err) => {
      clearTimeout(timer);
      reject(new Error(`track error: ${err}`));
    });
  });
}

/** The full local description once gathering is complete. */
async function completeLocalDescription(
  pc: PeerConnection,
): Promise<{ type: "offer" | "answer"; sdp: string }> {
  await gatheringComplete(pc);
  const desc = pc.localDescription();
  if (!desc || (desc.type !== "offer" && desc.type !== "answer")) throw new Error("no local description");
  return { type: desc.type, sdp: desc.sdp };
}

/** RTCP shares the port (rtcp-mux); RFC 5761 §4: payload types 64–95 with the marker bit are RTCP. */
export function isRtcp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[1] >= 192 && buf[1] <= 223;
}

/** A 12-byte RTP header (version 2, no padding/extension/CSRC) followed by `payload`. */
export function buildRtp(h: {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker?: boolean;
  payload: Uint8Array;
}): Buffer {
  const buf = Buffer.alloc(12 + h.payload.length);
  buf[0] = 0x80;
  buf[1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
  buf.writeUInt16BE(h.sequenceNumber & 0xffff, 2);
  buf.writeUInt32BE(h.timestamp >>> 0, 4);
  buf.writeUInt32BE(h.ssrc >>> 0, 8);
  buf.set(h.payload, 12);
  return buf;
}

export interface NdcPublisher {
  pc: PeerConnection;
  track: Track;
  sessionId: string;
  trackName: string;
  mid: string;
  ssrc: number;
  offerSdp: string;
  answerSdp: string;
  /** Milliseconds from applying the server's answer to the track being open (ICE + DTLS). */
  connectMs: number;
  /** Sends one RTP packet per payload (consecutive sequence numbers, +960 timestamps), `intervalMs` apart. */
  send(payloads: Uint8Array[], intervalMs?: number): Promise<{ sequenceNumber: number; timestamp: number }[]>;
  close(): void;
}

/** Variant 1 with libdatachannel: a sendonly Opus m-line, our offer (with candidates), the server's answer. */
export async function ndcPublishAudio(
  api: ApiClient,
  opts: { trackName?: string; mid?: string; ssrc?: number } = {},
): Promise<NdcPublisher> {
  const trackName = opts.trackName ?? "ndc-mic";
  const mid = opts.mid ?? "0";
  const ssrc = opts.ssrc ?? 0x1234_5678;
  const pc = ndcPeer();
  try {
    const media = new Audio(mid, "SendOnly");
    media.addOpusCodec(111, "minptime=10;useinbandfec=1");
    media.addSSRC(ssrc, "ndc-cname", "ndc-stream", trackName);
    const track = pc.addTrack(media);
    const opened = trackOpen(track);
    opened.catch(() => {});
    pc.setLocalDescription("offer");
    const offer = await completeLocalDescription(pc);
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      sessionDescription: { type: "offer", sdp: offer.sdp },
      tracks: [{ location: "local", mid, trackName }],
    });
    const item = res.tracks[0];
    if (item?.errorCode) throw new Error(`publish failed: ${item.errorCode} ${item.errorDescription}`);
    if (res.sessionDescription?.type !== "answer")
      throw new Error(`expected an answer, got ${JSON.stringify(res)}`);
    const started = performance.now();
    pc.setRemoteDescription(res.sessionDescription.sdp, "answer");
    await opened;
    const connectMs = performance.now() - started;
    let seq = 20_000;
    let ts = 123_456;
    return {
      pc,
      track,
      sessionId,
      trackName,
      mid,
      ssrc,
      offerSdp: offer.sdp,
      answerSdp: res.sessionDescription.sdp,
      connectMs,
      async send(payloads, intervalMs = 5) {
        const sent: { sequenceNumber: number; timestamp: number }[] = [];
        for (const payload of payloads) {
          const packet = buildRtp({
            payloadType: 111,
            sequenceNumber: seq,
            timestamp: ts,
            ssrc,
            marker: sent.length === 0,
            payload,
          });
          if (!track.sendMessageBinary(packet)) throw new Error(`sendMessageBinary failed at seq ${seq}`);
          sent.push({ sequenceNumber: seq, timestamp: ts });
          seq = (seq + 1) & 0xffff;
          ts = (ts + 960) >>> 0;
          if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
        }
        return sent;
      },
      close: () => pc.close(),
    };
  } catch (err) {
    pc.close();
    throw err;
  }
}

export interface NdcSubscriber {
  pc: PeerConnection;
  track: Track;
  sessionId: string;
  mid: string;
  /** Raw RTP packets as received (RTCP filtered out). */
  rtp: Buffer[];
  rtcpCount: number;
  /** The server's SDP (answer for variant 4, offer for variant 3) and ours. */
  serverSdp: string;
  localSdp: string;
  /** Milliseconds from applying the server's description to the track being open (ICE + DTLS). */
  connectMs: number;
  waitFor(n: number, timeoutMs?: number): Promise<Buffer[]>;
  close(): void;
}

function collector(track: Track): Pick<NdcSubscriber, "rtp" | "rtcpCount" | "waitFor"> {
  const rtp: Buffer[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const state = {
    rtp,
    rtcpCount: 0,
    waitFor(n: number, timeoutMs = 10_000): Promise<Buffer[]> {
      if (rtp.length >= n) return Promise.resolve(rtp);
      return new Promise<Buffer[]>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${rtp.length} of ${n} RTP packets after ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(rtp);
          },
        });
      });
    },
  };
  track.onMessage((msg) => {
    const buf = Buffer.from(msg);
    if (isRtcp(buf)) {
      state.rtcpCount++;
      return;
    }
    rtp.push(buf);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (rtp.length >= waiters[i].n) waiters.splice(i, 1)[0].resolve();
    }
  });
  return state;
}

/** Variant 4 with libdatachannel: our recvonly Opus m-line (no mid given to the API), the server's answer. */
export async function ndcPullAudioWithOffer(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
  opts: { mid?: string } = {},
): Promise<NdcSubscriber> {
  const mid = opts.mid ?? "0";
  const pc = ndcPeer();
  try {
    const media = new Audio(mid, "RecvOnly");
    media.addOpusCodec(111, "minptime=10;useinbandfec=1");
    const track = pc.addTrack(media);
    const got = collector(track);
    const opened = trackOpen(track);
    opened.catch(() => {});
    pc.setLocalDescription("offer");
    const offer = await completeLocalDescription(pc);
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      sessionDescription: { type: "offer", sdp: offer.sdp },
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = res.tracks[0];
    if (item?.errorCode) throw new Error(`pull failed: ${item.errorCode} ${item.errorDescription}`);
    if (res.sessionDescription?.type !== "answer")
      throw new Error(`expected an answer, got ${JSON.stringify(res)}`);
    const started = performance.now();
    pc.setRemoteDescription(res.sessionDescription.sdp, "answer");
    await opened;
    return {
      pc,
      track,
      sessionId,
      mid,
      serverSdp: res.sessionDescription.sdp,
      localSdp: offer.sdp,
      connectMs: performance.now() - started,
      ...got,
      close: () => pc.close(),
    };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Variant 3 with libdatachannel: the server offers, libdatachannel answers, PUT renegotiate. */
export async function ndcPullAudio(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
): Promise<NdcSubscriber> {
  const pc = ndcPeer();
  try {
    const trackP = new Promise<Track>((resolve) => pc.onTrack(resolve));
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = res.tracks[0];
    if (item?.errorCode) throw new Error(`pull failed: ${item.errorCode} ${item.errorDescription}`);
    if (res.sessionDescription?.type !== "offer")
      throw new Error(`expected an offer, got ${JSON.stringify(res)}`);
    // libdatachannel answers a remote offer by itself (auto-negotiation) and announces the track.
    const started = performance.now();
    pc.setRemoteDescription(res.sessionDescription.sdp, "offer");
    const track = await trackP;
    const got = collector(track);
    const opened = trackOpen(track);
    opened.catch(() => {});
    const answer = await completeLocalDescription(pc);
    if (answer.type !== "answer") throw new Error(`expected a local answer, got ${answer.type}`);
    await api.renegotiate(sessionId, answer);
    await opened;
    return {
      pc,
      track,
      sessionId,
      mid: item?.mid ?? track.mid(),
      serverSdp: res.sessionDescription.sdp,
      localSdp: answer.sdp,
      connectMs: performance.now() - started,
      ...got,
      close: () => pc.close(),
    };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Frees libdatachannel's global threads so the process can exit. Call after every peer is closed. */
export function ndcCleanup(): void {
  cleanup();
}
