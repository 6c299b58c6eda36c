import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
import { looksLikeSdp } from "../../rtc/negotiation/remote-description.ts";
import type { LayerPreference } from "../../rtc/peer-transport.ts";
import type { Session, TrackRequest } from "../../sfu/session.ts";
import { ApiError } from "../errors.ts";
import type { RouteContext } from "../http.ts";
import {
  decode,
  RenegotiateBody,
  SessionsNewBody,
  type SimulcastPreference,
  TracksCloseBody,
  TracksNewBody,
  TracksUpdateBody,
} from "../schemas.ts";

type SessionParams = { appId: string; sessionId: string };

/** `?thirdparty=true` (or 1 / an empty value, as URL flags go). */
function queryFlag(value: unknown): boolean {
  if (value === undefined) return false;
  const v = String(Array.isArray(value) ? value[0] : value).toLowerCase();
  return v === "" || v === "true" || v === "1";
}

/**
 * Cloudflare's `simulcast` object; both strategies default to "none". An empty `preferredRid` means
 * "no preference" (Orange Meets sends "" to let the server choose).
 */
function layerPreference(s: z.infer<typeof SimulcastPreference> | undefined): LayerPreference | undefined {
  if (!s) return undefined;
  const pref: LayerPreference = {
    priorityOrdering: s.priorityOrdering ?? "none",
    ridNotAvailable: s.ridNotAvailable ?? "none",
  };
  if (s.preferredRid) pref.preferredRid = s.preferredRid;
  return pref;
}

function requireSdp(
  desc: { type: string; sdp: string } | undefined,
  type: "offer" | "answer",
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
  return desc.sdp;
}

/** werift rejects bad SDP by throwing; clients get a 400 with its reason instead of a 500. */
async function negotiate<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError("negotiation_error", `${what} failed: ${(err as Error).message ?? String(err)}`);
  }
}

export function sessionRoutes(app: FastifyInstance, ctx: RouteContext): void {
  /** The session named in the URL; `negotiable` refuses adapter sessions (they have no peer connection). */
  const sessionOf = (req: FastifyRequest, negotiable = true): Session => {
    const state = ctx.appOf(req).state;
    const { sessionId } = req.params as SessionParams;
    const found = state.lookup(sessionId);
    if (found.ok) {
      if (negotiable && !found.session.hasPeer)
        throw new ApiError(
          "invalid_request",
          `session ${sessionId} belongs to an adapter and has no peer connection`,
        );
      return found.session;
    }
    if (found.reason === "gone") throw new ApiError("session_error", `session ${sessionId} is closed`, 410);
    throw new ApiError("session_error", `no session ${sessionId} in this app`, 404);
  };

  app.post("/sessions/new", async (req, reply) => {
    const state = ctx.appOf(req).state;
    const body = decode(SessionsNewBody, req.body);
    const offer = requireSdp(body.sessionDescription, "offer");
    // Cloudflare: "Session is intended to connect to an ICE-lite peer like a third party SFU/server".
    const thirdparty = queryFlag((req.query as Record<string, unknown>).thirdparty);
    const session = state.createSession({ peer: true, thirdparty });
    if (!offer) return reply.status(201).send({ sessionId: session.id });
    try {
      const sdp = await negotiate("applying the offer", () => session.answer(offer));
      return reply.status(201).send({ sessionId: session.id, sessionDescription: { type: "answer", sdp } });
    } catch (err) {
      session.close("offer rejected");
      throw err;
    }
  });

  app.get("/sessions/:sessionId", async (req) => {
    const session = sessionOf(req, false);
    return { tracks: session.tracks(), dataChannels: [] };
  });

  app.post("/sessions/:sessionId/tracks/new", async (req) => {
    const session = sessionOf(req);
    const body = decode(TracksNewBody, req.body);
    const offer = requireSdp(body.sessionDescription, "offer");
    const tracks: TrackRequest[] = (body.tracks ?? []).map((t, i) => {
      if (t.location === "remote") {
        if (!t.sessionId || !t.trackName)
          throw new ApiError("invalid_request", `tracks[${i}]: a remote track needs sessionId and trackName`);
        return {
          location: "remote",
          sessionId: t.sessionId,
          trackName: t.trackName,
          mid: t.mid,
          simulcast: layerPreference(t.simulcast),
        };
      }
      if (offer && t.mid === undefined)
        throw new ApiError(
          "invalid_request",
          `tracks[${i}]: a local track pushed with an offer needs its mid`,
        );
      return {
        location: "local",
        trackName: t.trackName,
        mid: t.mid,
        kind: t.kind,
        bidirectionalMediaStream: t.bidirectionalMediaStream,
      };
    });
    if (tracks.length === 0 && !body.autoDiscover)
      throw new ApiError("invalid_request", "give tracks, or autoDiscover with an offer");
    if (body.autoDiscover && !offer)
      throw new ApiError("invalid_request", "autoDiscover needs a sessionDescription offer");
    return negotiate("tracks/new", () =>
      session.addTracks({ offerSdp: offer, tracks, autoDiscover: !!body.autoDiscover }),
    );
  });

  app.put("/sessions/:sessionId/renegotiate", async (req) => {
    const session = sessionOf(req);
    const body = decode(RenegotiateBody, req.body);
    const answer = requireSdp(body.sessionDescription, "answer")!;
    await negotiate("renegotiation", () => session.renegotiate(answer));
    return {};
  });

  app.put("/sessions/:sessionId/tracks/update", async (req) => {
    const session = sessionOf(req);
    const body = decode(TracksUpdateBody, req.body);
    if (body.tracks.length === 0) throw new ApiError("invalid_request", "tracks must name at least one mid");
    return negotiate("tracks/update", () =>
      session.updateTracks(
        body.tracks.map((t) => ({
          mid: t.mid,
          location: t.location,
          sessionId: t.sessionId,
          trackName: t.trackName,
          simulcast: layerPreference(t.simulcast),
        })),
      ),
    );
  });

  app.put("/sessions/:sessionId/tracks/close", async (req) => {
    const session = sessionOf(req);
    const body = decode(TracksCloseBody, req.body);
    if (body.tracks.length === 0) throw new ApiError("invalid_request", "tracks must name at least one mid");
    const offer = requireSdp(body.sessionDescription, "offer");
    return negotiate("tracks/close", () =>
      session.closeTracks({ mids: body.tracks.map((t) => t.mid), offerSdp: offer, force: !!body.force }),
    );
  });
}
