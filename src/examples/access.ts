// Who may use the built-in examples (/examples/…) of a Patchbay server.
//
// - Server bound to loopback (--http-host 127.0.0.1, ::1 or localhost, the default): no token; only this
//   machine can connect at all. What is still refused is a browser page of another site, which can open
//   WebSockets and send no-cors requests to 127.0.0.1 from the user's browser: a request with a foreign
//   `Origin` (or `Sec-Fetch-Site: cross-site/same-site`), or one naming a non-loopback `Host` (DNS rebinding).
// - Server bound beyond loopback: every request needs the examples token of one of the apps, as `?token=`
//   (what an adapter's endpoint URL can carry: the adapter dials these endpoints itself, without headers) or
//   `Authorization: Bearer <token>`. The token is HMAC-SHA256(app secret, "patchbay examples v1" + app id),
//   base64url: derived, so nothing is stored and it changes with the secret; one-way, so an endpoint URL
//   that shows up in adapter listings or logs does not reveal the app secret, and it grants the examples
//   only, never the API. `GET /examples/token?appId=…` with the app's bearer secret hands it out.

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { hostName, isLoopbackHost } from "../api/routes/console.ts";
import type { Refusal } from "./host.ts";

export interface ExamplesAccessOptions {
  /** The address the HTTP server binds to (`--http-host`). */
  bindHost: string;
  /**
   * Ask for a token. Default: when `bindHost` is not loopback. A standalone example (no apps, so no tokens)
   * passes false.
   */
  requireToken?: boolean;
  /** The apps whose secrets derive valid tokens (read on every check: apps never change at run time). */
  apps: () => readonly { readonly appId: string; readonly secret: string }[];
}

/** The examples token of an app (see the header comment). */
export function examplesToken(appId: string, secret: string): string {
  return createHmac("sha256", secret).update(`patchbay examples v1\n${appId}`).digest("base64url");
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The token a request carries: `?token=` or `Authorization: Bearer`. */
export function requestToken(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined {
  const q = query.get("token");
  if (q) return q;
  const m = /^\s*Bearer[ \t]+(\S+)\s*$/i.exec(headers.authorization ?? "");
  return m?.[1];
}

export class ExamplesAccess {
  /** Every request needs a token (by default: the server is reachable beyond loopback). */
  readonly tokenRequired: boolean;
  /** The server listens on loopback only: requests must name a loopback host (no DNS rebinding). */
  readonly loopbackOnly: boolean;
  private readonly apps: ExamplesAccessOptions["apps"];

  constructor(opts: ExamplesAccessOptions) {
    this.loopbackOnly = isLoopbackHost(opts.bindHost);
    this.tokenRequired = opts.requireToken ?? !this.loopbackOnly;
    this.apps = opts.apps;
  }

  /** Is `token` the examples token of some app? Digests are compared in constant time. */
  validToken(token: string | undefined): boolean {
    if (!token) return false;
    const got = digest(token);
    let ok = false;
    for (const app of this.apps()) {
      if (timingSafeEqual(got, digest(examplesToken(app.appId, app.secret)))) ok = true;
    }
    return ok;
  }

  /** Why a request (upgrade or GET) to the examples is refused, or undefined when it may go on. */
  check(headers: IncomingHttpHeaders, query: URLSearchParams): Refusal | undefined {
    const host = headers.host ?? "";
    const origin = headers.origin;
    if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) {
      return { status: 403, message: "the examples refuse requests from pages of another origin" };
    }
    const site = headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      return { status: 403, message: "the examples refuse cross-site requests" };
    }
    if (this.loopbackOnly && !isLoopbackHost(hostName(host))) {
      return {
        status: 403,
        message: "this server listens on loopback: the examples answer requests to a loopback host name only",
      };
    }
    if (this.tokenRequired && !this.validToken(requestToken(headers, query))) {
      return {
        status: 401,
        message:
          "the examples need ?token=<examples token> on a server reachable beyond loopback " +
          "(GET /examples/token?appId=<app id> with Authorization: Bearer <app secret>)",
      };
    }
    return undefined;
  }
}
