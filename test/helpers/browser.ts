/**
 * Headless Chromium (Debian's /usr/bin/chromium through playwright-core) driving real browser WebRTC
 * against a test server. Node decides what to do; every WebRTC and `fetch` call runs in the page.
 *
 * The browser-side code is plain typed functions serialized by `page.evaluate`. tsx (esbuild, keepNames)
 * wraps named inner functions in `__name(fn, "name")`, a helper that exists only in the Node module;
 * every page therefore gets a no-op `__name` from an init script before anything else runs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { startTestServer, TEST_APPS, type TestServer } from "./server.ts";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** docs/CONTRIBUTING-CONTEXT.md and STACK.md "Chromium quirks". */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
  "--allow-loopback-in-peer-connection",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

export interface AppCredentials {
  appId: string;
  secret: string;
}

/** What the page needs to call the HTTP API itself. */
export interface PageApi extends AppCredentials {
  /** Server origin, e.g. `http://127.0.0.1:40123`; requests go to `${base}/v1/apps/${appId}/…`. */
  base: string;
}

export type Kind = "audio" | "video";

export interface PublishOptions {
  /** Put this codec first with `setCodecPreferences` (e.g. "video/H264"); the browser's default otherwise. */
  codec?: string;
  /** With `codec`: prefer the entries whose fmtp line contains this (e.g. "packetization-mode=1"). */
  fmtp?: string;
  /** getUserMedia constraints for the track (e.g. a camera resolution); `true` otherwise. */
  constraints?: MediaTrackConstraints;
}

export interface PublishResult {
  label: string;
  sessionId: string;
  trackName: string;
  mid: string;
  /** ms from getUserMedia to `connectionState === "connected"`. */
  connectMs: number;
}

export interface PullResult {
  label: string;
  sessionId: string;
  mid: string | undefined;
  requiresImmediateRenegotiation: boolean;
  /** What the `track` event carried. */
  trackKind: string;
  streamCount: number;
  streamId: string | undefined;
  /** The a=msid lines of the server's SDP (answer or offer). */
  msidLines: string[];
  serverSdp: string;
  connectMs: number;
}

/** The parts of an `inbound-rtp` stats entry the tests look at. */
export interface InboundSample {
  at: number;
  packetsReceived: number;
  packetsLost: number;
  bytesReceived: number;
  audioLevel?: number;
  totalAudioEnergy?: number;
  framesDecoded?: number;
  framesReceived?: number;
  keyFramesDecoded?: number;
  frameWidth?: number;
  frameHeight?: number;
  pliCount?: number;
  firCount?: number;
  nackCount?: number;
  codec?: string;
}

export interface FlowResult {
  first: InboundSample;
  last: InboundSample;
  /** ms from the call until the criteria held. */
  elapsedMs: number;
  /** Largest audioLevel seen (audio). */
  maxAudioLevel: number;
}

export interface FlowCriteria {
  timeoutMs?: number;
  intervalMs?: number;
  /**
   * Audio counts as heard once some read shows at least this audioLevel (0..1). The default 0.1 is well
   * above the 1/32768 noise floor Chromium reports for silence and well below the fake mic's beeps (≈1).
   */
  minAudioLevel?: number;
}

/** The library each page carries as `window.patchbay`. */
export interface PatchbayPageLib {
  publish(api: PageApi, kind: Kind, trackName: string, opts: PublishOptions): Promise<PublishResult>;
  pullWithOffer(
    api: PageApi,
    kind: Kind,
    from: { sessionId: string; trackName: string },
  ): Promise<PullResult>;
  pullWithoutOffer(
    api: PageApi,
    kind: Kind,
    from: { sessionId: string; trackName: string },
  ): Promise<PullResult>;
  inbound(label: string, kind: Kind): Promise<InboundSample | undefined>;
  waitFlowing(label: string, kind: Kind, criteria: FlowCriteria): Promise<FlowResult>;
  /** Every stats entry of one peer connection, for diagnostics. */
  stats(label: string): Promise<Record<string, unknown>[]>;
  connectionState(label: string): string;
  close(label: string): void;
  /** Merged into the RTCConfiguration of every peer connection created after it (ICE servers, policy). */
  setPeerConfig(config: RTCConfiguration): void;
  /**
   * Records what the page hears on `label`'s audio track for `ms` (Web Audio, 48 kHz mono): base64 of
   * s16le samples, so the test can compare the decoded audio itself, not just levels.
   */
  recordAudio(label: string, ms: number): Promise<string>;
}

type PatchbayWindow = Window & { patchbay: PatchbayPageLib };

/**
 * Runs in the page: defines `window.patchbay`. Self-contained on purpose (serialized by playwright),
 * it may use nothing from this module at run time.
 */
function installPatchbayLib(): void {
  const pcs = new Map<string, RTCPeerConnection>();
  let counter = 0;
  let peerConfig: RTCConfiguration = {};

  async function call<T>(api: PageApi, method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${api.base}/v1/apps/${api.appId}/${path}`, {
      method,
      headers: { Authorization: `Bearer ${api.secret}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  function waitConnected(pc: RTCPeerConnection, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const s = pc.connectionState;
        if (s === "connected") done();
        else if (s === "failed" || s === "closed") done(new Error(`peer connection ${s}`));
      };
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `not connected after ${timeoutMs} ms (connection ${pc.connectionState}, ice ${pc.iceConnectionState})`,
            ),
          ),
        timeoutMs,
      );
      const done = (err?: Error) => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        if (err) reject(err);
        else resolve();
      };
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  function newPeer(): { label: string; pc: RTCPeerConnection } {
    const label = `pc${++counter}`;
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle", ...peerConfig });
    pcs.set(label, pc);
    return { label, pc };
  }

  function peer(label: string): RTCPeerConnection {
    const pc = pcs.get(label);
    if (!pc) throw new Error(`no peer connection ${label}`);
    return pc;
  }

  /** Resolves with the first `track` event and plays it in a media element. */
  function firstTrack(pc: RTCPeerConnection, kind: Kind, timeoutMs = 10_000): Promise<RTCTrackEvent> {
    const got = new Promise<RTCTrackEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no track event after ${timeoutMs} ms`)), timeoutMs);
      pc.addEventListener(
        "track",
        (ev) => {
          clearTimeout(timer);
          const el = document.createElement(kind);
          el.autoplay = true;
          el.muted = kind === "video";
          if (el instanceof HTMLVideoElement) el.playsInline = true;
          el.srcObject = ev.streams[0] ?? new MediaStream([ev.track]);
          document.body.append(el);
          el.play().catch((err) => console.warn(`play() failed: ${err}`));
          resolve(ev);
        },
        { once: true },
      );
    });
    // Awaited only after negotiation; keep an early failure from surfacing as an unhandled rejection.
    got.catch(() => {});
    return got;
  }

  function msidLines(sdp: string): string[] {
    return sdp.split(/\r?\n/).filter((l) => l.startsWith("a=msid:"));
  }

  type TrackItem = {
    mid?: string;
    trackName?: string;
    sessionId?: string;
    errorCode?: string;
    errorDescription?: string;
  };
  type TracksResponse = {
    requiresImmediateRenegotiation: boolean;
    sessionDescription?: RTCSessionDescriptionInit & { sdp: string };
    tracks: TrackItem[];
  };

  function checkItem(res: TracksResponse): TrackItem {
    const item = res.tracks[0];
    if (!item) throw new Error(`tracks/new returned no item: ${JSON.stringify(res)}`);
    if (item.errorCode) throw new Error(`tracks/new item failed: ${item.errorCode} ${item.errorDescription}`);
    return item;
  }

  async function publish(
    api: PageApi,
    kind: Kind,
    trackName: string,
    opts: PublishOptions,
  ): Promise<PublishResult> {
    const t0 = performance.now();
    const media = await navigator.mediaDevices.getUserMedia(
      kind === "audio" ? { audio: opts.constraints ?? true } : { video: opts.constraints ?? true },
    );
    const track = media.getTracks()[0];
    const { label, pc } = newPeer();
    const tr = pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
    if (opts.codec) {
      const all = RTCRtpSender.getCapabilities(kind)?.codecs ?? [];
      const wanted = (c: RTCRtpCodec) =>
        c.mimeType.toLowerCase() === opts.codec!.toLowerCase() &&
        (!opts.fmtp || (c.sdpFmtpLine ?? "").includes(opts.fmtp));
      if (!all.some(wanted)) throw new Error(`this browser cannot send ${opts.codec} ${opts.fmtp ?? ""}`);
      tr.setCodecPreferences([...all.filter(wanted), ...all.filter((c) => !wanted(c))]);
    }
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await call<{ sessionId: string }>(api, "POST", "sessions/new");
    const res = await call<TracksResponse>(api, "POST", `sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
      tracks: [{ location: "local", mid: tr.mid, trackName }],
    });
    const item = checkItem(res);
    if (res.sessionDescription?.type !== "answer")
      throw new Error(`expected an answer: ${JSON.stringify(res)}`);
    await pc.setRemoteDescription(res.sessionDescription);
    await waitConnected(pc);
    return {
      label,
      sessionId,
      trackName: item.trackName ?? trackName,
      mid: item.mid ?? tr.mid!,
      connectMs: performance.now() - t0,
    };
  }

  /** Variant 4: our own recvonly offer, no mid; the server answers with a=msid. */
  async function pullWithOffer(
    api: PageApi,
    kind: Kind,
    from: { sessionId: string; trackName: string },
  ): Promise<PullResult> {
    const t0 = performance.now();
    const { label, pc } = newPeer();
    const got = firstTrack(pc, kind);
    const tr = pc.addTransceiver(kind, { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await call<{ sessionId: string }>(api, "POST", "sessions/new");
    const res = await call<TracksResponse>(api, "POST", `sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = checkItem(res);
    if (res.sessionDescription?.type !== "answer")
      throw new Error(`expected an answer: ${JSON.stringify(res)}`);
    await pc.setRemoteDescription(res.sessionDescription);
    const ev = await got;
    await waitConnected(pc);
    return {
      label,
      sessionId,
      mid: item.mid ?? tr.mid ?? undefined,
      requiresImmediateRenegotiation: res.requiresImmediateRenegotiation,
      trackKind: ev.track.kind,
      streamCount: ev.streams.length,
      streamId: ev.streams[0]?.id,
      msidLines: msidLines(res.sessionDescription.sdp),
      serverSdp: res.sessionDescription.sdp,
      connectMs: performance.now() - t0,
    };
  }

  /** Variant 3: the server offers, we answer through PUT renegotiate. */
  async function pullWithoutOffer(
    api: PageApi,
    kind: Kind,
    from: { sessionId: string; trackName: string },
  ): Promise<PullResult> {
    const t0 = performance.now();
    const { label, pc } = newPeer();
    const got = firstTrack(pc, kind);
    const { sessionId } = await call<{ sessionId: string }>(api, "POST", "sessions/new");
    const res = await call<TracksResponse>(api, "POST", `sessions/${sessionId}/tracks/new`, {
      tracks: [{ location: "remote", sessionId: from.sessionId, trackName: from.trackName }],
    });
    const item = checkItem(res);
    if (res.sessionDescription?.type !== "offer")
      throw new Error(`expected an offer: ${JSON.stringify(res)}`);
    await pc.setRemoteDescription(res.sessionDescription);
    await pc.setLocalDescription(await pc.createAnswer());
    await call(api, "PUT", `sessions/${sessionId}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: pc.localDescription!.sdp },
    });
    const ev = await got;
    await waitConnected(pc);
    return {
      label,
      sessionId,
      mid: item.mid,
      requiresImmediateRenegotiation: res.requiresImmediateRenegotiation,
      trackKind: ev.track.kind,
      streamCount: ev.streams.length,
      streamId: ev.streams[0]?.id,
      msidLines: msidLines(res.sessionDescription.sdp),
      serverSdp: res.sessionDescription.sdp,
      connectMs: performance.now() - t0,
    };
  }

  /** The stats fields read here (lib.dom has no per-type stats dictionaries for all of them). */
  type StatsEntry = {
    id: string;
    type: string;
    kind?: string;
    codecId?: string;
    mimeType?: string;
    payloadType?: number;
    sdpFmtpLine?: string;
    packetsReceived?: number;
    packetsLost?: number;
    bytesReceived?: number;
    audioLevel?: number;
    totalAudioEnergy?: number;
    framesDecoded?: number;
    framesReceived?: number;
    keyFramesDecoded?: number;
    frameWidth?: number;
    frameHeight?: number;
    pliCount?: number;
    firCount?: number;
    nackCount?: number;
  };

  /** A stats report as a Map (lib.dom types RTCStatsReport without its Map methods). */
  async function statsMap(label: string): Promise<Map<string, StatsEntry>> {
    const map = new Map<string, StatsEntry>();
    (await peer(label).getStats()).forEach((s: StatsEntry) => {
      map.set(s.id, { ...s });
    });
    return map;
  }

  async function inbound(label: string, kind: Kind): Promise<InboundSample | undefined> {
    const report = await statsMap(label);
    let found: InboundSample | undefined;
    for (const s of report.values()) {
      if (s.type !== "inbound-rtp" || s.kind !== kind) continue;
      const codec = s.codecId ? report.get(s.codecId) : undefined;
      found = {
        at: performance.now(),
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        audioLevel: s.audioLevel,
        totalAudioEnergy: s.totalAudioEnergy,
        framesDecoded: s.framesDecoded,
        framesReceived: s.framesReceived,
        keyFramesDecoded: s.keyFramesDecoded,
        frameWidth: s.frameWidth,
        frameHeight: s.frameHeight,
        pliCount: s.pliCount,
        firCount: s.firCount,
        nackCount: s.nackCount,
        codec: codec
          ? `${codec.mimeType} pt=${codec.payloadType} ${codec.sdpFmtpLine ?? ""}`.trim()
          : undefined,
      };
    }
    return found;
  }

  /**
   * Polls getStats (stats have no event) until media demonstrably flows: packetsReceived grew between two
   * reads, and the audio was heard (an audioLevel ≥ minAudioLevel, totalAudioEnergy > 0) or video frames
   * were decoded and framesDecoded grew.
   */
  async function waitFlowing(label: string, kind: Kind, criteria: FlowCriteria): Promise<FlowResult> {
    const timeoutMs = criteria.timeoutMs ?? 15_000;
    const intervalMs = criteria.intervalMs ?? 100;
    const minAudioLevel = criteria.minAudioLevel ?? 0.1;
    const t0 = performance.now();
    let first: InboundSample | undefined;
    let prev: InboundSample | undefined;
    let maxAudioLevel = 0;
    for (;;) {
      const cur = await inbound(label, kind);
      if (cur) {
        first ??= cur;
        maxAudioLevel = Math.max(maxAudioLevel, cur.audioLevel ?? 0);
        if (prev && cur.packetsReceived > prev.packetsReceived) {
          const ok =
            kind === "audio"
              ? maxAudioLevel >= minAudioLevel && (cur.totalAudioEnergy ?? 0) > 0
              : (cur.framesDecoded ?? 0) > 0 && (cur.framesDecoded ?? 0) > (prev.framesDecoded ?? 0);
          if (ok) return { first, last: cur, elapsedMs: performance.now() - t0, maxAudioLevel };
        }
        prev = cur;
      }
      if (performance.now() - t0 > timeoutMs)
        throw new Error(
          `${kind} not flowing on ${label} after ${timeoutMs} ms; last inbound-rtp: ${JSON.stringify(cur)}`,
        );
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  async function stats(label: string): Promise<StatsEntry[]> {
    return [...(await statsMap(label)).values()];
  }

  async function recordAudio(label: string, ms: number): Promise<string> {
    const receiver = peer(label)
      .getReceivers()
      .find((r) => r.track.kind === "audio");
    if (!receiver) throw new Error(`no audio receiver on ${label}`);
    // The track also plays in the <audio> element firstTrack() made: Chromium feeds remote WebRTC audio
    // into Web Audio only while a media element consumes it.
    const ctx = new AudioContext({ sampleRate: 48_000 });
    await ctx.resume();
    const source = ctx.createMediaStreamSource(new MediaStream([receiver.track]));
    // ScriptProcessorNode: deprecated, but one node and no worklet module to serve; fine for a test.
    const proc = ctx.createScriptProcessor(4096, 1, 1);
    const chunks: Float32Array[] = [];
    proc.onaudioprocess = (e) => chunks.push(Float32Array.from(e.inputBuffer.getChannelData(0)));
    source.connect(proc);
    proc.connect(ctx.destination);
    await new Promise((r) => setTimeout(r, ms));
    source.disconnect();
    proc.disconnect();
    await ctx.close();
    const n = chunks.reduce((a, c) => a + c.length, 0);
    const pcm = new Int16Array(n);
    let o = 0;
    for (const c of chunks)
      for (let i = 0; i < c.length; i++)
        pcm[o++] = Math.max(-32768, Math.min(32767, Math.round(c[i] * 32768)));
    const bytes = new Uint8Array(pcm.buffer);
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000)
      bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }

  (window as unknown as PatchbayWindow).patchbay = {
    publish,
    pullWithOffer,
    pullWithoutOffer,
    inbound,
    waitFlowing,
    stats,
    recordAudio,
    connectionState: (label) => peer(label).connectionState,
    close: (label) => {
      pcs.get(label)?.close();
      pcs.delete(label);
    },
    setPeerConfig: (config) => {
      peerConfig = config;
    },
  };
}

/** One page of the test server with `window.patchbay` installed, seen from Node. */
export class ClientPage {
  /** Console lines and page errors, for failure messages. */
  readonly log: string[] = [];

  constructor(
    readonly page: Page,
    readonly api: PageApi,
  ) {
    page.on("console", (m) => this.log.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => this.log.push(`[pageerror] ${e.message}`));
  }

  /** Runs a page call; a failure carries the page's console output. */
  private async run<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      if (err instanceof Error && this.log.length > 0)
        err.message += `\npage console:\n  ${this.log.slice(-20).join("\n  ")}`;
      throw err;
    }
  }

  publish(kind: Kind, trackName: string, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.run(
      this.page.evaluate(
        ([api, kind, name, opts]) =>
          (window as unknown as PatchbayWindow).patchbay.publish(api, kind, name, opts),
        [this.api, kind, trackName, opts] as const,
      ),
    );
  }

  pullWithOffer(kind: Kind, from: { sessionId: string; trackName: string }): Promise<PullResult> {
    return this.run(
      this.page.evaluate(
        ([api, kind, from]) => (window as unknown as PatchbayWindow).patchbay.pullWithOffer(api, kind, from),
        [this.api, kind, from] as const,
      ),
    );
  }

  pullWithoutOffer(kind: Kind, from: { sessionId: string; trackName: string }): Promise<PullResult> {
    return this.run(
      this.page.evaluate(
        ([api, kind, from]) =>
          (window as unknown as PatchbayWindow).patchbay.pullWithoutOffer(api, kind, from),
        [this.api, kind, from] as const,
      ),
    );
  }

  inbound(label: string, kind: Kind): Promise<InboundSample | undefined> {
    return this.run(
      this.page.evaluate(
        ([label, kind]) => (window as unknown as PatchbayWindow).patchbay.inbound(label, kind),
        [label, kind] as const,
      ),
    );
  }

  waitFlowing(label: string, kind: Kind, criteria: FlowCriteria = {}): Promise<FlowResult> {
    return this.run(
      this.page.evaluate(
        ([label, kind, criteria]) =>
          (window as unknown as PatchbayWindow).patchbay.waitFlowing(label, kind, criteria),
        [label, kind, criteria] as const,
      ),
    );
  }

  stats(label: string): Promise<Record<string, unknown>[]> {
    return this.run(
      this.page.evaluate((label) => (window as unknown as PatchbayWindow).patchbay.stats(label), label),
    );
  }

  /** The stats entries of one type (e.g. "outbound-rtp"), for diagnostics. */
  async statsOfType(label: string, type: string): Promise<Record<string, unknown>[]> {
    return (await this.stats(label)).filter((s) => s.type === type);
  }

  setPeerConfig(config: RTCConfiguration): Promise<void> {
    return this.run(
      this.page.evaluate(
        (config) => (window as unknown as PatchbayWindow).patchbay.setPeerConfig(config),
        config,
      ),
    );
  }

  /** 48 kHz mono s16 of what the page heard on `label` for `ms` (see PatchbayPageLib.recordAudio). */
  async recordAudio(label: string, ms: number): Promise<Int16Array> {
    const b64 = await this.run(
      this.page.evaluate(
        ([label, ms]) => (window as unknown as PatchbayWindow).patchbay.recordAudio(label, ms),
        [label, ms] as const,
      ),
    );
    const buf = Buffer.from(b64, "base64");
    return new Int16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }

  connectionState(label: string): Promise<string> {
    return this.run(
      this.page.evaluate(
        (label) => (window as unknown as PatchbayWindow).patchbay.connectionState(label),
        label,
      ),
    );
  }
}

/**
 * Polls `read` until `ok` holds (for browser stats, which have no events), with a deadline.
 * Returns the last value; throws with it on timeout.
 */
export async function pollUntil<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  { timeoutMs = 10_000, intervalMs = 100, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not met after ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface BrowserHarness {
  context: BrowserContext;
  /** Open the server's page (a secure context on 127.0.0.1) with the client library installed. */
  open(app?: AppCredentials): Promise<ClientPage>;
  close(): Promise<void>;
}

/**
 * One Chromium with a fresh profile. `serverUrl` is the test server's origin (`startTestServer().url`).
 * Close it in `after()`.
 */
export async function launchBrowser(
  serverUrl: string,
  /** More Chromium flags, e.g. --use-file-for-fake-audio-capture=<wav> for a microphone that says what the test chose. */
  extraArgs: string[] = [],
): Promise<BrowserHarness> {
  const profile = mkdtempSync(join(tmpdir(), "patchbay-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      // Playwright's headless defaults add --mute-audio: harmless, audioLevel/totalAudioEnergy are measured
      // on the receive path before the (muted) output device.
      permissions: ["microphone", "camera"],
      timeout: 30_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
  await context.addInitScript({ content: "globalThis.__name = (target) => target;" });
  const origin = new URL(serverUrl).origin;
  let closing: Promise<void> | undefined;
  return {
    context,
    async open(app = TEST_APPS[0]) {
      const page = await context.newPage();
      const client = new ClientPage(page, { base: origin, appId: app.appId, secret: app.secret });
      await page.goto(`${origin}/`);
      if (!(await page.evaluate(() => window.isSecureContext)))
        throw new Error(`${origin} is not a secure context`);
      await page.evaluate(installPatchbayLib);
      return client;
    },
    close() {
      closing ??= (async () => {
        try {
          await context.close();
        } finally {
          rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
        }
      })();
      return closing;
    },
  };
}

export interface BrowserSuite {
  server: TestServer;
  browser: BrowserHarness;
}

/**
 * Call inside a `describe`: starts a test server and one Chromium on it in `before()`, closes both in `after()`.
 * The fields are set once `before()` has run.
 */
export function browserSuite(): BrowserSuite {
  const suite = {} as BrowserSuite;
  before(async () => {
    suite.server = await startTestServer();
    suite.browser = await launchBrowser(suite.server.url);
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.close();
  });
  return suite;
}
