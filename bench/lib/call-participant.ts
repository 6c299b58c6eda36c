// One call participant for bench/call-setup.ts: a werift peer with ONE session that publishes audio +
// video with its own offer and pulls others in batches through server offers (the partytracks shape).

import { MediaStreamTrack, RtpHeader, RtpPacket } from "werift";
import type { ApiClient } from "../../src/client/api-client.ts";
import { avClientPeer, onReceivedRtp } from "../../test/helpers/rtc-client.ts";

export interface TrackRef {
  sessionId: string;
  trackName: string;
}

const key = (t: TrackRef) => `${t.sessionId}/${t.trackName}`;
/** A VP8 keyframe-shaped payload (descriptor S=1, payload header P=0) of a typical packet size. */
const VIDEO_PAYLOAD = Buffer.concat([Buffer.from([0x10, 0x00]), Buffer.alloc(900, 0x5a)]);
/** An Opus packet of silence-ish size (TOC + a few bytes). */
const AUDIO_PAYLOAD = Buffer.from([0xf8, 0xff, 0xfe]);

export class CallParticipant {
  readonly pc = avClientPeer();
  sessionId = "";
  readonly tracks: TrackRef[] = [];
  private readonly byMid = new Map<string, string>();
  private readonly received = new Map<string, number>();
  private waiters: (() => void)[] = [];
  private audio: MediaStreamTrack | undefined;
  private video: MediaStreamTrack | undefined;
  private seq = [1, 1];

  constructor(
    readonly name: string,
    readonly api: ApiClient,
  ) {
    onReceivedRtp(this.pc, (mid) => {
      const k = this.byMid.get(mid);
      if (!k) return;
      const n = (this.received.get(k) ?? 0) + 1;
      this.received.set(k, n);
      if (n === 1) for (const w of this.waiters) w();
    });
  }

  get trackKeys(): string[] {
    return this.tracks.map(key);
  }

  async publish(): Promise<void> {
    this.sessionId = (await this.api.newSession()).sessionId;
    this.audio = new MediaStreamTrack({ kind: "audio" });
    this.video = new MediaStreamTrack({ kind: "video" });
    const a = this.pc.addTransceiver(this.audio, { direction: "sendonly" });
    const v = this.pc.addTransceiver(this.video, { direction: "sendonly" });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const names = [`${this.name}-mic`, `${this.name}-cam`];
    const res = await this.api.newTracks(this.sessionId, {
      sessionDescription: { type: "offer", sdp: this.pc.localDescription!.sdp },
      tracks: [
        { location: "local", mid: a.mid!, trackName: names[0] },
        { location: "local", mid: v.mid!, trackName: names[1] },
      ],
    });
    const failed = res.tracks.find((t) => t.errorCode);
    if (failed) throw new Error(`${this.name} publish: ${JSON.stringify(failed)}`);
    await this.pc.setRemoteDescription(res.sessionDescription!);
    for (const trackName of names) this.tracks.push({ sessionId: this.sessionId, trackName });
  }

  /** One tracks/new for all of `refs`; the server's offer answered through PUT renegotiate. */
  async pull(refs: TrackRef[]): Promise<void> {
    if (refs.length === 0) return;
    const res = await this.api.newTracks(this.sessionId, {
      tracks: refs.map((r) => ({ location: "remote" as const, ...r })),
    });
    res.tracks.forEach((t, i) => {
      if (t.errorCode || !t.mid) throw new Error(`${this.name} pull: ${JSON.stringify(t)}`);
      this.byMid.set(t.mid, key(refs[i]));
    });
    if (!res.requiresImmediateRenegotiation) return;
    await this.pc.setRemoteDescription(res.sessionDescription!);
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await this.api.renegotiate(this.sessionId, { type: "answer", sdp: this.pc.localDescription!.sdp });
  }

  /** Called by the shared pacer every 20 ms: audio every tick, video every third. */
  sendTick(tick: number): void {
    if (!this.audio || !this.video) return;
    this.write(this.audio, 0, 111, 960, AUDIO_PAYLOAD);
    if (tick % 3 === 0) this.write(this.video, 1, 96, 5400, VIDEO_PAYLOAD);
  }

  private write(
    track: MediaStreamTrack,
    i: number,
    payloadType: number,
    step: number,
    payload: Buffer,
  ): void {
    const seq = this.seq[i]++;
    const header = new RtpHeader({
      payloadType,
      sequenceNumber: seq & 0xffff,
      timestamp: (seq * step) >>> 0,
      ssrc: 0,
      marker: true,
    });
    track.writeRtp(new RtpPacket(header, payload));
  }

  /** Resolves once every track in `keys` delivered a packet here. */
  waitFlowing(keys: string[], timeoutMs: number): Promise<void> {
    const done = () => keys.every((k) => (this.received.get(k) ?? 0) > 0);
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `${this.name}: ${keys.filter((k) => !this.received.get(k)).length} of ${keys.length} streams silent after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  close(): Promise<void> {
    return this.pc.close();
  }
}
