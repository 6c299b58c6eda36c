import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type BrowserHarness, type ClientPage, launchBrowser } from "../helpers/browser.ts";
import { type Coturn, startCoturn } from "../helpers/coturn.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";

// A client that may only use TURN (iceTransportPolicy "relay", as on a network that blocks direct UDP) gets
// its credentials from Patchbay's generate-ice-servers route, and Chromium publishes and pulls through a
// real coturn. The tampered-credential case shows coturn really checks what Patchbay issues.

const SECRET = "turn-shared-secret-for-browser-tests";
const TEST_TIMEOUT = 40_000;

interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** Runs in the page: gathers candidates for one audio m-line and returns their types and addresses. */
function gatherCandidates(config: RTCConfiguration): Promise<string[]> {
  const pc = new RTCPeerConnection(config);
  pc.addTransceiver("audio", { direction: "sendrecv" });
  return new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ICE gathering not complete after 15 s`)), 15_000);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState !== "complete") return;
      clearTimeout(timer);
      const lines = (pc.localDescription?.sdp ?? "")
        .split(/\r?\n/)
        .filter((l) => l.startsWith("a=candidate:"));
      pc.close();
      // "a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …"
      resolve(lines.map((l) => `${l.split(" ")[7]} ${l.split(" ")[4]}:${l.split(" ")[5]}`));
    });
    pc.createOffer()
      .then((o) => pc.setLocalDescription(o))
      .catch(reject);
  });
}

/** The selected candidate pair's local and remote candidate types (and how the relay is reached), from getStats. */
async function selectedPair(
  page: ClientPage,
  label: string,
): Promise<{ local: string; remote: string; relayProtocol: string }> {
  const stats = await page.stats(label);
  const byId = new Map(stats.map((s) => [s.id as string, s]));
  const transport = stats.find((s) => s.type === "transport");
  const pair = byId.get(transport?.selectedCandidatePairId as string);
  assert.ok(pair, `a selected candidate pair: ${JSON.stringify(transport)}`);
  const local = byId.get(pair.localCandidateId as string);
  return {
    local: local?.candidateType as string,
    remote: byId.get(pair.remoteCandidateId as string)?.candidateType as string,
    relayProtocol: local?.relayProtocol as string,
  };
}

describe("TURN: Chromium restricted to relay candidates publishes and pulls through coturn", {
  timeout: 150_000,
}, () => {
  let coturn: Coturn;
  let server: TestServer;
  let browser: BrowserHarness;
  let iceServers: IceServer[];

  before(async () => {
    coturn = await startCoturn(SECRET);
    server = await startTestServer([
      "--turn-secret",
      SECRET,
      "--turn-urls",
      `turn:127.0.0.1:${coturn.port}?transport=udp,turn:127.0.0.1:${coturn.port}?transport=tcp`,
    ]);
    browser = await launchBrowser(server.url);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await coturn?.close();
  });

  test("the page fetches credentials from generate-ice-servers (201)", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const page = await browser.open();
    const app = TEST_APPS[0];
    const res = await page.page.evaluate(
      async ([appId, secret]) => {
        const r = await fetch(`/v1/turn/keys/${appId}/credentials/generate-ice-servers`, {
          method: "POST",
          headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
          body: JSON.stringify({ ttl: 600 }),
        });
        return { status: r.status, body: (await r.json()) as { iceServers: IceServer[] } };
      },
      [app.appId, app.secret] as const,
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    iceServers = res.body.iceServers;
    assert.equal(iceServers.length, 1);
    assert.deepEqual(iceServers[0].urls, [
      `turn:127.0.0.1:${coturn.port}?transport=udp`,
      `turn:127.0.0.1:${coturn.port}?transport=tcp`,
    ]);
    assert.ok(iceServers[0].username && iceServers[0].credential, JSON.stringify(iceServers));
  });

  test("coturn refuses a tampered credential: no relay candidate", { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(iceServers, "needs the credentials");
    const page = await browser.open();
    const tampered = iceServers.map((s) => ({
      ...s,
      credential: s.credential && `x${s.credential.slice(1)}`,
    }));
    const candidates = await page.page.evaluate(gatherCandidates, {
      iceServers: tampered,
      iceTransportPolicy: "relay",
    } as RTCConfiguration);
    assert.deepEqual(candidates, [], `relay candidates with a wrong credential: ${candidates.join(", ")}`);
  });

  test("the issued credential allocates a relay on coturn", { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(iceServers, "needs the credentials");
    const page = await browser.open();
    const candidates = await page.page.evaluate(gatherCandidates, {
      iceServers,
      iceTransportPolicy: "relay",
    } as RTCConfiguration);
    assert.ok(candidates.length > 0, `no relay candidate; coturn said:\n${coturn.output().slice(-3000)}`);
    for (const c of candidates) assert.match(c, /^relay 127\.0\.0\.1:5\d{4}$/);
  });

  /** The issued credential with only the TURN URLs of one transport (client → coturn leg). */
  const over = (transport: "udp" | "tcp"): IceServer[] =>
    iceServers.map((s) => ({ ...s, urls: s.urls.filter((u) => u.endsWith(`transport=${transport}`)) }));

  for (const transport of ["udp", "tcp"] as const) {
    test(`publish and pull with relay-only peers reaching coturn over ${transport.toUpperCase()}: audio flows through the relay`, {
      timeout: TEST_TIMEOUT,
    }, async () => {
      assert.ok(iceServers, "needs the credentials");
      const config: RTCConfiguration = { iceServers: over(transport), iceTransportPolicy: "relay" };
      const pub = await browser.open();
      await pub.setPeerConfig(config);
      const published = await pub.publish("audio", `mic-${transport}`);
      const sub = await browser.open();
      await sub.setPeerConfig(config);
      const pull = await sub.pullWithOffer("audio", published);
      const flow = await sub.waitFlowing(pull.label, "audio", { timeoutMs: 15_000 });
      assert.ok(flow.maxAudioLevel >= 0.1, `the fake mic's beeps are heard: ${JSON.stringify(flow.last)}`);
      const expected = { local: "relay", remote: "host", relayProtocol: transport };
      assert.deepEqual(await selectedPair(pub, published.label), expected);
      assert.deepEqual(await selectedPair(sub, pull.label), expected);
      console.log(
        `relay-only call over ${transport}: publish connected in ${published.connectMs.toFixed(0)} ms, pull in ` +
          `${pull.connectMs.toFixed(0)} ms, ${flow.last.packetsReceived} packets, audioLevel max ${flow.maxAudioLevel.toFixed(3)}`,
      );
    });
  }
});
