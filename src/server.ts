import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { AdapterCount, AdapterManager } from "./adapters/websocket/manager.ts";
import { buildApi } from "./api/http.ts";
import { adapterRoutes } from "./api/routes/adapters.ts";
import { consoleRoutes } from "./api/routes/console.ts";
import type { Config } from "./config.ts";
import { registerExamples } from "./examples/plugin.ts";
import type { Logger } from "./log.ts";
import { MediaScheduler, realClock, realTimers } from "./media/scheduler.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { NativeTransport, SharedUdpPort } from "./rtc/native-transport.ts";
import { RtcpDriver } from "./rtc/rtcp-driver.ts";
import { type RtcOptions, WeriftTransport } from "./rtc/werift-transport.ts";
import { AppState, SessionCensus } from "./sfu/app-state.ts";
import type { AppRegistry } from "./sfu/apps.ts";
import { setListenerErrorReporter } from "./util/signal.ts";

export interface StartOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly apps: AppRegistry<unknown>;
}

export interface RunningServer {
  readonly url: string;
  readonly apps: AppRegistry<AppState>;
  readonly metrics: Metrics;
  readonly scheduler: MediaScheduler;
  /** The WebSocket adapters of an app (tests and benchmarks read their live state). */
  adapters(appId: string): AdapterManager | undefined;
  close(): Promise<void>;
}

const WEB_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "web");

/** The wired server before it listens: the Fastify instance answers `inject()` (in-process API tests). */
export interface ServerCore extends Omit<RunningServer, "url"> {
  readonly api: FastifyInstance;
}

/** Wires config → apps → SFU state → adapters → HTTP API, without listening. */
export function createServer(opts: StartOptions): ServerCore {
  const { config, logger } = opts;
  const metrics = createMetrics();
  setListenerErrorReporter((err) => logger.error({ err }, "event listener failed"));
  const rtc: RtcOptions = {
    listenIp: config.rtc.listenIp,
    announcedIp: config.rtc.announcedIp,
    portRange:
      config.rtc.minPort > 0 ? ([config.rtc.minPort, config.rtc.maxPort] as [number, number]) : undefined,
  };
  // The one media clock of the process: adapters pace frames with it, transports run their RTCP on it.
  const scheduler = new MediaScheduler({
    clock: realClock,
    timers: realTimers,
    // Ten phases 2 ms apart: a wake serves a tenth of the streams, so per-wake work stays short.
    phases: 10,
    onError: (err) => logger.error({ err }, "media tick failed"),
  });
  const sharedPort =
    config.rtc.mediaPlane === "native" && config.rtc.sharedPort > 0
      ? new SharedUdpPort(rtc, config.rtc.sharedPort)
      : undefined;
  const rtcp = new RtcpDriver(scheduler, (err) => logger.error({ err }, "RTCP housekeeping failed"));
  // Sessions of every app together, for --max-sessions.
  const census = new SessionCensus();
  const apps = opts.apps.withState(
    (creds) =>
      new AppState({
        appId: creds.appId,
        limits: config.limits,
        census,
        createTransport: (mode) => {
          const transportOptions = {
            rtc,
            rtcp,
            clock: realClock,
            maxPublishBitrate: config.rtc.publishBitrateCap,
            livenessTimeoutMs: config.session.livenessTimeoutMs,
            onError: (err: unknown, context: string) =>
              logger.warn({ err, appId: creds.appId, context }, "media transport error"),
          };
          // Full ICE (?thirdparty=true) is werift's: the native agent is ICE-lite only.
          return config.rtc.mediaPlane === "native" && mode.iceLite
            ? new NativeTransport({ ...transportOptions, sharedPort }, mode)
            : new WeriftTransport(transportOptions, mode);
        },
        timings: config.session,
        onForwarded: () => metrics.forwardedPackets.add(),
        onRetransmit: () => metrics.nackRetransmits.add(),
        onError: (err, context) => logger.error({ err, appId: creds.appId, context }, "media path error"),
        onSessionEvent: (e) => {
          const ids = { appId: creds.appId, sessionId: e.session.id };
          if (e.kind === "created") logger.info({ ...ids, peer: e.peer }, "session created");
          else if (e.kind === "closed") logger.info({ ...ids, reason: e.reason }, "session closed");
          else if (e.kind === "connected")
            logger.info(ids, e.previous === "disconnected" ? "session reconnected" : "session connected");
          else
            logger.info(
              { ...ids, graceMs: config.session.disconnectGraceMs },
              "session disconnected, closing unless it reconnects",
            );
        },
      }),
  );
  metrics.sessions.addSource((add) => {
    for (const app of apps.list()) for (const s of app.state.allSessions()) add({ state: s.state });
  });
  metrics.tracks.addSource((add) => {
    for (const app of apps.list())
      for (const s of app.state.allSessions()) for (const t of s.activeTracks()) add({ kind: t.kind });
  });

  const adapterDeps = {
    config: config.adapter,
    limits: config.limits,
    count: new AdapterCount(),
    scheduler,
    logger,
    metrics,
    now: () => realClock.now(),
  };
  const managers = new Map(apps.list().map((a) => [a.appId, new AdapterManager(a.state, adapterDeps)]));
  // Live adapters only: the closed records the manager keeps for the state endpoint are not adapters.
  metrics.adapters.addSource((add) => {
    for (const m of managers.values())
      for (const a of m.list()) add({ direction: a.direction, state: a.state });
  });

  const api = buildApi({
    apps,
    logger,
    metrics,
    http: config.http,
    turn: config.turn,
    plugins: [adapterRoutes((appId) => managers.get(appId)!)],
  });
  // Built-in example endpoints (/examples/…, WebSocket + a few GET routes); off with --no-examples.
  if (config.examples) registerExamples(api, { dataDir: config.dataDir, logger, apps, config });
  consoleRoutes(api, { apps, config });
  if (existsSync(WEB_ROOT)) api.register(fastifyStatic, { root: WEB_ROOT, prefix: "/" });
  let closing: Promise<void> | undefined;
  return {
    api,
    apps,
    metrics,
    scheduler,
    adapters: (appId) => managers.get(appId),
    close() {
      closing ??= (async () => {
        for (const m of managers.values()) m.closeAll("server shutting down", 1001);
        for (const app of apps.list()) app.state.close("server shutting down");
        scheduler.close();
        sharedPort?.close();
        await api.close();
      })();
      return closing;
    },
  };
}

/** createServer, then listen. Used by the CLI and by tests (port 0). */
export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const core = createServer(opts);
  const { http } = opts.config;
  await core.api.listen({ host: http.host, port: http.port });
  const address = core.api.server.address();
  const port = typeof address === "object" && address ? address.port : http.port;
  const host = http.host.includes(":") ? `[${http.host}]` : http.host;
  return { ...core, url: `http://${host}:${port}` };
}
