import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH, pollUntil } from "../helpers/browser.ts";
import { type PartyTracksApp, startPartyTracksApp } from "../helpers/partytracks-app.ts";
import { startTestServer, TEST_APPS, type TestServer } from "../helpers/server.ts";
import type { CallApi, FrameLog, Inbound, PublishOptions, TrackMeta } from "./partytracks-page.ts";

// Cloudflare's own client library, partytracks 0.0.54 from npm (what Orange Meets pins), through its own
// server-side proxy (routePartyTracksRequest), against Patchbay: the call shapes real apps use. Every
// participant publishes and pulls on its one session and renegotiates as people join and leave.

const STEP = { timeout: 60_000 };
/** Above Chromium's silence floor, well below the fake mic's beeps. */
const HEARD = 0.05;

type CallWindow = Window & { call: CallApi };

class Participant {
  readonly log: string[] = [];
  constructor(
    readonly name: string,
    readonly page: Page,
  ) {
    page.on("console", (m) => this.log.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => this.log.push(`[pageerror] ${e.message}`));
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Error) {
        const history = await this.page
          .evaluate(() => (window as unknown as CallWindow).call.history())
          .catch(() => []);
        err.message += `\n${this.name} console:\n  ${this.log.slice(-15).join("\n  ")}\n${this.name} API history: ${JSON.stringify(history).slice(-3000)}`;
      }
      throw err;
    }
  }

  publish(opts: PublishOptions = {}): Promise<{ audio?: TrackMeta; video?: TrackMeta }> {
    return this.run(() => this.page.evaluate((o) => (window as unknown as CallWindow).call.publish(o), opts));
  }
  unpublish(kind: "audio" | "video"): Promise<void> {
    return this.run(() =>
      this.page.evaluate((k) => (window as unknown as CallWindow).call.unpublish(k), kind),
    );
  }
  pull(key: string, meta: TrackMeta, preferredRid?: string): Promise<string> {
    return this.run(() =>
      this.page.evaluate(([k, m, r]) => (window as unknown as CallWindow).call.pull(k, m, r ?? undefined), [
        key,
        meta,
        preferredRid ?? null,
      ] as const),
    );
  }
  setRid(key: string, rid: string): Promise<void> {
    return this.page.evaluate(([k, r]) => (window as unknown as CallWindow).call.setRid(k, r), [
      key,
      rid,
    ] as const);
  }
  inbound(key: string): Promise<Inbound | undefined> {
    return this.page.evaluate((k) => (window as unknown as CallWindow).call.inbound(k), key);
  }
  frames(key: string): Promise<FrameLog | undefined> {
    return this.page.evaluate((k) => (window as unknown as CallWindow).call.frames(k), key);
  }
  signalingState(): Promise<string> {
    return this.page.evaluate(() => (window as unknown as CallWindow).call.signalingState());
  }

  /** Audio heard on `key`: audioLevel above the floor in some read. */
  heard(key: string, timeoutMs = 20_000): Promise<Inbound | undefined> {
    return this.run(() =>
      pollUntil(
        () => this.inbound(key),
        (s) => (s?.audioLevel ?? 0) > HEARD,
        { timeoutMs, what: `${this.name} hears ${key}` },
      ),
    );
  }

  /** Video decoded on `key`: framesDecoded grows by `frames` from now. */
  async seen(key: string, frames = 10, timeoutMs = 20_000): Promise<Inbound | undefined> {
    const start = (await this.inbound(key))?.framesDecoded ?? 0;
    return this.run(() =>
      pollUntil(
        () => this.inbound(key),
        (s) => (s?.framesDecoded ?? 0) >= start + frames,
        { timeoutMs, what: `${this.name} sees ${key} (${frames} more frames than ${start})` },
      ),
    );
  }
}

interface Harness {
  server: TestServer;
  app: PartyTracksApp;
  context: BrowserContext;
  profile: string;
  join(name: string): Promise<Participant>;
}

function harness(): Harness {
  const h = {} as Harness;
  before(async () => {
    // A participant who closes the tab sends nothing more: noticed after 3 s, its session closed 1 s later.
    h.server = await startTestServer([
      "--session-liveness-timeout-ms",
      "3000",
      "--session-disconnect-grace-ms",
      "1000",
    ]);
    h.app = await startPartyTracksApp(h.server.url, TEST_APPS[0]);
    h.profile = mkdtempSync(join(tmpdir(), "patchbay-partytracks-"));
    h.context = await chromium.launchPersistentContext(h.profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      permissions: ["microphone", "camera"],
      timeout: 30_000,
    });
    h.join = async (name) => {
      const page = await h.context.newPage();
      await page.goto(`${h.app.url}/`);
      await page.waitForFunction(() => "call" in window);
      return new Participant(name, page);
    };
  });
  after(async () => {
    await h.context?.close();
    await h.app?.close();
    await h.server?.close();
    if (h.profile) rmSync(h.profile, { recursive: true, force: true, maxRetries: 3 });
  });
  return h;
}

describe("partytracks (Cloudflare's client, unchanged) in a three-person call", { timeout: 240_000 }, () => {
  const h = harness();
  const people: Participant[] = [];
  const published = new Map<string, { audio?: TrackMeta; video?: TrackMeta }>();

  test(
    "three participants each publish mic + camera and pull the other two on their own session",
    STEP,
    async () => {
      for (const name of ["ann", "bob", "cat"]) {
        const p = await h.join(name);
        people.push(p);
        published.set(name, await p.publish());
      }
      for (const p of people)
        for (const other of people) {
          if (other === p) continue;
          const meta = published.get(other.name)!;
          assert.equal(await p.pull(`${other.name}-audio`, meta.audio!), "audio");
          assert.equal(await p.pull(`${other.name}-video`, meta.video!), "video");
        }
      for (const p of people)
        for (const other of people) {
          if (other === p) continue;
          await p.heard(`${other.name}-audio`);
          const v = await p.seen(`${other.name}-video`);
          assert.ok((v?.frameWidth ?? 0) > 0, `${p.name} decodes ${other.name}'s video with a size`);
        }
      // Every client's one session carries its pushes and its pulls, settled.
      for (const p of people) assert.equal(await p.signalingState(), "stable/connected");
      const renegotiations = h.app.calls.filter((c) => c.path.endsWith("/renegotiate"));
      assert.ok(
        renegotiations.length >= 6,
        "pulls were negotiated with server offers on the publishing sessions",
      );
      assert.ok(
        h.app.calls.every((c) => c.status < 400),
        JSON.stringify(h.app.calls.filter((c) => c.status >= 400)),
      );
    },
  );

  test(
    "one leaves and another unpublishes its camera: the rest keep media, no stuck signaling",
    STEP,
    async () => {
      const [ann, bob, cat] = people;
      const catSession = published.get("cat")!.audio!.sessionId;
      await cat.page.close();
      // cat's transport ends (DTLS close, or silence past the liveness timeout): her session closes on the
      // server and her tracks stop for ann and bob.
      await pollUntil(
        () =>
          fetch(`${h.server.url}/v1/apps/${TEST_APPS[0].appId}/sessions/${catSession}`, {
            headers: { Authorization: `Bearer ${TEST_APPS[0].secret}` },
          }).then((r) => r.status),
        (status) => status === 410,
        { timeoutMs: 10_000, what: "cat's session is closed on the server" },
      );
      for (const p of [ann, bob]) {
        const a = (await p.inbound("cat-audio"))?.packetsReceived ?? 0;
        await new Promise((r) => setTimeout(r, 600));
        const b = (await p.inbound("cat-audio"))?.packetsReceived ?? 0;
        assert.equal(b, a, `${p.name} gets no more of cat's audio`);
      }
      await bob.unpublish("video");
      await pollUntil(
        () => bob.signalingState(),
        (s) => s === "stable/connected",
        { what: "bob's signaling settles after closing his camera" },
      );
      // ann still hears and sees what is still published, and so does bob.
      await ann.heard("bob-audio");
      await bob.heard("ann-audio");
      await bob.seen("ann-video");
      const annBobVideo = await ann.inbound("bob-video");
      const before = annBobVideo?.framesDecoded ?? 0;
      await new Promise((r) => setTimeout(r, 1500));
      const afterClose = await ann.inbound("bob-video");
      assert.ok(
        (afterClose?.framesDecoded ?? 0) - before < 10,
        `bob's closed camera stopped for ann (${before} → ${afterClose?.framesDecoded})`,
      );
      assert.equal(await ann.signalingState(), "stable/connected");
      // A new participant joins the remaining call and everyone hears everyone again.
      const dan = await h.join("dan");
      const danMeta = await dan.publish({ video: false });
      await dan.pull("ann-audio", published.get("ann")!.audio!);
      await dan.pull("bob-audio", published.get("bob")!.audio!);
      await ann.pull("dan-audio", danMeta.audio!);
      await dan.heard("ann-audio");
      await dan.heard("bob-audio");
      await ann.heard("dan-audio");
      await ann.seen("bob-video", 0);
    },
  );
});

describe("partytracks simulcast: a subscriber switches preferredRid down and up", {
  timeout: 180_000,
}, () => {
  const h = harness();

  test(
    "two layers (a: 640×480, b: 320×240): frame size follows preferredRid, no freeze on a switch",
    STEP,
    async () => {
      const pub = await h.join("publisher");
      const sub = await h.join("subscriber");
      const meta = await pub.publish({
        audio: false,
        width: 640,
        height: 480,
        encodings: [{ rid: "a" }, { rid: "b", scaleResolutionDownBy: 2 }],
      });
      await sub.pull("cam", meta.video!, "a");
      const width = (want: number) =>
        pollUntil(
          () => sub.inbound("cam"),
          (s) => s?.frameWidth === want && (s.framesDecoded ?? 0) > 0,
          { timeoutMs: 20_000, what: `frame width ${want}` },
        );
      await width(640);
      const now = () => sub.page.evaluate(() => performance.now());
      const switches: { at: number; reached: number; to: number }[] = [];
      for (const [rid, w] of [
        ["b", 320],
        ["a", 640],
        ["b", 320],
      ] as const) {
        await sub.seen("cam", 30);
        const at = await now();
        await sub.setRid("cam", rid);
        await width(w);
        switches.push({ at, reached: await now(), to: w });
      }
      await sub.seen("cam", 30);
      const end = await now();
      const log = (await sub.frames("cam"))!;
      switches.forEach((s, k) => {
        const until = switches[k + 1]?.at ?? end;
        // Rendered frames from the request to the next switch: the longest gap stays under a second (a PLI
        // round trip and one keyframe, not a wait for the encoder's periodic keyframe)…
        const times = log.t.filter((t) => t >= s.at - 100 && t < until);
        let gap = 0;
        for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
        assert.ok(times.length > 10, `frames rendered around the switch to ${s.to}`);
        assert.ok(gap < 1000, `longest frame gap around the switch to ${s.to}: ${gap.toFixed(0)} ms`);
        // …and once the new size showed, every frame has it (one continuous stream, no flapping back).
        const sizes = log.w.filter((_, i) => log.t[i] > s.reached + 100 && log.t[i] < until);
        assert.ok(
          sizes.length > 0 && sizes.every((w) => w === s.to),
          `frames after the switch are ${s.to} wide: ${[...new Set(sizes)]}`,
        );
      });
    },
  );
});
