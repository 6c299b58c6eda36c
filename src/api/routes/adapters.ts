import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { adapterAudioFormat, isAudioCodec } from "../../adapters/websocket/audio-format-param.ts";
import { dialHeaders } from "../../adapters/websocket/dial-headers.ts";
import { parseEndpoint } from "../../adapters/websocket/endpoint-policy.ts";
import type { AdapterManager } from "../../adapters/websocket/manager.ts";
import { twilioSignature } from "../../adapters/websocket/twilio.ts";
import type { AdapterAudioFormat } from "../../media/audio-format.ts";
import { ApiError } from "../errors.ts";
import type { RouteContext } from "../http.ts";
import { decode } from "../schemas.ts";

// Types are checked here (wrong type → 400 decoding_error); presence and values below (→ 406 invalid_params).
const AdapterItem = z.looseObject({
  location: z.string().optional(),
  trackName: z.string().optional(),
  sessionId: z.string().optional(),
  endpoint: z.string().optional(),
  inputCodec: z.string().optional(),
  outputCodec: z.string().optional(),
  mode: z.string().optional(),
  control: z.string().optional(),
  headers: z.unknown().optional(),
  speechEvents: z.boolean().optional(),
  sampleRate: z.number().optional(),
  channels: z.number().optional(),
  dialect: z.string().optional(),
  replyTrackName: z.string().optional(),
  customParameters: z.record(z.string(), z.string()).optional(),
  authToken: z.string().optional(),
});
type Item = z.infer<typeof AdapterItem>;
const NewBody = z.looseObject({ tracks: z.array(AdapterItem).optional() });
const CloseBody = z.looseObject({
  tracks: z.array(z.looseObject({ adapterId: z.string().optional() })).optional(),
});

function checkCount(n: number | undefined): void {
  if (n === undefined || n < 1 || n > 4)
    throw new ApiError("invalid_params", `tracks must hold 1 to 4 items, got ${n ?? "none"}`);
}

function required(item: Record<string, unknown>, i: number, ...fields: string[]): void {
  for (const f of fields) {
    const v = item[f];
    if (typeof v !== "string" || v.trim() === "")
      throw new ApiError("invalid_params", `tracks[${i}].${f} is required and must not be empty`);
  }
}

export type AdapterItemResult = Record<string, unknown>;

const MAX_CUSTOM_PARAMETERS = 32;

/** A Cloudflare-style item (with Patchbay's optional fields); its endpoint audio format, if audio. */
function checkItem(t: Item, i: number, manager: AdapterManager): AdapterAudioFormat | undefined {
  for (const f of ["replyTrackName", "customParameters", "authToken"] as const)
    if (t[f] !== undefined)
      throw new ApiError("invalid_params", `tracks[${i}].${f} applies to "dialect": "twilio" items only`);
  if (t.control !== undefined && (t.location !== "local" || t.control !== "json"))
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].control: only "json" on a local (ingest) item is supported, got ${JSON.stringify(t.control)} on a ${t.location} item`,
    );
  if (t.speechEvents !== undefined && (t.location !== "remote" || !isAudioCodec(t.outputCodec)))
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].speechEvents applies to remote (egress) items with an audio outputCodec`,
    );
  if (t.location === "local") {
    required(t, i, "trackName", "endpoint", "inputCodec");
    if (!isAudioCodec(t.inputCodec))
      throw new ApiError(
        "invalid_params",
        `tracks[${i}].inputCodec "${t.inputCodec}" is not supported (use "pcm", "pcmu" or "pcma")`,
      );
    return adapterAudioFormat(t.inputCodec, t, i, "inputCodec");
  }
  required(t, i, "sessionId", "trackName", "endpoint", "outputCodec");
  if (t.outputCodec === "jpeg") {
    if (t.sampleRate !== undefined || t.channels !== undefined)
      throw new ApiError(
        "invalid_params",
        `tracks[${i}]: sampleRate and channels apply to audio output codecs`,
      );
    const problem = manager.jpegSourceProblem(t.sessionId!, t.trackName!);
    if (problem) throw new ApiError("invalid_params", `tracks[${i}]: ${problem}`);
    return undefined;
  }
  if (!isAudioCodec(t.outputCodec))
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].outputCodec "${t.outputCodec}" is not supported (use "pcm", "pcmu" or "pcma" for audio, "jpeg" for video)`,
    );
  return adapterAudioFormat(t.outputCodec, t, i, "outputCodec");
}

/**
 * A "dialect": "twilio" item: a remote item (sessionId/trackName: what the endpoint hears) with
 * replyTrackName (the track its audio goes into). The format is Twilio's: µ-law 8 kHz mono both ways.
 */
function checkTwilio(t: Item, i: number): undefined {
  if (t.dialect !== "twilio")
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].dialect: only "twilio" is supported, got ${JSON.stringify(t.dialect)}`,
    );
  if (t.location !== "remote")
    throw new ApiError(
      "invalid_params",
      `tracks[${i}]: a "twilio" item is "remote": sessionId and trackName name the track the endpoint hears, replyTrackName the track it speaks into`,
    );
  required(t, i, "sessionId", "trackName", "endpoint", "replyTrackName");
  for (const f of ["inputCodec", "outputCodec"] as const)
    if (t[f] !== undefined && t[f] !== "pcmu")
      throw new ApiError(
        "invalid_params",
        `tracks[${i}].${f}: the twilio dialect is "pcmu" (8 kHz µ-law) only`,
      );
  if ((t.sampleRate ?? 8000) !== 8000 || (t.channels ?? 1) !== 1)
    throw new ApiError("invalid_params", `tracks[${i}]: the twilio dialect is 8000 Hz mono only`);
  for (const f of ["control", "speechEvents"] as const)
    if (t[f] !== undefined)
      throw new ApiError(
        "invalid_params",
        `tracks[${i}].${f} does not apply to the twilio dialect (it has mark and clear)`,
      );
  if (t.authToken !== undefined && (t.authToken.length === 0 || t.authToken.length > 256))
    throw new ApiError("invalid_params", `tracks[${i}].authToken must be 1 to 256 characters`);
  const params = Object.entries(t.customParameters ?? {});
  if (params.length > MAX_CUSTOM_PARAMETERS)
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].customParameters: at most ${MAX_CUSTOM_PARAMETERS} entries`,
    );
  for (const [k, v] of params)
    if (k.length === 0 || k.length > 256 || v.length > 4096)
      throw new ApiError(
        "invalid_params",
        `tracks[${i}].customParameters: names of 1 to 256 characters, values up to 4096`,
      );
  return undefined;
}

/** WebSocket adapter routes (SPEC §2.3–2.4 plus the state endpoints). */
export function adapterRoutes(managerOf: (appId: string) => AdapterManager) {
  return (app: FastifyInstance, ctx: RouteContext): void => {
    app.post("/adapters/websocket/new", async (req, reply) => {
      const manager = managerOf(ctx.appOf(req).appId);
      const body = decode(NewBody, req.body);
      checkCount(body.tracks?.length);
      const items = body.tracks!.map((t, i) => {
        if (t.location !== "local" && t.location !== "remote")
          throw new ApiError("invalid_params", `tracks[${i}].location must be "local" or "remote"`);
        const format = t.dialect !== undefined ? checkTwilio(t, i) : checkItem(t, i, manager);
        const url = parseEndpoint(t.endpoint!);
        if (!url) throw new ApiError("invalid_params", `tracks[${i}].endpoint must be a ws:// or wss:// URL`);
        const headers = dialHeaders(t.headers, i);
        // Signed as Twilio signs: over the URL as configured, which is what the bot validates against.
        const signed =
          t.authToken === undefined
            ? headers
            : { ...headers, "X-Twilio-Signature": twilioSignature(t.authToken, t.endpoint!) };
        return { ...t, url, format, dialHeaders: signed };
      });
      // A client that leaves before the answer abandons its dials: no adapter appears that nobody knows of.
      const left = new AbortController();
      const onGone = () => {
        if (!reply.raw.writableEnded) left.abort(new Error("the HTTP client disconnected before the answer"));
      };
      reply.raw.on("close", onGone);
      // Items are independent: dial them in parallel, answer in request order.
      const results: AdapterItemResult[] = await Promise.all(
        items.map(async (t) => {
          const r =
            t.dialect === "twilio"
              ? await manager.createTwilio(
                  {
                    sessionId: t.sessionId!,
                    trackName: t.trackName!,
                    replyTrackName: t.replyTrackName!,
                    endpoint: t.url,
                    headers: t.dialHeaders,
                    customParameters: t.customParameters ?? {},
                  },
                  left.signal,
                )
              : t.location === "remote"
                ? t.outputCodec === "jpeg"
                  ? await manager.createJpegEgress(
                      {
                        sessionId: t.sessionId!,
                        trackName: t.trackName!,
                        endpoint: t.url,
                        headers: t.dialHeaders,
                      },
                      left.signal,
                    )
                  : await manager.createEgress(
                      {
                        sessionId: t.sessionId!,
                        trackName: t.trackName!,
                        endpoint: t.url,
                        headers: t.dialHeaders,
                        speechEvents: t.speechEvents === true,
                        format: t.format,
                      },
                      left.signal,
                    )
                : await manager.createIngest(
                    {
                      trackName: t.trackName!,
                      endpoint: t.url,
                      control: t.control === "json" ? "json" : undefined,
                      headers: t.dialHeaders,
                      format: t.format,
                    },
                    left.signal,
                  );
          if ("errorCode" in r) return { trackName: t.trackName, ...r };
          if (t.dialect === "twilio")
            // sessionId/trackName: the reply track, the one to pull (as for an ingest item).
            return {
              trackName: t.replyTrackName,
              adapterId: r.adapterId,
              sessionId: r.sessionId,
              endpoint: t.endpoint,
              sourceSessionId: t.sessionId,
              sourceTrackName: t.trackName,
            };
          return {
            trackName: t.trackName,
            adapterId: r.adapterId,
            sessionId: r.sessionId,
            endpoint: t.endpoint,
          };
        }),
      );
      reply.raw.off("close", onGone);
      if (left.signal.aborted) {
        for (const r of results)
          if (typeof r.adapterId === "string")
            manager.close(r.adapterId, "the HTTP client left before the answer");
        return reply;
      }
      const anyOk = results.some((r) => !("errorCode" in r));
      const onlyQuota = results.every((r) => r.errorCode === "quota_exceeded");
      const status = anyOk ? 200 : onlyQuota ? 429 : 503;
      return reply.status(status).send({ tracks: ctx.itemsFailed(req, status, results) });
    });

    app.post("/adapters/websocket/close", async (req, reply) => {
      const manager = managerOf(ctx.appOf(req).appId);
      const body = decode(CloseBody, req.body);
      checkCount(body.tracks?.length);
      const results = body.tracks!.map((t, i) => {
        required(t, i, "adapterId");
        const r = manager.close(t.adapterId!, "closed by API", 1000);
        if (r.kind === "unknown")
          return {
            adapterId: t.adapterId,
            errorCode: "adapter_not_found",
            errorDescription: `no adapter ${t.adapterId} in this app`,
          };
        return r.kind === "closed"
          ? { adapterId: t.adapterId, bytesProcessed: r.bytesProcessed }
          : { adapterId: t.adapterId };
      });
      const anyOk = results.some((r) => !("errorCode" in r));
      const status = anyOk ? 200 : 503;
      return reply.status(status).send({ tracks: ctx.itemsFailed(req, status, results) });
    });

    app.get("/adapters/websocket", async (req) => {
      const manager = managerOf(ctx.appOf(req).appId);
      return { adapters: manager.statuses() };
    });

    app.get("/adapters/websocket/:adapterId", async (req) => {
      const manager = managerOf(ctx.appOf(req).appId);
      const { adapterId } = req.params as { adapterId: string };
      const status = manager.status(adapterId);
      if (!status) throw new ApiError("adapter_not_found", `no adapter ${adapterId} in this app`, 404);
      return status;
    });
  };
}
