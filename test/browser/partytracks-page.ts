/**
 * The browser side of the partytracks tests: Cloudflare's own client library (partytracks/client, from
 * npm, unchanged) driving one participant of a call, the way Orange Meets does: one PartyTracks instance
 * = one session that pushes its mic and camera and pulls everyone else's. Bundled by esbuild in
 * test/helpers/partytracks-app.ts and exposed to the test as `window.call`.
 */
import { PartyTracks, setLogLevel } from "partytracks/client";
import { BehaviorSubject, firstValueFrom, of, type Subscription } from "rxjs";

export interface TrackMeta {
  location: "remote";
  sessionId: string;
  trackName: string;
}

export interface PublishOptions {
  audio?: boolean;
  video?: boolean;
  width?: number;
  height?: number;
  /** Simulcast layers, e.g. [{rid:"a"},{rid:"b",scaleResolutionDownBy:2}] (Orange Meets' shape). */
  encodings?: { rid: string; scaleResolutionDownBy?: number; maxBitrate?: number }[];
}

export interface Inbound {
  kind: string;
  packetsReceived: number;
  bytesReceived: number;
  audioLevel?: number;
  totalAudioEnergy?: number;
  framesDecoded?: number;
  frameWidth?: number;
  frameHeight?: number;
  trackEnded: boolean;
}

export interface FrameLog {
  /** performance.now() of every rendered frame and its size. */
  t: number[];
  w: number[];
}

interface Pushed {
  meta: Promise<TrackMeta>;
  sub: Subscription;
  track: MediaStreamTrack;
}
interface Pulled {
  track: Promise<MediaStreamTrack>;
  sub: Subscription;
  rid$?: BehaviorSubject<string>;
  frames: FrameLog;
}

setLogLevel("warn");
const partyTracks = new PartyTracks();
const pushed = new Map<string, Pushed>();
const pulled = new Map<string, Pulled>();

function firstOf<T>(source: { subscribe(o: { next(v: T): void; error(e: unknown): void }): Subscription }): {
  value: Promise<T>;
  sub: Subscription;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const value = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const sub = source.subscribe({ next: (v) => resolve(v), error: (e) => reject(e) });
  return { value, sub };
}

async function publish(opts: PublishOptions): Promise<{ audio?: TrackMeta; video?: TrackMeta }> {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: opts.audio ?? true,
    video:
      opts.video === false ? false : { width: opts.width ?? 320, height: opts.height ?? 240, frameRate: 30 },
  });
  const out: { audio?: TrackMeta; video?: TrackMeta } = {};
  for (const track of stream.getTracks()) {
    const kind = track.kind as "audio" | "video";
    const encodings = kind === "video" && opts.encodings ? opts.encodings : [];
    const meta$ = partyTracks.push(of(track), { sendEncodings$: of(encodings) });
    const { value, sub } = firstOf<TrackMeta>(meta$ as never);
    pushed.set(kind, { meta: value, sub, track });
  }
  for (const [kind, p] of pushed) out[kind as "audio" | "video"] = await p.meta;
  return out;
}

/** Stop pushing one kind (partytracks closes the transceiver: tracks/close with its offer). */
function unpublish(kind: "audio" | "video"): void {
  const p = pushed.get(kind);
  if (!p) throw new Error(`nothing pushed for ${kind}`);
  p.sub.unsubscribe();
  p.track.stop();
  pushed.delete(kind);
}

async function pull(key: string, meta: TrackMeta, preferredRid?: string): Promise<string> {
  const rid$ = preferredRid === undefined ? undefined : new BehaviorSubject(preferredRid);
  const track$ = partyTracks.pull(of(meta), rid$ ? { simulcast: { preferredRid$: rid$ } } : {});
  const { value, sub } = firstOf<MediaStreamTrack>(track$ as never);
  const frames: FrameLog = { t: [], w: [] };
  pulled.set(key, { track: value, sub, rid$, frames });
  const track = await value;
  const el = document.createElement(track.kind === "video" ? "video" : "audio");
  el.id = key;
  el.autoplay = true;
  el.muted = track.kind === "video";
  el.srcObject = new MediaStream([track]);
  document.body.append(el);
  if (el instanceof HTMLVideoElement) {
    const onFrame = (_now: number, m: VideoFrameCallbackMetadata) => {
      frames.t.push(performance.now());
      frames.w.push(m.width);
      el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
  }
  await el.play().catch(() => {});
  return track.kind;
}

function setRid(key: string, rid: string): void {
  const p = pulled.get(key);
  if (!p?.rid$) throw new Error(`${key} was not pulled with a preferredRid`);
  p.rid$.next(rid);
}

function unpull(key: string): void {
  pulled.get(key)?.sub.unsubscribe();
  pulled.delete(key);
}

async function inbound(key: string): Promise<Inbound | undefined> {
  const p = pulled.get(key);
  if (!p) return undefined;
  const track = await p.track;
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  const receiver = pc.getReceivers().find((r) => r.track === track);
  if (!receiver) return undefined;
  const stats = await receiver.getStats();
  let out: Inbound | undefined;
  stats.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    out = {
      kind: s.kind,
      packetsReceived: s.packetsReceived ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
      audioLevel: s.audioLevel,
      totalAudioEnergy: s.totalAudioEnergy,
      framesDecoded: s.framesDecoded,
      frameWidth: s.frameWidth,
      frameHeight: s.frameHeight,
      trackEnded: track.readyState === "ended",
    };
  });
  return out;
}

function frames(key: string): FrameLog | undefined {
  const p = pulled.get(key);
  return p ? { t: [...p.frames.t], w: [...p.frames.w] } : undefined;
}

async function signalingState(): Promise<string> {
  const pc = await firstValueFrom(partyTracks.peerConnection$);
  return `${pc.signalingState}/${pc.connectionState}`;
}

function leave(): void {
  for (const p of pulled.values()) p.sub.unsubscribe();
  for (const p of pushed.values()) {
    p.sub.unsubscribe();
    p.track.stop();
  }
  pulled.clear();
  pushed.clear();
}

/** The API calls partytracks made (request and response bodies), for failure messages. */
function history(): unknown[] {
  return partyTracks.history.entries.slice(-30);
}

const api = { publish, unpublish, pull, setRid, unpull, inbound, frames, signalingState, leave, history };
export type CallApi = typeof api;
(window as unknown as { call: CallApi }).call = api;
