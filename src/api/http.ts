import cors from "@fastify/cors";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { AppState } from "../sfu/app-state.ts";
import type { App, AppRegistry } from "../sfu/apps.ts";
import { ApiError } from "./errors.ts";
import { sessionRoutes } from "./routes/sessions.ts";

export interface ApiDeps {
  apps: AppRegistry<AppState>;
  logger: Logger;
  metrics: Metrics;
  /** Extra routes (console, adapters) registered under the same error handling. */
  plugins?: ((app: FastifyInstance, ctx: RouteContext) => void)[];
}

export interface RouteContext {
  /** Authenticates the request against `:appId` and returns the app, or throws the matching ApiError. */
  appOf(req: FastifyRequest): App<AppState>;
  logger: Logger;
}

/** The HTTP API (Cloudflare Realtime SFU compatible) as a Fastify instance; `inject()` drives it in tests. */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, return503OnClosing: true });

  // Bodies are JSON whatever the Content-Type (some clients send none or text/plain).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

  app.register(cors, {
    origin: (_origin, cb) => cb(null, true),
    methods: ["GET", "POST", "PUT", "OPTIONS"],
    allowedHeaders: ["Authorization", "Content-Type"],
    maxAge: 600,
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send(err.toBody());
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 413) {
      return reply
        .status(413)
        .send({ errorCode: "invalid_request", errorDescription: "request body too large (1 MiB max)" });
    }
    if (status && status >= 400 && status < 500) {
      return reply
        .status(status)
        .send({ errorCode: "invalid_request", errorDescription: (err as Error).message });
    }
    deps.logger.error({ err, url: req.url, method: req.method, reqId: req.id }, "unhandled API error");
    return reply
      .status(500)
      .send({ errorCode: "internal_error", errorDescription: `unexpected server error (request ${req.id})` });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({
      errorCode: "not_found",
      errorDescription: `no route for ${req.method} ${req.url.split("?")[0]}`,
    });
  });

  const ctx: RouteContext = {
    logger: deps.logger,
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
  }
  return app;
}
