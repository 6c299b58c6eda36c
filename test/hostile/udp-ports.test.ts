import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import type { RTCPeerConnection } from "werift";
import { ApiClient } from "../../src/client/api-client.ts";
import { loadConfig } from "../../src/config.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";
import { closePeers } from "../helpers/api-inject.ts";
import { clientPeer } from "../helpers/rtc-client.ts";
import { TEST_APPS } from "../helpers/server.ts";

// Issue 9 items 3 and 10: a session that finds no free UDP port in --rtc-min-port..--rtc-max-port is refused
// with 503 no_udp_port, logged, and leaves nothing behind (no session, no UDP handle); a closed session's port
// is reused.

const RANGE = 3;

let server: RunningServer;
let api: ApiClient;
let dataDir: string;
let min: number;
const peers: RTCPeerConnection[] = [];
/** Every line the server logged at warn or above. */
const logged: { level: number; msg: string; [k: string]: unknown }[] = [];

function bindUdp(port: number): Promise<Socket | undefined> {
  const s = createSocket("udp4");
  return new Promise((resolve) => {
    s.once("error", () => s.close(() => resolve(undefined)));
    s.once("listening", () => resolve(s));
    s.bind({ port, address: "127.0.0.1" });
  });
}

/**
 * RANGE consecutive UDP ports free on 127.0.0.1 right now, below Linux's default ephemeral range (32768-60999)
 * so that the OS-assigned sockets of the test's own peers do not land in it.
 */
async function freeRange(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const start = 20_000 + Math.floor(Math.random() * 12_000);
    const held: Socket[] = [];
    for (let p = start; p < start + RANGE; p++) {
      const s = await bindUdp(p);
      if (!s) break;
      held.push(s);
    }
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (held.length === RANGE) return start;
  }
  throw new Error(`no ${RANGE} consecutive free UDP ports found`);
}

async function offer(): Promise<string> {
  const pc = clientPeer();
  peers.push(pc);
  pc.addTransceiver("audio", { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription!.sdp;
}

const udpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "UDPWrap").length;
const stateA = () => server.apps.get(TEST_APPS[0].appId)!.state;

type NewSession = { sessionId?: string; sessionDescription?: { sdp: string } } & Record<string, unknown>;

function candidatePorts(sdp: string): number[] {
  return sdp
    .split(/\r?\n/)
    .filter((l) => l.startsWith("a=candidate:"))
    .map((l) => Number(l.split(" ")[5]));
}

async function settle(ms = 100): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

before(async () => {
  min = await freeRange();
  dataDir = mkdtempSync(join(tmpdir(), "patchbay-udp-"));
  const config = loadConfig(
    [
      "--http-port",
      "0",
      "--data-dir",
      dataDir,
      "--rtc-min-port",
      String(min),
      "--rtc-max-port",
      String(min + RANGE - 1),
    ],
    { PATCHBAY_APPS: JSON.stringify(TEST_APPS) },
  );
  const logger = pino({ level: "warn" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  const { registry } = await AppRegistry.load(config, logger);
  server = await startServer({ config, logger, apps: registry });
  api = new ApiClient(`${server.url}/v1`, TEST_APPS[0].appId, TEST_APPS[0].secret);
});

after(async () => {
  await closePeers(peers, 0);
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("a full UDP port range: 503 no_udp_port naming the range, nothing left behind, no handle leaked", async () => {
  const sdp = await offer();
  const opened: string[] = [];
  for (let i = 0; i < RANGE; i++) {
    const res = await api.raw<NewSession>("POST", "sessions/new", {
      sessionDescription: { type: "offer", sdp },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ports = candidatePorts(res.body.sessionDescription!.sdp);
    assert.equal(ports.length, 1, res.body.sessionDescription!.sdp);
    assert.ok(
      ports[0] >= min && ports[0] < min + RANGE,
      `port ${ports[0]} outside ${min}-${min + RANGE - 1}`,
    );
    opened.push(res.body.sessionId!);
  }
  assert.equal(stateA().sessionCount, RANGE);

  const full = await api.raw<NewSession>("POST", "sessions/new", {
    sessionDescription: { type: "offer", sdp },
  });
  assert.equal(full.status, 503, JSON.stringify(full.body));
  assert.deepEqual(Object.keys(full.body).sort(), ["errorCode", "errorDescription"]);
  assert.equal(full.body.errorCode, "no_udp_port");
  const description = String(full.body.errorDescription);
  assert.match(description, new RegExp(`${min}-${min + RANGE - 1}`), description);
  assert.match(description, new RegExp(`\\b${RANGE}\\b`), description);
  assert.match(description, /--rtc-min-port/, description);
  assert.equal(stateA().sessionCount, RANGE, "the refused session is not left in the app");
  const warned = logged.filter((l) => l.level === 40 && /UDP port/i.test(l.msg));
  assert.equal(warned.length, 1, `expected one warning, got ${JSON.stringify(logged)}`);

  // Without an offer too: a session that can never get a port is not handed out.
  const noOffer = await api.raw<NewSession>("POST", "sessions/new");
  assert.equal(noOffer.status, 503, JSON.stringify(noOffer.body));
  assert.equal(noOffer.body.errorCode, "no_udp_port");

  await settle();
  const handlesBefore = udpHandles();
  for (let i = 0; i < 20; i++) {
    const res = await api.raw<NewSession>("POST", "sessions/new", {
      sessionDescription: { type: "offer", sdp },
    });
    assert.equal(res.status, 503, JSON.stringify(res.body));
  }
  await settle();
  assert.equal(udpHandles(), handlesBefore, "20 refused sessions left UDP handles behind");
  assert.equal(stateA().sessionCount, RANGE);

  // Close one session: its port is free again and the next session gets it.
  const found = stateA().lookup(opened[0]);
  assert.ok(found.ok);
  found.session.close("test");
  await settle();
  const again = await api.raw<NewSession>("POST", "sessions/new", {
    sessionDescription: { type: "offer", sdp },
  });
  assert.equal(again.status, 201, JSON.stringify(again.body));
  const ports = candidatePorts(again.body.sessionDescription!.sdp);
  assert.equal(ports.length, 1);
  assert.ok(ports[0] >= min && ports[0] < min + RANGE);
});

test("concurrent session requests on a tight range: each gets a port or 503, the server survives", async () => {
  for (const s of [...stateA().allSessions()]) s.close("test");
  await settle();
  const sdp = await offer();
  const results = await Promise.all(
    Array.from({ length: 8 }, () =>
      api.raw<NewSession>("POST", "sessions/new", { sessionDescription: { type: "offer", sdp } }),
    ),
  );
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(
    statuses,
    [201, 201, 201, 503, 503, 503, 503, 503],
    JSON.stringify(results.map((r) => r.body)),
  );
  const ports = results
    .filter((r) => r.status === 201)
    .map((r) => candidatePorts(r.body.sessionDescription!.sdp)[0])
    .sort();
  assert.equal(new Set(ports).size, RANGE, `ports handed out twice: ${ports}`);
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
});
