import type { FastifyRequest } from "fastify";
import { looksLikeSdp } from "../../rtc/negotiation/remote-description.ts";
import { NoUdpPortError } from "../../rtc/peer-transport.ts";
import { type AppLimits, QuotaExceededError } from "../../sfu/app-state.ts";
import type { Session } from "../../sfu/session.ts";
import { ApiError } from "../errors.ts";
import { countMediaSections } from "../schemas.ts";

// What every session route does with a request: find the session named in the URL, check a body's SDP, and
// map a negotiation's failure to Cloudflare's error shape. Shared by the session and data channel routes.

/** The session named in the URL and its app's limits; `negotiable` refuses adapter sessions (no peer connection). */
export type SessionOf = (
  req: FastifyRequest,
  negotiable?: boolean,
) => { session: Session; limits: AppLimits };

/**
 * The SDP of a request body, checked for its type and size: at most twice --max-tracks-per-session m-lines
 * (closed m-lines stay in a session's description until they are reused), counted before anything parses it.
 */
export function requireSdp(
  desc: { type: string; sdp: string } | undefined,
  type: "offer" | "answer",
  limits: AppLimits,
): string | undefined {
  if (!desc) return undefined;
  if (desc.type !== type)
    throw new ApiError(
      "invalid_request",
      `sessionDescription.type must be "${type}" here, got "${desc.type}"`,
    );
  if (!looksLikeSdp(desc.sdp))
    throw new ApiError(
      "invalid_request",
      "sessionDescription.sdp is not an SDP document (expected v=0 and an m= line)",
    );
  const max = 2 * limits.tracksPerSession;
  const sections = countMediaSections(desc.sdp);
  if (sections > max)
    throw new ApiError(
      "invalid_request",
      `the ${type} has ${sections} m-lines, more than a session may carry (twice --max-tracks-per-session ${limits.tracksPerSession})`,
    );
  return desc.sdp;
}

/** werift rejects bad SDP by throwing; clients get a 400 with its reason instead of a 500. */
export async function negotiate<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (err instanceof QuotaExceededError) throw new ApiError("quota_exceeded", err.message);
    if (err instanceof NoUdpPortError) throw new ApiError("no_udp_port", err.message);
    throw new ApiError("negotiation_error", `${what} failed: ${(err as Error).message ?? String(err)}`);
  }
}
