/**
 * The one registry of error codes. Every route maps failures through here so that the HTTP status, the
 * `errorCode` string and the wording stay consistent (and the README table can be checked against it).
 * Codes mirror Cloudflare Realtime SFU where it defines one; Patchbay-only codes are marked.
 */
export const ERRORS = {
  unauthorized: { status: 401, description: "missing or invalid bearer token for this app" },
  not_found: { status: 404, description: "no such app or route" },
  decoding_error: { status: 400, description: "the request body is not valid JSON or has wrong field types" },
  invalid_request: { status: 400, description: "the request is well-formed JSON but not a valid request" },
  invalid_params: {
    status: 406,
    description: "a required field is missing, empty or has an unsupported value",
  },
  session_error: {
    status: 404,
    description: "the session does not exist in this app (404) or was closed (410)",
  },
  not_found_track_error: { status: 200, description: "per item: the named session or track does not exist" },
  close_track_error: { status: 200, description: "per item: no open track with that mid on this session" },
  update_track_error: {
    status: 200,
    description:
      "per item: no pulled track on that mid, a simulcast preference for a track without layers, or a replacement track of another kind or codec",
  },
  not_found_datachannel_error: {
    status: 200,
    description: "per item: the named session publishes no data channel of that name",
  },
  datachannel_error: {
    status: 200,
    description:
      "per item: the session has no data channel transport (its offer had no data channel) or no free channel id",
  },
  negotiation_error: { status: 400, description: "the session description could not be applied" },
  adapter_not_found: {
    status: 503,
    description: "per item: no adapter with that id was ever created in this app",
  },
  websocket_handshake_failed: {
    status: 503,
    description: "per item: the endpoint refused or failed the handshake",
  },
  websocket_connection_timeout: {
    status: 503,
    description: "per item: the endpoint did not complete the handshake in time",
  },
  websocket_endpoint_not_allowed: {
    status: 503,
    description: "per item: the endpoint policy blocks this address",
  },
  video_decoder_unavailable: {
    status: 503,
    description:
      'per item: the video decoder for outputCodec "jpeg" could not start (ffmpeg missing: --ffmpeg-path) (Patchbay-only)',
  },
  quota_exceeded: {
    status: 429,
    description:
      "a configured limit is reached (sessions, adapters, tracks); the description names the limit and its flag",
  },
  no_udp_port: {
    status: 503,
    description: "every UDP port of --rtc-min-port..--rtc-max-port is in use; nothing was created",
  },
  turn_not_configured: {
    status: 503,
    description:
      "TURN credentials were asked for but the server has no --turn-secret / --turn-urls (Patchbay-only)",
  },
  turn_revoke_unsupported: {
    status: 501,
    description:
      "shared-secret TURN credentials cannot be revoked before they expire; issue short ttl values (Patchbay-only)",
  },
  uri_too_long: { status: 414, description: "the request URL or one of its parameters is too long" },
  request_timeout: { status: 408, description: "the client did not send the whole request in time" },
  service_unavailable: {
    status: 503,
    description: "the server is shutting down",
  },
  internal_error: { status: 500, description: "unexpected server error (logged with a request id)" },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  errorCode: ErrorCode;
  errorDescription: string;
}

/** A failure that maps to one HTTP response. `status` overrides the registry default (e.g. 410 session_error). */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, description: string, status?: number) {
    super(description);
    this.code = code;
    this.status = status ?? ERRORS[code].status;
  }
  toBody(): ErrorBody {
    return { errorCode: this.code, errorDescription: this.message };
  }
}

/** The per-item error shape of batch operations. */
export function itemError(code: ErrorCode, description: string): ErrorBody {
  return { errorCode: code, errorDescription: description };
}
