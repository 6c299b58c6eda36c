import { ApiError } from "../../api/errors.ts";

// Per-adapter request headers for the endpoint dial (`headers` in an adapters/websocket/new item), for endpoints
// that authenticate with a header instead of a token in the URL. They go on every handshake of the adapter
// (redials too) and nowhere else: not in logs, not in the adapter status, not in the console.

export const MAX_DIAL_HEADERS = 16;
const MAX_VALUE_BYTES = 4096;
/** RFC 9110 §5.1 field-name token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
/** Printable ASCII, space and tab: no CR/LF (header injection), no NUL, no obs-text. */
const VALUE = /^[\t\x20-\x7e]*$/;
/** The handshake's own headers and hop-by-hop ones: the WebSocket client sets them, an item may not. */
const RESERVED = new Set([
  "host",
  "connection",
  "upgrade",
  "content-length",
  "transfer-encoding",
  "te",
  "trailer",
  "keep-alive",
  "proxy-connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "sec-websocket-accept",
]);

/** Validates an item's `headers`; throws 406 invalid_params naming the item and the problem. */
export function dialHeaders(value: unknown, item: number): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const at = `tracks[${item}].headers`;
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new ApiError("invalid_params", `${at} must be an object of header name → string value`);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_DIAL_HEADERS)
    throw new ApiError("invalid_params", `${at} has ${entries.length} headers, at most ${MAX_DIAL_HEADERS}`);
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [name, v] of entries) {
    if (!TOKEN.test(name))
      throw new ApiError(
        "invalid_params",
        `${at}: ${JSON.stringify(name)} is not a header name (RFC 9110 token, 1–64 characters)`,
      );
    const lower = name.toLowerCase();
    if (RESERVED.has(lower))
      throw new ApiError("invalid_params", `${at}: ${name} is set by the WebSocket handshake itself`);
    if (seen.has(lower)) throw new ApiError("invalid_params", `${at}: ${name} appears twice`);
    seen.add(lower);
    // The value is never echoed: it is usually a credential.
    if (typeof v !== "string") throw new ApiError("invalid_params", `${at}.${name} must be a string`);
    if (!VALUE.test(v))
      throw new ApiError("invalid_params", `${at}.${name} has a control or non-ASCII character`);
    if (Buffer.byteLength(v) > MAX_VALUE_BYTES)
      throw new ApiError("invalid_params", `${at}.${name} is longer than ${MAX_VALUE_BYTES} bytes`);
    out[name] = v;
  }
  return out;
}
