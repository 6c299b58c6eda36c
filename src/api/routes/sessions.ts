import type { FastifyInstance } from "fastify";
import type { z } from "zod";
import { type LayerPreference, NoUdpPortError } from "../../rtc/peer-transport.ts";
import { QuotaExceededError } from "../../sfu/app-state.ts";
import type { Session, TrackRequest } from "../../sfu/session.ts";
import { ApiError } from "../errors.ts";
import type { RouteContext } from "../http.ts";
import {
  decode,
  decodeTracksRequest,
  RenegotiateBody,
  SessionsNewBody,
  type SimulcastPreference,
  TracksCloseBody,
  TracksNewBody,
  TracksUpdateBody,
} from "../schemas.ts";
import { dataChannelRoutes } from "./datachannels.ts";
import { negotiate, requireSdp, type SessionOf } from "./session-requests.ts";

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

/** no_udp_port warnings: the first of each minute is logged, with how many were left out before it. */
const NO_PORT_LOG_INTERVAL_MS = 60_000;
const noPortLog = new WeakMap<RouteContext, { last: number; suppressed: number }>();

/** A session refused for lack of a UDP port: one warning (rate-limited), then the 503. */
function noUdpPort(ctx: RouteContext, appId: string, err: NoUdpPortError): ApiError {
  const now = Date.now();
  const state = noPortLog.get(ctx) ?? { last: Number.NEGATIVE_INFINITY, suppressed: 0 };
  noPortLog.set(ctx, state);
  if (now - state.last >= NO_PORT_LOG_INTERVAL_MS) {
    ctx.logger.warn(
      { appId, ...err.details, suppressedSinceLast: state.suppressed },
      `session refused: no free UDP port (${err.message})`,
    );
    state.last = now;
    state.suppressed = 0;
  } else state.suppressed++;
  return new ApiError("no_udp_port", err.message);
}

export function sessionRoutes(app: FastifyInstance, ctx: RouteContext): void {
  /**
   * The session named in the URL and its app's limits; `negotiable` refuses adapter sessions (they have no
   * peer connection).
   */
  const sessionOf: SessionOf = (req, negotiable = true) => {
    const state = ctx.appOf(req).state;
    const { sessionId } = req.params as SessionParams;
    const found = state.lookup(sessionId);
    if (found.ok) {
      if (negotiable && !found.session.hasPeer)
        throw new ApiError(
          "invalid_request",
          `session ${sessionId} belongs to an adapter and has no peer connection`,
        );
      return { session: found.session, limits: state.limits };
    }
    if (found.reason === "gone") throw new ApiError("session_error", `session ${sessionId} is closed`, 410);
    throw new ApiError("session_error", `no session ${sessionId} in this app`, 404);
  };

  app.post("/sessions/new", async (req, reply) => {
    const { appId, state } = ctx.appOf(req);
    const body = decode(SessionsNewBody, req.body);
    const offer = requireSdp(body.sessionDescription, "offer", state.limits);
    // Cloudflare: "Session is intended to connect to an ICE-lite peer like a third party SFU/server".
    const thirdparty = queryFlag((req.query as Record<string, unknown>).thirdparty);
    let session: Session;
    try {
      session = state.createSession({ peer: true, thirdparty });
    } catch (err) {
      if (err instanceof QuotaExceededError) throw new ApiError("quota_exceeded", err.message);
      throw err;
    }
    try {
      // The UDP port is bound now, with or without an offer: a session that cannot have one is not handed out.
      await session.whenReady();
    } catch (err) {
      session.close("no UDP port");
      if (err instanceof NoUdpPortError) throw noUdpPort(ctx, appId, err);
      throw err;
    }
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
    const { session } = sessionOf(req, false);
    return { tracks: session.tracks(), dataChannels: session.dataChannels.list() };
  });

  app.post("/sessions/:sessionId/tracks/new", async (req) => {
    const { session, limits } = sessionOf(req);
    const body = decodeTracksRequest(TracksNewBody, req.body, limits.tracksPerRequest);
    const offer = requireSdp(body.sessionDescription, "offer", limits);
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
    const res = await negotiate("tracks/new", () =>
      session.addTracks({ offerSdp: offer, tracks, autoDiscover: !!body.autoDiscover }),
    );
    ctx.itemsFailed(req, 200, res.tracks);
    return res;
  });

  app.put("/sessions/:sessionId/renegotiate", async (req) => {
    const { session, limits } = sessionOf(req);
    const body = decode(RenegotiateBody, req.body);
    const answer = requireSdp(body.sessionDescription, "answer", limits)!;
    await negotiate("renegotiation", () => session.renegotiate(answer));
    return {};
  });

  app.put("/sessions/:sessionId/tracks/update", async (req) => {
    const { session, limits } = sessionOf(req);
    const body = decodeTracksRequest(TracksUpdateBody, req.body, limits.tracksPerRequest);
    if (body.tracks.length === 0) throw new ApiError("invalid_request", "tracks must name at least one mid");
    const res = await negotiate("tracks/update", () =>
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
    ctx.itemsFailed(req, 200, res.tracks);
    return res;
  });

  app.put("/sessions/:sessionId/tracks/close", async (req) => {
    const { session, limits } = sessionOf(req);
    const body = decodeTracksRequest(TracksCloseBody, req.body, limits.tracksPerRequest);
    if (body.tracks.length === 0) throw new ApiError("invalid_request", "tracks must name at least one mid");
    const offer = requireSdp(body.sessionDescription, "offer", limits);
    const res = await negotiate("tracks/close", () =>
      session.closeTracks({ mids: body.tracks.map((t) => t.mid), offerSdp: offer, force: !!body.force }),
    );
    ctx.itemsFailed(req, 200, res.tracks);
    return res;
  });

  dataChannelRoutes(app, ctx, sessionOf);
}
