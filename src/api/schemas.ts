import { z } from "zod";
import { ApiError } from "./errors.ts";

/** Request bodies are JSON whatever the Content-Type says; an empty body means `{}`. */
export function parseJsonBody(raw: unknown): unknown {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "string") return raw;
  if (raw.trim() === "") return {};
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new ApiError("decoding_error", `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Validate with zod; wrong types become 400 decoding_error naming the field. */
export function decode<T>(schema: z.ZodType<T>, raw: unknown): T {
  return validate(schema, parseJsonBody(raw));
}

function validate<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.path.length ? issue.path.join(".") : "body";
  throw new ApiError("decoding_error", `${path}: ${issue.message}`);
}

/**
 * `decode` for the batch routes: a `tracks` array longer than `maxTracks` (--max-tracks-per-request) is refused
 * with 400 invalid_request before any item is validated or looked at, so an oversized request costs no more
 * than parsing its JSON.
 */
export function decodeTracksRequest<T>(schema: z.ZodType<T>, raw: unknown, maxTracks: number): T {
  const body = parseJsonBody(raw);
  const tracks = (body as { tracks?: unknown } | null)?.tracks;
  if (Array.isArray(tracks) && tracks.length > maxTracks)
    throw new ApiError(
      "invalid_request",
      `tracks has ${tracks.length} items, more than the limit (--max-tracks-per-request ${maxTracks})`,
    );
  return validate(schema, body);
}

/** How many m-lines an SDP document has (counted without parsing it). */
export function countMediaSections(sdp: string): number {
  let count = sdp.startsWith("m=") ? 1 : 0;
  for (let i = sdp.indexOf("\nm="); i !== -1; i = sdp.indexOf("\nm=", i + 3)) count++;
  return count;
}

export const SessionDescription = z.object({
  type: z.enum(["offer", "answer"]),
  sdp: z.string(),
});

/** Cloudflare's simulcast preferences of a pull (both strategies default to "none"). */
export const SimulcastPreference = z.looseObject({
  preferredRid: z.string().optional(),
  priorityOrdering: z.enum(["none", "asciibetical"]).optional(),
  ridNotAvailable: z.enum(["none", "asciibetical"]).optional(),
});

export const TrackObject = z.looseObject({
  location: z.enum(["local", "remote"]),
  mid: z.string().optional(),
  trackName: z.string().optional(),
  sessionId: z.string().optional(),
  kind: z.enum(["audio", "video"]).optional(),
  bidirectionalMediaStream: z.boolean().optional(),
  simulcast: SimulcastPreference.optional(),
});

export const SessionsNewBody = z.looseObject({ sessionDescription: SessionDescription.optional() });

export const TracksNewBody = z.looseObject({
  sessionDescription: SessionDescription.optional(),
  tracks: z.array(TrackObject).optional(),
  autoDiscover: z.boolean().optional(),
});

export const TracksUpdateBody = z.looseObject({
  tracks: z.array(TrackObject.extend({ location: z.enum(["local", "remote"]).optional(), mid: z.string() })),
  sessionDescription: SessionDescription.optional(),
});

/** datachannels/new and /update: presence and values are checked by the route (→ 406), types here (→ 400). */
export const DataChannelsBody = z.looseObject({
  dataChannels: z
    .array(
      z.looseObject({
        location: z.string().optional(),
        dataChannelName: z.string().optional(),
        sessionId: z.string().optional(),
        waitForAck: z.boolean().optional(),
        canReply: z.boolean().optional(),
        ordered: z.boolean().optional(),
        maxRetransmits: z.number().optional(),
      }),
    )
    .optional(),
});

export const DataChannelsEstablishBody = z.looseObject({
  dataChannel: z
    .looseObject({ location: z.string().optional(), dataChannelName: z.string().optional() })
    .optional(),
  sessionDescription: SessionDescription.optional(),
});

export const DataChannelsCloseBody = z.looseObject({
  dataChannels: z.array(z.looseObject({ id: z.number().optional() })).optional(),
});

export const RenegotiateBody = z.looseObject({ sessionDescription: SessionDescription });

export const TracksCloseBody = z.looseObject({
  tracks: z.array(z.looseObject({ mid: z.string() })),
  sessionDescription: SessionDescription.optional(),
  force: z.boolean().optional(),
});
