// SDP for the native load generator's client peers, as text: the smallest offer/answer Patchbay accepts
// (BUNDLE, ICE credentials, a sha-256 fingerprint, setup, mid, rtcp-mux, opus/48000/2 or VP8/90000, one host
// candidate), and a line parser for what we need from the server's description (ICE credentials,
// fingerprints, its host candidate, the m-lines with their mids and Opus / VP8 payload types).

export interface ClientTransport {
  ufrag: string;
  pwd: string;
  /** "AB:CD:…" (the addon's certificateFingerprint()). */
  fingerprint: string;
  /** Our socket's port on 127.0.0.1. */
  port: number;
}

export interface ServerSection {
  kind: string;
  mid: string;
  port: number;
  protocol: string;
  /** Payload type of opus/48000/2, if the section has it. */
  opusPt: number | undefined;
  /** Payload type of VP8/90000, if the section has it. */
  vp8Pt: number | undefined;
  direction: string;
}

export interface ServerDescription {
  ufrag: string;
  pwd: string;
  fingerprints: [string, string][];
  /** The first IPv4 UDP host candidate. */
  candidate: { ip: string; port: number };
  sections: ServerSection[];
}

const DIRECTIONS = new Set(["sendrecv", "sendonly", "recvonly", "inactive"]);

/** Reads the server's offer or answer; throws when something the client needs is missing. */
export function parseServerSdp(sdp: string): ServerDescription {
  let ufrag: string | undefined;
  let pwd: string | undefined;
  const fingerprints: [string, string][] = [];
  let candidate: { ip: string; port: number } | undefined;
  const sections: ServerSection[] = [];
  let cur: ServerSection | undefined;
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("m=")) {
      const [kind, port, protocol] = line.slice(2).split(" ");
      cur = {
        kind,
        mid: "",
        port: Number(port),
        protocol,
        opusPt: undefined,
        vp8Pt: undefined,
        direction: "sendrecv",
      };
      sections.push(cur);
      continue;
    }
    if (!line.startsWith("a=")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line.slice(2) : line.slice(2, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1);
    if (name === "ice-ufrag") ufrag ??= value;
    else if (name === "ice-pwd") pwd ??= value;
    else if (name === "fingerprint") {
      const [alg, hash] = value.split(" ");
      if (alg && hash && !fingerprints.some((f) => f[1] === hash)) fingerprints.push([alg, hash]);
    } else if (name === "candidate" && !candidate) {
      // foundation component transport priority ip port typ type …
      const f = value.split(" ");
      if (f[2]?.toLowerCase() === "udp" && f[7] === "host" && /^\d+\.\d+\.\d+\.\d+$/.test(f[4]))
        candidate = { ip: f[4], port: Number(f[5]) };
    } else if (cur && name === "mid") cur.mid = value;
    else if (cur && name === "rtpmap" && /^\d+ opus\/48000\/2$/i.test(value))
      cur.opusPt ??= Number(value.split(" ")[0]);
    else if (cur && name === "rtpmap" && /^\d+ VP8\/90000$/i.test(value))
      cur.vp8Pt ??= Number(value.split(" ")[0]);
    else if (cur && DIRECTIONS.has(name)) cur.direction = name;
  }
  if (!ufrag || !pwd) throw new Error("the server's SDP has no a=ice-ufrag/a=ice-pwd");
  if (fingerprints.length === 0) throw new Error("the server's SDP has no a=fingerprint");
  if (!candidate) throw new Error("the server's SDP has no IPv4 UDP host candidate");
  return { ufrag, pwd, fingerprints, candidate, sections };
}

function sessionHead(mids: string[]): string[] {
  const id = Math.floor(Math.random() * 2 ** 52);
  return [
    "v=0",
    `o=- ${id} 2 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    `a=group:BUNDLE ${mids.join(" ")}`,
    "a=msid-semantic: WMS",
  ];
}

function transportLines(t: ClientTransport, setup: "actpass" | "active"): string[] {
  return [
    "c=IN IP4 127.0.0.1",
    "a=rtcp:9 IN IP4 0.0.0.0",
    `a=ice-ufrag:${t.ufrag}`,
    `a=ice-pwd:${t.pwd}`,
    `a=fingerprint:sha-256 ${t.fingerprint}`,
    `a=setup:${setup}`,
  ];
}

function candidateLines(t: ClientTransport): string[] {
  return [`a=candidate:1 1 udp 2130706431 127.0.0.1 ${t.port} typ host`, "a=end-of-candidates"];
}

export type SdpMedia = "audio" | "video";

/** The codec lines of a live m-line: Opus for audio; VP8 with the feedback a browser offers for video. */
function codecLines(media: SdpMedia, pt: number): string[] {
  if (media === "audio") return [`a=rtpmap:${pt} opus/48000/2`, `a=fmtp:${pt} minptime=10;useinbandfec=1`];
  return [
    `a=rtpmap:${pt} VP8/90000`,
    `a=rtcp-fb:${pt} nack`,
    `a=rtcp-fb:${pt} nack pli`,
    `a=rtcp-fb:${pt} ccm fir`,
    `a=rtcp-fb:${pt} goog-remb`,
  ];
}

/**
 * A publisher's offer: one sendonly m-line (mid 0, Opus or VP8) with its SSRC; we offer actpass, the server
 * answers passive.
 */
export function publisherOffer(
  t: ClientTransport,
  ssrc: number,
  name: string,
  media: SdpMedia = "audio",
): string {
  const pt = media === "audio" ? 111 : 96;
  const lines = [
    ...sessionHead(["0"]),
    `m=${media} 9 UDP/TLS/RTP/SAVPF ${pt}`,
    ...transportLines(t, "actpass"),
    "a=mid:0",
    "a=sendonly",
    `a=msid:${name} ${name}-${media}`,
    "a=rtcp-mux",
    ...codecLines(media, pt),
    `a=ssrc:${ssrc} cname:${name}`,
    `a=ssrc:${ssrc} msid:${name} ${name}-${media}`,
    ...candidateLines(t),
  ];
  return `${lines.join("\r\n")}\r\n`;
}

/** The payload type of `media`'s codec in a section of the server's description. */
export function sectionPt(s: ServerSection, media: SdpMedia): number | undefined {
  return media === "audio" ? s.opusPt : s.vp8Pt;
}

/**
 * A subscriber's answer to the server's offer: every live m-line of `media` with its codec (Opus or VP8)
 * recvonly (we are the DTLS client: setup active), everything else rejected (port 0).
 */
export function subscriberAnswer(
  t: ClientTransport,
  offer: ServerDescription,
  media: SdpMedia = "audio",
): string {
  const accepted = offer.sections.filter(
    (s) => s.port !== 0 && s.kind === media && sectionPt(s, media) !== undefined,
  );
  if (accepted.length === 0)
    throw new Error(
      `the server's offer has no ${media} m-line with ${media === "audio" ? "opus/48000/2" : "VP8/90000"}`,
    );
  const lines = sessionHead(accepted.map((s) => s.mid));
  let first = true;
  for (const s of offer.sections) {
    if (!accepted.includes(s)) {
      const pt = s.kind === "application" ? "webrtc-datachannel" : String(s.opusPt ?? s.vp8Pt ?? 0);
      lines.push(`m=${s.kind} 0 ${s.protocol} ${pt}`, "c=IN IP4 0.0.0.0", `a=mid:${s.mid}`, "a=inactive");
      continue;
    }
    const pt = sectionPt(s, media)!;
    lines.push(
      `m=${media} 9 UDP/TLS/RTP/SAVPF ${pt}`,
      ...transportLines(t, "active"),
      `a=mid:${s.mid}`,
      s.direction === "sendonly" || s.direction === "sendrecv" ? "a=recvonly" : "a=inactive",
      "a=rtcp-mux",
      ...codecLines(media, pt),
    );
    if (first) lines.push(...candidateLines(t));
    first = false;
  }
  return `${lines.join("\r\n")}\r\n`;
}
