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

import type { WebSocket } from "ws";
import { BYTES_PER_MS, sendBurst } from "../client/endpoint.ts";
import type { Example, ExampleLogger, Refusal } from "./host.ts";
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
  /** Synthesized clips kept for reuse (same text, voice and rate). Default 16. */
  cacheEntries?: number;
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
  private readonly cache = new Map<string, Promise<Int16Array>>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;

  constructor(opts: TtsOptions) {
    this.opts = opts;
  }

  upgrade(subpath: string, query: URLSearchParams): Refusal | ((ws: WebSocket) => void) {
    if (subpath !== "" && subpath !== "/") return { status: 404, message: `no tts endpoint at ${subpath}` };
    const req = parseRequest(query, this.opts.defaultText ?? DEFAULT_TTS_TEXT);
    if ("status" in req) return req;
    return (ws) => this.serve(ws, req);
  }

  /** Synthesized speech for a request, from the cache when the same text was spoken recently. */
  speech(req: Pick<TtsRequest, "text" | "voice" | "wordsPerMinute">): Promise<Int16Array> {
    const key = `${req.voice}\u0000${req.wordsPerMinute}\u0000${req.text}`;
    let clip = this.cache.get(key);
    if (clip) {
      this.cache.delete(key); // re-inserted below: most recently used last
    } else {
      clip = this.opts.synthesize(req.text, { voice: req.voice, wordsPerMinute: req.wordsPerMinute });
      const created = clip;
      created.catch(() => {
        if (this.cache.get(key) === created) this.cache.delete(key);
      });
    }
    this.cache.set(key, clip);
    while (this.cache.size > (this.opts.cacheEntries ?? 16))
      this.cache.delete(this.cache.keys().next().value!);
    return clip;
  }

  private serve(ws: WebSocket, req: TtsRequest): void {
    const log = this.opts.logger;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = () => {
      if (timer === undefined) return;
      clearTimeout(timer);
      this.timers.delete(timer);
      timer = undefined;
    };
    // Ingest sends nothing but pings; anything else is ignored.
    ws.on("message", () => {});
    ws.once("close", stop);
    this.speech(req).then(
      (pcm) => {
        if (this.closed || ws.readyState !== ws.OPEN) return;
        const clipMs = pcm.byteLength / BYTES_PER_MS;
        const periodMs = clipMs + req.gapMs;
        const t0 = performance.now();
        let n = 0;
        const sendOnce = () => {
          timer = undefined;
          if (this.closed || ws.readyState !== ws.OPEN) return;
          // Skip a repetition rather than pile up audio if the adapter is not reading (back-pressure).
          if (ws.bufferedAmount < 2 * pcm.byteLength) {
            sendBurst(ws, pcm, { chunkBytes: this.opts.chunkBytes ?? 16_384 }).catch((err: unknown) =>
              log.debug({ err }, "tts: send failed"),
            );
          }
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
        log.info({ err }, "tts: synthesis failed");
        if (ws.readyState === ws.OPEN)
          ws.close(1011, closeReason(err instanceof Error ? err.message : "synthesis failed"));
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.cache.clear();
  }
}

/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
export function closeReason(text: string): string {
  let r = text;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
