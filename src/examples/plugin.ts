// Mounts the built-in example endpoints on the Patchbay server (when `config.examples` is true):
//
//   WebSocket  /examples/tts            ingest  (speaks ?text=…)
//   WebSocket  /examples/recorder       egress  (one WAV per connection in <data-dir>/recordings/)
//   WebSocket  /examples/echo/in        egress  (?room=…)
//   WebSocket  /examples/echo/out       ingest  (?room=…)
//   GET        /examples                         the list above, with ws:// URLs the server can dial
//   GET        /examples/token?appId=…           the app's examples token (Authorization: Bearer <secret>)
//   GET        /examples/recorder/files          finished recordings (+ the ones in progress)
//   GET        /examples/recorder/files/<name>   a recording (audio/wav)
//   GET        /examples/echo/rooms              echo rooms and their counters
//
// Access (access.ts): on a server bound to loopback (the default) no token is needed, but requests from
// another site's page (foreign Origin, Sec-Fetch-Site) or naming a non-loopback Host (DNS rebinding) are
// refused. On a server bound beyond loopback, the WebSocket endpoints and the recorder/echo GET routes need
// the examples token (`?token=` in the endpoint URL an adapter dials, or a bearer header). `GET /examples`
// (names and paths only) and the token route (authenticated by the app secret) stay open.
//
// Limits: the recorder's --examples-recording-max-mb and --examples-disk-quota-mb (recorder.ts), the tts
// example's synthesis, connection and memory bounds (tts.ts), and 256 example sockets at once (host.ts).

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "../api/errors.ts";
import type { Config } from "../config.ts";
import type { AppRegistry } from "../sfu/apps.ts";
import { ExamplesAccess, examplesToken } from "./access.ts";
import { EchoExample } from "./echo.ts";
import { ExampleHost, type ExampleLogger } from "./host.ts";
import { RecorderExample } from "./recorder.ts";
import { TtsExample } from "./tts.ts";
import { ExamplesWorker } from "./worker-client.ts";

export const EXAMPLES_PREFIX = "/examples";

export interface ExamplesOptions {
  /** Recordings go to `<dataDir>/recordings/`. */
  dataDir: string;
  logger: ExampleLogger;
  /** The apps: their secrets derive the examples tokens. */
  apps: Pick<AppRegistry<unknown>, "list" | "authenticate" | "get">;
  /** `http.host` decides whether a token is needed; `exampleLimits` bounds the recorder. */
  config: Pick<Config, "http" | "exampleLimits">;
}

export interface MountedExamples {
  host: ExampleHost;
  access: ExamplesAccess;
  recorder: RecorderExample;
  echo: EchoExample;
  tts: TtsExample;
}

function notFound(reply: FastifyReply, what: string): FastifyReply {
  return reply.status(404).send({ errorCode: "not_found", errorDescription: what });
}

/** The address this server can dial itself on (a wildcard bind becomes loopback). */
function selfOrigin(api: FastifyInstance): string | undefined {
  const address = api.server.address();
  if (!address || typeof address === "string") return undefined;
  let host = address.address;
  if (host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return `ws://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

export function registerExamples(api: FastifyInstance, opts: ExamplesOptions): MountedExamples {
  const logger = opts.logger;
  const access = new ExamplesAccess({ bindHost: opts.config.http.host, apps: () => opts.apps.list() });
  const worker = new ExamplesWorker();
  const tts = new TtsExample({ synthesize: (text, o) => worker.synthesize(text, o), logger });
  const recorder = new RecorderExample({
    dir: join(opts.dataDir, "recordings"),
    logger,
    maxRecordingBytes: opts.config.exampleLimits.recordingMaxBytes,
    diskQuotaBytes: opts.config.exampleLimits.diskQuotaBytes,
    limitFlags: { recording: "--examples-recording-max-mb", disk: "--examples-disk-quota-mb" },
  });
  const echo = new EchoExample({ logger });
  const host = new ExampleHost({
    prefix: EXAMPLES_PREFIX,
    examples: [tts, recorder, echo],
    logger,
    authorize: (req, query) => access.check(req.headers, query),
  });
  host.attach(api.server);
  /** For the GET routes that expose what the examples hold (recordings, rooms). */
  const guard = async (req: FastifyRequest) => {
    const query = new URLSearchParams(req.url.includes("?") ? req.url.slice(req.url.indexOf("?")) : "");
    const refusal = access.check(req.headers, query);
    if (refusal) throw new ApiError("unauthorized", refusal.message, refusal.status);
  };
  api.addHook("preClose", async () => {
    await host.close();
    await worker.close();
  });

  api.get(EXAMPLES_PREFIX, async () => {
    const origin = selfOrigin(api);
    return {
      examples: host.list().map((e) => ({
        name: e.name,
        description: e.description,
        endpoints: e.endpoints.map((ep) => {
          const path = `${EXAMPLES_PREFIX}/${e.name}${ep.path}`;
          return { ...ep, path, url: origin ? `${origin}${path}` : undefined };
        }),
      })),
      recordings: `${EXAMPLES_PREFIX}/recorder/files`,
      auth: {
        tokenRequired: access.tokenRequired,
        token: `${EXAMPLES_PREFIX}/token?appId=<app id> (Authorization: Bearer <app secret>)`,
      },
    };
  });

  // The examples token of an app, for its own adapters' endpoint URLs (`?token=`). Authenticated like the
  // API; never cached. `required` says whether this server asks for it.
  api.get<{ Querystring: { appId?: string } }>(`${EXAMPLES_PREFIX}/token`, async (req, reply) => {
    reply.header("cache-control", "no-store");
    const appId = typeof req.query.appId === "string" ? req.query.appId : "";
    if (opts.apps.authenticate(appId, req.headers.authorization) !== "ok") {
      throw new ApiError(
        "unauthorized",
        "GET /examples/token?appId=<app id> needs Authorization: Bearer <that app's secret>",
      );
    }
    const app = opts.apps.get(appId)!;
    return { token: examplesToken(app.appId, app.secret), required: access.tokenRequired, param: "token" };
  });

  // A plain GET on a WebSocket endpoint says so instead of a bare 404.
  for (const e of host.list()) {
    for (const ep of e.endpoints) {
      api.get(`${EXAMPLES_PREFIX}/${e.name}${ep.path}`, async (_req, reply) =>
        reply
          .status(426)
          .header("upgrade", "websocket")
          .send({
            errorCode: "invalid_request",
            errorDescription: `${EXAMPLES_PREFIX}/${e.name}${ep.path} is a WebSocket endpoint: point an ${ep.adapter} adapter at it`,
          }),
      );
    }
  }

  api.get(`${EXAMPLES_PREFIX}/recorder/files`, { onRequest: guard }, async () => ({
    files: (await recorder.listFiles()).map((f) => ({
      ...f,
      url: `${EXAMPLES_PREFIX}/recorder/files/${encodeURIComponent(f.name)}`,
    })),
    active: recorder.activeRecordings(),
  }));

  api.get<{ Params: { name: string } }>(
    `${EXAMPLES_PREFIX}/recorder/files/:name`,
    { onRequest: guard },
    async (req, reply) => {
      const path = recorder.filePath(req.params.name);
      if (!path) return notFound(reply, `no recording ${req.params.name}`);
      let size: number;
      try {
        const s = await stat(path);
        if (!s.isFile()) return notFound(reply, `no recording ${req.params.name}`);
        size = s.size;
      } catch {
        return notFound(reply, `no recording ${req.params.name}`);
      }
      return reply
        .header("content-type", "audio/wav")
        .header("content-length", size)
        .header("content-disposition", `inline; filename="${req.params.name}"`)
        .header("cache-control", "no-store")
        .send(createReadStream(path));
    },
  );

  api.get(`${EXAMPLES_PREFIX}/echo/rooms`, { onRequest: guard }, async () => ({ rooms: echo.stats() }));

  return { host, access, recorder, echo, tts };
}
