import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { DataChannelInfo, DataChannelResult, Delivery } from "../../sfu/data-channels.ts";
import type { Session } from "../../sfu/session.ts";
import { ApiError } from "../errors.ts";
import type { RouteContext } from "../http.ts";
import { DataChannelsBody, DataChannelsCloseBody, DataChannelsEstablishBody, decode } from "../schemas.ts";
import { negotiate, requireSdp, type SessionOf } from "./session-requests.ts";

// Cloudflare's data channel routes (realtime-api-2024-05-21): establish (the SCTP transport, by the peer's
// offer or ours), new, update (canReply), close.

type Item = NonNullable<z.infer<typeof DataChannelsBody>["dataChannels"]>[number];

const MAX_ITEMS = 16;

function items<T>(list: T[] | undefined): T[] {
  const n = list?.length ?? 0;
  if (n < 1 || n > MAX_ITEMS)
    throw new ApiError("invalid_params", `dataChannels must hold 1 to ${MAX_ITEMS} items, got ${n}`);
  return list!;
}

/** Presence and values of one item (→ 406 naming the field). */
function checkItem(item: Item, i: number, remoteOnly = false): void {
  const name = item.dataChannelName;
  if (typeof name !== "string" || name.length === 0 || name.length > 256)
    throw new ApiError("invalid_params", `dataChannels[${i}].dataChannelName must be 1 to 256 characters`);
  if (remoteOnly ? item.location !== "remote" : item.location !== "local" && item.location !== "remote")
    throw new ApiError(
      "invalid_params",
      `dataChannels[${i}].location must be ${remoteOnly ? '"remote" (update applies to pulled channels)' : '"local" or "remote"'}`,
    );
  if (item.location === "remote" && !item.sessionId)
    throw new ApiError("invalid_params", `dataChannels[${i}].sessionId is required for a remote channel`);
  const m = item.maxRetransmits;
  if (m !== undefined && (!Number.isInteger(m) || m < 0 || m > 65535))
    throw new ApiError(
      "invalid_params",
      `dataChannels[${i}].maxRetransmits must be an integer in [0, 65535]`,
    );
}

function delivery(item: Item): Delivery | undefined {
  if (item.ordered === undefined && item.maxRetransmits === undefined) return undefined;
  return { ordered: item.ordered ?? true, maxRetransmits: item.maxRetransmits };
}

/** Cloudflare's answer item: what the channel is, plus canReply where it is set. */
function answer(info: DataChannelInfo, withCanReply = false): Record<string, unknown> {
  return {
    location: info.location,
    ...(info.sessionId ? { sessionId: info.sessionId } : {}),
    dataChannelName: info.dataChannelName,
    id: info.id,
    ...(withCanReply ? { canReply: info.canReply === true } : {}),
  };
}

function failed(r: Exclude<DataChannelResult, { ok: true }>, echo: object): Record<string, unknown> {
  return { ...echo, errorCode: r.errorCode, errorDescription: r.errorDescription };
}

export function dataChannelRoutes(app: FastifyInstance, ctx: RouteContext, sessionOf: SessionOf): void {
  /** The publisher's session for a remote item, or a per-item error. */
  const sourceOf = (req: FastifyRequest, sessionId: string): Session | DataChannelResult => {
    const found = ctx.appOf(req).state.lookup(sessionId);
    return found.ok
      ? found.session
      : {
          ok: false,
          errorCode: "not_found_datachannel_error",
          errorDescription: `no session ${sessionId} in this app`,
        };
  };

  const noTransport = (session: Session): Exclude<DataChannelResult, { ok: true }> => ({
    ok: false,
    errorCode: "datachannel_error",
    errorDescription: `session ${session.id} has no data channel transport: create one data channel before the first offer (pc.createDataChannel), as Cloudflare's examples do`,
  });

  app.post("/sessions/:sessionId/datachannels/new", async (req) => {
    const { session } = sessionOf(req);
    const list = items(decode(DataChannelsBody, req.body).dataChannels);
    for (const [i, item] of list.entries()) checkItem(item, i);
    const results = list.map((item) => {
      const echo = {
        location: item.location,
        ...(item.sessionId ? { sessionId: item.sessionId } : {}),
        dataChannelName: item.dataChannelName,
      };
      if (!session.dataChannels.available) return failed(noTransport(session), echo);
      let r: DataChannelResult;
      if (item.location === "local") {
        r = session.dataChannels.publish(item.dataChannelName!, delivery(item) ?? { ordered: true });
      } else {
        const source = sourceOf(req, item.sessionId!);
        r =
          "ok" in source
            ? source
            : session.dataChannels.subscribe(source.dataChannels, item.dataChannelName!, {
                waitForAck: item.waitForAck,
                canReply: item.canReply,
                delivery: delivery(item),
              });
      }
      return r.ok ? answer(r.info) : failed(r, echo);
    });
    return { dataChannels: ctx.itemsFailed(req, 200, results) };
  });

  app.put("/sessions/:sessionId/datachannels/update", async (req) => {
    const { session } = sessionOf(req);
    const list = items(decode(DataChannelsBody, req.body).dataChannels);
    list.forEach((item, i) => {
      checkItem(item, i, true);
      if (typeof item.canReply !== "boolean")
        throw new ApiError(
          "invalid_params",
          `dataChannels[${i}].canReply (true or false) is what update changes`,
        );
    });
    const results = list.map((item) => {
      const echo = {
        location: item.location,
        sessionId: item.sessionId,
        dataChannelName: item.dataChannelName,
      };
      const source = sourceOf(req, item.sessionId!);
      const r =
        "ok" in source
          ? source
          : session.dataChannels.update(source.dataChannels, item.dataChannelName!, item.canReply!);
      return r.ok ? answer(r.info, true) : failed(r, echo);
    });
    return { dataChannels: ctx.itemsFailed(req, 200, results) };
  });

  app.put("/sessions/:sessionId/datachannels/close", async (req) => {
    const { session } = sessionOf(req);
    const list = items(decode(DataChannelsCloseBody, req.body).dataChannels);
    list.forEach((item, i) => {
      if (!Number.isInteger(item.id) || item.id! < 0)
        throw new ApiError("invalid_params", `dataChannels[${i}].id must be a channel id of this session`);
    });
    const results = list.map((item) => {
      const r = session.dataChannels.closeChannel(item.id!);
      return r.ok ? answer(r.info) : failed(r, { id: item.id });
    });
    return { dataChannels: ctx.itemsFailed(req, 200, results) };
  });

  // Cloudflare: establish "only allows to pull the server-events channel"; it adds the SCTP transport. The
  // server-events channel is stream 0, which this server never sends on (it has no events to send yet).
  app.post("/sessions/:sessionId/datachannels/establish", async (req) => {
    const { session, limits } = sessionOf(req);
    const body = decode(DataChannelsEstablishBody, req.body);
    const dc = body.dataChannel;
    if (dc?.location !== "remote" || dc.dataChannelName !== "server-events")
      throw new ApiError(
        "invalid_params",
        'dataChannel must be {"location": "remote", "dataChannelName": "server-events"}: establish only pulls the server-events channel',
      );
    const offer = requireSdp(body.sessionDescription, "offer", limits);
    const res = await negotiate("datachannels/establish", () => session.establishDataChannels(offer));
    return {
      requiresImmediateRenegotiation: res.requiresImmediateRenegotiation,
      dataChannel: { dataChannelName: "server-events", id: 0 },
      ...(res.sessionDescription ? { sessionDescription: res.sessionDescription } : {}),
    };
  });
}
