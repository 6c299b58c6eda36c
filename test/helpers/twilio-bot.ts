// A voice bot written only from Twilio's published Media Streams documentation ("Media Streams -
// WebSocket Messages"): it is the WebSocket server Twilio connects to for a bidirectional
// <Connect><Stream>. It reads `connected`, `start`, `media` (base64 8 kHz µ-law), `mark`, `stop`, and
// sends `media`, `mark` and `clear` tagged with the streamSid from `start`. Nothing here imports
// Patchbay's code: the µ-law codec is the classic G.711 reference algorithm, written out again so that
// the dialect is checked against the spec, not against itself.

import type { WebSocket } from "ws";
import { type Endpoint, startEndpoint } from "./ws-endpoints.ts";

/** One message Twilio sends to the bot (the fields the bot reads). */
export interface TwilioMessage {
  event: string;
  sequenceNumber?: string;
  streamSid?: string;
  protocol?: string;
  version?: string;
  start?: {
    accountSid: string;
    streamSid: string;
    callSid: string;
    tracks: string[];
    mediaFormat: { encoding: string; sampleRate: number; channels: number };
    customParameters: Record<string, string>;
  };
  media?: { track: string; chunk: string; timestamp: string; payload: string };
  mark?: { name: string };
  stop?: { accountSid: string; callSid: string };
}

const BIAS = 0x84;
const CLIP = 32635;

export function linearToUlaw(sample: number): number {
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; exponent--, mask >>= 1);
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

export function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 7;
  const magnitude = (((u & 0x0f) << 3) + BIAS) << exponent;
  return u & 0x80 ? BIAS - magnitude : magnitude - BIAS;
}

export interface TwilioBotCall {
  ws: WebSocket;
  /** Every message received, in order. */
  messages: TwilioMessage[];
  /** Set by `start`. */
  streamSid: string | undefined;
  /** The inbound audio so far, decoded: 8 kHz mono s16. */
  inboundAudio(): Int16Array;
  /** Resolves once `done(messages)` holds (checked on every message). */
  waitUntil(done: (messages: TwilioMessage[]) => boolean, ms: number, what: string): Promise<void>;
  /** Sends 8 kHz mono audio as `media` messages of `chunkMs` each, as fast as a TTS engine would. */
  sendAudio(pcm: Int16Array, chunkMs?: number): void;
  sendMark(name: string): void;
  sendClear(): void;
}

export interface TwilioBot {
  endpoint: Endpoint;
  url: string;
  nextCall(): Promise<TwilioBotCall>;
  close(): Promise<void>;
}

function botCall(ws: WebSocket): TwilioBotCall {
  const messages: TwilioMessage[] = [];
  const inbound: Uint8Array[] = [];
  const waiters = new Set<() => void>();
  const call: TwilioBotCall = {
    ws,
    messages,
    streamSid: undefined,
    inboundAudio() {
      const bytes = Buffer.concat(inbound);
      const out = new Int16Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = ulawToLinear(bytes[i]);
      return out;
    },
    waitUntil(done, ms, what) {
      if (done(messages)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(messages)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${what}: not after ${ms} ms (${messages.length} messages)`));
        }, ms);
        waiters.add(check);
      });
    },
    sendAudio(pcm, chunkMs = 20) {
      const per = 8 * chunkMs;
      for (let off = 0; off < pcm.length; off += per) {
        const chunk = pcm.subarray(off, off + per);
        const bytes = Buffer.alloc(chunk.length);
        for (let i = 0; i < chunk.length; i++) bytes[i] = linearToUlaw(chunk[i]);
        ws.send(
          JSON.stringify({
            event: "media",
            streamSid: call.streamSid,
            media: { payload: bytes.toString("base64") },
          }),
        );
      }
    },
    sendMark(name) {
      ws.send(JSON.stringify({ event: "mark", streamSid: call.streamSid, mark: { name } }));
    },
    sendClear() {
      ws.send(JSON.stringify({ event: "clear", streamSid: call.streamSid }));
    },
  };
  ws.on("message", (data, isBinary) => {
    const msg = JSON.parse(isBinary ? "{}" : data.toString()) as TwilioMessage;
    messages.push(msg);
    if (msg.event === "start") call.streamSid = msg.start?.streamSid;
    if (msg.event === "media" && msg.media) inbound.push(Buffer.from(msg.media.payload, "base64"));
    for (const w of [...waiters]) w();
  });
  return call;
}

export async function startTwilioBot(path = "/twilio"): Promise<TwilioBot> {
  const calls: TwilioBotCall[] = [];
  let waiting: ((c: TwilioBotCall) => void)[] = [];
  const endpoint = await startEndpoint((ws) => {
    const c = botCall(ws);
    calls.push(c);
    const w = waiting;
    waiting = [];
    for (const fn of w) fn(c);
  }, path);
  return {
    endpoint,
    url: endpoint.url,
    nextCall: () => new Promise((r) => waiting.push(r)),
    close: () => endpoint.close(),
  };
}
