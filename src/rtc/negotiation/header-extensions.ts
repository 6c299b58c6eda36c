import type { MediaKind } from "./codecs.ts";
import type { Extension } from "./remote-description.ts";

export const EXT = {
  mid: "urn:ietf:params:rtp-hdrext:sdes:mid",
  rid: "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
  audioLevel: "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
  videoOrientation: "urn:3gpp:video-orientation",
  playoutDelay: "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
} as const;

/**
 * What Patchbay negotiates per kind and direction. MID (and RID for simulcast publishers) route inbound
 * packets; the others carry meaning a subscriber can use unchanged, so they are forwarded with their id
 * rewritten to the subscriber's. Everything else (abs-send-time, transport-cc…) would need Patchbay to
 * act on it, so it is not negotiated until it does.
 */
const RECEIVE: Record<MediaKind, readonly string[]> = {
  audio: [EXT.mid, EXT.audioLevel],
  video: [EXT.mid, EXT.rid, EXT.videoOrientation, EXT.playoutDelay],
};
const SEND: Record<MediaKind, readonly string[]> = {
  audio: [EXT.mid, EXT.audioLevel],
  video: [EXT.mid, EXT.videoOrientation, EXT.playoutDelay],
};

/** Extensions forwarded from publisher to subscriber (id rewritten). */
export const FORWARDED_EXTENSIONS: readonly string[] = [
  EXT.audioLevel,
  EXT.videoOrientation,
  EXT.playoutDelay,
];

export function supportedExtensions(kind: MediaKind, send: boolean, receive: boolean): string[] {
  const out = new Set<string>();
  if (send) for (const u of SEND[kind]) out.add(u);
  if (receive) for (const u of RECEIVE[kind]) out.add(u);
  if (!send && !receive) for (const u of SEND[kind]) out.add(u);
  return [...out];
}

/** Answering: keep the offered ids of what we support, in the offer's order. */
export function answerExtensions(offered: Extension[], supported: string[]): Extension[] {
  return offered.filter((e) => supported.includes(e.uri));
}

/**
 * Offering: one id per URI for the whole session (Chromium rejects a BUNDLE group where one id means two
 * URIs). An URI the session already numbers keeps its id; a new one gets the lowest id in 1–14 (one-byte
 * header form) that no m-line of either side uses. With none left the extension is simply not offered.
 */
export function offerExtensions(
  uris: string[],
  sessionIds: Map<string, number>,
  usedIds: Set<number>,
): Extension[] {
  const out: Extension[] = [];
  for (const uri of uris) {
    let id = sessionIds.get(uri);
    if (id === undefined) {
      for (let candidate = 1; candidate <= 14; candidate++) {
        if (!usedIds.has(candidate)) {
          id = candidate;
          break;
        }
      }
      if (id === undefined) continue;
      sessionIds.set(uri, id);
      usedIds.add(id);
    }
    out.push({ id, uri });
  }
  return out;
}
