// A real coturn (Debian's `coturn` package, installed by .ci/run) on loopback for the TURN tests, with the
// shared-secret REST authentication Patchbay's credentials are made for. Missing coturn is a failure with
// the install command, never a skip.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { existsSync } from "node:fs";

export const TURNSERVER = process.env.TURNSERVER_PATH ?? "/usr/bin/turnserver";
export const TURN_REALM = "patchbay.test";

export interface Coturn {
  port: number;
  /** turnserver's output so far (for failure messages). */
  output(): string;
  close(): Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** One STUN Binding request (RFC 8489) to 127.0.0.1:port; resolves on a success response with our id. */
function stunPing(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const id = randomBytes(12);
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);
    req.writeUInt32BE(0x2112a442, 4);
    id.copy(req, 8);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on("message", (m) => {
      if (m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(id)) done(true);
    });
    s.on("error", () => done(false));
    s.send(req, port, "127.0.0.1");
  });
}

/** Starts turnserver on a free loopback UDP port; resolves once it answers STUN. */
export async function startCoturn(secret: string): Promise<Coturn> {
  if (!existsSync(TURNSERVER))
    throw new Error(
      `${TURNSERVER} not found: install Debian's coturn (apt-get install coturn; .ci/run does) or set TURNSERVER_PATH`,
    );
  const port = await freeUdpPort();
  const args = [
    "-n", // no config file: everything is on this command line
    "--listening-ip=127.0.0.1",
    "--relay-ip=127.0.0.1",
    `--listening-port=${port}`,
    "--min-port=50000",
    "--max-port=59999",
    "--use-auth-secret",
    `--static-auth-secret=${secret}`,
    `--realm=${TURN_REALM}`,
    // Patchbay and the browsers are on 127.0.0.1: coturn refuses loopback peers unless told otherwise.
    "--allow-loopback-peers",
    "--no-cli",
    "--no-tls",
    "--no-dtls",
    "--fingerprint",
    "--no-multicast-peers",
    "--log-file=stdout",
    "--simple-log",
    "--verbose",
  ];
  const child: ChildProcess = spawn(TURNSERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = once(child, "exit");
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 10_000;
  while (!(await stunPing(port, 200))) {
    if (child.exitCode !== null) throw new Error(`turnserver exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      await close();
      throw new Error(`turnserver did not answer STUN on 127.0.0.1:${port} within 10 s:\n${out}`);
    }
  }
  return { port, output: () => out, close };
}
