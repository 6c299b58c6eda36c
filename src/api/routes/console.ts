// The console page's two routes. Neither hands out a secret to whoever asks:
//
//   GET  /console/bootstrap   what the page needs before sign-in: are the examples served, do they need a
//                             token, and how to sign in. Never a secret. For this machine's own same-origin
//                             page on a loopback server it also names the default app's id and the file
//                             that stores its secret, so the user only has to paste the secret.
//   POST /console/signin      {token} → the app's id and secret, for a single-use sign-in token. The CLI
//                             prints such a token in the console URL's fragment (`/#signin=<token>`) when it
//                             starts a loopback server with the default app: opening that link is the
//                             explicit, user-initiated step that hands the console its credential. A token
//                             lives in this process only (a restart invalidates it), works once, expires
//                             after an hour, and is redeemed only by a same-origin request over loopback to
//                             a loopback-bound server (so a leaked log line is useless from elsewhere).
//
// The other way in is the sign-in form: the app id and the secret, pasted by the user.

import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Config } from "../../config.ts";
import type { AppRegistry } from "../../sfu/apps.ts";
import { ApiError } from "../errors.ts";

/** What the console page needs to know before the user signs in. Never holds a secret. */
export interface ConsoleBootstrap {
  /** The built-in example endpoints (/examples/…) are served by this server. */
  examples: boolean;
  /** The examples need `?token=` (server bound beyond loopback): the page fetches it after sign-in. */
  examplesToken: boolean;
  /** Only for this machine's same-origin page on a loopback server with the default app. */
  defaultApp: { appId: string; secretStoredIn: string } | null;
  /** How to sign in here, in words the page shows next to the form. */
  signIn: string;
}

export interface ConsoleContext {
  readonly apps: AppRegistry<unknown>;
  readonly config: Pick<Config, "http" | "examples">;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase().replace(/^\[|\]$/g, "");
  if (a === "::1" || a === "0:0:0:0:0:0:0:1") return true;
  const v4 = a.startsWith("::ffff:") ? a.slice(7) : a;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** A bind address or Host name that can only mean this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || isLoopbackAddress(h);
}

/** The host name of a Host header value (`127.0.0.1:8787`, `[::1]:8787`, `localhost`). */
export function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (bracketed) return bracketed[1];
  return hostHeader.replace(/:\d+$/, "");
}

/**
 * Why this request is not this machine's own console page on a loopback-bound server, or undefined when it
 * is: the server listens on loopback only, the request comes over loopback, names a loopback host (a
 * DNS-rebinding page would carry its own host name), and is not a cross-site request (the API's CORS policy
 * echoes any Origin, so the check must be here).
 */
function notLocalPage(req: FastifyRequest, ctx: ConsoleContext): string | undefined {
  if (!isLoopbackHost(ctx.config.http.host)) return "the server listens beyond loopback";
  if (!isLoopbackAddress(req.socket.remoteAddress)) return "not a loopback connection";
  const host = req.headers.host ?? "";
  if (!isLoopbackHost(hostName(host))) return "the page was not opened on a loopback host name";
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return "cross-site request";
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`)
    return "cross-origin request";
  return undefined;
}

// ---- single-use sign-in tokens ------------------------------------------------------------------------

/** How long a sign-in link works. */
export const SIGN_IN_TOKEN_TTL_MS = 60 * 60 * 1000;
/** Unredeemed tokens kept at once (the oldest go first); a process issues one per start. */
const MAX_SIGN_IN_TOKENS = 16;

/** Digest of the token → the app it signs into. Process-wide: the CLI issues, the route redeems. */
const signInTokens = new Map<string, { appId: string; expiresAt: number }>();

function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

function pruneSignInTokens(now: number): void {
  for (const [digest, t] of signInTokens) if (t.expiresAt <= now) signInTokens.delete(digest);
  while (signInTokens.size > MAX_SIGN_IN_TOKENS) signInTokens.delete(signInTokens.keys().next().value!);
}

/**
 * A new single-use token that signs the console into `appId` (`POST /console/signin`), valid for `ttlMs`
 * in this process. Only a digest is kept.
 */
export function issueConsoleSignIn(appId: string, ttlMs = SIGN_IN_TOKEN_TTL_MS, now = Date.now()): string {
  const token = randomBytes(32).toString("base64url");
  signInTokens.set(tokenDigest(token), { appId, expiresAt: now + ttlMs });
  pruneSignInTokens(now);
  return token;
}

/** The console URL that signs in with a new single-use token (the token sits in the fragment). */
export function consoleSignInUrl(baseUrl: string, appId: string, ttlMs = SIGN_IN_TOKEN_TTL_MS): string {
  return `${baseUrl.replace(/\/+$/, "")}/#signin=${issueConsoleSignIn(appId, ttlMs)}`;
}

/** Consumes a token: the app id it was issued for, or undefined (unknown, used or expired). */
function redeemConsoleSignIn(token: string, now = Date.now()): string | undefined {
  const digest = tokenDigest(token);
  const entry = signInTokens.get(digest);
  signInTokens.delete(digest);
  pruneSignInTokens(now);
  if (!entry || entry.expiresAt <= now) return undefined;
  return entry.appId;
}

function bodyToken(body: unknown): string | undefined {
  let value = body;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (typeof value !== "object" || value === null || !("token" in value)) return undefined;
  const token = (value as { token: unknown }).token;
  return typeof token === "string" && token.length > 0 && token.length <= 200 ? token : undefined;
}

// ---- routes -------------------------------------------------------------------------------------------

function signInHelp(req: FastifyRequest, ctx: ConsoleContext): string {
  const source = ctx.apps.source;
  if (source.kind !== "default") {
    const where = source.kind === "file" ? "the apps file" : "PATCHBAY_APPS";
    return `Paste an app id and its secret, as configured in ${where}.`;
  }
  if (notLocalPage(req, ctx) !== undefined) {
    return "Paste the app id and its secret: printed once when the server created the default app, and stored in default-app.json in the server's data directory.";
  }
  return `Open the one-time sign-in link the server printed when it started (a start in a terminal prints one), or paste the secret stored in ${source.path}.`;
}

export function consoleRoutes(app: FastifyInstance, ctx: ConsoleContext): void {
  app.get("/console/bootstrap", async (req, reply): Promise<ConsoleBootstrap> => {
    reply.header("cache-control", "no-store");
    const source = ctx.apps.source;
    const first = ctx.apps.list()[0];
    const local = notLocalPage(req, ctx) === undefined;
    return {
      examples: ctx.config.examples,
      examplesToken: ctx.config.examples && !isLoopbackHost(ctx.config.http.host),
      defaultApp:
        local && source.kind === "default" && first
          ? { appId: first.appId, secretStoredIn: source.path }
          : null,
      signIn: signInHelp(req, ctx),
    };
  });

  app.post("/console/signin", async (req, reply) => {
    reply.header("cache-control", "no-store");
    const why = notLocalPage(req, ctx);
    // Answered here rather than thrown, so the error shape holds on any Fastify instance.
    const fail = (e: ApiError) => reply.status(e.status).send(e.toBody());
    if (why !== undefined) {
      return fail(
        new ApiError("unauthorized", `sign-in links work only on this machine's console page: ${why}`, 403),
      );
    }
    const token = bodyToken(req.body);
    const appId = token === undefined ? undefined : redeemConsoleSignIn(token);
    const found = appId === undefined ? undefined : ctx.apps.get(appId);
    if (!found) {
      return fail(
        new ApiError(
          "unauthorized",
          "this sign-in link was already used, has expired, or belongs to an earlier run of the server: " +
            "restart the server for a new one, or paste the app id and secret",
        ),
      );
    }
    const out: { appId: string; secret: string; name?: string } = {
      appId: found.appId,
      secret: found.secret,
    };
    if (found.name !== undefined) out.name = found.name;
    return out;
  });
}
