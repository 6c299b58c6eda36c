import { type MediaDescription, type SessionDescription, write } from "sdp-transform";
import type { Codec } from "./codecs.ts";
import type { Fingerprint } from "./remote-description.ts";
import { effectiveDirection, type Section, type SessionDescriptionState } from "./session-description.ts";

/** The transport facts every m-line repeats (one ICE-lite, DTLS, BUNDLE transport per session). */
export interface LocalTransportParameters {
  /** Patchbay is ICE-lite (the default) or, for thirdparty sessions, a full ICE agent. */
  iceLite: boolean;
  iceUfrag: string;
  icePwd: string;
  fingerprint: Fingerprint;
  candidates: LocalCandidate[];
}

export interface LocalCandidate {
  foundation: string;
  priority: number;
  ip: string;
  port: number;
}

/** msid ids are SDP tokens (RFC 8830): a track name that is not one is announced by a stable hash. */
export function msidToken(value: string): string {
  if (/^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]{1,64}$/.test(value)) return value;
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193) >>> 0;
  return `t-${h.toString(16)}`;
}

function setupValue(type: "offer" | "answer", state: SessionDescriptionState): string {
  if (type === "answer") return state.dtlsRole === "client" ? "active" : "passive";
  // A re-offer keeps the role already in use (RFC 8842 §5.5); the first offer lets the peer choose.
  if (state.dtlsRole === undefined) return "actpass";
  return state.dtlsRole === "server" ? "passive" : "active";
}

function rejectedSection(s: Section): MediaDescription {
  const application = s.kind === "application";
  const payloads = application ? "webrtc-datachannel" : String(s.codecs[0]?.payloadType ?? 0);
  return {
    type: s.kind,
    port: 0,
    protocol: application ? "UDP/DTLS/SCTP" : s.protocol,
    payloads,
    connection: { version: 4, ip: "0.0.0.0" },
    mid: s.mid,
    direction: "inactive",
    // Some stacks (werift) parse the formats of a rejected m-line too and need their rtpmap.
    rtp: application ? [] : s.codecs.slice(0, 1).map(rtpmap),
    fmtp: [],
  } as unknown as MediaDescription;
}

import { MAX_MESSAGE_SIZE } from "../sctp-association.ts";

function candidateLines(t: LocalTransportParameters): MediaDescription["candidates"] {
  return t.candidates.map((c) => ({
    foundation: c.foundation,
    component: 1,
    transport: "udp",
    priority: c.priority,
    ip: c.ip,
    port: c.port,
    type: "host",
  }));
}

/** m=application for data channels: SCTP over the session's one DTLS transport (RFC 8841). */
function applicationSection(
  s: Section,
  type: "offer" | "answer",
  state: SessionDescriptionState,
  t: LocalTransportParameters,
): MediaDescription {
  return {
    type: "application",
    port: 9,
    protocol: "UDP/DTLS/SCTP",
    payloads: "webrtc-datachannel",
    connection: { version: 4, ip: "0.0.0.0" },
    iceUfrag: t.iceUfrag,
    icePwd: t.icePwd,
    fingerprint: { type: t.fingerprint.algorithm, hash: t.fingerprint.value },
    setup: setupValue(type, state),
    mid: s.mid,
    sctpPort: 5000,
    maxMessageSize: MAX_MESSAGE_SIZE,
    candidates: candidateLines(t),
    endOfCandidates: "end-of-candidates",
  } as MediaDescription;
}

function liveSection(
  s: Section,
  type: "offer" | "answer",
  state: SessionDescriptionState,
  t: LocalTransportParameters,
): MediaDescription {
  if (s.kind === "application") return applicationSection(s, type, state, t);
  const m: MediaDescription = {
    type: s.kind,
    port: 9,
    protocol: s.protocol,
    payloads: s.codecs.map((c) => c.payloadType).join(" "),
    connection: { version: 4, ip: "0.0.0.0" },
    rtcp: { port: 9, netType: "IN", ipVer: 4, address: "0.0.0.0" },
    iceUfrag: t.iceUfrag,
    icePwd: t.icePwd,
    fingerprint: { type: t.fingerprint.algorithm, hash: t.fingerprint.value },
    setup: setupValue(type, state),
    mid: s.mid,
    ext: s.extensions.map((e) => ({ value: e.id, uri: e.uri })),
    direction: effectiveDirection(s),
    rtcpMux: "rtcp-mux",
    rtcpRsize: "rtcp-rsize",
    rtp: s.codecs.map(rtpmap),
    fmtp: s.codecs.filter((c) => c.fmtp).map((c) => ({ payload: c.payloadType, config: c.fmtp! })),
    rtcpFb: s.codecs.flatMap((c) =>
      c.feedback.map((f) => {
        const [fbType, subtype] = f.split(" ");
        return subtype
          ? { payload: c.payloadType, type: fbType, subtype }
          : { payload: c.payloadType, type: fbType };
      }),
    ),
    candidates: candidateLines(t),
    endOfCandidates: "end-of-candidates",
  };
  if (s.send) {
    const stream = msidToken(s.send.streamId);
    const track = msidToken(s.send.trackId);
    m.msid = [{ id: stream, appdata: track }] as unknown as MediaDescription["msid"];
    m.ssrcs = [
      { id: s.send.ssrc, attribute: "cname", value: s.send.cname },
      { id: s.send.ssrc, attribute: "msid", value: `${stream} ${track}` },
    ];
  }
  if (s.receive && s.recvRids.length > 0) {
    m.rids = s.recvRids.map((r) => ({ id: r.id, direction: "recv" }));
    m.simulcast = {
      dir1: "recv",
      list1: s.recvRids.map((r) => (r.paused ? `~${r.id}` : r.id)).join(";"),
    };
  }
  return m;
}

function rtpmap(c: Codec): { payload: number; codec: string; rate?: number; encoding?: number } {
  const r: { payload: number; codec: string; rate?: number; encoding?: number } = {
    payload: c.payloadType,
    codec: displayName(c.name),
    rate: c.clockRate,
  };
  if (c.channels !== undefined && c.channels > 1) r.encoding = c.channels;
  return r;
}

function displayName(name: string): string {
  if (name === "opus") return "opus";
  return name.toUpperCase();
}

/** Render the model as our offer or answer. */
export function writeDescription(
  state: SessionDescriptionState,
  type: "offer" | "answer",
  transport: LocalTransportParameters,
): string {
  const live = state.sections.filter((s) => !s.rejected);
  const desc: SessionDescription = {
    version: 0,
    origin: {
      username: "-",
      sessionId: state.origin,
      sessionVersion: state.version,
      netType: "IN",
      ipVer: 4,
      address: "127.0.0.1",
    },
    name: "-",
    timing: { start: 0, stop: 0 },
    icelite: transport.iceLite ? "ice-lite" : undefined,
    msidSemantic: { semantic: "", token: "WMS" },
    groups: live.length > 0 ? [{ type: "BUNDLE", mids: live.map((s) => s.mid).join(" ") }] : [],
    media: state.sections.map((s) =>
      s.rejected ? rejectedSection(s) : liveSection(s, type, state, transport),
    ),
  } as SessionDescription;
  return write(desc);
}
