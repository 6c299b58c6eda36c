// Mounts the built-in example endpoints on the Patchbay server (when `config.examples` is true):
//
//   WebSocket  /examples/tts            ingest  (speaks ?text=…)
//   WebSocket  /examples/recorder       egress  (one WAV per connection in <data-dir>/recordings/)
//   WebSocket  /examples/echo/in        egress  (?room=…)
//   WebSocket  /examples/echo/out       ingest  (?room=…)
//   GET        /examples                         the list above, with ws:// URLs the server can dial
//   GET        /examples/recorder/files          finished recordings (+ the ones in progress)
//   GET        /examples/recorder/files/<name>   a recording (audio/wav)
//   GET        /examples/echo/rooms              echo rooms and their counters
//
// The HTTP routes are not authenticated (like the console's static files): recordings are readable by
// anyone who can reach the port. The default bind address is loopback; a server exposed beyond it should
// run with --no-examples.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
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
}

export interface MountedExamples {
  host: ExampleHost;
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
  const worker = new ExamplesWorker();
  const tts = new TtsExample({ synthesize: (text, o) => worker.synthesize(text, o), logger });
  const recorder = new RecorderExample({
    dir: join(opts.dataDir, "recordings"),
    rawToWav: (raw, wav) => worker.rawToWav(raw, wav),
    logger,
  });
  const echo = new EchoExample({ logger });
  const host = new ExampleHost({ prefix: EXAMPLES_PREFIX, examples: [tts, recorder, echo], logger });
  host.attach(api.server);
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
    };
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

  api.get(`${EXAMPLES_PREFIX}/recorder/files`, async () => ({
    files: (await recorder.listFiles()).map((f) => ({
      ...f,
      url: `${EXAMPLES_PREFIX}/recorder/files/${encodeURIComponent(f.name)}`,
    })),
    active: recorder.activeRecordings(),
  }));

  api.get<{ Params: { name: string } }>(`${EXAMPLES_PREFIX}/recorder/files/:name`, async (req, reply) => {
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
  });

  api.get(`${EXAMPLES_PREFIX}/echo/rooms`, async () => ({ rooms: echo.stats() }));

  return { host, recorder, echo, tts };
}
