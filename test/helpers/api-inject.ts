import type { FastifyInstance } from "fastify";
import { RTCPeerConnection } from "werift";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import type { Metrics } from "../../src/metrics.ts";
import { createServer } from "../../src/server.ts";
import type { AppState } from "../../src/sfu/app-state.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";
import type { Session } from "../../src/sfu/session.ts";
import { clientPeer, waitConnected } from "./rtc-client.ts";
import { TEST_APPS } from "./server.ts";

export { TEST_APPS };

export interface InjectResponse<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  /** Parsed JSON, or undefined when the body is empty or not JSON (see `text`). */
  body: T;
  text: string;
}

export interface InjectOptions {
  /** A JS value is sent as JSON (content-type application/json); a string is sent as is. */
  body?: unknown;
  /** Replaces the default headers entirely when given (use `auth` to control the Authorization header). */
  headers?: Record<string, string>;
  /** The Authorization header: default `Bearer <secret of the client's app>`; `null` sends none. */
  auth?: string | null;
}

/** A small in-process client bound to one app, over `app.inject()` (no port). */
export interface InjectClient {
  readonly appId: string;
  readonly secret: string;
  /** `path` relative to `/v1/apps/<appId>/` (or to `/apps/<appId>/` when the client was made with `v1: false`). */
  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    opts?: InjectOptions,
  ): Promise<InjectResponse<T>>;
}

export interface TestApi {
  app: FastifyInstance;
  apps: AppRegistry<AppState>;
  metrics: Metrics;
  /** The states of TEST_APPS[0] and TEST_APPS[1]. */
  stateA: AppState;
  stateB: AppState;
  /** Clients for TEST_APPS[0] (a) and TEST_APPS[1] (b). */
  a: InjectClient;
  b: InjectClient;
  /** Any request, no defaults at all. */
  inject(opts: {
    method: string;
    url: string;
    headers?: Record<string, string>;
    payload?: string;
  }): Promise<InjectResponse>;
  /** Looks a live session up in app a (throws when there is none). */
  sessionA(sessionId: string): Session;
  /** Closes every session of every app, then the Fastify instance. Idempotent. */
  close(): Promise<void>;
}

function parse(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The HTTP API built from the real pieces, like `startServer` does, but without listening:
 * drive it with `inject()`. `extraArgs` are CLI flags (e.g. `--session-connect-timeout-ms 200`).
 */
export async function buildTestApi(extraArgs: string[] = []): Promise<TestApi> {
  const config = loadConfig(
    ["--log-level", process.env.LOG_LEVEL ?? "warn", "--log-format", "json", ...extraArgs],
    { PATCHBAY_APPS: JSON.stringify(TEST_APPS) },
  );
  const logger = createLogger(config, false);
  const { registry } = await AppRegistry.load(config, logger);
  const core = createServer({ config, logger, apps: registry });
  const { api: app, apps, metrics } = core;
  await app.ready();

  const inject: TestApi["inject"] = async (opts) => {
    const res = await app.inject({
      method: opts.method as "GET",
      url: opts.url,
      headers: opts.headers,
      payload: opts.payload,
    });
    return { status: res.statusCode, headers: res.headers, body: parse(res.body), text: res.body };
  };

  const client = (creds: { appId: string; secret: string }): InjectClient => ({
    appId: creds.appId,
    secret: creds.secret,
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = opts.headers ? { ...opts.headers } : {};
      const auth = opts.auth === undefined ? `Bearer ${creds.secret}` : opts.auth;
      if (auth !== null && !opts.headers) headers.authorization = auth;
      let payload: string | undefined;
      if (typeof opts.body === "string") payload = opts.body;
      else if (opts.body !== undefined) {
        payload = JSON.stringify(opts.body);
        if (!opts.headers) headers["content-type"] = "application/json";
      }
      const url = path.startsWith("/") ? path : `/v1/apps/${creds.appId}/${path}`;
      const res = await inject({ method, url, headers, payload });
      return res as InjectResponse<never>;
    },
  });

  const stateA = apps.get(TEST_APPS[0].appId)!.state;
  const stateB = apps.get(TEST_APPS[1].appId)!.state;
  let closing: Promise<void> | undefined;
  return {
    app,
    apps,
    metrics,
    stateA,
    stateB,
    a: client(TEST_APPS[0]),
    b: client(TEST_APPS[1]),
    inject,
    sessionA(sessionId) {
      const found = stateA.lookup(sessionId);
      if (!found.ok) throw new Error(`no live session ${sessionId} in app a (${found.reason})`);
      return found.session;
    },
    close() {
      closing ??= core.close();
      return closing;
    },
  };
}

/**
 * Closes werift client peers (errors ignored: a peer may already be closed). A peer that has a remote
 * description is connecting on loopback; it is given up to `settleMs` to finish, because werift keeps
 * retransmitting DTLS handshake flights (ref'd timers, ~30 s) when a peer is closed mid-handshake, which
 * keeps the test process alive long after the tests are done.
 */
export async function closePeers(peers: Iterable<RTCPeerConnection>, settleMs = 5_000): Promise<void> {
  const list = [...peers];
  await Promise.all(
    list.map((pc) =>
      pc.remoteDescription && pc.connectionState !== "closed" && pc.connectionState !== "failed"
        ? waitConnected(pc, settleMs).catch(() => {})
        : undefined,
    ),
  );
  await Promise.all(list.map((pc) => pc.close().catch(() => {})));
}

/** Rejects after `ms` (a ref'd timer, so the event loop stays alive while a test waits on an event). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Asserts an error response: the status and exactly `{errorCode, errorDescription}` with a non-empty description. */
export function assertError(res: InjectResponse<unknown>, status: number, errorCode: string): void {
  const where = `${res.status} ${res.text}`;
  if (res.status !== status) throw new Error(`expected HTTP ${status} ${errorCode}, got ${where}`);
  const body = res.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== "object") throw new Error(`expected a JSON error body, got ${where}`);
  const keys = Object.keys(body).sort().join(",");
  if (keys !== "errorCode,errorDescription") throw new Error(`unexpected error body keys ${keys}: ${where}`);
  if (body.errorCode !== errorCode) throw new Error(`expected errorCode ${errorCode}, got ${where}`);
  if (typeof body.errorDescription !== "string" || body.errorDescription.trim() === "")
    throw new Error(`expected a non-empty errorDescription, got ${where}`);
}

/** The media section (from its `m=` line to the next) whose `a=mid:` is `mid`. */
export function mediaSection(sdp: string, mid: string): string | undefined {
  return sdp
    .split(/\r?\n(?=m=)/)
    .slice(1)
    .find((section) => section.split(/\r?\n/).includes(`a=mid:${mid}`));
}

/** Every `a=candidate:` line parsed into address and type. */
export function candidates(sdp: string): { address: string; type: string; line: string }[] {
  return sdp
    .split(/\r?\n/)
    .filter((l) => l.startsWith("a=candidate:"))
    .map((line) => {
      const parts = line.split(" ");
      return { address: parts[4], type: parts[parts.indexOf("typ") + 1], line };
    });
}

/**
 * A werift client peer like `clientPeer()` but with `bundlePolicy: "max-bundle"`. Use it for offers with
 * several m-lines: with werift's default policy the client gathers one ICE transport per m-line, and after a
 * BUNDLE answer `pc.close()` leaves the bundled-away transports' UDP sockets open, so the test process never exits.
 */
export function bundledClientPeer(): RTCPeerConnection {
  const base = clientPeer();
  const pc = new RTCPeerConnection({ ...base.config, bundlePolicy: "max-bundle" });
  base.close().catch(() => {});
  return pc;
}
