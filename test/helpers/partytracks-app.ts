/**
 * A minimal "app" the way Cloudflare documents partytracks: a page bundling `partytracks/client`, and a
 * server route that proxies `/partytracks/*` with `routePartyTracksRequest` from `partytracks/server`,
 * both from npm and unchanged, pointed at Patchbay instead of https://rtc.live.cloudflare.com/v1 by its
 * `realtimeApiBaseUrl` option. Only the runtime glue differs from a Cloudflare Worker: Node's http server
 * stands in for the Worker's fetch handler.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { routePartyTracksRequest } from "partytracks/server";
import type { AppCredentials } from "./browser.ts";

const PAGE_ENTRY = fileURLToPath(new URL("../browser/partytracks-page.ts", import.meta.url));

let bundle: Promise<string> | undefined;

/** partytracks/client + the test page, as one ES module for the browser. */
function bundlePage(): Promise<string> {
  bundle ??= build({
    entryPoints: [PAGE_ENTRY],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  }).then((r) => r.outputFiles[0].text);
  return bundle;
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>partytracks call</title></head>
<body><script type="module" src="/app.js"></script></body></html>`;

/**
 * Workers' fetch takes a ReadableStream body as is; Node's (undici) insists on `duplex: "half"` for one.
 * routePartyTracksRequest forwards `request.body` (a stream), so the proxy process adds the option.
 */
function allowStreamingBodies(): void {
  const marker = Symbol.for("patchbay.fetch-duplex");
  const g = globalThis as unknown as Record<symbol, boolean>;
  if (g[marker]) return;
  g[marker] = true;
  const original = globalThis.fetch;
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
    if (init?.body instanceof ReadableStream) init = { ...init, duplex: "half" } as RequestInit;
    return original(input, init);
  }) as typeof fetch;
}

/** Headers a Worker never sees either (hop-by-hop), which undici refuses to forward. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "expect"]);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface PartyTracksApp {
  /** The app's origin (serve pages from here: a secure context on 127.0.0.1). */
  url: string;
  /** Requests the proxy forwarded, by path (for assertions on the call shapes). */
  calls: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

export async function startPartyTracksApp(patchbayUrl: string, app: AppCredentials): Promise<PartyTracksApp> {
  allowStreamingBodies();
  const js = await bundlePage();
  const calls: PartyTracksApp["calls"] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      if (url.pathname === "/") {
        res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
        return;
      }
      if (url.pathname === "/app.js") {
        res.writeHead(200, { "content-type": "text/javascript" }).end(js);
        return;
      }
      if (!url.pathname.startsWith("/partytracks/")) {
        res.writeHead(404).end();
        return;
      }
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === "string" && !HOP_BY_HOP.has(k)) headers.set(k, v);
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
      const request = new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method,
        headers,
        body: body && body.length > 0 ? new Uint8Array(body) : undefined,
      });
      const response = await routePartyTracksRequest({
        appId: app.appId,
        token: app.secret,
        realtimeApiBaseUrl: `${patchbayUrl}/v1`,
        request,
      });
      calls.push({ method: req.method ?? "GET", path: url.pathname, status: response.status });
      const out = Buffer.from(await response.arrayBuffer());
      const outHeaders: Record<string, string> = {};
      response.headers.forEach((v, k) => {
        if (!HOP_BY_HOP.has(k) && k !== "content-length" && k !== "content-encoding") outHeaders[k] = v;
      });
      res.writeHead(response.status, outHeaders).end(out);
    })().catch((err) => {
      res.writeHead(502, { "content-type": "text/plain" }).end(`proxy error: ${(err as Error).message}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
