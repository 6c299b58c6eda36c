/**
 * One participant of a call as Cloudflare's clients shape it, with a werift peer: ONE session that
 * publishes its own audio and pulls everyone else's, renegotiating as people come and go (server offers
 * answered through PUT renegotiate, the client's own offers for publishing and closing).
 */
import { MediaStreamTrack, type RTCPeerConnection, type RTCRtpTransceiver, type RtpPacket } from "werift";
import type { ApiClient } from "../../src/client/api-client.ts";
import { avClientPeer, onReceivedRtp, sendRealtime, waitConnected } from "./rtc-client.ts";

export interface Pulled {
  mid: string;
  from: { sessionId: string; trackName: string };
  packets: RtpPacket[];
}

export class CallPeer {
  readonly pc: RTCPeerConnection = avClientPeer();
  sessionId = "";
  /** Pulled tracks by mid. */
  readonly pulled = new Map<string, Pulled>();
  private readonly published = new Map<string, { transceiver: RTCRtpTransceiver; track: MediaStreamTrack }>();
  private next = { sequenceNumber: 100, timestamp: 1000 };

  constructor(
    readonly name: string,
    readonly api: ApiClient,
  ) {
    onReceivedRtp(this.pc, (mid, rtp) => this.pulled.get(mid)?.packets.push(rtp.clone()));
  }

  /** Variant 1 on this participant's one session (created on first use). */
  async publish(trackName: string): Promise<{ sessionId: string; trackName: string }> {
    if (!this.sessionId) this.sessionId = (await this.api.newSession()).sessionId;
    const track = new MediaStreamTrack({ kind: "audio" });
    const transceiver = this.pc.addTransceiver(track, { direction: "sendonly" });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const res = await this.api.newTracks(this.sessionId, {
      sessionDescription: { type: "offer", sdp: this.pc.localDescription!.sdp },
      tracks: [{ location: "local", mid: transceiver.mid!, trackName }],
    });
    if (res.tracks[0]?.errorCode) throw new Error(`${this.name} publish: ${JSON.stringify(res.tracks[0])}`);
    await this.pc.setRemoteDescription(res.sessionDescription!);
    await waitConnected(this.pc);
    this.published.set(trackName, { transceiver, track });
    return { sessionId: this.sessionId, trackName };
  }

  /** Variant 3 on the same session: the server offers, we answer through PUT renegotiate. */
  async pull(from: { sessionId: string; trackName: string }): Promise<string> {
    const res = await this.api.newTracks(this.sessionId, {
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = res.tracks[0];
    if (!item || item.errorCode || !item.mid) throw new Error(`${this.name} pull: ${JSON.stringify(res)}`);
    this.pulled.set(item.mid, { mid: item.mid, from, packets: [] });
    if (res.requiresImmediateRenegotiation) {
      await this.pc.setRemoteDescription(res.sessionDescription!);
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await this.api.renegotiate(this.sessionId, { type: "answer", sdp: this.pc.localDescription!.sdp });
    }
    return item.mid;
  }

  /** Stop publishing: the transceiver stops, our offer goes with tracks/close, the server answers. */
  async unpublish(trackName: string): Promise<void> {
    const p = this.published.get(trackName);
    if (!p?.transceiver.mid) throw new Error(`${this.name} did not publish ${trackName}`);
    const mid = p.transceiver.mid;
    p.transceiver.setDirection("inactive");
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const res = await this.api.closeTracks(this.sessionId, {
      tracks: [{ mid }],
      sessionDescription: { type: "offer", sdp: this.pc.localDescription!.sdp },
      force: false,
    });
    if (res.tracks[0]?.errorCode) throw new Error(`${this.name} unpublish: ${JSON.stringify(res)}`);
    await this.pc.setRemoteDescription(res.sessionDescription!);
    this.published.delete(trackName);
  }

  /** Publish `payloads` (20 ms Opus frames) in real time on an absolute clock. */
  async send(trackName: string, payloads: Uint8Array[]): Promise<void> {
    const p = this.published.get(trackName);
    if (!p) throw new Error(`${this.name} did not publish ${trackName}`);
    this.next = await sendRealtime(p.track, payloads, this.next);
  }

  packetsFrom(trackName: string): RtpPacket[] {
    for (const p of this.pulled.values()) if (p.from.trackName === trackName) return p.packets;
    return [];
  }

  close(): Promise<void> {
    return this.pc.close();
  }
}
