// The `tts` example endpoint, for an ingest adapter (location "local"): on connect it speaks a text with
// the offline synthesizer and sends it the way Cloudflare's TTS example does (the whole clip in 16 KiB
// Packets, then an empty Packet); the server buffers it and plays it out in real time. The socket then stays
// open until the adapter closes it.
//
// Query parameters (all optional):
//   text    what to say (default: a short greeting; at most 1000 characters)
//   voice   eSpeak voice, e.g. en-us (default), en-gb, de, fr, en-us+f3
//   wpm     speaking rate in words per minute, 80–450 (default 165)
//   repeat  1/true: say it again and again, `gap` ms of silence apart, until the socket closes (so a
//           listener who joins late still hears it)
//   gap     pause between repetitions in ms, 0–60000 (default 1000)
//
// Bounded work (an endpoint anyone who may reach it can call): at most `maxSyntheses` clips are synthesized
// at once (a request for a clip that is neither cached nor being made is refused with 429 above that), at
// most `maxConnections` sockets are open, the text is at most 1000 characters, and the clips in memory (the
// LRU cache, at most `cacheBytes`, and the clips held by open sockets) stay within `memoryBytes`: a socket
// whose clip does not fit is closed with 1013 (try again later).

import type { WebSocket } from "ws";
import { BYTES_PER_MS, sendBurst } from "../client/endpoint.ts";
import type { Example, ExampleLogger, Refusal, UpgradeDecision } from "./host.ts";
import { checkSpeechOptions, DEFAULT_VOICE, DEFAULT_WORDS_PER_MINUTE } from "./speech.ts";

export const DEFAULT_TTS_TEXT =
  "Hello from Patchbay! This voice was synthesized offline, sent over a WebSocket, and is now playing on a WebRTC track.";

/** Text → 48 kHz stereo s16 (the worker's `synthesize`, or `synthesizeSpeech` directly). */
export type Synthesize = (
  text: string,
  opts: { voice?: string; wordsPerMinute?: number },
) => Promise<Int16Array>;

export interface TtsOptions {
  synthesize: Synthesize;
  logger: ExampleLogger;
  defaultText?: string;
  /** Payload bytes per Packet. Default 16 384. */
  chunkBytes?: number;
  /** Synthesized clips kept for reuse (same text, voice and rate), in bytes. Default 32 MiB. */
  cacheBytes?: number;
  /** Clips in memory at once: the cache plus the clips open sockets still hold. Default 64 MiB. */
  memoryBytes?: number;
  /** Syntheses running or queued at once; more are refused with 429. Default 4. */
  maxSyntheses?: number;
  /** Sockets open at once; more are refused with 429. Default 16. */
  maxConnections?: number;
}

interface TtsRequest {
  text: string;
  voice: string;
  wordsPerMinute: number;
  repeat: boolean;
  gapMs: number;
}

function parseRequest(query: URLSearchParams, defaultText: string): TtsRequest | Refusal {
  const text = (query.get("text") ?? "").trim() || defaultText;
  const voice = query.get("voice") || DEFAULT_VOICE;
  const wpmText = query.get("wpm");
  const wordsPerMinute = wpmText ? Number(wpmText) : DEFAULT_WORDS_PER_MINUTE;
  const problem = checkSpeechOptions(text, { voice, wordsPerMinute });
  if (problem) return { status: 400, message: problem };
  const repeatText = (query.get("repeat") ?? "0").toLowerCase();
  if (!["0", "1", "true", "false", ""].includes(repeatText)) {
    return { status: 400, message: "repeat must be 1, true, 0 or false" };
  }
  const gapText = query.get("gap");
  const gapMs = gapText ? Number(gapText) : 1000;
  if (!Number.isInteger(gapMs) || gapMs < 0 || gapMs > 60_000) {
    return { status: 400, message: "gap must be an integer number of ms in 0–60000" };
  }
  return { text, voice, wordsPerMinute, repeat: repeatText === "1" || repeatText === "true", gapMs };
}

function cacheKey(req: Pick<TtsRequest, "text" | "voice" | "wordsPerMinute">): string {
  return `${req.voice}\u0000${req.wordsPerMinute}\u0000${req.text}`;
}

export class TtsExample implements Example {
  readonly name = "tts";
  readonly description =
    "Speaks a text (offline eSpeak NG) into an ingest adapter: 16 KiB chunks, then an empty packet.";
  readonly endpoints = [
    {
      path: "",
      adapter: "ingest" as const,
      query: ["text", "voice", "wpm", "repeat", "gap"],
      description:
        "Synthesizes ?text= and sends it in a burst; ?repeat=1 repeats it until the socket closes.",
    },
  ];
  private readonly opts: TtsOptions;
  private readonly cacheLimit: number;
  private readonly memoryLimit: number;
  private readonly maxSyntheses: number;
  private readonly maxConnections: number;
  /** Finished clips by request, least recently used first; `cachedBytes` in total. */
  private readonly cache = new Map<string, Int16Array>();
  private cachedBytes = 0;
  /** Syntheses in progress, shared by every request for the same clip. */
  private readonly inflight = new Map<string, Promise<Int16Array>>();
  /** Clips open sockets still need (sending, or repeating), with how many sockets hold each. */
  private readonly held = new Map<Int16Array, number>();
  private sockets = 0;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;

  constructor(opts: TtsOptions) {
    this.opts = opts;
    this.cacheLimit = opts.cacheBytes ?? 32 * 1024 * 1024;
    this.memoryLimit = Math.max(this.cacheLimit, opts.memoryBytes ?? 64 * 1024 * 1024);
    this.maxSyntheses = opts.maxSyntheses ?? 4;
    this.maxConnections = opts.maxConnections ?? 16;
  }

  upgrade(subpath: string, query: URLSearchParams): UpgradeDecision {
    if (subpath !== "" && subpath !== "/") return { status: 404, message: `no tts endpoint at ${subpath}` };
    const req = parseRequest(query, this.opts.defaultText ?? DEFAULT_TTS_TEXT);
    if ("status" in req) return req;
    if (this.sockets >= this.maxConnections) {
      return { status: 429, message: `too many tts connections (${this.maxConnections}); try again later` };
    }
    const key = cacheKey(req);
    if (!this.cache.has(key) && !this.inflight.has(key) && this.inflight.size >= this.maxSyntheses) {
      return {
        status: 429,
        message: `tts busy: ${this.inflight.size} texts are being synthesized; try again in a moment`,
      };
    }
    return (ws) => this.serve(ws, req);
  }

  /** Bytes of clips in memory: the cache, plus clips held by sockets that are not (or no longer) cached. */
  get memoryInUse(): number {
    let bytes = this.cachedBytes;
    for (const clip of this.held.keys()) if (!this.isCached(clip)) bytes += clip.byteLength;
    return bytes;
  }

  private isCached(clip: Int16Array): boolean {
    for (const c of this.cache.values()) if (c === clip) return true;
    return false;
  }

  /** Drops the least recently used clip; false when the cache is empty. */
  private evictOne(except?: string): boolean {
    for (const [key, clip] of this.cache) {
      if (key === except) continue;
      this.cache.delete(key);
      this.cachedBytes -= clip.byteLength;
      return true;
    }
    return false;
  }

  /** Caches a new clip when it fits the cache and the memory budget, evicting older clips. */
  private remember(key: string, clip: Int16Array): void {
    if (this.closed || clip.byteLength > this.cacheLimit) return;
    this.cache.set(key, clip);
    this.cachedBytes += clip.byteLength;
    while (
      (this.cachedBytes > this.cacheLimit || this.memoryInUse > this.memoryLimit) &&
      this.evictOne(key)
    ) {}
    if (this.memoryInUse > this.memoryLimit) {
      this.cache.delete(key);
      this.cachedBytes -= clip.byteLength;
    }
  }

  /** Synthesized speech for a request, from the cache when the same text was spoken recently. */
  speech(req: Pick<TtsRequest, "text" | "voice" | "wordsPerMinute">): Promise<Int16Array> {
    const key = cacheKey(req);
    const cached = this.cache.get(key);
    if (cached) {
      this.cache.delete(key); // re-inserted: most recently used last
      this.cache.set(key, cached);
      return Promise.resolve(cached);
    }
    let clip = this.inflight.get(key);
    if (!clip) {
      clip = this.opts
        .synthesize(req.text, { voice: req.voice, wordsPerMinute: req.wordsPerMinute })
        .then((pcm) => {
          this.remember(key, pcm);
          return pcm;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, clip);
    }
    return clip;
  }

  /** Takes a reference on a clip for a socket; false when it does not fit the memory budget. */
  private hold(clip: Int16Array): boolean {
    const n = this.held.get(clip);
    if (n !== undefined || this.isCached(clip)) {
      this.held.set(clip, (n ?? 0) + 1);
      return true;
    }
    while (this.memoryInUse + clip.byteLength > this.memoryLimit && this.evictOne()) {}
    if (this.memoryInUse + clip.byteLength > this.memoryLimit) return false;
    this.held.set(clip, 1);
    return true;
  }

  private release(clip: Int16Array): void {
    const n = this.held.get(clip) ?? 0;
    if (n <= 1) this.held.delete(clip);
    else this.held.set(clip, n - 1);
  }

  private serve(ws: WebSocket, req: TtsRequest): void {
    const log = this.opts.logger;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let holding: Int16Array | undefined;
    const letGo = () => {
      if (holding) this.release(holding);
      holding = undefined;
    };
    const stop = () => {
      letGo();
      if (timer === undefined) return;
      clearTimeout(timer);
      this.timers.delete(timer);
      timer = undefined;
    };
    this.sockets++;
    // Ingest sends nothing but pings; anything else is ignored.
    ws.on("message", () => {});
    ws.once("close", () => {
      this.sockets--;
      stop();
    });
    this.speech(req).then(
      (pcm) => {
        if (this.closed || ws.readyState !== ws.OPEN) return;
        if (!this.hold(pcm)) {
          log.info({ clipBytes: pcm.byteLength }, "tts: memory budget full, connection refused");
          ws.close(1013, "tts busy (memory budget for clips full); try again later");
          return;
        }
        holding = pcm;
        const clipMs = pcm.byteLength / BYTES_PER_MS;
        const periodMs = clipMs + req.gapMs;
        const t0 = performance.now();
        let n = 0;
        const sendOnce = () => {
          timer = undefined;
          if (this.closed || ws.readyState !== ws.OPEN) return;
          // Skip a repetition rather than pile up audio if the adapter is not reading (back-pressure).
          if (ws.bufferedAmount < 2 * pcm.byteLength) {
            const sent = sendBurst(ws, pcm, { chunkBytes: this.opts.chunkBytes ?? 16_384 });
            // Said once: the clip is no longer needed once the socket has taken it.
            if (!req.repeat) void sent.then(letGo, letGo);
            sent.catch((err: unknown) => log.debug({ err }, "tts: send failed"));
          } else if (!req.repeat) letGo();
          n++;
          if (!req.repeat) return;
          // Absolute schedule: repetition n starts at t0 + n × (clip + gap).
          timer = setTimeout(
            () => {
              if (timer !== undefined) this.timers.delete(timer);
              sendOnce();
            },
            Math.max(0, t0 + n * periodMs - performance.now()),
          );
          this.timers.add(timer);
        };
        sendOnce();
        log.info({ chars: req.text.length, clipMs: Math.round(clipMs), repeat: req.repeat }, "tts: spoke");
      },
      (err: unknown) => {
        const reason = err instanceof Error ? err.message : "synthesis failed";
        log.info({ reason, voice: req.voice }, "tts: synthesis failed");
        if (ws.readyState === ws.OPEN) ws.close(1011, closeReason(reason));
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.cache.clear();
    this.cachedBytes = 0;
    this.held.clear();
  }
}

/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
export function closeReason(text: string): string {
  let r = text;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
