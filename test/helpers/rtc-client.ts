import { Decoder, Encoder } from "@evan/opus";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
  useFIR,
  useNACK,
  usePLI,
  useSdesMid,
} from "werift";
import type { ApiClient } from "../../src/client/api-client.ts";

function opus(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "audio/opus",
    clockRate: 48000,
    channels: 2,
    payloadType: 111,
    parameters: "minptime=10;useinbandfec=1",
  });
}

function videoCodecs(): RTCRtpCodecParameters[] {
  const feedback = () => [useNACK(), usePLI(), useFIR()];
  return [
    new RTCRtpCodecParameters({
      mimeType: "video/VP8",
      clockRate: 90000,
      payloadType: 96,
      rtcpFeedback: feedback(),
    }),
    new RTCRtpCodecParameters({
      mimeType: "video/H264",
      clockRate: 90000,
      payloadType: 102,
      parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
      rtcpFeedback: feedback(),
    }),
  ];
}

/**
 * A werift peer on loopback. `iceServers: []` keeps it from gathering against public STUN. `video` adds
 * VP8 and H.264 with the RTCP feedback an SFU expects; `iceLite` makes it a lite agent, as third-party
 * WebRTC servers (realtime AI endpoints, other SFUs) are.
 */
export function clientPeer(opts: { video?: boolean; iceLite?: boolean } = {}): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: [],
    iceUseIpv6: false,
    iceLite: opts.iceLite ?? false,
    // One transport for every m-line: with werift's default policy extra ICE sockets outlive close().
    bundlePolicy: "max-bundle",
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
    codecs: { audio: [opus()], video: opts.video ? videoCodecs() : [] },
    headerExtensions: { audio: [useSdesMid()], video: opts.video ? [useSdesMid()] : [] },
  });
}

/**
 * Calls `onRtp(mid, packet)` for every RTP packet any receiving transceiver of `pc` gets. werift
 * announces a receiving track again on every renegotiation: each track is listened to once.
 */
export function onReceivedRtp(pc: RTCPeerConnection, onRtp: (mid: string, packet: RtpPacket) => void): void {
  const seen = new WeakSet<object>();
  pc.onTrack.subscribe((track) => {
    if (seen.has(track)) return;
    seen.add(track);
    const transceiver = pc.getTransceivers().find((t) => t.receiver.tracks.includes(track));
    track.onReceiveRtp.subscribe((rtp) => {
      if (transceiver?.mid) onRtp(transceiver.mid, rtp);
    });
  });
}

/** A werift client that also does video. */
export function avClientPeer(): RTCPeerConnection {
  return clientPeer({ video: true });
}

/**
 * Write 20 ms frames to a werift track in real time: frame k leaves at t0 + k × 20 ms on an absolute clock
 * (chained relative sleeps run slower than real time). `first` numbers the first packet.
 */
export async function sendRealtime(
  track: { writeRtp(packet: RtpPacket): void },
  frames: Uint8Array[],
  first: { sequenceNumber: number; timestamp: number } = { sequenceNumber: 1000, timestamp: 5000 },
): Promise<{ sequenceNumber: number; timestamp: number }> {
  const t0 = performance.now();
  for (let k = 0; k < frames.length; k++) {
    const wait = t0 + k * 20 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const header = new RtpHeader({
      payloadType: 111,
      sequenceNumber: (first.sequenceNumber + k) & 0xffff,
      timestamp: (first.timestamp + k * 960) >>> 0,
      ssrc: 0,
      marker: k === 0,
    });
    track.writeRtp(new RtpPacket(header, Buffer.from(frames[k])));
  }
  return {
    sequenceNumber: (first.sequenceNumber + frames.length) & 0xffff,
    timestamp: (first.timestamp + frames.length * 960) >>> 0,
  };
}

/**
 * Answer a server offer the way a browser app does for a push without an offer: every transceiver the
 * offer created starts sending a track of its kind. Returns the answer and the tracks.
 */
export async function answerSending(
  pc: RTCPeerConnection,
  offer: { type: "offer" | "answer"; sdp: string },
): Promise<{ answer: { type: "answer"; sdp: string }; tracks: MediaStreamTrack[] }> {
  const before = new Set(pc.getTransceivers());
  await pc.setRemoteDescription(offer);
  const tracks: MediaStreamTrack[] = [];
  for (const tr of pc.getTransceivers()) {
    if (before.has(tr)) continue;
    const track = new MediaStreamTrack({ kind: tr.kind as "audio" | "video" });
    tr.setDirection("sendonly");
    await tr.sender.replaceTrack(track);
    tracks.push(track);
  }
  await pc.setLocalDescription(await pc.createAnswer());
  return { answer: { type: "answer", sdp: pc.localDescription!.sdp }, tracks };
}

export function waitConnected(pc: RTCPeerConnection, timeoutMs = 10_000): Promise<void> {
  if (pc.connectionState === "connected") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not connected after ${timeoutMs} ms`)), timeoutMs);
    const { unSubscribe } = pc.connectionStateChange.subscribe((s) => {
      if (s === "connected") {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      }
    });
  });
}

/** Encode stereo 48 kHz PCM into 20 ms Opus packets. */
export function encodeOpus(pcm: Int16Array): Uint8Array[] {
  const enc = new Encoder({ channels: 2, sample_rate: 48000, application: "audio" });
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1920 <= pcm.length; i += 1920) out.push(enc.encode(pcm.subarray(i, i + 1920)).slice());
  return out;
}

/** Decode a packet sequence to stereo PCM (a missing packet becomes 20 ms of silence). */
export function decodeOpus(packets: (Uint8Array | undefined)[]): Int16Array {
  const dec = new Decoder({ channels: 2, sample_rate: 48000 });
  const out = new Int16Array(packets.length * 1920);
  packets.forEach((p, i) => {
    if (!p) return;
    const pcm = new Int16Array(dec.decode(p).slice().buffer);
    out.set(pcm.subarray(0, 1920), i * 1920);
  });
  return out;
}

export interface Publisher {
  pc: RTCPeerConnection;
  sessionId: string;
  trackName: string;
  mid: string;
  /** Send packets with consecutive sequence numbers/timestamps, `intervalMs` apart. */
  send(payloads: Uint8Array[], intervalMs?: number): Promise<RtpPacket[]>;
  /** Send one raw RTP packet as is. */
  sendRaw(packet: RtpPacket): void;
  close(): Promise<void>;
}

/** Variant 1: push with the client's offer. */
export async function publishAudio(api: ApiClient, trackName = "mic"): Promise<Publisher> {
  const pc = clientPeer();
  const track = new MediaStreamTrack({ kind: "audio" });
  const tr = pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const { sessionId } = await api.newSession();
  const res = await api.newTracks(sessionId, {
    sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
    tracks: [{ location: "local", mid: tr.mid!, trackName }],
  });
  await pc.setRemoteDescription(res.sessionDescription!);
  await waitConnected(pc);
  let seq = 1000;
  let ts = 5000;
  return {
    pc,
    sessionId,
    trackName,
    mid: tr.mid!,
    async send(payloads, intervalMs = 2) {
      const sent: RtpPacket[] = [];
      const t0 = performance.now();
      for (const p of payloads) {
        const pkt = new RtpPacket(
          new RtpHeader({
            payloadType: 111,
            sequenceNumber: seq,
            timestamp: ts,
            ssrc: 0,
            marker: sent.length === 0,
          }),
          Buffer.from(p),
        );
        seq = (seq + 1) & 0xffff;
        ts = (ts + 960) >>> 0;
        sent.push(pkt.clone());
        track.writeRtp(pkt);
        // Absolute pacing (t0 + n × interval): chained sleeps would drift slower than real time.
        if (intervalMs > 0) {
          const due = t0 + sent.length * intervalMs;
          await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
        }
      }
      return sent;
    },
    sendRaw(packet) {
      track.writeRtp(packet);
    },
    close: () => pc.close(),
  };
}

export interface Subscriber {
  pc: RTCPeerConnection;
  sessionId: string;
  mid: string;
  transceiver: RTCRtpTransceiver;
  packets: RtpPacket[];
  /** performance.now() at each packet's arrival (parallel to `packets`). */
  times: number[];
  /** Resolves when at least `n` packets arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<RtpPacket[]>;
  close(): Promise<void>;
}

function collect(pc: RTCPeerConnection): Pick<Subscriber, "packets" | "times" | "waitFor"> {
  const packets: RtpPacket[] = [];
  const times: number[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      packets.push(rtp.clone());
      times.push(performance.now());
      for (const w of [...waiters]) if (packets.length >= w.n) w.resolve();
    });
  });
  return {
    packets,
    times,
    waitFor(n, timeoutMs = 10_000) {
      if (packets.length >= n) return Promise.resolve(packets);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${packets.length} of ${n} packets after ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(packets);
          },
        });
      });
    },
  };
}

/** Variant 3: pull without an offer, answer the server's offer through PUT renegotiate. */
export async function pullAudio(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
): Promise<Subscriber> {
  const pc = clientPeer();
  const got = collect(pc);
  const { sessionId } = await api.newSession();
  const res = await api.newTracks(sessionId, {
    tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
  });
  if (res.tracks[0].errorCode)
    throw new Error(`pull failed: ${res.tracks[0].errorCode} ${res.tracks[0].errorDescription}`);
  await pc.setRemoteDescription(res.sessionDescription!);
  await pc.setLocalDescription(await pc.createAnswer());
  await api.renegotiate(sessionId, { type: "answer", sdp: pc.localDescription!.sdp });
  await waitConnected(pc);
  const mid = res.tracks[0].mid!;
  return { pc, sessionId, mid, transceiver: pc.getTransceivers()[0], ...got, close: () => pc.close() };
}

/** Variant 4: pull with the client's own recvonly offer. */
export async function pullAudioWithOffer(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
): Promise<Subscriber & { answerSdp: string }> {
  const pc = clientPeer();
  const got = collect(pc);
  const tr = pc.addTransceiver("audio", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const { sessionId } = await api.newSession();
  const res = await api.newTracks(sessionId, {
    sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
    tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
  });
  if (res.tracks[0].errorCode)
    throw new Error(`pull failed: ${res.tracks[0].errorCode} ${res.tracks[0].errorDescription}`);
  await pc.setRemoteDescription(res.sessionDescription!);
  await waitConnected(pc);
  return {
    pc,
    sessionId,
    mid: tr.mid!,
    transceiver: tr,
    answerSdp: res.sessionDescription!.sdp,
    ...got,
    close: () => pc.close(),
  };
}

/**
 * Publishes `payloads` as a microphone would: packet k leaves at t0 + k × 20 ms on an absolute clock
 * (`pub.send` chains relative timers, which run slower than real time and starve the paced adapters).
 */
export async function publishRealtime(pub: Publisher, payloads: Uint8Array[]): Promise<void> {
  await sendRealtime({ writeRtp: (p) => pub.sendRaw(p) }, payloads);
}
