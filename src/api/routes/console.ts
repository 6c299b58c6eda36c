import { isIP } from "node:net";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Config } from "../../config.ts";
import type { AppRegistry } from "../../sfu/apps.ts";

/** What the console page needs to know before the user signs in. */
export interface ConsoleBootstrap {
  /** The built-in example endpoints (/examples/…) are served by this server. */
  examples: boolean;
  /** The default app, only for a same-origin request over loopback to a loopback-bound server. */
  app: { appId: string; secret: string; name?: string } | null;
  /** Why `app` is null, in words the page shows next to the sign-in form. */
  reason?: string;
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
function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || isLoopbackAddress(h);
}

/** The host name of a Host header value (`127.0.0.1:8787`, `[::1]:8787`, `localhost`). */
function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (bracketed) return bracketed[1];
  return hostHeader.replace(/:\d+$/, "");
}

/**
 * Why the default app's secret must not go out for this request, or undefined when it may. The secret is
 * only handed to a page that this machine's user opened on a loopback-bound server: the request itself
 * comes over loopback, names a loopback host (a DNS-rebinding page would carry its own host name), and is
 * not a cross-site fetch (the API's CORS policy echoes any Origin, so the body itself must be withheld).
 */
function refusal(req: FastifyRequest, ctx: ConsoleContext): string | undefined {
  if (!isLoopbackHost(ctx.config.http.host))
    return "the server listens beyond loopback: type the app id and secret printed when it started";
  if (!isLoopbackAddress(req.socket.remoteAddress)) return "not a loopback connection";
  const host = req.headers.host ?? "";
  if (!isLoopbackHost(hostName(host))) return "the page was not opened on a loopback host name";
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return "cross-site request";
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`)
    return "cross-origin request";
  if (ctx.apps.source.kind !== "default")
    return "apps are configured (apps file or PATCHBAY_APPS): type an app id and its secret";
  return undefined;
}

/**
 * `GET /console/bootstrap` for the console page at `/`: whether the examples are served, and the default
 * app's id and secret when (and only when) the request is a same-origin loopback request to a
 * loopback-bound server using the generated default app. Never cached.
 */
export function consoleRoutes(app: FastifyInstance, ctx: ConsoleContext): void {
  app.get("/console/bootstrap", async (req, reply): Promise<ConsoleBootstrap> => {
    reply.header("cache-control", "no-store");
    const examples = ctx.config.examples;
    const why = refusal(req, ctx);
    if (why !== undefined) return { examples, app: null, reason: why };
    const first = ctx.apps.list()[0];
    if (!first) return { examples, app: null, reason: "no app is configured" };
    const out: NonNullable<ConsoleBootstrap["app"]> = { appId: first.appId, secret: first.secret };
    if (first.name !== undefined) out.name = first.name;
    return { examples, app: out };
  });
}
