import type { LookupFunction } from "node:net";
import WebSocket from "ws";

export type DialResult =
  | { ok: true; ws: WebSocket }
  | { ok: false; code: "websocket_handshake_failed" | "websocket_connection_timeout"; description: string };

export interface DialOptions {
  /** Absolute: the handshake must be complete this long after the call, however the bytes trickle in. */
  timeoutMs: number;
  /** Abandons the dial (the HTTP client left, the server shuts down): resolves as failed at once. */
  signal?: AbortSignal;
  /** Pin the TCP connection to this (policy-checked) address. */
  address: string;
  family: 4 | 6;
  maxPayload: number;
  ca?: Buffer;
  /**
   * Pause reading as soon as the handshake completes; the caller resumes (`ws.resume()`) once its
   * listeners are attached. Without it, bytes the endpoint sent right behind its 101 answer (they arrive
   * as the upgrade's `head`) are emitted as 'message' events on a process.nextTick, before the awaiting
   * caller's continuation runs, and are lost.
   */
  pauseOnOpen?: boolean;
  /** Extra request headers of the handshake (the item's `headers`, validated by dial-headers.ts). */
  headers?: Record<string, string>;
}

/**
 * A plain RFC 6455 client handshake to the endpoint URL exactly as given (path and query untouched: endpoints
 * authenticate with tokens in the URL). No subprotocol, no compression, redirects not followed.
 */
export function dial(url: URL, opts: DialOptions): Promise<DialResult> {
  return new Promise((resolve) => {
    if (opts.signal?.aborted) {
      resolve({ ok: false, code: "websocket_handshake_failed", description: abortText(opts.signal) });
      return;
    }
    const pinned: LookupFunction = (_host, options, cb) => {
      if ((options as { all?: boolean }).all) cb(null, [{ address: opts.address, family: opts.family }]);
      else cb(null, opts.address, opts.family);
    };
    const ws = new WebSocket(url, {
      handshakeTimeout: opts.timeoutMs,
      followRedirects: false,
      perMessageDeflate: false,
      maxPayload: opts.maxPayload,
      lookup: pinned,
      ca: opts.ca,
      headers: opts.headers,
    });
    ws.binaryType = "nodebuffer";
    // On a message above maxPayload (1009) or with too many fragments (1008), ws closes the socket itself
    // with no reason (before it emits 'error'). SPEC §2.5 wants the endpoint told why, so that close gets one.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) =>
      close(code, reason ?? protocolCloseReason(code, opts.maxPayload));
    let settled = false;
    // ws's handshakeTimeout is an idle timer: an endpoint trickling its 101 a byte at a time resets it.
    const deadline = setTimeout(() => {
      done({
        ok: false,
        code: "websocket_connection_timeout",
        description: `no WebSocket handshake from ${url.origin} within ${opts.timeoutMs} ms`,
      });
      ws.terminate();
    }, opts.timeoutMs);
    const onAbort = () => {
      done({ ok: false, code: "websocket_handshake_failed", description: abortText(opts.signal!) });
      ws.terminate();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const done = (r: DialResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      opts.signal?.removeEventListener("abort", onAbort);
      ws.off("open", onOpen);
      ws.off("error", onError);
      if (!r.ok) ws.on("error", () => {}); // terminate() during the handshake emits one
      resolve(r);
    };
    const onOpen = () => {
      if (opts.pauseOnOpen) ws.pause();
      done({ ok: true, ws });
    };
    const onError = (err: Error) => {
      const timedOut = /handshake has timed out/i.test(err.message);
      done({
        ok: false,
        code: timedOut ? "websocket_connection_timeout" : "websocket_handshake_failed",
        description: timedOut
          ? `no WebSocket handshake from ${url.origin} within ${opts.timeoutMs} ms`
          : `WebSocket handshake with ${url.origin} failed: ${err.message}`,
      });
    };
    ws.on("open", onOpen);
    ws.on("error", onError);
  });
}

function abortText(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return `dial abandoned: ${reason instanceof Error ? reason.message : String(reason ?? "aborted")}`;
}

function protocolCloseReason(code: number | undefined, maxPayload: number): string | undefined {
  if (code === 1008) return "too many message fragments";
  if (code === 1009) return `message larger than ${maxPayload} bytes`;
  return undefined;
}
