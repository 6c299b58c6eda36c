import type { LocalCandidate } from "./negotiation/sdp-writer.ts";

export interface CandidatePolicy {
  /** Keep only candidates on this address; undefined keeps all. */
  listenIp?: string;
  /** Rewrite every kept candidate's address to this one (NAT / public address). */
  announcedIp?: string;
}

/** Which of the gathered host candidates a session announces, and under which address. */
export function applyCandidatePolicy(
  candidates: LocalCandidate[],
  policy: CandidatePolicy,
): LocalCandidate[] {
  return candidates
    .filter((c) => !policy.listenIp || c.ip === policy.listenIp)
    .map((c) => (policy.announcedIp ? { ...c, ip: policy.announcedIp } : c));
}
