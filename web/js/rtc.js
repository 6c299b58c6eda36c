// WebRTC flows against the Cloudflare-compatible API, as a browser client of Cloudflare Realtime would do them.
import { ApiError } from "./api.js";

const PC_CONFIG = /** @type {RTCConfiguration} */ ({ iceServers: [], bundlePolicy: "max-bundle" });

/** Resolves when the peer connection is connected; rejects on failed/closed or after `timeoutMs`. */
export function waitConnected(pc, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === "connected") done();
      else if (pc.connectionState === "failed" || pc.connectionState === "closed")
        done(new Error(`the peer connection ${pc.connectionState}`));
    };
    const timer = setTimeout(
      () => done(new Error(`not connected after ${timeoutMs / 1000} s (ICE ${pc.iceConnectionState})`)),
      timeoutMs,
    );
    const done = (err) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", check);
      if (err) reject(err);
      else resolve(undefined);
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/** The first item of a tracks/new answer; its item error (already reported by Api) becomes an exception. */
function firstItem(res, path) {
  const item = res?.tracks?.[0];
  if (!item) throw new Error(`${path} answered without a track item`);
  if (item.errorCode) {
    const err = new ApiError({
      method: "POST",
      path,
      status: 200,
      errorCode: item.errorCode,
      errorDescription: item.errorDescription ?? "",
      items: [item],
    });
    err.reported = true;
    throw err;
  }
  return item;
}

/**
 * Publishes the microphone: a sendonly transceiver, our offer, `tracks/new` with `location: "local"` and the
 * transceiver's mid (push with an offer, variant 1).
 * @param {import("./api.js").Api} api
 * @param {{trackName: string, deviceId?: string}} opts
 */
export async function publishMic(api, opts) {
  const audio = {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
    ...(opts.deviceId ? { deviceId: { exact: opts.deviceId } } : {}),
  };
  const stream = await navigator.mediaDevices.getUserMedia({ audio });
  const track = stream.getAudioTracks()[0];
  const pc = new RTCPeerConnection(PC_CONFIG);
  try {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await api.call("POST", "sessions/new");
    const path = `sessions/${sessionId}/tracks/new`;
    const res = await api.call("POST", path, {
      sessionDescription: { type: "offer", sdp: pc.localDescription?.sdp },
      tracks: [{ location: "local", mid: transceiver.mid, trackName: opts.trackName }],
    });
    const item = firstItem(res, path);
    await pc.setRemoteDescription(res.sessionDescription);
    return {
      pc,
      stream,
      track,
      sessionId,
      mid: String(item.mid ?? transceiver.mid),
      trackName: String(item.trackName ?? opts.trackName),
    };
  } catch (err) {
    pc.close();
    for (const t of stream.getTracks()) t.stop();
    throw err;
  }
}

/**
 * Pulls a track the way Cloudflare's TTS player does: a recvonly transceiver, our offer, `tracks/new` with
 * `location: "remote"` and no mid (variant 4); the server answers and its a=msid gives us `streams[0]`.
 * @param {import("./api.js").Api} api
 * @param {{sessionId: string, trackName: string}} from
 */
export async function pullTrack(api, from) {
  const pc = new RTCPeerConnection(PC_CONFIG);
  try {
    /** @type {Promise<RTCTrackEvent>} */
    const gotTrack = new Promise((resolve) => pc.addEventListener("track", resolve, { once: true }));
    pc.addTransceiver("audio", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await api.call("POST", "sessions/new");
    const path = `sessions/${sessionId}/tracks/new`;
    const res = await api.call("POST", path, {
      sessionDescription: { type: "offer", sdp: pc.localDescription?.sdp },
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = firstItem(res, path);
    await pc.setRemoteDescription(res.sessionDescription);
    const ev = await Promise.race([
      gotTrack,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("the answer brought no track (no track event)")), 10_000),
      ),
    ]);
    const stream = ev.streams[0] ?? new MediaStream([ev.track]);
    return { pc, sessionId, mid: String(item.mid ?? ""), stream };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Closes one of our tracks on the server (`tracks/close` with force: no renegotiation), then the peer
 * connection. The server's error, if any, is reported by Api and does not stop the local cleanup.
 * @param {import("./api.js").Api} api
 */
export async function closeTrack(api, sessionId, mid, pc) {
  try {
    if (mid) await api.call("PUT", `sessions/${sessionId}/tracks/close`, { tracks: [{ mid }], force: true });
  } finally {
    pc.close();
  }
}

/** The inbound audio RTP stats of a peer connection (the receiving side of a pull). */
export async function inboundAudio(pc) {
  const report = await pc.getStats();
  let found = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio")
      found = {
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        jitterMs: (s.jitter ?? 0) * 1000,
        audioLevel: s.audioLevel ?? 0,
        totalAudioEnergy: s.totalAudioEnergy ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
      };
  });
  return found;
}

/** The outbound audio RTP stats of a peer connection (the sending side of a publish). */
export async function outboundAudio(pc) {
  const report = await pc.getStats();
  let found = null;
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio")
      found = { packetsSent: s.packetsSent ?? 0, bytesSent: s.bytesSent ?? 0 };
  });
  return found;
}
