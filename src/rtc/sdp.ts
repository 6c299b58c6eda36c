/**
 * The few SDP facts the SFU needs that werift does not expose before negotiation, and the edits we make
 * to werift's descriptions. Plain string work on purpose: werift owns real parsing and generation.
 */
export interface MediaSection {
  kind: string;
  mid: string | undefined;
  direction: "sendrecv" | "sendonly" | "recvonly" | "inactive";
  /** The msid track id, when the sender announced one. */
  msidTrack: string | undefined;
  port: number;
}

export function parseMediaSections(sdp: string): MediaSection[] {
  const sections = sdp.split(/\r?\nm=/).slice(1);
  return sections.map((raw) => {
    const lines = raw.split(/\r?\n/);
    const [kind = "", port = "0"] = lines[0].split(" ");
    let mid: string | undefined;
    let direction: MediaSection["direction"] = "sendrecv";
    let msidTrack: string | undefined;
    for (const line of lines) {
      if (line.startsWith("a=mid:")) mid = line.slice(6).trim();
      else if (
        line === "a=sendrecv" ||
        line === "a=sendonly" ||
        line === "a=recvonly" ||
        line === "a=inactive"
      )
        direction = line.slice(2) as MediaSection["direction"];
      else if (line.startsWith("a=msid:")) msidTrack = line.slice(7).trim().split(" ")[1];
    }
    return { kind, mid, direction, msidTrack, port: Number(port) };
  });
}

/** Cheap structural check so that garbage is rejected with a clear error before werift sees it. */
export function looksLikeSdp(sdp: unknown): sdp is string {
  return typeof sdp === "string" && sdp.startsWith("v=0") && /\r?\nm=/.test(sdp);
}

/** Be the DTLS server when answering, as Cloudflare does (`a=setup:passive`). */
export function preferPassiveSetup(answerSdp: string): string {
  return answerSdp.replace(/a=setup:active/g, "a=setup:passive");
}

/**
 * RFC 8839 §5.3: `a=ice-lite` is a session-level attribute, but werift writes it into each media section.
 * libdatachannel hands only session-level attributes to libjuice, so it misses that we are lite: as an
 * answerer it starts controlled and needs a 487 role-conflict round trip, and it copies the media-level
 * line into its own answer (claiming to be lite itself). Move it to the session level.
 */
export function iceLiteAtSessionLevel(sdp: string): string {
  const lines = sdp.split("\r\n");
  if (!lines.includes("a=ice-lite")) return sdp;
  const out = lines.filter((line) => line !== "a=ice-lite");
  const firstMedia = out.findIndex((line) => line.startsWith("m="));
  if (firstMedia === -1) return sdp;
  out.splice(firstMedia, 0, "a=ice-lite");
  return out.join("\r\n");
}

export interface CandidatePolicy {
  /** Keep only candidates on this address; undefined keeps all. */
  listenIp?: string;
  /** Rewrite every kept candidate's address to this one (NAT / public address). */
  announcedIp?: string;
}

/** Filter and rewrite host candidates in a local description. */
export function applyCandidatePolicy(sdp: string, policy: CandidatePolicy): string {
  return sdp
    .split("\r\n")
    .filter((line) => {
      if (!line.startsWith("a=candidate:") || !policy.listenIp) return true;
      return line.split(" ")[4] === policy.listenIp;
    })
    .map((line) => {
      if (!line.startsWith("a=candidate:") || !policy.announcedIp) return line;
      const parts = line.split(" ");
      parts[4] = policy.announcedIp;
      return parts.join(" ");
    })
    .join("\r\n");
}
