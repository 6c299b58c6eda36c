import type { RemoteCodec } from "./remote-description.ts";

/**
 * The codecs Patchbay forwards and how payload types are chosen. Forwarding never transcodes, so a
 * publisher is answered with exactly one codec (the first it prefers among ours): it can then only send
 * that one, and every subscriber is offered the publisher's codec with the publisher's format parameters.
 */
export type MediaKind = "audio" | "video";

export interface Codec {
  payloadType: number;
  /** Lower case ("opus", "vp8", "h264"). */
  name: string;
  clockRate: number;
  channels?: number;
  fmtp?: string;
  feedback: string[];
}

/** A codec without its payload type: what a track carries. */
export type CodecFormat = Omit<Codec, "payloadType" | "feedback">;

export const FEEDBACK: Record<MediaKind, readonly string[]> = {
  audio: [],
  video: ["nack", "nack pli", "ccm fir", "goog-remb"],
};

/** Our own preference, used when Patchbay writes the offer (push without an offer). */
export const DEFAULT_CODECS: Record<MediaKind, Codec[]> = {
  audio: [
    {
      payloadType: 111,
      name: "opus",
      clockRate: 48000,
      channels: 2,
      fmtp: "minptime=10;useinbandfec=1",
      feedback: [],
    },
  ],
  video: [
    { payloadType: 96, name: "vp8", clockRate: 90000, feedback: [...FEEDBACK.video] },
    {
      payloadType: 102,
      name: "h264",
      clockRate: 90000,
      fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
      feedback: [...FEEDBACK.video],
    },
  ],
};

export function parseFmtp(fmtp: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!fmtp) return out;
  for (const part of fmtp.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) {
      if (part.trim()) out.set(part.trim().toLowerCase(), "");
    } else out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return out;
}

/** H.264 streams are interchangeable when packetization mode and profile (profile_idc + constraints) agree. */
function h264Identity(fmtp: string | undefined): string {
  const p = parseFmtp(fmtp);
  const mode = p.get("packetization-mode") ?? "0";
  const profile = (p.get("profile-level-id") ?? "42001f").slice(0, 4).toLowerCase();
  // Constrained Baseline is written 42e0 or 42c0 (and often offered as 4200 + level-asymmetry-allowed).
  const normalized = profile === "42c0" ? "42e0" : profile;
  return `${mode}/${normalized}`;
}

/** The identity used for "the same codec" across m-lines and sessions (payload type aside). */
export function codecKey(c: { name: string; clockRate: number; channels?: number; fmtp?: string }): string {
  const base = `${c.name.toLowerCase()}/${c.clockRate}/${c.channels ?? 1}`;
  return c.name.toLowerCase() === "h264" ? `${base}/${h264Identity(c.fmtp)}` : base;
}

export function kindOfCodec(name: string): MediaKind | undefined {
  const n = name.toLowerCase();
  if (n === "opus") return "audio";
  if (n === "vp8" || n === "h264") return "video";
  return undefined;
}

/** Can Patchbay forward this offered codec? (Opus; VP8; H.264 with packetization-mode=1.) */
export function isForwardable(kind: MediaKind, c: RemoteCodec | Codec): boolean {
  if (kind === "audio") return c.name === "opus" && c.clockRate === 48000;
  if (c.clockRate !== 90000) return false;
  if (c.name === "vp8") return true;
  if (c.name === "h264") return parseFmtp(c.fmtp).get("packetization-mode") === "1";
  return false;
}

function negotiatedFeedback(kind: MediaKind, offered: readonly string[]): string[] {
  return FEEDBACK[kind].filter((f) => offered.includes(f));
}

/**
 * The one codec to answer a publisher with: the previous one when still offered (a publisher cannot
 * change codecs under its subscribers), otherwise the first forwardable codec in the peer's order.
 */
export function choosePublishCodec(
  kind: MediaKind,
  offered: RemoteCodec[],
  previous?: Codec,
): Codec | undefined {
  const candidates = offered.filter((c) => isForwardable(kind, c));
  const pick =
    (previous && candidates.find((c) => codecKey(c) === codecKey(previous))) ?? candidates[0] ?? undefined;
  if (!pick) return undefined;
  const codec: Codec = {
    payloadType: pick.payloadType,
    name: pick.name,
    clockRate: pick.clockRate,
    feedback: negotiatedFeedback(kind, pick.feedback),
  };
  if (pick.channels !== undefined) codec.channels = pick.channels;
  if (pick.fmtp !== undefined) codec.fmtp = pick.fmtp;
  return codec;
}

/** The offered codec a subscriber can receive a track of `format` with (its payload type, our parameters). */
export function chooseSubscribeCodec(
  kind: MediaKind,
  offered: RemoteCodec[],
  format: CodecFormat,
): Codec | undefined {
  const want = codecKey(format);
  const pick = offered.find((c) => codecKey(c) === want);
  if (!pick) return undefined;
  return {
    ...format,
    payloadType: pick.payloadType,
    feedback: negotiatedFeedback(kind, pick.feedback),
  };
}

/** Dynamic payload types, in the order we hand them out. */
const DYNAMIC = [
  ...Array.from({ length: 32 }, (_, i) => 96 + i),
  ...Array.from({ length: 29 }, (_, i) => 35 + i),
];

/**
 * A payload type for `key` that collides with nothing in the session: the one the session already uses
 * for this codec, else `preferred` if free, else the first free dynamic one. `taken` maps every payload
 * type any m-line of either side uses to its codec key (a BUNDLE group needs one meaning per number).
 */
export function allocatePayloadType(key: string, preferred: number, taken: Map<number, string>): number {
  for (const [pt, k] of taken) if (k === key) return pt;
  if (!taken.has(preferred)) return preferred;
  const free = DYNAMIC.find((pt) => !taken.has(pt));
  if (free === undefined) throw new Error("no free RTP payload type left in this session");
  return free;
}
