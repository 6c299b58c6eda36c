// The console's shared state and a tiny event bus between its panels.

/**
 * @typedef {{location: "local"|"remote", mid: string, trackName: string, sessionId?: string,
 *   status: "active"|"inactive"}} TrackInfo
 * @typedef {"mic"|"pull"|"ingest"|"source"|"watched"} SessionRole
 * @typedef {{id: string, role: SessionRole, label: string, state: "checking"|"open"|"closed"|"missing"|"error",
 *   tracks: TrackInfo[], detail?: string, checkedAt?: number, earlier?: boolean}} SessionEntry
 * @typedef {{adapterId: string, direction: "ingest"|"egress", state: "connecting"|"open"|"reconnecting"|"closed",
 *   closeReason?: string, trackName: string, sessionId: string, endpoint: string, createdAt: string,
 *   closedAt?: string, bytesProcessed: number, messages: number, frames: number, queuedMs: number,
 *   underruns: number, droppedFrames: number, reconnects: number}} AdapterStatus
 * @typedef {{id: string, from: {sessionId: string, trackName: string}, sessionId: string, mid: string,
 *   pc: RTCPeerConnection, stream: MediaStream, audio: HTMLAudioElement, meter: import("./audio.js").Meter,
 *   el: HTMLElement, stats: {packetsReceived: number, packetsLost: number, jitterMs: number,
 *   audioLevel: number, totalAudioEnergy: number} | null, maxAudioLevel: number, ended: boolean}} Pull
 * @typedef {{pc: RTCPeerConnection, stream: MediaStream, track: MediaStreamTrack, sessionId: string,
 *   mid: string, trackName: string, meter: import("./audio.js").Meter}} Mic
 */

export const state = {
  /** @type {import("./api.js").Api | null} */
  api: null,
  /** Whether this server serves the built-in examples (null: unknown). @type {boolean | null} */
  examples: null,
  /** The app's examples token when the server asks for one (bound beyond loopback). @type {string | null} */
  examplesToken: null,
  /** @type {Mic | null} */
  mic: null,
  /** @type {Map<string, Pull>} */
  pulls: new Map(),
  /** @type {Map<string, SessionEntry>} */
  sessions: new Map(),
  /** Session ids the user removed from the list (not re-added by the adapter poll). @type {Set<string>} */
  dismissed: new Set(),
  /** Latest GET adapters/websocket answer. @type {AdapterStatus[]} */
  adapters: [],
};

const bus = new EventTarget();

/** @param {"sessions"|"adapters"|"mic"|"pulls"|"recorder"} name */
export function emit(name) {
  bus.dispatchEvent(new Event(name));
}

/** @param {"sessions"|"adapters"|"mic"|"pulls"|"recorder"} name @param {() => void} fn */
export function on(name, fn) {
  bus.addEventListener(name, fn);
}

/** The API client; throws when signed out (buttons are hidden then, so this is a bug guard). */
export function api() {
  if (!state.api) throw new Error("not signed in");
  return state.api;
}

/** Is `from` already playing in this page? */
export function isPlaying(from) {
  for (const p of state.pulls.values())
    if (!p.ended && p.from.sessionId === from.sessionId && p.from.trackName === from.trackName) return true;
  return false;
}
