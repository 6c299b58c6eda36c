import { maxHeaderSize, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import cors from "@fastify/cors";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import { type Config, DEFAULTS } from "../config.ts";
import { type Logger, redactText } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { AppState } from "../sfu/app-state.ts";
import type { App, AppRegistry } from "../sfu/apps.ts";
import { ApiError, ERRORS, type ErrorBody, type ErrorCode } from "./errors.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { turnRoutes } from "./routes/turn.ts";

/** The HTTP server limits buildApi applies (slowloris guards and the connection cap). */
export type HttpLimits = Pick<
  Config["http"],
  "headersTimeoutMs" | "requestTimeoutMs" | "idleTimeoutMs" | "maxConnections"
>;

/** Longest path parameter (app id, session id, adapter id) the router matches; longer is 414 uri_too_long. */
export const MAX_PARAM_LENGTH = 100;
const BODY_LIMIT = 1024 * 1024;

export interface ApiDeps {
  apps: AppRegistry<AppState>;
  logger: Logger;
  metrics: Metrics;
  /** Extra routes (console, adapters) registered under the same error handling. */
  plugins?: ((app: FastifyInstance, ctx: RouteContext) => void)[];
  /** Timeouts and connection cap of the HTTP server (`config.http`); `DEFAULTS.http` when omitted. */
  http?: HttpLimits;
  /** TURN credential settings (`config.turn`); without them the TURN routes answer turn_not_configured. */
  turn?: Config["turn"];
}

export interface RouteContext {
  /** Authenticates the request against `:appId` and returns the app, or throws the matching ApiError. */
  appOf(req: FastifyRequest): App<AppState>;
  logger: Logger;
  /**
   * Logs the failed items of a batch response (those with an `errorCode`), one line each, and returns
   * `items`. The response itself then is not logged again, whatever its status.
   */
  itemsFailed<T extends object>(req: FastifyRequest, status: number, items: readonly T[]): readonly T[];
}

/**
 * Failures outside the server's control (the client's request, an endpoint it named) and refusals for
 * capacity or shutdown are info (no_udp_port also has its own rate-limited warning); only what is the
 * server's own fault is error.
 */
const NOT_OUR_FAULT = new Set<string>([
  "websocket_handshake_failed",
  "websocket_connection_timeout",
  "websocket_endpoint_not_allowed",
  "adapter_not_found",
  "no_udp_port",
  "service_unavailable",
]);

function failureLevel(status: number, errorCode: string | undefined): "info" | "error" {
  return status < 500 || (errorCode !== undefined && NOT_OUR_FAULT.has(errorCode)) ? "info" : "error";
}

/** Where a failed request went: its route pattern (or, unrouted, its path without the query) and ids. */
function requestFields(req: FastifyRequest): Record<string, unknown> {
  const params = (req.params ?? {}) as Record<string, unknown>;
  const route = req.routeOptions?.url;
  const fields: Record<string, unknown> = { reqId: req.id, method: req.method };
  if (route && route !== "/*") fields.route = route;
  else fields.path = pathOf(req.url);
  for (const id of ["appId", "sessionId", "adapterId"])
    if (typeof params[id] === "string") fields[id] = params[id];
  return fields;
}

/** The path of a request URL, without its query, shortened for an error description. */
function pathOf(url: string): string {
  const path = url.split("?")[0];
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

function errorBody(code: ErrorCode, description: string): ErrorBody {
  return { errorCode: code, errorDescription: description };
}

function notFoundBody(req: FastifyRequest): ErrorBody {
  return errorBody("not_found", `no route for ${req.method} ${pathOf(req.url)}`);
}

/** 414 when a path segment is longer than any route parameter may be (the router then matches nothing). */
function overlongSegment(url: string): ErrorBody | undefined {
  const segments = url.split("?")[0].split("/");
  const i = segments.findIndex((seg) => seg.length > MAX_PARAM_LENGTH);
  if (i < 0) return undefined;
  return errorBody(
    "uri_too_long",
    `URL path segment ${i} is ${segments[i].length} characters long; ids and other path segments are limited to ${MAX_PARAM_LENGTH} characters`,
  );
}

/**
 * The answer to a request Node's HTTP parser gave up on (it never reaches Fastify): timeouts, malformed
 * request lines and headers, oversized header blocks. Undefined: close without a word.
 */
function clientErrorBody(
  err: NodeJS.ErrnoException & { reason?: string },
  headersDone: boolean,
  limits: { headersTimeout: number; requestTimeout: number },
): { status: number; body: ErrorBody } | undefined {
  const code = err.code ?? "";
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    const description = headersDone
      ? `the request body did not arrive within ${limits.requestTimeout} ms of the request's start (--http-request-timeout-ms)`
      : `the request headers did not arrive within ${limits.headersTimeout} ms (--http-headers-timeout-ms)`;
    return { status: 408, body: errorBody("request_timeout", description) };
  }
  if (code === "HPE_HEADER_OVERFLOW")
    return {
      status: 431,
      body: errorBody(
        "invalid_request",
        `the request line and headers exceed ${maxHeaderSize} bytes (Node's --max-http-header-size)`,
      ),
    };
  if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW")
    return {
      status: 413,
      body: errorBody("invalid_request", "malformed HTTP request: chunk extensions too large"),
    };
  if (code.startsWith("HPE_")) {
    const reason = (err.reason ?? err.message).replace(/\.$/, "");
    return { status: 400, body: errorBody("invalid_request", `malformed HTTP request: ${reason} (${code})`) };
  }
  return undefined;
}

/** A complete HTTP/1.1 response written straight to a socket, then the connection closed. */
function rawResponse(status: number, body: ErrorBody): string {
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
    "Content-Type: application/json; charset=utf-8\r\n" +
    `Content-Length: ${Buffer.byteLength(json)}\r\n` +
    "Connection: close\r\n\r\n" +
    json
  );
}

/** How long a connection that got a raw error response may linger (so the response is not lost to a RST). */
const LINGER_MS = 1000;

/** The HTTP API (Cloudflare Realtime SFU compatible) as a Fastify instance; `inject()` drives it in tests. */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const http: HttpLimits = deps.http ?? DEFAULTS.http;
  const requestTimeout = http.requestTimeoutMs;
  // Node refuses a headers timeout above the request timeout (the request timeout covers the headers too).
  const headersTimeout = Math.min(http.headersTimeoutMs, requestTimeout);
  if (headersTimeout < http.headersTimeoutMs)
    deps.logger.warn(
      { headersTimeoutMs: http.headersTimeoutMs, requestTimeoutMs: requestTimeout },
      "--http-headers-timeout-ms is above --http-request-timeout-ms; the request timeout applies to headers too",
    );
  const limits = { headersTimeout, requestTimeout };
  // Node checks both timeouts on a timer, not per connection: a quarter of the shorter one (at most 1 s,
  // at least 50 ms) keeps enforcement within that much of the configured value.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4)));
  const answered = new WeakSet<Socket>();
  // Requests whose failure is already logged (per item, or with its error): onSend logs the others.
  const logged = new WeakSet<FastifyRequest>();
  const logFailure = (
    req: FastifyRequest,
    status: number,
    body: Partial<ErrorBody>,
    extra: Record<string, unknown> = {},
    msg = "API request failed",
    levelStatus = status,
  ) => {
    const fields = {
      ...requestFields(req),
      status,
      errorCode: body.errorCode,
      ...(body.errorDescription ? { errorDescription: redactText(body.errorDescription) } : {}),
      ...extra,
    };
    deps.logger[failureLevel(levelStatus, body.errorCode)](fields, msg);
  };

  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Fastify's own 503 while closing has its shape, not Cloudflare's: the onRequest hook below answers.
    return503OnClosing: false,
    // Options of http.createServer: the slowloris guards (headers, whole request) and how often Node checks them.
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval },
    // Fastify sets these on the server after creating it (its defaults would be 0 and 72 s).
    requestTimeout,
    keepAliveTimeout: http.idleTimeoutMs,
    // No socket inactivity timeout: it would also cut requests whose handler takes longer (adapters/new
    // waits for a WebSocket handshake); headers, body and idle keep-alive each have their own timeout.
    connectionTimeout: 0,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Node's parser errors (timeouts, malformed requests): answered in Cloudflare's shape, then closed.
    clientErrorHandler(err, socket) {
      if (err.code === "ECONNRESET" || err.code === "EPIPE" || socket.destroyed || answered.has(socket))
        return;
      answered.add(socket);
      // A response already started on this connection cannot be followed by another one.
      const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
      const reply = clientErrorBody(err, !!inFlight, limits);
      if (!reply || !socket.writable || inFlight?.headersSent) {
        socket.destroy();
        return;
      }
      // Before routing: no request id, route or app yet, and the request line is not ours to log.
      deps.logger.info(
        {
          status: reply.status,
          errorCode: reply.body.errorCode,
          detail: err.code,
          remote: socket.remoteAddress,
        },
        "HTTP request refused before routing",
      );
      // end(), not destroy(): closing with unread input would reset the connection and could lose the answer.
      socket.end(rawResponse(reply.status, reply.body));
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    },
    // Errors Fastify answers before routing (bad percent-encoding, over-long parameters).
    frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
      // Answered before routing, so onSend does not see these: logged here.
      const answer = (status: number, body: ErrorBody) => {
        logged.add(req);
        logFailure(req, status, body);
        return reply.status(status).send(body);
      };
      if (err.code === "FST_ERR_BAD_URL")
        return answer(
          400,
          errorBody(
            "invalid_request",
            `the URL path is not valid percent-encoding: ${pathOf(req.raw.url ?? req.url)}`,
          ),
        );
      if (err.code === "FST_ERR_MAX_PARAM_LENGTH")
        return answer(414, overlongSegment(req.raw.url ?? req.url) ?? errorBody("uri_too_long", err.message));
      logged.add(req);
      deps.logger.error(
        { err, reqId: req.id, path: pathOf(req.raw.url ?? req.url), method: req.method },
        "unhandled framework error",
      );
      return reply
        .status(500)
        .send(errorBody("internal_error", `unexpected server error (request ${req.id})`));
    },
  });

  // Over the cap Node closes new connections as soon as they are accepted, before reading a byte: no
  // HTTP answer is possible. Open connections (and all media, which is UDP) are untouched.
  app.server.maxConnections = http.maxConnections;
  let dropped = 0;
  let dropLogged = 0;
  app.server.on("drop", () => {
    dropped++;
    const now = Date.now();
    if (now - dropLogged < 10_000) return;
    dropLogged = now;
    deps.logger.warn(
      { refused: dropped, maxConnections: http.maxConnections },
      "HTTP connections refused: --http-max-connections reached",
    );
    dropped = 0;
  });

  // Shutting down: requests still arriving on open connections get a Cloudflare-shaped 503.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (_req, reply) => {
    if (!closing) return;
    reply.header("connection", "close");
    return reply
      .status(503)
      .send(errorBody("service_unavailable", "the server is shutting down; retry the request later"));
  });

  // Every failed response is logged once, here, unless a route logged its failed items (itemsFailed) or the
  // error handler logged an unexpected error with its stack. Error bodies are small JSON strings.
  app.addHook("onSend", async (req, reply, payload) => {
    if (reply.statusCode < 400 || logged.has(req)) return payload;
    logged.add(req);
    let body: Partial<ErrorBody> = {};
    if (typeof payload === "string") {
      try {
        body = JSON.parse(payload) as Partial<ErrorBody>;
      } catch {
        // not JSON: logged without a code
      }
    }
    logFailure(req, reply.statusCode, body);
    return payload;
  });

  // Bodies are JSON whatever the Content-Type (some clients send none or text/plain).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

  app.register(cors, {
    origin: (_origin, cb) => cb(null, true),
    methods: ["GET", "POST", "PUT", "OPTIONS"],
    allowedHeaders: ["Authorization", "Content-Type"],
    maxAge: 600,
    // An OPTIONS request without Origin / Access-Control-Request-Method is answered like a preflight
    // (204) instead of with @fastify/cors' plain-text 400.
    strictPreflight: false,
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send(err.toBody());
    const status = (err as { statusCode?: number }).statusCode;
    const code = (err as { code?: string }).code;
    if (status === 413) {
      return reply.status(413).send(errorBody("invalid_request", "request body too large (1 MiB max)"));
    }
    if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply
        .status(415)
        .send(
          errorBody(
            "invalid_request",
            `the Content-Type header ${JSON.stringify(req.headers["content-type"] ?? "")} is not a media type (bodies are read as JSON; send application/json or none)`,
          ),
        );
    }
    // @fastify/static (its send) refuses paths with NUL bytes, `..` or `//` with a 403; nothing else here
    // answers 403 to a GET. For a client that is no such route.
    if (status === 403 && (req.method === "GET" || req.method === "HEAD"))
      return reply.status(404).send(notFoundBody(req));
    if (status && status >= 400 && status < 500) {
      const message = (err as Error).message;
      // Errors of the static file server say only their status text: name the request too.
      const description =
        !message || message === STATUS_CODES[status]
          ? `${STATUS_CODES[status] ?? "error"}: ${req.method} ${pathOf(req.url)}`
          : message;
      return reply.status(status).send(errorBody("invalid_request", description));
    }
    logged.add(req);
    logFailure(req, 500, { errorCode: "internal_error" }, { err }, "unhandled API error");
    return reply.status(500).send(errorBody("internal_error", `unexpected server error (request ${req.id})`));
  });
  app.setNotFoundHandler((req, reply) => {
    const tooLong = overlongSegment(req.url);
    if (tooLong) return reply.status(414).send(tooLong);
    return reply.status(404).send(notFoundBody(req));
  });

  const ctx: RouteContext = {
    logger: deps.logger,
    itemsFailed(req, status, items) {
      logged.add(req);
      items.forEach((item, i) => {
        const r = item as Partial<ErrorBody> & { trackName?: unknown; mid?: unknown; adapterId?: unknown };
        if (typeof r.errorCode !== "string") return;
        const ids: Record<string, unknown> = { item: i };
        for (const k of ["trackName", "mid", "adapterId"] as const)
          if (typeof r[k] === "string") ids[k] = r[k];
        // An item's level follows its own error, not the status the whole response got.
        const own = (ERRORS as Record<string, { status: number }>)[r.errorCode]?.status ?? status;
        logFailure(req, status, r, ids, "API request item failed", own);
      });
      return items;
    },
    appOf(req) {
      const { appId } = req.params as { appId: string };
      const auth = deps.apps.authenticate(appId, req.headers.authorization);
      if (auth === "unknown_app") throw new ApiError("not_found", `no app ${appId}`);
      if (auth === "unauthorized")
        throw new ApiError(
          "unauthorized",
          "missing or wrong bearer token (Authorization: Bearer <app secret>)",
        );
      return deps.apps.get(appId)!;
    },
  };

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });

  for (const prefix of ["/v1", ""]) {
    app.register(
      async (scope) => {
        sessionRoutes(scope, ctx);
        for (const p of deps.plugins ?? []) p(scope, ctx);
      },
      { prefix: `${prefix}/apps/:appId` },
    );
    app.register(async (scope) => turnRoutes(scope, { apps: deps.apps, turn: deps.turn ?? DEFAULTS.turn }), {
      prefix,
    });
  }
  return app;
}
