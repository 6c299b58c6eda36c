/**
 * Issue 9 item 5 (recorder): the built-in recorder (/examples/recorder) against a hostile or careless sender.
 *
 * - Silence inserted for RTP timestamp jumps is bounded by the audio actually received (773 bytes sent
 *   used to become 108 MB on disk).
 * - One recording stops at --examples-recording-max-mb; all recordings together stay under
 *   --examples-disk-quota-mb (files already on disk count), and new ones are refused above it.
 * - 40 recordings closing together all become WAV files and leave no temporary file behind; temporary files
 *   of an earlier run (a crash) are removed.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { WebSocket } from "ws";
import { encodePacket } from "../../src/client/endpoint.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const MiB = 1024 * 1024;

interface Listing {
  files: { name: string; bytes: number }[];
  active: { id: string; file: string }[];
}

interface RecorderServer {
  srv: TestServer;
  dir: string;
  ws: string;
  listing(): Promise<Listing>;
  close(): Promise<void>;
}

const started: RecorderServer[] = [];
after(async () => {
  for (const s of started) await s.close();
});

async function startRecorderServer(
  args: string[] = [],
  prepare?: (dir: string) => void,
): Promise<RecorderServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "patchbay-hostile-rec-"));
  const dir = join(dataDir, "recordings");
  prepare?.(dir);
  const srv = await startTestServer(["--data-dir", dataDir, ...args]);
  const s: RecorderServer = {
    srv,
    dir,
    ws: `${srv.url.replace("http", "ws")}/examples/recorder`,
    async listing() {
      return (await (await fetch(`${srv.url}/examples/recorder/files`)).json()) as Listing;
    },
    async close() {
      await srv.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  started.push(s);
  return s;
}

function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  ws.on("error", () => {});
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

/** Sends `bytes` of a sine-ish signal as 20 ms Packets with consecutive timestamps. */
function sendAudio(ws: WebSocket, bytes: number, firstTimestamp = 0): void {
  const frame = new Uint8Array(3840);
  for (let i = 0; i < frame.length; i++) frame[i] = (i * 7) & 0xff;
  for (let sent = 0, n = 0; sent < bytes; sent += 3840, n++) {
    if (ws.readyState !== WebSocket.OPEN) return;
    const payload = frame.subarray(0, Math.min(3840, bytes - sent));
    ws.send(encodePacket({ sequenceNumber: n + 1, timestamp: (firstTimestamp + n * 960) >>> 0, payload }));
  }
}

function closed(ws: WebSocket, timeoutMs: number): Promise<{ code: number; reason: string } | "timeout"> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 0, reason: "already closed" });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("timeout"), timeoutMs);
    ws.once("close", (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/** Waits until nothing records and the file list has not changed for `quietMs`. */
async function settle(s: RecorderServer, timeoutMs = 60_000, quietMs = 1500): Promise<Listing> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  let since = Date.now();
  for (;;) {
    const l = await s.listing();
    const key = JSON.stringify(l.files.map((f) => [f.name, f.bytes]));
    if (key !== last || l.active.length > 0) {
      last = key;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return l;
    if (Date.now() > deadline) return l;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The finished file whose name contains `part`, once the directory has settled. */
async function fileOf(
  s: RecorderServer,
  part: string,
  timeoutMs = 90_000,
): Promise<Listing["files"][number]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await settle(s);
    const file = l.files.find((f) => f.name.includes(part));
    if (file) return file;
    if (Date.now() > deadline) assert.fail(`no finished file ${part}: ${JSON.stringify(l)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

describe("recorder: silence for timestamp jumps is bounded by the audio received", () => {
  test("40 tiny Packets 10 s apart write at most twice the bytes received, not 75 MB", async () => {
    const s = await startRecorderServer();
    const ws = await open(`${s.ws}?label=jumps`);
    let received = 0;
    for (let i = 0; i < 40; i++) {
      const payload = new Uint8Array(4).fill(0x11);
      received += payload.length;
      ws.send(encodePacket({ sequenceNumber: i + 1, timestamp: (i * 480_000) >>> 0, payload }));
    }
    await new Promise((r) => setTimeout(r, 200));
    ws.close();
    const file = await fileOf(s, "-jumps-");
    assert.ok(
      file.bytes <= 44 + 2 * received,
      `the WAV holds ${file.bytes} bytes for ${received} bytes of audio received (at most ${44 + 2 * received})`,
    );
    assert.ok(dirBytes(s.dir) <= 44 + 2 * received, `${dirBytes(s.dir)} bytes on disk`);
  });
});

describe("recorder: disk quotas", () => {
  test("one recording stops at --examples-recording-max-mb: the server ends it, the file fits", async () => {
    const s = await startRecorderServer(["--examples-recording-max-mb", "1"]);
    const ws = await open(`${s.ws}?label=big`);
    const end = closed(ws, 10_000);
    sendAudio(ws, 2 * MiB);
    const how = await end;
    if (how === "timeout") ws.close();
    assert.notEqual(how, "timeout", "the server closes a recording that reached its limit");
    if (how !== "timeout") assert.match(how.reason, /limit|examples-recording-max-mb/i);
    const file = await fileOf(s, "-big-");
    assert.ok(file.bytes <= MiB, `${file.bytes} bytes ≤ 1 MiB`);
    assert.ok(file.bytes >= MiB - 64 * 1024, `the recording went up to its limit (${file.bytes} bytes)`);
  });

  test("all recordings stay under --examples-disk-quota-mb (existing files count); above it new ones are refused", async () => {
    const s = await startRecorderServer(["--examples-disk-quota-mb", "1"], (dir) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "rec-2020-01-01T00-00-00Z-old-00000000.wav"), new Uint8Array(400 * 1024));
    });
    const a = await open(`${s.ws}?label=a`);
    sendAudio(a, 300 * 1024);
    await new Promise((r) => setTimeout(r, 300));
    a.close();
    await settle(s);
    const b = await open(`${s.ws}?label=b`);
    const end = closed(b, 10_000);
    sendAudio(b, 600 * 1024);
    const how = await end;
    if (how === "timeout") b.close();
    assert.notEqual(how, "timeout", "the server ends the recording that reaches the disk quota");
    await settle(s);
    const used = dirBytes(s.dir);
    assert.ok(used <= MiB, `${used} bytes in the recordings directory ≤ 1 MiB`);
    await assert.rejects(open(`${s.ws}?label=c`), /HTTP 429/, "a new recording is refused above the quota");
    assert.ok(dirBytes(s.dir) <= MiB);
  });
});

describe("recorder: no file left behind", () => {
  test("40 recordings closing together all become WAVs; no temporary file remains, not even an old one", async () => {
    const stale = [
      ".rec-2020-01-01T00-00-00Z-deadbeef-1.pcm",
      ".rec-2020-01-01T00-00-00Z-cafebabe-1.wav.part",
    ];
    const s = await startRecorderServer([], (dir) => {
      mkdirSync(dir, { recursive: true });
      for (const name of stale) {
        writeFileSync(join(dir, name), new Uint8Array(1000));
        const hourAgo = new Date(Date.now() - 3600_000);
        utimesSync(join(dir, name), hourAgo, hourAgo);
      }
    });
    const sockets = await Promise.all(Array.from({ length: 40 }, (_, i) => open(`${s.ws}?label=n${i}`)));
    for (const ws of sockets) sendAudio(ws, 48_000 * 4); // 1 s each
    await new Promise((r) => setTimeout(r, 1000));
    for (const ws of sockets) ws.close();
    const l = await settle(s, 90_000, 2000);
    assert.equal(l.active.length, 0);
    assert.equal(l.files.length, 40, `40 WAV files listed (${l.files.length})`);
    const names = readdirSync(s.dir);
    const leftovers = names.filter((n) => !/^rec-.*\.wav$/.test(n));
    assert.deepEqual(leftovers, [], "no raw, partial or temporary file is left in the directory");
    assert.equal(names.length, 40);
    for (const f of l.files) assert.ok(f.bytes >= 44 + 48_000 * 4, `${f.name}: ${f.bytes} bytes`);
  });
});

describe("recorder: a recording that cannot be saved leaves nothing behind", () => {
  test("its final name is taken (a directory): the part file is deleted, no raw or temporary file stays", async () => {
    const s = await startRecorderServer();
    const ws = await open(`${s.ws}?label=blocked`);
    sendAudio(ws, 48_000 * 4);
    let file = "";
    for (let i = 0; i < 100 && !file; i++) {
      file = (await s.listing()).active.find((a) => a.file.includes("-blocked-"))?.file ?? "";
      if (!file) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(file, "the recording is listed as active");
    mkdirSync(join(s.dir, file)); // rename onto a directory fails
    mkdirSync(join(s.dir, file, "x"));
    ws.close();
    await settle(s);
    await new Promise((r) => setTimeout(r, 500));
    const names = readdirSync(s.dir);
    assert.deepEqual(names, [file], `only the blocking directory remains: ${names.join(", ")}`);
  });
});
