import { parse } from "sdp-transform";

/**
 * A peer's offer or answer, reduced to the facts the negotiation model uses. Parsing is sdp-transform's;
 * this module normalizes (lower-case codec names, primary SSRCs without RTX/FEC companions, simulcast
 * rids in the peer's order) and rejects what one BUNDLE transport cannot serve, with a precise reason.
 */
export type Direction = "sendrecv" | "sendonly" | "recvonly" | "inactive";

export interface RemoteCodec {
  payloadType: number;
  /** Lower case: "opus", "vp8", "h264", "rtx"… */
  name: string;
  clockRate: number;
  channels?: number;
  fmtp?: string;
  /** rtcp-fb values for this payload type (plus the wildcard ones), e.g. "nack", "nack pli", "ccm fir". */
  feedback: string[];
}

export interface Extension {
  id: number;
  uri: string;
}

export interface RidSpec {
  id: string;
  /** `~` in a=simulcast: announced but not sent now. */
  paused: boolean;
}

export interface RemoteSection {
  index: number;
  kind: string;
  mid: string;
  port: number;
  /** Port 0: stopped or rejected; it carries no media and is not part of BUNDLE. */
  rejected: boolean;
  protocol: string;
  direction: Direction;
  codecs: RemoteCodec[];
  extensions: Extension[];
  /** SSRCs the peer sends media with (RTX/FEC companions of ssrc-groups left out). */
  ssrcs: number[];
  cname?: string;
  msid?: { streamId: string; trackId: string };
  /** Simulcast layers the peer sends (a=simulcast:send), in its order. */
  sendRids: RidSpec[];
  /** Simulcast layers the peer wants to receive (a=simulcast:recv). */
  recvRids: RidSpec[];
  /** For m=application. */
  sctpPort?: number;
  maxMessageSize?: number;
}

export interface Fingerprint {
  algorithm: string;
  value: string;
}

export interface RemoteCandidate {
  foundation: string;
  component: number;
  transport: string;
  priority: number;
  ip: string;
  port: number;
  type: string;
}

export interface RemoteDescription {
  type: "offer" | "answer";
  sections: RemoteSection[];
  /** Mids of the BUNDLE group (the first is the tag). */
  bundle: string[];
  iceUfrag: string;
  icePwd: string;
  iceLite: boolean;
  fingerprints: Fingerprint[];
  setup: "actpass" | "active" | "passive" | "holdconn" | undefined;
  candidates: RemoteCandidate[];
}

export class SdpError extends Error {
  override readonly name = "SdpError";
}

const DIRECTIONS = new Set(["sendrecv", "sendonly", "recvonly", "inactive"]);

function ridList(list: string | undefined): RidSpec[] {
  if (!list) return [];
  // "q;h;~f" — each ';' item may list alternatives "a,b": the first is the one the peer prefers.
  return list
    .split(";")
    .map((item) => item.split(",")[0].trim())
    .filter((item) => item.length > 0)
    .map((item) =>
      item.startsWith("~") ? { id: item.slice(1), paused: true } : { id: item, paused: false },
    );
}

/** Parse and validate one SDP. Throws SdpError with a reason a client developer can act on. */
export function parseRemoteDescription(type: "offer" | "answer", sdp: string): RemoteDescription {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(sdp);
  } catch (err) {
    throw new SdpError(`the SDP could not be parsed: ${(err as Error).message}`);
  }
  const media = parsed.media ?? [];
  if (media.length === 0) throw new SdpError("the SDP has no m= line");

  const bundleGroup = (parsed.groups ?? []).find((g) => g.type === "BUNDLE");
  const bundle = bundleGroup ? String(bundleGroup.mids).split(" ").filter(Boolean) : [];

  const sections: RemoteSection[] = [];
  const seenMids = new Set<string>();
  // sdp-transform turns an all-digit value into a number (a ufrag like "6024" is legal ice-char).
  const text = (v: string | number | undefined) => (v === undefined ? undefined : String(v));
  let iceUfrag = text(parsed.iceUfrag);
  let icePwd = text(parsed.icePwd);
  const fingerprints: Fingerprint[] = parsed.fingerprint
    ? [{ algorithm: parsed.fingerprint.type, value: parsed.fingerprint.hash }]
    : [];
  let setup = parsed.setup;
  const candidates: RemoteCandidate[] = [];

  media.forEach((m, index) => {
    const mid = m.mid === undefined ? undefined : String(m.mid);
    if (mid === undefined || mid === "")
      throw new SdpError(
        `m-line ${index} (${m.type}) has no a=mid: Patchbay needs Unified Plan SDP with mids`,
      );
    if (seenMids.has(mid)) throw new SdpError(`mid ${mid} appears on two m-lines`);
    seenMids.add(mid);
    const rejected = m.port === 0;

    // ICE and DTLS parameters live at session level or in the media sections (usually the same in each).
    if (!rejected) {
      if (m.iceUfrag !== undefined) {
        const ufrag = String(m.iceUfrag);
        if (iceUfrag !== undefined && iceUfrag !== ufrag && bundle.includes(mid))
          throw new SdpError(`m-line ${index} (mid ${mid}) uses other ICE credentials than the BUNDLE group`);
        iceUfrag ??= ufrag;
        icePwd ??= text(m.icePwd);
      }
      if (m.fingerprint && !fingerprints.some((f) => f.value === m.fingerprint!.hash))
        fingerprints.push({ algorithm: m.fingerprint.type, value: m.fingerprint.hash });
      setup ??= m.setup;
      for (const c of m.candidates ?? []) {
        candidates.push({
          foundation: String(c.foundation),
          component: c.component,
          transport: c.transport.toLowerCase(),
          priority: c.priority,
          ip: c.ip,
          port: c.port,
          type: c.type,
        });
      }
    }

    const wildcardFb = (m.rtcpFb ?? []).filter((f) => String(f.payload) === "*");
    const codecs: RemoteCodec[] = (m.rtp ?? []).map((r) => {
      const fmtp = (m.fmtp ?? []).find((f) => f.payload === r.payload)?.config;
      const feedback = [
        ...(m.rtcpFb ?? []).filter((f) => Number(f.payload) === r.payload),
        ...wildcardFb,
      ].map((f) => (f.subtype ? `${f.type} ${f.subtype}` : f.type));
      const codec: RemoteCodec = {
        payloadType: r.payload,
        name: r.codec.toLowerCase(),
        clockRate: r.rate ?? 0,
        feedback,
      };
      if (r.encoding !== undefined) codec.channels = Number(r.encoding);
      if (fmtp !== undefined) codec.fmtp = fmtp;
      return codec;
    });

    // Secondary SSRCs (RTX, FEC) of ssrc-groups are not media streams of their own.
    const secondary = new Set<number>();
    for (const g of m.ssrcGroups ?? []) {
      const ids = g.ssrcs.split(" ").map(Number);
      if (g.semantics === "FID" || g.semantics === "FEC-FR") for (const s of ids.slice(1)) secondary.add(s);
    }
    const ssrcs: number[] = [];
    let cname: string | undefined;
    for (const s of m.ssrcs ?? []) {
      const id = Number(s.id);
      if (!secondary.has(id) && !ssrcs.includes(id)) ssrcs.push(id);
      if (s.attribute === "cname" && cname === undefined) cname = s.value;
    }

    let msid: RemoteSection["msid"];
    const msidAttr = (m as { msid?: string | { id: string; appdata?: string }[] }).msid;
    if (typeof msidAttr === "string") {
      const [streamId = "-", trackId = ""] = msidAttr.split(" ");
      msid = { streamId, trackId };
    } else if (Array.isArray(msidAttr) && msidAttr[0]) {
      msid = { streamId: msidAttr[0].id, trackId: msidAttr[0].appdata ?? "" };
    }

    let sendRids: RidSpec[] = [];
    let recvRids: RidSpec[] = [];
    if (m.simulcast) {
      const pairs: [string | undefined, string | undefined][] = [
        [m.simulcast.dir1, m.simulcast.list1],
        [m.simulcast.dir2, m.simulcast.list2],
      ];
      for (const [dir, list] of pairs) {
        if (dir === "send") sendRids = ridList(list);
        else if (dir === "recv") recvRids = ridList(list);
      }
    } else if (m.rids && m.rids.length > 0) {
      // a=rid without a=simulcast: the rids are still the layers, in declaration order.
      sendRids = m.rids
        .filter((r) => r.direction === "send")
        .map((r) => ({ id: String(r.id), paused: false }));
      recvRids = m.rids
        .filter((r) => r.direction === "recv")
        .map((r) => ({ id: String(r.id), paused: false }));
    }

    const direction = (m.direction ?? parsed.direction ?? "sendrecv") as Direction;
    if (!DIRECTIONS.has(direction))
      throw new SdpError(`m-line ${index} has an unknown direction ${direction}`);

    const section: RemoteSection = {
      index,
      kind: m.type,
      mid,
      port: m.port,
      rejected,
      protocol: m.protocol,
      direction,
      codecs,
      extensions: (m.ext ?? []).map((e) => ({ id: e.value, uri: e.uri })),
      ssrcs,
      sendRids,
      recvRids,
    };
    if (cname !== undefined) section.cname = cname;
    if (msid) section.msid = msid;
    if (m.sctpPort !== undefined) section.sctpPort = m.sctpPort;
    if (m.maxMessageSize !== undefined) section.maxMessageSize = m.maxMessageSize;
    sections.push(section);
  });

  for (const mid of bundle)
    if (!seenMids.has(mid)) throw new SdpError(`a=group:BUNDLE names mid ${mid}, which no m-line has`);
  const live = sections.filter((s) => !s.rejected);
  if (live.length > 0) {
    if (iceUfrag === undefined || icePwd === undefined)
      throw new SdpError("the SDP has no a=ice-ufrag/a=ice-pwd");
    if (fingerprints.length === 0) throw new SdpError("the SDP has no a=fingerprint (DTLS is required)");
    if (live.length > 1) {
      const outside = live.filter((s) => !bundle.includes(s.mid));
      if (outside.length > 0)
        throw new SdpError(
          `m-lines ${outside.map((s) => s.mid).join(", ")} are not in a=group:BUNDLE: Patchbay runs every m-line over one transport (bundlePolicy "max-bundle")`,
        );
    }
  }
  return {
    type,
    sections,
    bundle,
    iceUfrag: iceUfrag ?? "",
    icePwd: icePwd ?? "",
    iceLite: parsed.icelite === "ice-lite",
    fingerprints,
    setup: setup as RemoteDescription["setup"],
    candidates,
  };
}

/** Cheap structural check so that garbage is rejected with a clear error before parsing. */
export function looksLikeSdp(sdp: unknown): sdp is string {
  return typeof sdp === "string" && sdp.startsWith("v=0") && /\r?\nm=/.test(sdp);
}

/** The peer's half of a direction: does it send, does it receive on this m-line? */
export function peerSends(d: Direction): boolean {
  return d === "sendrecv" || d === "sendonly";
}
export function peerReceives(d: Direction): boolean {
  return d === "sendrecv" || d === "recvonly";
}
export function directionOf(send: boolean, receive: boolean): Direction {
  return send ? (receive ? "sendrecv" : "sendonly") : receive ? "recvonly" : "inactive";
}
