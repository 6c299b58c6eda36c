/**
 * The console at `/` (web/), clicked through in headless Chromium like a new user would: sign in, publish the
 * fake microphone, stream it to an endpoint through an egress adapter, bring speech in through an ingest
 * adapter and play it, close everything. Writes screenshots of the main states (test-results/screenshots/, or docs/screenshots/ with UPDATE_SCREENSHOTS=1) at
 * 1280×800 and 390×844.
 *
 * Part 1 uses WebSocket endpoints of this test (test/helpers/ws-endpoints.ts), typed into the custom URL
 * field. Part 2 uses the built-in example endpoints (/examples/tts, /examples/recorder, /examples/echo),
 * which the test server must serve. Part 3 checks the sign-in routes in-process: GET /console/bootstrap
 * never hands out a secret, POST /console/signin redeems a one-time token once. Part 4 opens a one-time
 * sign-in link in Chromium.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import type { Locator, Page } from "playwright-core";
import { consoleRoutes, consoleSignInUrl, issueConsoleSignIn } from "../../src/api/routes/console.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";
import { type BrowserHarness, launchBrowser, pollUntil } from "../helpers/browser.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import { closedPort, type Endpoint, startEndpoint, ttsBurst } from "../helpers/ws-endpoints.ts";

// Every run writes its screenshots to test-results/ (ignored by git); UPDATE_SCREENSHOTS=1 refreshes the
// committed copies in docs/screenshots/.
const SCREENSHOTS = fileURLToPath(
  new URL(
    process.env.UPDATE_SCREENSHOTS ? "../../docs/screenshots/" : "../../test-results/screenshots/",
    import.meta.url,
  ),
);
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const STEP_TIMEOUT = 45_000;
/** "Heard": well above the 1/32768 floor Chromium reports for digital silence. */
const HEARD_LEVEL = 0.05;

/** What `window.patchbayConsole` (web/js/app.js) returns; read-only views for tests. */
interface ConsoleHook {
  signedIn(): boolean;
  mic(): Promise<{
    sessionId: string;
    trackName: string;
    connectionState: string;
    level: number;
    maxLevel: number;
    packetsSent: number;
  } | null>;
  pulls(): {
    trackName: string;
    fromSessionId: string;
    sessionId: string;
    connectionState: string;
    audioLevel: number;
    maxAudioLevel: number;
    totalAudioEnergy: number;
    packetsReceived: number;
    meterMax: number;
  }[];
  adapters(): {
    adapterId: string;
    direction: string;
    state: string;
    frames: number;
    endpoint: string;
    sessionId: string;
  }[];
  sessions(): { id: string; role: string; state: string; tracks: { trackName: string; status: string }[] }[];
}
type HookWindow = Window & { patchbayConsole: ConsoleHook };

/** A console page with its console output kept for failure messages; page errors fail the test at the end. */
async function openConsole(browser: BrowserHarness, url: string) {
  const page = await browser.context.newPage();
  await page.setViewportSize(DESKTOP);
  const log: string[] = [];
  const pageErrors: string[] = [];
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${url}/`);
  await page.waitForSelector("html.ready");
  return { page, log, pageErrors };
}

async function signIn(page: Page, app = TEST_APPS[0]) {
  await page.fill("#app-id", app.appId);
  await page.fill("#app-secret", app.secret);
  await page.click("#signin-submit");
  await page.waitForSelector("#console-view:not([hidden])");
}

/** Screenshots of the page as it is, at 1280×800 (the viewport) and 390×844 (the whole page). */
async function screenshot(page: Page, name: string) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  for (const [label, size, fullPage] of [
    ["desktop", DESKTOP, false],
    ["phone", PHONE, true],
  ] as const) {
    await page.setViewportSize(size);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(250); // layout, and a few meter frames
    await page.screenshot({ path: join(SCREENSHOTS, `console-${name}-${label}.png`), fullPage });
  }
  await page.setViewportSize(DESKTOP);
}

function hook<T>(page: Page, fn: (h: ConsoleHook) => T | Promise<T>): Promise<T> {
  return page.evaluate(
    ([src]) => {
      const f = new Function("h", `return (${src})(h)`) as (h: ConsoleHook) => T;
      return f((window as unknown as HookWindow).patchbayConsole);
    },
    [fn.toString()] as const,
  );
}

/** The text of an element, trimmed. */
async function text(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? "").trim();
}

function parseCount(text: string | null): number {
  return Number((text ?? "").replace(/[^\d]/g, ""));
}

/** The cell text of one adapter row, by data-col. */
async function adapterCell(page: Page, adapterId: string, col: string): Promise<string> {
  return text(page.locator(`#adapters-body tr[data-adapter-id="${adapterId}"] [data-col="${col}"]`));
}

/** Waits for a new adapter row (not among `known`) of a direction, returns its id. */
async function newAdapterRow(
  page: Page,
  direction: "ingest" | "egress",
  known: Set<string>,
): Promise<string> {
  return pollUntil(
    async () => {
      const ids = await page
        .locator(`#adapters-body tr[data-direction="${direction}"]`)
        .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.adapterId ?? ""));
      return ids.find((id) => !known.has(id)) ?? "";
    },
    (id) => id !== "",
    { timeoutMs: 10_000, what: `a new ${direction} adapter row` },
  );
}

async function adapterIds(page: Page): Promise<Set<string>> {
  const ids = await page
    .locator("#adapters-body tr")
    .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.adapterId ?? ""));
  return new Set(ids);
}

/** The egress frame count in the table grows by at least `by` (the table polls every second). */
async function framesGrow(page: Page, adapterId: string, by: number): Promise<[number, number]> {
  const first = await pollUntil(
    async () => parseCount(await adapterCell(page, adapterId, "frames")),
    (n) => n > 0,
    { timeoutMs: 10_000, what: "first frames" },
  );
  const later = await pollUntil(
    async () => parseCount(await adapterCell(page, adapterId, "frames")),
    (n) => n >= first + by,
    { timeoutMs: 10_000, what: `frames growing past ${first + by}` },
  );
  return [first, later];
}

/**
 * Heard: the sampled audioLevel peaked, or the cumulative energy (Σ level² × seconds, which no polling gap can
 * miss) reached that of a 0.1-level sound lasting half a second. The fake microphone beeps briefly, so an
 * echo of it can play between two polls of getStats() (seen in CI: sampled max 0.023 while the meter showed 0.83).
 */
const HEARD_ENERGY = 0.1 ** 2 * 0.5;

async function waitHeard(page: Page, trackName: string) {
  return pollUntil(
    () => hook(page, (h) => h.pulls()),
    (pulls) =>
      pulls.some(
        (p) =>
          p.trackName === trackName &&
          p.packetsReceived > 0 &&
          (p.maxAudioLevel >= 0.05 || p.totalAudioEnergy >= HEARD_ENERGY),
      ),
    { timeoutMs: 20_000, intervalMs: 200, what: `audio heard on the pulled track ${trackName}` },
  );
}

// ---------------------------------------------------------------------------------------------------------

describe("console: a new user's first five minutes, with endpoints typed into the custom URL field", {
  timeout: 240_000,
}, () => {
  let server: TestServer;
  let browser: BrowserHarness;
  let page: Page;
  let pageErrors: string[];
  let log: string[];
  let sink: Endpoint;
  let tts: Endpoint;
  let sinkMessages = 0;
  let egressId = "";
  let ingestId = "";
  let ingestSessionId = "";
  let micSessionId = "";

  before(async () => {
    server = await startTestServer();
    browser = await launchBrowser(server.url);
    sink = await startEndpoint((ws) => ws.on("message", () => sinkMessages++), "/sink?token=console-test");
    // A 20 s speech-like clip sent as a burst of 16 KiB chunks and an empty packet, as Cloudflare's TTS does.
    tts = await startEndpoint(ttsBurst(speechLike(20_000, { seed: 11 })), "/tts?token=console-test");
    ({ page, pageErrors, log } = await openConsole(browser, server.url));
  });

  after(async () => {
    await browser?.close();
    await sink?.close();
    await tts?.close();
    await server?.close();
  });

  const step = (name: string, fn: () => Promise<void>) =>
    test(name, { timeout: STEP_TIMEOUT }, async () => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += `\npage console:\n  ${log.slice(-15).join("\n  ")}`;
        throw err;
      }
    });

  step("the sign-in form is shown; a wrong secret is refused with its errorCode", async () => {
    await page.waitForSelector("#signin-view:not([hidden])");
    assert.equal(await page.locator("#console-view").isHidden(), true);
    await page.fill("#app-id", TEST_APPS[0].appId);
    await page.fill("#app-secret", "not-the-secret-of-this-app");
    await page.click("#signin-submit");
    const error = page.locator("#signin-error");
    await error.waitFor({ state: "visible" });
    const message = await text(error);
    assert.match(message, /unauthorized/);
    assert.match(message, /401/);
    await page.fill("#app-secret", TEST_APPS[0].secret);
    await screenshot(page, "signin");
  });

  step("signs in with the app id and secret", async () => {
    await signIn(page);
    assert.match(await text(page.locator("#app-chip-text")), /aaaaaa/);
    assert.equal(await hook(page, (h) => h.signedIn()), true);
    const stored = await page.evaluate(() => sessionStorage.getItem("patchbay.console.app"));
    assert.equal(JSON.parse(stored ?? "{}").appId, TEST_APPS[0].appId, "kept in sessionStorage");
    await screenshot(page, "empty");
  });

  step("publishes the fake microphone; its meter moves and the session lists the track active", async () => {
    await page.click("#mic-publish");
    await page.locator("#mic-state", { hasText: "connected" }).waitFor();
    const mic = await pollUntil(
      () => hook(page, (h) => h.mic()),
      (m) => m !== null && m.maxLevel > HEARD_LEVEL && m.packetsSent > 0,
      { timeoutMs: 10_000, what: "the microphone meter moving" },
    );
    assert.ok(mic);
    micSessionId = mic.sessionId;
    const track = page.locator(`.session[data-session-id="${micSessionId}"] .track[data-track-name="mic"]`);
    await track.locator(".badge", { hasText: "active" }).waitFor();
    assert.match(
      await text(page.locator(`.session[data-session-id="${micSessionId}"] .badge`).first()),
      /open/,
    );
  });

  step("an egress adapter of the mic to an endpoint URL: the table shows its frames growing", async () => {
    const known = await adapterIds(page);
    await page.selectOption("#adapter-preset", "custom");
    await page.locator("#adapter-direction label", { hasText: "Egress" }).click();
    assert.equal(
      await page.inputValue("#adapter-source"),
      `${micSessionId}/mic`,
      "the source defaults to the published microphone",
    );
    await page.fill("#adapter-url", sink.url);
    await page.click("#adapter-create");
    egressId = await newAdapterRow(page, "egress", known);
    await page
      .locator(`tr[data-adapter-id="${egressId}"] td[data-col="state"] .badge`, { hasText: "open" })
      .waitFor();
    const [first, later] = await framesGrow(page, egressId, 50);
    assert.ok(later > first);
    assert.ok(sinkMessages > 0, "the endpoint received Packet messages");
    assert.match(await adapterCell(page, egressId, "endpoint"), /sink\?token=console-test/);
  });

  step("API errors show as they come, with errorCode and errorDescription", async () => {
    await page.locator("#adapter-direction label", { hasText: "Ingest" }).click();
    // Refused by the server's validation: 406 invalid_params.
    await page.fill("#adapter-url", "http://not-a-websocket.example/");
    await page.click("#adapter-create");
    await page.locator(".toast", { hasText: "invalid_params" }).first().waitFor();
    // Refused by the endpoint: a port nobody listens on.
    await page.fill("#adapter-url", `ws://127.0.0.1:${await closedPort()}/nobody`);
    await page.click("#adapter-create");
    const toast = page.locator(".toast", { hasText: "websocket_handshake_failed" }).first();
    await toast.waitFor();
    assert.match(await text(toast), /POST adapters\/websocket\/new → 503/);
    const entry = page.locator('#activity-log .log-entry[data-kind="error"]', {
      hasText: "websocket_handshake_failed",
    });
    await entry.first().waitFor();
    assert.ok(Number(await text(page.locator("#error-count"))) >= 2, "the error counter counts them");
    await screenshot(page, "errors");
    // Dismiss the toasts so they do not cover later screenshots.
    while ((await page.locator(".toast").count()) > 0) await page.locator(".toast .icon-btn").first().click();
  });

  step(
    "an ingest adapter from a TTS-like endpoint; pulling its track plays speech (audioLevel > 0)",
    async () => {
      const known = await adapterIds(page);
      await page.locator("#adapter-direction label", { hasText: "Ingest" }).click();
      await page.fill("#adapter-url", tts.url);
      await page.fill("#adapter-track-name", "speech");
      await page.uncheck("#adapter-autoplay");
      await page.click("#adapter-create");
      ingestId = await newAdapterRow(page, "ingest", known);
      const row = page.locator(`tr[data-adapter-id="${ingestId}"]`);
      await row.locator('td[data-col="state"] .badge', { hasText: "open" }).waitFor();
      const adapter = (await hook(page, (h) => h.adapters())).find((a) => a.adapterId === ingestId);
      assert.ok(adapter, "the hook lists the adapter");
      ingestSessionId = adapter.sessionId;
      // Pull it from the table's Play button.
      await row.locator('button[data-action="play"]').click();
      const card = page.locator('.pull[data-track-name="speech"]');
      await card.waitFor();
      await card.locator(".badge", { hasText: "connected" }).waitFor({ timeout: 15_000 });
      const pulls = await waitHeard(page, "speech");
      const pull = pulls.find((p) => p.trackName === "speech")!;
      assert.ok(pull.maxAudioLevel > 0, `audioLevel ${pull.maxAudioLevel}`);
      assert.equal(pull.fromSessionId, ingestSessionId);
      assert.ok(pull.meterMax > HEARD_LEVEL, `the pulled track's meter moved (${pull.meterMax})`);
      assert.match(await text(card.locator(".pull-stats")), /[1-9][\d,]* packets · audioLevel/);
      // The ingest session appears in the sessions list with its track.
      await page
        .locator(`.session[data-session-id="${ingestSessionId}"] .track[data-track-name="speech"] .badge`, {
          hasText: "active",
        })
        .waitFor();
      assert.ok(parseCount(await adapterCell(page, ingestId, "frames")) > 0, "ingest frames counted");
      await page.waitForTimeout(1200); // one more poll so the table and meters show a lively state
      await screenshot(page, "live");
    },
  );

  step("closing everything turns every state closed", async () => {
    // The player.
    await page.locator('.pull[data-track-name="speech"] button[data-action="stop"]').click();
    await page.locator('.pull[data-track-name="speech"]').waitFor({ state: "detached" });
    // Both adapters, with the table's close buttons.
    for (const id of [egressId, ingestId]) {
      await page.locator(`tr[data-adapter-id="${id}"] button[data-action="close"]`).click();
      await page
        .locator(`tr[data-adapter-id="${id}"] td[data-col="state"] .badge`, { hasText: "closed" })
        .waitFor();
      assert.equal(
        await page.locator(`tr[data-adapter-id="${id}"] button[data-action="close"]`).isHidden(),
        true,
      );
    }
    assert.match(await adapterCell(page, egressId, "state"), /closed by API/);
    // The microphone.
    await page.click("#mic-stop");
    await page.locator("#mic-state", { hasText: "not published" }).waitFor();
    await page
      .locator(`.session[data-session-id="${micSessionId}"] .track[data-track-name="mic"] .badge`, {
        hasText: "inactive",
      })
      .waitFor();
    // The ingest adapter's session lives as long as its track: it is gone (410) once the adapter closed.
    await page
      .locator(`.session[data-session-id="${ingestSessionId}"] .session-head .badge`, { hasText: "closed" })
      .waitFor({ timeout: 10_000 });
    const adapters = await hook(page, (h) => h.adapters());
    assert.ok(adapters.length >= 2 && adapters.every((a) => a.state === "closed"), JSON.stringify(adapters));
    const live = await server.api.raw<{ adapters: { state: string }[] }>("GET", "adapters/websocket");
    assert.ok(
      live.body.adapters.every((a) => a.state === "closed"),
      "the server agrees",
    );
    await screenshot(page, "closed");
  });

  step("signing out forgets the secret; the page had no script errors", async () => {
    await page.click("#sign-out");
    await page.waitForSelector("#signin-view:not([hidden])");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("patchbay.console.app")), null);
    assert.equal(await page.inputValue("#app-secret"), "");
    assert.deepEqual(pageErrors, []);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("console: the built-in example endpoints (/examples/tts, /examples/recorder, /examples/echo)", {
  timeout: 240_000,
}, () => {
  let server: TestServer;
  let browser: BrowserHarness | undefined;
  let page: Page;
  let log: string[];
  let pageErrors: string[];

  before(async () => {
    server = await startTestServer();
    browser = await launchBrowser(server.url);
    ({ page, log, pageErrors } = await openConsole(browser, server.url));
    await page.waitForSelector("#signin-view:not([hidden])");
    await signIn(page);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const step = (name: string, fn: () => Promise<void>) =>
    test(name, { timeout: STEP_TIMEOUT }, async () => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += `\npage console:\n  ${log.slice(-15).join("\n  ")}`;
        throw err;
      }
    });

  step("the server serves the examples and the console offers them", async () => {
    const res = await fetch(`${server.url}/examples/recorder/files`);
    assert.equal(res.status, 200, "GET /examples/recorder/files");
    const enabled = await page
      .locator("#examples-group option")
      .evaluateAll((options) => options.map((o) => !(o as HTMLOptionElement).disabled));
    assert.deepEqual(enabled, [true, true, true]);
  });

  let recorderId = "";

  step("the recorder example: an egress adapter of the mic, frames growing, then a WAV listed", async () => {
    await page.click("#mic-publish");
    await page.locator("#mic-state", { hasText: "connected" }).waitFor();
    await page.locator(`#adapter-source option[value$="/mic"]`).waitFor({ state: "attached" });
    const known = await adapterIds(page);
    await page.selectOption("#adapter-preset", "recorder");
    assert.match(
      await page.inputValue("#adapter-url"),
      /^ws:\/\/127\.0\.0\.1:\d+\/examples\/recorder\?label=mic$/,
    );
    await page.click("#adapter-create");
    recorderId = await newAdapterRow(page, "egress", known);
    await framesGrow(page, recorderId, 100); // 2 s of audio
    await page.locator("#recordings-card").waitFor();
    await page.locator(`tr[data-adapter-id="${recorderId}"] button[data-action="close"]`).click();
    await page
      .locator(`tr[data-adapter-id="${recorderId}"] td[data-col="state"] .badge`, { hasText: "closed" })
      .waitFor();
    const link = page.locator("#recordings-list a.rec-name", { hasText: ".wav" }).first();
    await link.waitFor({ timeout: 15_000 });
    const href = await link.getAttribute("href");
    assert.ok(href);
    const wav = await fetch(new URL(href, server.url));
    assert.equal(wav.status, 200, `the recording link ${href} works`);
    const bytes = new Uint8Array(await wav.arrayBuffer());
    assert.equal(Buffer.from(bytes.subarray(0, 4)).toString("latin1"), "RIFF");
  });

  step("the tts example: text typed in, the new track plays by itself with audioLevel > 0", async () => {
    const known = await adapterIds(page);
    await page.selectOption("#adapter-preset", "tts");
    await page.fill("#tts-text", "Patchbay speaks through a WebSocket adapter. One, two, three, four, five.");
    assert.match(await page.inputValue("#adapter-url"), /\/examples\/tts\?text=Patchbay%20speaks/);
    assert.equal(await page.isChecked("#adapter-autoplay"), true);
    await page.click("#adapter-create");
    await newAdapterRow(page, "ingest", known);
    await page.locator('.pull[data-track-name="tts"]').waitFor();
    await waitHeard(page, "tts");
    await screenshot(page, "examples");
  });

  step("the echo example: the mic goes out and comes back as a track that plays", async () => {
    const known = await adapterIds(page);
    await page.selectOption("#adapter-preset", "echo");
    await page.click("#adapter-create");
    await newAdapterRow(page, "ingest", known);
    await newAdapterRow(page, "egress", known);
    await page.locator('.pull[data-track-name="echo"]').waitFor();
    await waitHeard(page, "echo");
    await page.click("#adapters-close-all");
    await pollUntil(
      () => hook(page, (h) => h.adapters()),
      (list) => list.every((a) => a.state === "closed"),
      { timeoutMs: 10_000, what: "every adapter closed" },
    );
    assert.deepEqual(pageErrors, []);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("console sign-in: /console/bootstrap never hands out a secret; one-time links do, once", () => {
  const dirs: string[] = [];
  const apps: FastifyInstance[] = [];

  async function consoleApp(opts: { host?: string; env?: Record<string, string> } = {}) {
    const dataDir = mkdtempSync(join(tmpdir(), "patchbay-console-"));
    dirs.push(dataDir);
    const config = loadConfig(
      ["--data-dir", dataDir, "--log-level", "silent", "--http-host", opts.host ?? "127.0.0.1"],
      opts.env ?? {},
    );
    const { registry } = await AppRegistry.load(config, createLogger(config, false));
    const app = Fastify();
    consoleRoutes(app, { apps: registry, config });
    apps.push(app);
    return { app, registry, path: join(dataDir, "default-app.json") };
  }

  type Body = {
    examples: boolean;
    examplesToken: boolean;
    defaultApp: { appId: string; secretStoredIn: string } | null;
    signIn: string;
  };
  type Request = { remoteAddress?: string; headers?: Record<string, string> };
  const get = async (app: FastifyInstance, opts: Request = {}) => {
    const res = await app.inject({
      method: "GET",
      url: "/console/bootstrap",
      remoteAddress: opts.remoteAddress ?? "127.0.0.1",
      headers: { host: "127.0.0.1:8787", ...opts.headers },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["cache-control"], "no-store");
    return { body: res.json() as Body, text: res.body };
  };
  const redeem = async (app: FastifyInstance, token: string, opts: Request = {}) => {
    const res = await app.inject({
      method: "POST",
      url: "/console/signin",
      remoteAddress: opts.remoteAddress ?? "127.0.0.1",
      headers: { host: "127.0.0.1:8787", "content-type": "application/json", ...opts.headers },
      payload: JSON.stringify({ token }),
    });
    assert.equal(res.headers["cache-control"], "no-store");
    return { status: res.statusCode, body: res.json() as Record<string, string> };
  };

  after(async () => {
    for (const a of apps) await a.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("no request gets the secret; this machine's own page gets the app id and where the secret is", async () => {
    const { app, registry, path } = await consoleApp();
    const { appId, secret } = registry.list()[0];
    const shapes: Request[] = [
      {},
      { headers: { "sec-fetch-site": "same-origin" } },
      { headers: { origin: "http://127.0.0.1:8787" } },
      { remoteAddress: "::1", headers: { host: "localhost:8787" } },
      { remoteAddress: "192.168.1.20" },
      { headers: { host: "attacker.example:8787" } },
      { headers: { origin: "http://attacker.example" } },
      { headers: { "sec-fetch-site": "cross-site" } },
    ];
    for (const shape of shapes) {
      const { text } = await get(app, shape);
      assert.ok(!text.includes(secret), `no secret for ${JSON.stringify(shape)}: ${text}`);
    }
    const local = (await get(app, { headers: { "sec-fetch-site": "same-origin" } })).body;
    assert.deepEqual(local.defaultApp, { appId, secretStoredIn: path });
    assert.match(local.signIn, /one-time sign-in link/);
    assert.equal(local.examples, true);
    assert.equal(local.examplesToken, false);
    for (const shape of shapes.slice(4)) {
      assert.equal((await get(app, shape)).body.defaultApp, null, JSON.stringify(shape));
    }
    const open = await consoleApp({ host: "0.0.0.0" });
    const openBody = (await get(open.app)).body;
    assert.equal(openBody.defaultApp, null, "a server bound beyond loopback names nothing");
    assert.equal(openBody.examplesToken, true, "its examples need a token");
    const configured = await consoleApp({ env: { PATCHBAY_APPS: JSON.stringify(TEST_APPS) } });
    const configuredBody = await get(configured.app);
    assert.equal(configuredBody.body.defaultApp, null);
    for (const a of TEST_APPS) assert.ok(!configuredBody.text.includes(a.secret));
  });

  test("a sign-in token works once, only for this machine's same-origin page, and not after it expires", async () => {
    const { app, registry } = await consoleApp();
    const { appId, secret } = registry.list()[0];
    const token = issueConsoleSignIn(appId);
    assert.equal((await redeem(app, "A".repeat(43))).status, 401, "a guessed token");
    for (const refused of [
      { remoteAddress: "192.168.1.20" },
      { headers: { host: "attacker.example:8787" } },
      { headers: { origin: "http://attacker.example" } },
      { headers: { "sec-fetch-site": "cross-site" } },
    ] as Request[]) {
      const r = await redeem(app, token, refused);
      assert.equal(r.status, 403, JSON.stringify(refused));
      assert.equal(r.body.errorCode, "unauthorized");
    }
    const ok = await redeem(app, token, { headers: { origin: "http://127.0.0.1:8787" } });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { appId, secret, name: "default" });
    const again = await redeem(app, token);
    assert.equal(again.status, 401, "single use");
    assert.equal(again.body.errorCode, "unauthorized");
    const expired = issueConsoleSignIn(appId, 1, Date.now() - 1000);
    assert.equal((await redeem(app, expired)).status, 401, "expired");
    assert.match(
      consoleSignInUrl("http://127.0.0.1:8787", appId),
      /^http:\/\/127\.0\.0\.1:8787\/#signin=[\w-]{43}$/,
    );
    const open = await consoleApp({ host: "0.0.0.0" });
    const elsewhere = issueConsoleSignIn(open.registry.list()[0].appId);
    assert.equal((await redeem(open.app, elsewhere)).status, 403, "never on a server bound beyond loopback");
  });

  test("the running server answers both routes", async () => {
    const server = await startTestServer();
    try {
      const res = await fetch(`${server.url}/console/bootstrap`);
      assert.equal(res.status, 200, "GET /console/bootstrap is registered");
      const body = (await res.json()) as Body;
      assert.equal(body.defaultApp, null, "configured apps are not named");
      assert.equal(body.examples, true);
      const signin = await fetch(`${server.url}/console/signin`, { method: "POST", body: "{}" });
      assert.equal(signin.status, 401, "POST /console/signin is registered");
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("console: the one-time sign-in link signs the browser in, once", { timeout: 120_000 }, () => {
  let server: RunningServer;
  let browser: BrowserHarness;
  let dataDir: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "patchbay-console-link-"));
    const config = loadConfig(["--http-port", "0", "--data-dir", dataDir, "--log-level", "warn"], {});
    const logger = createLogger(config, false);
    const { registry } = await AppRegistry.load(config, logger);
    server = await startServer({ config, logger, apps: registry });
    browser = await launchBrowser(server.url);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("opening the link signs in without typing; the token leaves the address bar; a second use is refused", async () => {
    const { appId } = server.apps.list()[0];
    const link = consoleSignInUrl(server.url, appId);
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(link);
    await page.waitForSelector("html.ready");
    await page.waitForSelector("#console-view:not([hidden])");
    assert.equal(await hook(page, (h) => h.signedIn()), true);
    assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
    assert.match(await text(page.locator("#app-chip-text")), new RegExp(appId.slice(0, 6)));
    // Reloading keeps the session (sessionStorage), without the link.
    await page.reload();
    await page.waitForSelector("#console-view:not([hidden])");
    await page.close();

    const second = await browser.context.newPage();
    await second.goto(link);
    await second.waitForSelector("html.ready");
    await second.waitForSelector("#signin-view:not([hidden])");
    const error = second.locator("#signin-error");
    await error.waitFor({ state: "visible" });
    assert.match(await text(error), /already used/);
    assert.equal(await second.inputValue("#app-id"), appId, "the app id is prefilled on this machine");
    assert.equal(await second.inputValue("#app-secret"), "", "the secret is not");
    assert.match(await text(second.locator("#bootstrap-note")), /default-app\.json/);
    await second.close();
    assert.deepEqual(pageErrors, []);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("console: examples on a server bound beyond loopback go through the app's examples token", {
  timeout: 120_000,
}, () => {
  let server: TestServer;
  let browser: BrowserHarness;
  let base: string;

  before(async () => {
    server = await startTestServer(["--http-host", "0.0.0.0"]);
    base = `http://127.0.0.1:${new URL(server.url).port}`;
    browser = await launchBrowser(base);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test("after sign-in the example URLs carry ?token=, the adapter opens, the recordings list loads", async () => {
    const { page, pageErrors } = await openConsole(browser, base);
    await page.waitForSelector("#signin-view:not([hidden])");
    await signIn(page);
    await page.selectOption("#adapter-preset", "tts");
    const url = await page.inputValue("#adapter-url");
    assert.match(url, /\/examples\/tts\?text=.*&token=[\w-]{20,}$/);
    assert.equal(
      (await fetch(url.replace(/^ws/, "http").replace(/\/tts\?.*/, "/recorder/files"))).status,
      401,
    );
    const known = await adapterIds(page);
    await page.uncheck("#adapter-autoplay");
    await page.click("#adapter-create");
    const id = await newAdapterRow(page, "ingest", known);
    await page
      .locator(`tr[data-adapter-id="${id}"] td[data-col="state"] .badge`, { hasText: "open" })
      .waitFor();
    assert.match(await adapterCell(page, id, "endpoint"), /token=…/, "the table does not show the token");
    assert.ok(!(await adapterCell(page, id, "endpoint")).includes(url.split("token=")[1]));
    // The recorder: its URL carries the token, the recordings list loads with it, the WAV link works.
    await page.click("#mic-publish");
    await page.locator("#mic-state", { hasText: "connected" }).waitFor();
    await page.locator(`#adapter-source option[value$="/mic"]`).waitFor({ state: "attached" });
    const before = await adapterIds(page);
    await page.selectOption("#adapter-preset", "recorder");
    const mic = await page.locator(`#adapter-source option[value$="/mic"]`).getAttribute("value");
    await page.selectOption("#adapter-source", mic ?? "");
    assert.match(await page.inputValue("#adapter-url"), /\/examples\/recorder\?label=mic&token=[\w-]{20,}$/);
    await page.click("#adapter-create");
    const rec = await newAdapterRow(page, "egress", before);
    await framesGrow(page, rec, 50);
    await page.locator(`tr[data-adapter-id="${rec}"] button[data-action="close"]`).click();
    const link = page.locator("#recordings-list a.rec-name", { hasText: ".wav" }).first();
    await link.waitFor({ timeout: 15_000 });
    const href = (await link.getAttribute("href")) ?? "";
    assert.match(href, /token=/);
    assert.equal((await fetch(new URL(href, base))).status, 200, "the recording link carries the token");
    const errors = await page.locator('#activity-log .log-entry[data-kind="error"]').count();
    assert.equal(errors, 0, "no 401 anywhere");
    await page.click("#adapters-close-all");
    assert.deepEqual(pageErrors, []);
  });
});

// ---------------------------------------------------------------------------------------------------------

/**
 * Issue 10, items 1, 5, 6 and 7: the console must never record or echo the wrong track in silence, must say
 * why the tts example refused a text, must show when an ingest endpoint has finished, and must stay usable
 * at phone width with many closed adapters and a few errors.
 */
describe("console: the right source, silent sources, the TTS limit, finished endpoints, phone layout", {
  timeout: 360_000,
}, () => {
  let server: TestServer;
  let browser: BrowserHarness;
  let page: Page;
  let log: string[];
  let pageErrors: string[];
  /** Accepts and sends nothing: its ingest track carries silence. */
  let quiet: Endpoint;
  /** 1.5 s of speech as a burst, then the socket stays open (what /examples/tts does). */
  let short: Endpoint;
  /** 0.5 s of speech, then it closes the socket with a long reason. */
  let bye: Endpoint;
  const BYE_REASON = "the clip is over: goodbye from the console test's endpoint";
  let ingestSessionId = "";
  let micSessionId = "";
  let wsBase = "";

  before(async () => {
    server = await startTestServer();
    wsBase = server.url.replace(/^http/, "ws");
    browser = await launchBrowser(server.url);
    await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: new URL(server.url).origin,
    });
    quiet = await startEndpoint(() => {}, "/quiet");
    short = await startEndpoint(ttsBurst(speechLike(1500, { seed: 5 })), "/short");
    bye = await startEndpoint((ws) => {
      ttsBurst(speechLike(500, { seed: 6 }))(ws);
      setTimeout(() => ws.close(1000, BYE_REASON), 200);
    }, "/bye");
    ({ page, log, pageErrors } = await openConsole(browser, server.url));
  });

  after(async () => {
    await browser?.close();
    for (const e of [quiet, short, bye]) await e?.close();
    await server?.close();
  });

  const step = (name: string, fn: () => Promise<void>) =>
    test(name, { timeout: 60_000 }, async () => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += `\npage console:\n  ${log.slice(-15).join("\n  ")}`;
        throw err;
      }
    });

  /** An ingest adapter made through the API (not the page), as another client of the app would. */
  async function apiIngest(endpoint: string, trackName: string) {
    const res = await server.api.raw<{
      tracks: { adapterId: string; sessionId: string; errorCode?: string; errorDescription?: string }[];
    }>("POST", "adapters/websocket/new", {
      tracks: [{ location: "local", trackName, endpoint, inputCodec: "pcm", mode: "buffer" }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const item = res.body.tracks[0];
    assert.equal(item.errorCode, undefined, JSON.stringify(item));
    return item;
  }

  async function publishMic() {
    await page.click("#mic-publish");
    await page.locator("#mic-state", { hasText: "connected" }).waitFor();
    const mic = await pollUntil(
      () => hook(page, (h) => h.mic()),
      (m) => m !== null && m.packetsSent > 0,
      { timeoutMs: 10_000, what: "the microphone sending" },
    );
    assert.ok(mic);
    return mic.sessionId;
  }

  /** Dismisses the toasts with their × (a toast may also leave by itself meanwhile). */
  async function dismissToasts() {
    while ((await page.locator(".toast").count()) > 0)
      await page
        .locator(".toast .icon-btn")
        .first()
        .click({ timeout: 2000 })
        .catch(() => {});
  }

  /** The newest error in the activity log. */
  async function newestError(): Promise<string> {
    return text(page.locator('#activity-log .log-entry[data-kind="error"]').first());
  }

  step(
    "after a reload with an ingest track existing, the Recorder's source is the mic this page publishes",
    async () => {
      await page.waitForSelector("#signin-view:not([hidden])");
      await signIn(page);
      ingestSessionId = (await apiIngest(quiet.url, "speech")).sessionId;
      // Before the reload: a mic, and the ingest track playing here.
      await publishMic();
      const row = page.locator(`#adapters-body tr[data-direction="ingest"]`).first();
      await row.locator('button[data-action="play"]').click();
      await page.locator('.pull[data-track-name="speech"] .badge', { hasText: "connected" }).waitFor();
      await page.reload();
      await page.waitForSelector("html.ready");
      await page.waitForSelector("#console-view:not([hidden])");
      await page
        .locator(`#adapter-source option[value="${ingestSessionId}/speech"]`)
        .waitFor({ state: "attached", timeout: 10_000 });
      micSessionId = await publishMic();
      await page.selectOption("#adapter-preset", "recorder");
      await page
        .locator(`#adapter-source option[value="${micSessionId}/mic"]`)
        .waitFor({ state: "attached" });
      assert.equal(
        await page.inputValue("#adapter-source"),
        `${micSessionId}/mic`,
        "the recorder's source is the microphone this page publishes, not the ingest track",
      );
      assert.match(await page.inputValue("#adapter-url"), /\/examples\/recorder\?label=mic$/);
      // The echo uses the same source.
      await page.selectOption("#adapter-preset", "echo");
      assert.equal(await page.inputValue("#adapter-source"), `${micSessionId}/mic`);
    },
  );

  step("the form names the chosen source: track, publisher and session", async () => {
    await page.selectOption("#adapter-preset", "recorder");
    await page.selectOption("#adapter-source", `${micSessionId}/mic`);
    const info = page.locator("#adapter-source-info");
    await info.waitFor({ timeout: 5000 });
    const said = await text(info);
    assert.match(said, /\bmic\b/, said);
    assert.match(said, /your microphone/i, said);
    assert.ok(said.includes(micSessionId.slice(0, 6)), `the session is named: ${said}`);
    await page.selectOption("#adapter-source", `${ingestSessionId}/speech`);
    const other = await text(info);
    assert.match(other, /speech/, other);
    assert.match(other, /ingest adapter/i, other);
    assert.ok(other.includes(ingestSessionId.slice(0, 6)), other);
  });

  step("a silent source shows a warning: an ingest track with nothing to play", async () => {
    await page.selectOption("#adapter-preset", "recorder");
    await page.selectOption("#adapter-source", `${ingestSessionId}/speech`);
    const warning = page.locator("#adapter-source-warning");
    await warning.waitFor({ state: "visible", timeout: 10_000 });
    assert.match(await text(warning), /silent/i);
    assert.match(await text(warning), /speech/);
  });

  step("a silent source shows a warning: a muted mic (and none while it sounds)", async () => {
    await page.selectOption("#adapter-preset", "recorder");
    // Chromium's fake microphone beeps: no warning.
    await page.selectOption("#adapter-source", `${micSessionId}/mic`);
    const warning = page.locator("#adapter-source-warning");
    await page.waitForTimeout(3500);
    assert.equal(await warning.isVisible(), false, "no warning for a microphone that sounds");
    await page.click("#mic-mute");
    try {
      await warning.waitFor({ state: "visible", timeout: 10_000 });
      assert.match(await text(warning), /muted/i);
    } finally {
      await page.click("#mic-mute");
    }
    await warning.waitFor({ state: "hidden", timeout: 10_000 });
  });

  step("a recording of a silent source is flagged silent in Recordings", async () => {
    await page.selectOption("#adapter-preset", "recorder");
    await page.selectOption("#adapter-source", `${ingestSessionId}/speech`);
    assert.match(await page.inputValue("#adapter-url"), /label=speech$/);
    const known = await adapterIds(page);
    await page.click("#adapter-create");
    const rec = await newAdapterRow(page, "egress", known);
    await framesGrow(page, rec, 50);
    await page.locator(`tr[data-adapter-id="${rec}"] button[data-action="close"]`).click();
    const item = page.locator('#recordings-list li.recording[data-name*="speech"]').first();
    await item.waitFor({ timeout: 15_000 });
    await item.locator(".rec-silent").waitFor({ timeout: 15_000 });
    assert.match(await text(item), /silent/i);
  });

  step("the TTS hint says what the example does after the clip: it keeps the socket open", async () => {
    await page.selectOption("#adapter-preset", "tts");
    const hint = await text(page.locator("#adapter-hint"));
    assert.doesNotMatch(hint, /hangs up/, "the example keeps the socket open");
    assert.match(hint, /keeps the (socket|connection) open/i, hint);
  });

  const LONG_TEXT = "Patchbay speaks. ".repeat(70).trim(); // 1189 characters

  step(
    "TTS text over 1000 characters: the form shows the limit and the reason, and creates nothing",
    async () => {
      assert.ok(LONG_TEXT.length > 1000);
      await page.selectOption("#adapter-preset", "tts");
      await page.fill("#tts-text", LONG_TEXT);
      const note = page.locator("#tts-text-note");
      await note.waitFor({ state: "visible", timeout: 5000 });
      assert.match(await text(note), /1,?000/);
      assert.match(await text(note), /1,?189/);
      const known = await adapterIds(page);
      await page.click("#adapter-create");
      await pollUntil(newestError, (t) => /1,?000 characters/.test(t), {
        timeoutMs: 5000,
        what: "the limit in the activity log",
      });
      await page.waitForTimeout(1500);
      assert.deepEqual(await adapterIds(page), known, "no adapter is created for a text the example refuses");
    },
  );

  step("a tts handshake the example refuses (HTTP 400) is explained: the limit and the reason", async () => {
    // The tts URL typed into the custom field: the server's refusal, as the adapter API reports it.
    await page.selectOption("#adapter-preset", "custom");
    await page.locator("#adapter-direction label", { hasText: "Ingest" }).click();
    await page.fill("#adapter-url", `${wsBase}/examples/tts?text=${encodeURIComponent(LONG_TEXT)}`);
    await page.click("#adapter-create");
    const refused = await pollUntil(newestError, (t) => /websocket_handshake_failed/.test(t), {
      timeoutMs: 10_000,
      what: "the handshake refusal in the activity log",
    });
    assert.match(refused, /400/);
    assert.match(refused, /1,?000 characters/, refused);
    const toast = page.locator(".toast", { hasText: "websocket_handshake_failed" }).first();
    assert.match(await text(toast), /1,?000 characters/);
    await dismissToasts();
  });

  step(
    "an ingest adapter whose endpoint has sent everything says so, with a Close button on its card",
    async () => {
      await page.selectOption("#adapter-preset", "custom");
      await page.locator("#adapter-direction label", { hasText: "Ingest" }).click();
      await page.fill("#adapter-url", short.url);
      await page.fill("#adapter-track-name", "short");
      await page.uncheck("#adapter-autoplay");
      const known = await adapterIds(page);
      await page.click("#adapter-create");
      const id = await newAdapterRow(page, "ingest", known);
      const row = page.locator(`tr[data-adapter-id="${id}"]`);
      await row.locator('[data-col="state"]', { hasText: /finished/i }).waitFor({ timeout: 15_000 });
      assert.match(await adapterCell(page, id, "state"), /silent/i);
      const close = row.locator('button[data-action="close"]');
      assert.equal(await close.isVisible(), true);
      await close.click();
      await row.locator('td[data-col="state"] .badge', { hasText: "closed" }).waitFor();
    },
  );

  let byeId = "";

  /** 10 adapters closed through the API, one closed by its endpoint with a long reason, one track playing. */
  async function busyApp() {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await apiIngest(quiet.url, `old${i}`)).adapterId);
    for (let i = 0; i < ids.length; i += 4) {
      const res = await server.api.raw("POST", "adapters/websocket/close", {
        tracks: ids.slice(i, i + 4).map((adapterId) => ({ adapterId })),
      });
      assert.equal(res.status, 200);
    }
    byeId = (await apiIngest(bye.url, "bye")).adapterId;
    if ((await page.locator('.pull[data-track-name="speech"]').count()) === 0)
      await page
        .locator(`#adapters-body tr[data-direction="ingest"]:not([data-state="closed"])`, {
          hasText: "speech",
        })
        .locator('button[data-action="play"]')
        .click();
    await page.locator('.pull[data-track-name="speech"]').waitFor();
    await pollUntil(
      () => hook(page, (h) => h.adapters()),
      (list) => list.find((a) => a.adapterId === byeId)?.state === "closed",
      { timeoutMs: 15_000, what: "the bye adapter closed by its endpoint" },
    );
    await page.setViewportSize(PHONE);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(1500);
  }

  /** Heights of the adapter cards (rows) shown. */
  function shownRows(state: "closed" | "open") {
    return page
      .locator(
        `#adapters-body tr${state === "closed" ? '[data-state="closed"]' : ':not([data-state="closed"])'}`,
      )
      .evaluateAll((rows) =>
        rows
          .filter((r) => (r as HTMLElement).offsetParent !== null)
          .map((r) => r.getBoundingClientRect().height),
      );
  }

  step(
    "phone width, 10 closed adapters: all but the last 3 closed are folded away by default, and counted",
    async () => {
      await busyApp();
      const closed = (await hook(page, (h) => h.adapters())).filter((a) => a.state === "closed");
      assert.ok(closed.length >= 12, `${closed.length} closed adapters`);
      const shown = (await shownRows("closed")).length;
      assert.ok(shown <= 3, `${shown} closed adapters shown by default`);
      const toggle = page.locator("#adapters-closed-toggle");
      assert.equal(await toggle.isVisible(), true, "the fold says it is there");
      assert.ok((await text(toggle)).includes(`${closed.length - shown} older closed`), await text(toggle));
      assert.equal(await page.isChecked("#adapters-show-closed"), false);
      // The one closed last (by its endpoint) is among those shown, with its reason.
      assert.match(await adapterCell(page, byeId, "state"), /goodbye/);
    },
  );

  step("phone width, 10 closed adapters: Playing starts in the first screenful (top < 900 px)", async () => {
    await page.setViewportSize(PHONE);
    await page.evaluate(() => window.scrollTo(0, 0));
    const top = await page
      .locator("#pulls-card")
      .evaluate((el) => el.getBoundingClientRect().top + window.scrollY);
    assert.ok(top < 900, `Playing starts ${Math.round(top)} px down the page at 390×844`);
    await screenshot(page, "busy");
  });

  step("phone width: adapter cards are compact (≤ 110 px)", async () => {
    await page.setViewportSize(PHONE);
    await page.check("#adapters-show-closed");
    try {
      await page.waitForTimeout(300);
      const heights = [...(await shownRows("open")), ...(await shownRows("closed"))];
      assert.ok(heights.length >= 12, `${heights.length} cards`);
      for (const hgt of heights)
        assert.ok(hgt <= 110, `an adapter card is ${Math.round(hgt)} px tall (${heights.map(Math.round)})`);
    } finally {
      await page.uncheck("#adapters-show-closed");
    }
  });

  step("close reasons are readable whole, at phone and desktop width", async () => {
    await page.check("#adapters-show-closed");
    try {
      const reason = page.locator(`tr[data-adapter-id="${byeId}"] .close-reason`);
      await reason.waitFor();
      for (const size of [PHONE, DESKTOP]) {
        await page.setViewportSize(size);
        await page.waitForTimeout(300);
        assert.match(await text(reason), /goodbye from the console test's endpoint/);
        const clipped = await reason.evaluate(
          (el) => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1,
        );
        assert.equal(clipped, false, `the close reason is cut off at ${size.width} px`);
      }
    } finally {
      await page.uncheck("#adapters-show-closed");
      await page.setViewportSize(DESKTOP);
    }
  });

  step("toasts at phone width stay small (< 15 % of the viewport) and still give the errorCode", async () => {
    await page.setViewportSize(PHONE);
    try {
      await page.selectOption("#adapter-preset", "custom");
      await page.locator("#adapter-direction label", { hasText: "Ingest" }).click();
      await page.fill("#adapter-url", "http://not-a-websocket.example/");
      await page.click("#adapter-create");
      await page.locator(".toast", { hasText: "invalid_params" }).first().waitFor();
      await page.fill("#adapter-url", `ws://127.0.0.1:${await closedPort()}/nobody`);
      await page.click("#adapter-create");
      const newest = page.locator(".toast", { hasText: "websocket_handshake_failed" }).first();
      await newest.waitFor();
      await page.waitForTimeout(300);
      const box = await page.locator("#toasts").boundingBox();
      assert.ok(box);
      assert.ok(box.height < 0.15 * PHONE.height, `the toasts are ${Math.round(box.height)} px tall`);
      assert.equal(await newest.isVisible(), true);
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, "console-toast-phone.png") });
    } finally {
      // A phone shows the newest toast only: dismiss them at desktop width, where all are shown.
      await page.setViewportSize(DESKTOP);
      await dismissToasts();
    }
  });

  step("a finished recording carries no red recording dot", async () => {
    const finished = page.locator("#recordings-list li.recording:not(.is-active)").first();
    await finished.waitFor();
    const [icon, danger] = await finished.evaluate((li) => {
      const probe = document.createElement("span");
      probe.style.color = "var(--danger)";
      document.body.append(probe);
      const red = getComputedStyle(probe).color;
      probe.remove();
      const el = li.querySelector(".rec-icon");
      return [el ? getComputedStyle(el).backgroundColor : "none", red];
    });
    assert.notEqual(icon, danger, "a finished recording is not shown with the red recording dot");
  });

  step("ids have copy buttons that copy the whole id", async () => {
    const adapter = (await hook(page, (h) => h.adapters())).find((a) => a.state !== "closed");
    assert.ok(adapter);
    const copy = page.locator(
      `tr[data-adapter-id="${adapter.adapterId}"] button[data-copy="${adapter.adapterId}"]`,
    );
    await copy.waitFor({ timeout: 5000 });
    await copy.click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), adapter.adapterId);
    await page
      .locator(`.session[data-session-id="${micSessionId}"] button[data-copy="${micSessionId}"]`)
      .waitFor({ timeout: 5000 });
    assert.ok((await page.locator(`#mic-card button[data-copy="${micSessionId}"]`).count()) > 0);
  });

  step("the page had no script errors", async () => {
    await page.click("#adapters-close-all");
    assert.deepEqual(pageErrors, []);
  });
});
