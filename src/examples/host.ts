// Serves example WebSocket endpoints on an existing HTTP server: the Patchbay server itself (prefix
// `/examples`, next to the API) or a small standalone server (prefix ``, see standalone.ts).
//
// Only upgrade requests under the prefix are touched. Requests elsewhere are left to other `upgrade`
// listeners; if there are none (this host is the only one), they are answered 404 so the client is not left
// hanging, which is what Node does when nobody listens for upgrades.

import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { redactText } from "../log.ts";

export interface ExampleLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Why an upgrade is refused: answered as a plain HTTP response instead of 101. */
export interface Refusal {
  status: number;
  message: string;
}

export interface ExampleEndpointInfo {
  /** Path below the example's root, e.g. `` or `/in`. */
  path: string;
  /** Which adapter dials it: `ingest` (location "local": the endpoint sends audio) or `egress`. */
  adapter: "ingest" | "egress";
  /** Query parameters it understands, e.g. `text`, `room`. */
  query: string[];
  description: string;
}

export type UpgradeDecision = Refusal | ((ws: WebSocket) => void);

export interface Example {
  readonly name: string;
  readonly description: string;
  readonly endpoints: readonly ExampleEndpointInfo[];
  /**
   * Decides on an upgrade to `<prefix>/<name><subpath>`: a refusal, or the handler of the accepted socket
   * (or a promise of either, for a decision that needs I/O). Handlers must catch their own errors; the host
   * also guards the call.
   */
  upgrade(
    subpath: string,
    query: URLSearchParams,
    req: IncomingMessage,
  ): UpgradeDecision | Promise<UpgradeDecision>;
  /** Ends the example's connections and work (waits for files being written). */
  close(): Promise<void>;
}

export interface ExampleHostOptions {
  /** `/examples` on the Patchbay server; `` for a standalone server. */
  prefix: string;
  examples: readonly Example[];
  logger: ExampleLogger;
  /** Largest incoming message. Default 1 MiB (egress frames are 3 840 bytes). */
  maxPayload?: number;
  /** Sockets open at once over all examples; more are refused with 429. Default 256. */
  maxConnections?: number;
  /**
   * Decides whether a request may reach the examples at all (before the example is looked up): a refusal,
   * or undefined to go on. Default: everyone (a standalone example on its own port).
   */
  authorize?: (req: IncomingMessage, query: URLSearchParams) => Refusal | undefined;
}

export class ExampleHost {
  readonly prefix: string;
  private readonly examples: Map<string, Example>;
  private readonly logger: ExampleLogger;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private readonly detach: (() => void)[] = [];
  private readonly maxConnections: number;
  private readonly authorize: ExampleHostOptions["authorize"];
  private closing: Promise<void> | undefined;

  constructor(opts: ExampleHostOptions) {
    if (opts.prefix !== "" && (!opts.prefix.startsWith("/") || opts.prefix.endsWith("/"))) {
      throw new Error(`prefix must be empty or start with / and not end with one, got ${opts.prefix}`);
    }
    this.prefix = opts.prefix;
    this.examples = new Map(opts.examples.map((e) => [e.name, e]));
    this.logger = opts.logger;
    this.maxConnections = opts.maxConnections ?? 256;
    this.authorize = opts.authorize;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxPayload ?? 1024 * 1024,
      perMessageDeflate: false,
    });
  }

  list(): readonly Example[] {
    return [...this.examples.values()];
  }

  get(name: string): Example | undefined {
    return this.examples.get(name);
  }

  /** Listens for upgrades on `server`. */
  attach(server: Server): void {
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.handleUpgrade(req, socket, head)) return;
      if (server.listenerCount("upgrade") === 1)
        refuse(socket, { status: 404, message: "no WebSocket here" });
    };
    server.on("upgrade", onUpgrade);
    this.detach.push(() => server.off("upgrade", onUpgrade));
  }

  /** Handles the upgrade if its path is under the prefix; returns false to leave it to someone else. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://host");
    } catch {
      return false;
    }
    const root = `${this.prefix}/`;
    if (!url.pathname.startsWith(root)) return false;
    socket.on("error", () => {}); // a reset during the handshake must not become an uncaught error
    if (this.closing) {
      refuse(socket, { status: 503, message: "shutting down" });
      return true;
    }
    const denied = this.authorize?.(req, url.searchParams);
    if (denied) {
      this.refused(url.pathname, denied);
      refuse(socket, denied);
      return true;
    }
    const rest = url.pathname.slice(root.length);
    const slash = rest.indexOf("/");
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const subpath = slash === -1 ? "" : rest.slice(slash);
    const example = this.examples.get(name);
    if (!example) {
      refuse(socket, {
        status: 404,
        message: `no example ${JSON.stringify(name)} (have: ${[...this.examples.keys()].join(", ")})`,
      });
      return true;
    }
    if (this.sockets.size >= this.maxConnections) {
      const tooMany = { status: 429, message: `too many example connections (${this.maxConnections})` };
      this.refused(url.pathname, tooMany);
      refuse(socket, tooMany);
      return true;
    }
    let decision: UpgradeDecision | Promise<UpgradeDecision>;
    try {
      decision = example.upgrade(subpath, url.searchParams, req);
    } catch (err) {
      this.logger.error({ err, example: name, path: url.pathname }, "example upgrade failed");
      decision = { status: 500, message: "example failed" };
    }
    if (decision instanceof Promise) {
      decision.then(
        (d) => this.complete(name, d, req, socket, head),
        (err: unknown) => {
          this.logger.error({ err, example: name, path: url.pathname }, "example upgrade failed");
          this.complete(name, { status: 500, message: "example failed" }, req, socket, head);
        },
      );
    } else {
      this.complete(name, decision, req, socket, head);
    }
    return true;
  }

  /** Answers an upgrade once its example decided. */
  private complete(
    name: string,
    decision: UpgradeDecision,
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): void {
    if (socket.destroyed) return;
    if (this.closing) decision = { status: 503, message: "shutting down" };
    if (typeof decision !== "function") {
      this.refused(new URL(req.url ?? "/", "http://host").pathname, decision);
      refuse(socket, decision);
      return;
    }
    const onOpen = decision;
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws);
        ws.on("close", () => this.sockets.delete(ws));
        ws.on("error", (err) => this.logger.debug({ err, example: name }, "example socket error"));
        try {
          onOpen(ws);
        } catch (err) {
          this.logger.error({ err, example: name }, "example connection handler failed");
          ws.close(1011, "example failed");
        }
      });
    } catch (err) {
      this.logger.warn({ err, example: name }, "WebSocket handshake failed");
      socket.destroy();
    }
  }

  /** A refused connection, for the operator: the path only (its query may hold the examples token). */
  private refused(path: string, refusal: Refusal): void {
    this.logger.info(
      { path, status: refusal.status, reason: redactText(refusal.message) },
      "example connection refused",
    );
  }

  /** Closes every socket (1001), then the examples; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const d of this.detach) d();
      for (const ws of this.sockets) ws.close(1001, "server shutting down");
      // Sockets that did not finish the closing handshake in time are cut.
      const deadline = Date.now() + 1000;
      while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of this.sockets) ws.terminate();
      await Promise.all(
        [...this.examples.values()].map((e) =>
          e
            .close()
            .catch((err: unknown) => this.logger.error({ err, example: e.name }, "example close failed")),
        ),
      );
      await new Promise<void>((r) => this.wss.close(() => r()));
    })();
    return this.closing;
  }
}

/** The bytes of a `ws` message, whatever its binaryType. */
export function messageBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

function refuse(socket: Duplex, refusal: Refusal): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${refusal.message}\n`;
  socket.end(
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? "Error"}\r\n` +
      "Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
