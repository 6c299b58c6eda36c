// Raw HTTP/1.1 over `net` sockets, for tests that need what an HTTP client library will not do: trickle a
// request one byte at a time, keep a connection idle, send malformed request lines or headers, and see
// exactly what the server wrote before it closed the connection.

import net from "node:net";

export interface RawResponse {
  status: number;
  /** Lower-cased header names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

/**
 * Splits what a server wrote on one connection into responses (Content-Length or chunked bodies; a response
 * without either runs to the end of the data). `headOnly` marks responses to HEAD requests (no body).
 */
export function parseResponses(raw: string, headOnly = false): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    const [statusLine, ...lines] = rest.slice(0, end).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const status = Number(m[1]);
    rest = rest.slice(end + 4);
    let body = "";
    const noBody = headOnly || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) {
      // no body
    } else if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
      for (;;) {
        const eol = rest.indexOf("\r\n");
        if (eol < 0) break;
        const size = Number.parseInt(rest.slice(0, eol), 16);
        rest = rest.slice(eol + 2);
        if (!(size > 0)) {
          const trailerEnd = rest.indexOf("\r\n");
          rest = trailerEnd < 0 ? "" : rest.slice(trailerEnd + 2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    } else if (headers["content-length"] !== undefined) {
      // Byte length: bodies here are ASCII/UTF-8 JSON; slice by bytes to stay exact.
      const n = Number(headers["content-length"]);
      const buf = Buffer.from(rest, "utf8");
      body = buf.subarray(0, n).toString("utf8");
      rest = buf.subarray(n).toString("utf8");
    } else {
      body = rest;
      rest = "";
    }
    out.push({ status, headers, body });
  }
  return out;
}

export interface Closed {
  /** Time from connect to close, ms. */
  lifetimeMs: number;
  /** Socket error seen before the close (e.g. ECONNRESET for a refused connection). */
  error?: string;
}

/** One raw TCP connection to an HTTP server, recording everything it receives. */
export class RawConnection {
  readonly socket: net.Socket;
  readonly connectedAt: number;
  private readonly chunks: Buffer[] = [];
  closedAt: number | undefined;
  readonly closed: Promise<Closed>;
  private trickleTimer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.connectedAt = performance.now();
    let error: string | undefined;
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.closedAt = performance.now();
        this.stopTrickle();
        for (const w of this.waiters.splice(0)) w();
        resolve({ lifetimeMs: this.closedAt - this.connectedAt, error });
      });
    });
  }

  /** Connects to the host and port of `url` (http://host:port). */
  static open(url: string): Promise<RawConnection> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) });
      socket.once("connect", () => {
        socket.removeListener("error", reject);
        resolve(new RawConnection(socket));
      });
      socket.once("error", reject);
    });
  }

  /** Everything received so far, as UTF-8 text. */
  get received(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  get isOpen(): boolean {
    return this.closedAt === undefined;
  }

  write(data: string | Buffer): void {
    if (this.isOpen && !this.socket.destroyed) this.socket.write(data);
  }

  /** Writes `text` one byte every `intervalMs` until it is all sent or the connection closes. */
  trickle(text: string, intervalMs: number): void {
    const bytes = Buffer.from(text, "utf8");
    let i = 0;
    this.trickleTimer = setInterval(() => {
      if (!this.isOpen || i >= bytes.length) return this.stopTrickle();
      this.write(bytes.subarray(i, i + 1));
      i++;
    }, intervalMs);
  }

  stopTrickle(): void {
    if (this.trickleTimer) clearInterval(this.trickleTimer);
    this.trickleTimer = undefined;
  }

  responses(headOnly = false): RawResponse[] {
    return parseResponses(this.received, headOnly);
  }

  /** Resolves once `n` complete responses have arrived; rejects if the connection closes first or after `guardMs`. */
  async waitResponses(n: number, guardMs = 10_000, headOnly = false): Promise<RawResponse[]> {
    const deadline = performance.now() + guardMs;
    for (;;) {
      const got = this.responses(headOnly);
      // A response is complete when parsing it consumed a body of the announced length.
      if (got.length >= n && this.complete(got.length, headOnly)) return got;
      if (!this.isOpen) throw new Error(`connection closed after ${got.length} of ${n} responses`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`only ${got.length} of ${n} responses after ${guardMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private complete(count: number, headOnly: boolean): boolean {
    const last = this.responses(headOnly)[count - 1];
    const cl = last?.headers["content-length"];
    return cl === undefined || headOnly || Buffer.byteLength(last.body) >= Number(cl);
  }

  /**
   * Waits for the server to close the connection. `guardMs` only turns a connection that stays open into a
   * test failure (with `what` in the message); it is not the timing under test.
   */
  async waitClosed(guardMs: number, what: string): Promise<Closed> {
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `${what}: still open ${Math.round(performance.now() - this.connectedAt)} ms after connect`,
            ),
          ),
        guardMs,
      );
    });
    try {
      return await Promise.race([this.closed, guard]);
    } finally {
      clearTimeout(timer);
    }
  }

  destroy(): void {
    this.stopTrickle();
    this.socket.destroy();
  }
}

/** Sends `request` on a new connection and returns what came back once the server closed it (or `guardMs`). */
export async function rawExchange(
  url: string,
  request: string | Buffer,
  opts: { guardMs?: number; headOnly?: boolean } = {},
): Promise<{ responses: RawResponse[]; received: string }> {
  const conn = await RawConnection.open(url);
  conn.write(request);
  const guardMs = opts.guardMs ?? 5_000;
  const timer = setTimeout(() => conn.destroy(), guardMs);
  await conn.closed;
  clearTimeout(timer);
  return { responses: conn.responses(opts.headOnly), received: conn.received };
}
