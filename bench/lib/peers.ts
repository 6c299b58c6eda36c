// werift peers for the load generators: publish one Opus track (variant 1, the client's offer) or pull one
// (variant 3, the server's offer answered through PUT renegotiate), as test/helpers/rtc-client.ts does, but
// with a connect timeout, cleanup on failure, and a per-packet callback instead of storing packets.

import { MediaStreamTrack, type RTCPeerConnection, type RtpPacket } from "werift";
import type { ApiClient } from "../../src/client/api-client.ts";
import { clientPeer, waitConnected } from "../../test/helpers/rtc-client.ts";

export interface PublishedTrack {
  pc: RTCPeerConnection;
  track: MediaStreamTrack;
  sessionId: string;
  trackName: string;
}

/** A sendonly audio peer publishing `trackName` in a new session; resolves once connected. */
export async function publishAudioTrack(
  api: ApiClient,
  trackName: string,
  timeoutMs: number,
): Promise<PublishedTrack> {
  const pc = clientPeer();
  try {
    const track = new MediaStreamTrack({ kind: "audio" });
    const tr = pc.addTransceiver(track, { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
      tracks: [{ location: "local", mid: tr.mid!, trackName }],
    });
    if (res.tracks[0]?.errorCode) throw new Error(`publish failed: ${res.tracks[0].errorCode}`);
    await pc.setRemoteDescription(res.sessionDescription!);
    await waitConnected(pc, timeoutMs);
    return { pc, track, sessionId, trackName };
  } catch (err) {
    await pc.close().catch(() => {});
    throw err;
  }
}

/** A peer pulling `from` into a new session; every received RTP packet goes to `onRtp`. */
export async function pullAudioTrack(
  api: ApiClient,
  from: { sessionId: string; trackName: string },
  timeoutMs: number,
  onRtp: (rtp: RtpPacket) => void,
): Promise<RTCPeerConnection> {
  const pc = clientPeer();
  try {
    pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe(onRtp);
    });
    const { sessionId } = await api.newSession();
    const res = await api.newTracks(sessionId, {
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    if (res.tracks[0]?.errorCode)
      throw new Error(`pull failed: ${res.tracks[0].errorCode} ${res.tracks[0].errorDescription}`);
    await pc.setRemoteDescription(res.sessionDescription!);
    await pc.setLocalDescription(await pc.createAnswer());
    await api.renegotiate(sessionId, { type: "answer", sdp: pc.localDescription!.sdp });
    await waitConnected(pc, timeoutMs);
    return pc;
  } catch (err) {
    await pc.close().catch(() => {});
    throw err;
  }
}
