import type { LookupFunction } from "node:net";
import WebSocket from "ws";

export type DialResult =
  | { ok: true; ws: WebSocket }
  | { ok: false; code: "websocket_handshake_failed" | "websocket_connection_timeout"; description: string };

export interface DialOptions {
  timeoutMs: number;
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
}

/**
 * A plain RFC 6455 client handshake to the endpoint URL exactly as given (path and query untouched: endpoints
 * authenticate with tokens in the URL). No subprotocol, no compression, redirects not followed.
 */
export function dial(url: URL, opts: DialOptions): Promise<DialResult> {
  return new Promise((resolve) => {
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
    });
    ws.binaryType = "nodebuffer";
    // On a message above maxPayload, ws closes the socket itself with 1009 and no reason (before it emits
    // 'error'). SPEC §2.5 wants the endpoint told why, so that close gets one.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) =>
      close(code, reason ?? (code === 1009 ? `message larger than ${opts.maxPayload} bytes` : undefined));
    let settled = false;
    const done = (r: DialResult) => {
      if (settled) return;
      settled = true;
      ws.off("open", onOpen);
      ws.off("error", onError);
      resolve(r);
    };
    const onOpen = () => {
      if (opts.pauseOnOpen) ws.pause();
      done({ ok: true, ws });
    };
    const onError = (err: Error) => {
      // After a failed handshake ws emits 'close' too; keep an error listener so nothing is unhandled.
      ws.on("error", () => {});
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
