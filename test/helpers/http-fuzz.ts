// A bounded, seeded, schema-aware HTTP fuzzer for the Patchbay API (issue 9 item 12a).
//
// For every route of src/api/routes/*.ts (plus /healthz, /metrics, the console and the static files) it
// knows a valid request, then mutates it: wrong types, missing fields, huge/negative numbers, unicode,
// deep nesting, very long strings, bogus SDP, wrong auth, bad ids, duplicate keys, prototype-pollution keys,
// wrong methods and content types, malformed URLs, and raw protocol garbage. Requests go over real HTTP to
// a real server. The case list is a pure function of the seed and the target (ids made by the setup are
// part of the target), so a failing case is replayed with the same seed and its index.
//
// Nothing a fuzz request carries may make the server dial out: every URL and IP address in a body is
// forced onto loopback (dead ports, a listener that drops connections) or the unspecified address (refused
// by the endpoint policy before any dial), and SDP candidates point at 127.0.0.1.
//
// Checks per response: no status ≥ 500 except a 503 whose error codes are the per-item adapter failures or
// quota_exceeded / no_udp_port / service_unavailable; every 4xx/5xx body is exactly
// `{errorCode: <code in ERRORS>, errorDescription: <non-empty string>}` (or, for the adapter batch 503,
// `{tracks: [...]}` whose items carry such codes); per-item errors in 200 batch answers use registered
// codes too.

import http from "node:http";
import net from "node:net";
import { ERRORS } from "../../src/api/errors.ts";
import { closePeers } from "./api-inject.ts";
import { encodeOpus, publishAudio } from "./rtc-client.ts";
import { TEST_APPS, type TestServer } from "./server.ts";
import { startEndpoint } from "./ws-endpoints.ts";

// ---------------------------------------------------------------------------------------------------------
// Deterministic PRNG

/** sfc32 seeded through splitmix32: fast, small, and the same sequence on every platform. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.next();
  }
  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  /** Picks by weight: [[weight, value], …]. */
  weighted<T>(list: readonly (readonly [number, T])[]): T {
    const total = list.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of list) {
      r -= w;
      if (r < 0) return v;
    }
    return list[list.length - 1][1];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Target

/** What the fuzzer aims at: the server, its apps, and a few live objects the setup made. */
export interface FuzzTarget {
  /** http://127.0.0.1:port */
  url: string;
  /** [0] is the app under attack, [1] another app (cross-app ids and secrets). */
  apps: readonly { appId: string; secret: string }[];
  /**
   * Sessions of apps[0]: `peer` has a connected client (it publishes audio on mid 0), `fresh` was never
   * negotiated (it closes after the connect timeout), `publisher` publishes `publisherTrack`; `otherApp` is
   * a session of apps[1].
   */
  sessions: { peer: string; fresh: string; publisher: string; publisherTrack: string; otherApp: string };
  /** Adapter ids that exist (or existed) in apps[0]. */
  adapterIds: readonly string[];
  /** ws:// URLs on loopback that fail: a refused port, a listener that drops connections, … */
  deadEndpoints: readonly string[];
  /** Whether the built-in examples are mounted (their GET routes are fuzzed too). */
  examples: boolean;
}

/** Loopback listeners for `deadEndpoints`: one port with nothing on it, one that hangs up, one that talks nonsense. */
export async function startDeadEndpoints(): Promise<{ urls: string[]; close(): Promise<void> }> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const listen = async (onConnection: (s: net.Socket) => void) => {
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
      onConnection(s);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push(server);
    return (server.address() as net.AddressInfo).port;
  };
  const hangUp = await listen((s) => s.destroy());
  const nonsense = await listen((s) => s.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  // A port that was free a moment ago: connections to it are refused.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const refused = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return {
    urls: [
      `ws://127.0.0.1:${refused}/refused`,
      `ws://127.0.0.1:${hangUp}/hang-up?token=x`,
      `ws://127.0.0.1:${nonsense}/nonsense`,
      `wss://127.0.0.1:${hangUp}/tls`,
      `ws://[::1]:${refused}/v6`,
    ],
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Material

const CANDIDATE = "a=candidate:1 1 udp 2116026367 127.0.0.1 9 typ host generation 0";
const FINGERPRINT =
  "a=fingerprint:sha-256 8B:42:13:07:CC:24:3E:04:C5:37:9B:FF:4D:58:85:81:A7:83:22:2E:BB:0F:E3:38:BB:AE:03:41:6E:42:3C:33";

function sdp(lines: string[]): string {
  return `${lines.join("\r\n")}\r\n`;
}

const AUDIO_SECTION = (mid: string, direction: string) => [
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "c=IN IP4 0.0.0.0",
  CANDIDATE,
  "a=end-of-candidates",
  "a=ice-ufrag:9d93",
  "a=ice-pwd:22cc1b89db638cd0b6739a",
  "a=ice-options:trickle",
  FINGERPRINT,
  "a=setup:actpass",
  `a=${direction}`,
  `a=mid:${mid}`,
  "a=rtcp:9 IN IP4 0.0.0.0",
  "a=rtcp-mux",
  "a=ssrc:2401794877 cname:fuzz",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 minptime=10;useinbandfec=1",
  "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
];

const VIDEO_SECTION = (mid: string, direction: string) => [
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:9d93",
  "a=ice-pwd:22cc1b89db638cd0b6739a",
  FINGERPRINT,
  "a=setup:actpass",
  `a=${direction}`,
  `a=mid:${mid}`,
  "a=rtcp-mux",
  "a=rtpmap:96 VP8/90000",
  "a=rtcp-fb:96 nack",
  "a=rtcp-fb:96 nack pli",
  "a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=rid:h send",
  "a=rid:l send",
  "a=simulcast:send h;l",
];

const HEADER = (bundle: string) => [
  "v=0",
  "o=- 14096018 0 IN IP4 0.0.0.0",
  "s=-",
  "t=0 0",
  `a=group:BUNDLE ${bundle}`,
  "a=msid-semantic:WMS *",
];

/** A sendonly audio offer a werift client would make (one loopback candidate on a dead port). */
export const OFFER_AUDIO = sdp([...HEADER("0"), ...AUDIO_SECTION("0", "sendonly")]);
/** Audio + simulcast video offer. */
export const OFFER_AV = sdp([
  ...HEADER("0 1"),
  ...AUDIO_SECTION("0", "sendonly"),
  ...VIDEO_SECTION("1", "sendonly"),
]);
/** Shaped like an answer to a server offer (it will not match one: negotiation_error is expected). */
export const ANSWER_AUDIO = sdp([...HEADER("0"), ...AUDIO_SECTION("0", "recvonly")]).replace(
  "a=setup:actpass",
  "a=setup:active",
);

/** SDP documents that are wrong in more or less subtle ways. */
function bogusSdp(rng: Rng): string {
  const base = rng.pick([OFFER_AUDIO, OFFER_AV, ANSWER_AUDIO]);
  const lines = base.trimEnd().split("\r\n");
  switch (rng.int(16)) {
    case 0:
      return "";
    case 1:
      return "v=0";
    case 2:
      return "v=0\r\nm=audio 9 RTP/AVP 0\r\n";
    case 3: // a line dropped
      lines.splice(1 + rng.int(lines.length - 1), 1);
      return sdp(lines);
    case 4: // a line duplicated
      lines.splice(rng.int(lines.length), 0, rng.pick(lines));
      return sdp(lines);
    case 5: // lines shuffled (v=0 first, so it still "looks like" SDP)
      return sdp([lines[0], ...lines.slice(1).sort(() => rng.next() - 0.5)]);
    case 6: // truncated
      return base.slice(0, rng.int(base.length));
    case 7: // many m-lines
      return sdp([
        ...HEADER(""),
        ...Array.from({ length: 50 + rng.int(400) }, (_, i) => AUDIO_SECTION(String(i), "sendonly")).flat(),
      ]);
    case 8: // LF line endings
      return base.replaceAll("\r\n", "\n");
    case 9: // bad fingerprint / ports / payload types
      return base
        .replace(/sha-256 [0-9A-F:]+/, rng.pick(["sha-256 zz", "md5 00", "sha-256 ", "sha-999 AA:BB"]))
        .replace("m=audio 9", rng.pick(["m=audio -1", "m=audio 99999999999", "m=audio x"]));
    case 10: // a huge attribute
      lines.splice(6, 0, `a=x-fuzz:${"A".repeat(50_000 + rng.int(200_000))}`);
      return sdp(lines);
    case 11: // non-ASCII and control characters
      lines.splice(6, 0, "a=x-fuzz:\u0000\u0007é😀\u202e", "s=\ud800");
      return sdp(lines);
    case 12: // unknown codec, no codec at all
      return base
        .replace("opus/48000/2", rng.pick(["fuzz/1/1", "", "opus/0/0"]))
        .replace("a=rtpmap:96 VP8/90000", "");
    case 13: // mids that collide or are odd
      return base.replace(
        /a=mid:\d+/g,
        rng.pick(["a=mid:0", "a=mid:", "a=mid:__proto__", `a=mid:${"m".repeat(300)}`]),
      );
    case 14: // rids and simulcast nonsense
      return base.replace(
        "a=simulcast:send h;l",
        rng.pick(["a=simulcast:send ;;;", "a=simulcast:recv x", "a=simulcast:"]),
      );
    default: // direction / setup nonsense
      return base
        .replace(/a=(sendonly|recvonly)/g, rng.pick(["a=inactive", "a=sendrecv", "a=bogus"]))
        .replace(/a=setup:\w+/g, rng.pick(["a=setup:passive", "a=setup:holdconn", "a=setup:"]));
  }
}

const UNICODE = [
  "😀",
  "\u0000",
  "\ud800",
  "\udfff",
  "\u202e",
  "ǅ",
  "é",
  "\uffff",
  "\ufeff",
  "𝕏".repeat(500),
  "null",
  "undefined",
  "NaN",
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "../../etc/passwd",
  "%s%n%x",
  "\r\nX-Injected: 1",
  " ",
  "\t",
  "-1",
  "0",
  "true",
];

const WRONG_TYPES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  -(2 ** 31),
  "",
  "x",
  [],
  {},
  [[]],
  { a: {} },
  [null],
];

const POLLUTION_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "then",
];

// ---------------------------------------------------------------------------------------------------------
// Keeping fuzz traffic on this machine

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "0.0.0.0", "[::]"]);

/** Forces every URL and IP literal in a string onto loopback, and SDP candidates onto 127.0.0.1. */
function confineString(s: string, fallback: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s.trim())) {
    try {
      const u = new URL(s.trim());
      if (!LOOPBACK_HOSTS.has(u.hostname)) return fallback;
    } catch {
      // not a URL the server could dial either
    }
  }
  // Bounded quantifiers only: these run over 300 000-character fuzz strings.
  if (!/\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f]{0,4}:[0-9a-f]{0,4}:|\.local\b/i.test(s)) return s;
  if (s.startsWith("v=0")) {
    // SDP: candidates and connection lines may only name loopback or the unspecified address.
    return s
      .split(/(\r?\n)/)
      .map((line) => {
        if (!/^a=candidate|^c=IN/.test(line)) return line;
        const addresses =
          line.match(/\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f]*:[0-9a-f:]+|\S+\.local\b/gi) ?? [];
        return addresses.every((a) => a === "127.0.0.1" || a === "0.0.0.0" || a === "::1") ? line : "";
      })
      .join("");
  }
  return s;
}

function confine(value: unknown, fallback: string, depth = 0): unknown {
  if (typeof value === "string") return confineString(value, fallback);
  if (depth > 50 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => confine(v, fallback, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: a "__proto__" key stays an own key (it is what the fuzzer wants to send).
    Object.defineProperty(out, k, {
      value: confine(v, fallback, depth + 1),
      enumerable: true,
      writable: true,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Routes

type Json = unknown;

interface RouteSpec {
  /** Label in reports: "POST sessions/new". */
  name: string;
  method: string;
  /** "app" routes live under /v1/apps/:appId (and /apps/:appId); "root" routes are absolute. */
  scope: "app" | "root";
  /** Path template; `{session}` and `{adapter}` are filled with ids. */
  path: string;
  /** Which session id fits (the route acts on it): "peer" also picks the never-negotiated one at times. */
  session?: "peer" | "publisher";
  weight: number;
  /** Valid bodies (undefined: no body). */
  body?: (t: FuzzTarget, rng: Rng) => Json;
}

const trackName = (rng: Rng) => rng.pick(["mic", "cam", "screen", `t${rng.int(1000)}`]);

const ROUTES: readonly RouteSpec[] = [
  {
    name: "POST sessions/new",
    method: "POST",
    scope: "app",
    path: "/sessions/new",
    weight: 10,
    body: (_t, rng) =>
      rng.weighted<Json>([
        [3, {}],
        [1, undefined],
        [2, { sessionDescription: { type: "offer", sdp: rng.pick([OFFER_AUDIO, OFFER_AV]) } }],
      ]),
  },
  {
    name: "GET sessions/:id",
    method: "GET",
    scope: "app",
    path: "/sessions/{session}",
    session: "publisher",
    weight: 6,
  },
  {
    name: "POST tracks/new",
    method: "POST",
    scope: "app",
    path: "/sessions/{session}/tracks/new",
    session: "peer",
    weight: 12,
    body: (t, rng) =>
      rng.weighted<Json>([
        [
          2,
          {
            sessionDescription: { type: "offer", sdp: OFFER_AUDIO },
            tracks: [{ location: "local", mid: "0", trackName: trackName(rng) }],
          },
        ],
        [
          2,
          {
            tracks: [
              {
                location: "remote",
                sessionId: t.sessions.publisher,
                trackName: t.sessions.publisherTrack,
                simulcast: { preferredRid: "h", priorityOrdering: "asciibetical", ridNotAvailable: "none" },
              },
            ],
          },
        ],
        [1, { autoDiscover: true, sessionDescription: { type: "offer", sdp: OFFER_AV } }],
        [
          1,
          {
            tracks: [
              { location: "local", trackName: trackName(rng), kind: "audio", bidirectionalMediaStream: true },
            ],
          },
        ],
      ]),
  },
  {
    name: "PUT renegotiate",
    method: "PUT",
    scope: "app",
    path: "/sessions/{session}/renegotiate",
    session: "peer",
    weight: 6,
    body: () => ({ sessionDescription: { type: "answer", sdp: ANSWER_AUDIO } }),
  },
  {
    name: "PUT tracks/update",
    method: "PUT",
    scope: "app",
    path: "/sessions/{session}/tracks/update",
    session: "peer",
    weight: 6,
    body: (t) => ({
      tracks: [
        {
          mid: "1",
          location: "remote",
          sessionId: t.sessions.publisher,
          trackName: t.sessions.publisherTrack,
          simulcast: { preferredRid: "l" },
        },
      ],
    }),
  },
  {
    name: "PUT tracks/close",
    method: "PUT",
    scope: "app",
    path: "/sessions/{session}/tracks/close",
    session: "peer",
    weight: 6,
    body: (_t, rng) =>
      rng.weighted<Json>([
        [2, { tracks: [{ mid: "0" }], force: true }],
        [
          1,
          { tracks: [{ mid: "0" }], sessionDescription: { type: "offer", sdp: OFFER_AUDIO }, force: false },
        ],
      ]),
  },
  {
    name: "POST datachannels/new",
    method: "POST",
    scope: "app",
    path: "/sessions/{session}/datachannels/new",
    session: "peer",
    weight: 4,
    body: (t, rng) => ({
      dataChannels: [
        rng.chance(0.5)
          ? { location: "local", dataChannelName: trackName(rng), ordered: rng.chance(0.5) }
          : {
              location: "remote",
              sessionId: t.sessions.publisher,
              dataChannelName: trackName(rng),
              waitForAck: rng.chance(0.3),
              canReply: rng.chance(0.3),
            },
      ],
    }),
  },
  {
    name: "PUT datachannels/update",
    method: "PUT",
    scope: "app",
    path: "/sessions/{session}/datachannels/update",
    session: "peer",
    weight: 2,
    body: (t, rng) => ({
      dataChannels: [
        {
          location: "remote",
          sessionId: t.sessions.publisher,
          dataChannelName: trackName(rng),
          canReply: true,
        },
      ],
    }),
  },
  {
    name: "PUT datachannels/close",
    method: "PUT",
    scope: "app",
    path: "/sessions/{session}/datachannels/close",
    session: "peer",
    weight: 2,
    body: (_t, rng) => ({ dataChannels: [{ id: rng.int(8) }] }),
  },
  {
    name: "POST datachannels/establish",
    method: "POST",
    scope: "app",
    path: "/sessions/{session}/datachannels/establish",
    session: "peer",
    weight: 2,
    body: (_t, rng) =>
      rng.weighted<Json>([
        [2, { dataChannel: { location: "remote", dataChannelName: "server-events" } }],
        [
          1,
          {
            dataChannel: { location: "remote", dataChannelName: "server-events" },
            sessionDescription: { type: "offer", sdp: OFFER_AUDIO },
          },
        ],
      ]),
  },
  {
    name: "POST adapters/websocket/new",
    method: "POST",
    scope: "app",
    path: "/adapters/websocket/new",
    weight: 10,
    body: (t, rng) => ({
      tracks: Array.from({ length: 1 + rng.int(2) }, () =>
        rng.chance(0.5)
          ? {
              location: "local",
              trackName: trackName(rng),
              endpoint: rng.pick(t.deadEndpoints),
              inputCodec: "pcm",
            }
          : {
              location: "remote",
              sessionId: t.sessions.publisher,
              trackName: t.sessions.publisherTrack,
              endpoint: rng.pick(t.deadEndpoints),
              outputCodec: "pcm",
            },
      ),
    }),
  },
  {
    name: "POST adapters/websocket/close",
    method: "POST",
    scope: "app",
    path: "/adapters/websocket/close",
    weight: 6,
    body: (t, rng) => ({
      tracks: [{ adapterId: t.adapterIds.length ? rng.pick(t.adapterIds) : "0".repeat(32) }],
    }),
  },
  { name: "GET adapters/websocket", method: "GET", scope: "app", path: "/adapters/websocket", weight: 4 },
  {
    name: "GET adapters/websocket/:id",
    method: "GET",
    scope: "app",
    path: "/adapters/websocket/{adapter}",
    weight: 4,
  },
  { name: "GET /console/bootstrap", method: "GET", scope: "root", path: "/console/bootstrap", weight: 2 },
  { name: "GET / (static)", method: "GET", scope: "root", path: "/", weight: 2 },
  { name: "GET /healthz", method: "GET", scope: "root", path: "/healthz", weight: 1 },
  { name: "GET /metrics", method: "GET", scope: "root", path: "/metrics", weight: 1 },
  { name: "GET /examples", method: "GET", scope: "root", path: "/examples", weight: 1 },
  {
    name: "GET /examples/recorder/files/:name",
    method: "GET",
    scope: "root",
    path: "/examples/recorder/files/x.wav",
    weight: 1,
  },
];

// ---------------------------------------------------------------------------------------------------------
// Cases

export interface FuzzCase {
  index: number;
  /** The route the case started from ("RAW" for protocol-level cases). */
  route: string;
  /** What was done to the valid request. */
  mutation: string;
  method: string;
  /** Raw request target (path and query). */
  path: string;
  /** Header name → value (an array sends the header several times). */
  headers: Record<string, string | string[]>;
  body?: Buffer;
  /** Send the body chunked instead of with Content-Length. */
  chunked?: boolean;
  /** Protocol-level case: these bytes go straight onto a socket. */
  raw?: Buffer;
  /** Raw cases that abort mid-request expect no answer. */
  expectNoResponse?: boolean;
}

/** Percent-encodes a string's UTF-8 bytes for a path segment (lone surrogates become U+FFFD). */
function segment(s: string): string {
  return [...Buffer.from(s, "utf8")]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`,
    )
    .join("");
}

function badId(t: FuzzTarget, rng: Rng, kind: "session" | "adapter" | "app"): { id: string; what: string } {
  const hex = () => Array.from({ length: 32 }, () => "0123456789abcdef"[rng.int(16)]).join("");
  const options: [string, () => string][] = [
    ["unknown hex id", hex],
    ["101-character id", () => "a".repeat(101)],
    ["very long id", () => "b".repeat(1000 + rng.int(6000))],
    ["bad percent-encoding", () => rng.pick(["%E0%A4%A", "%", "%ZZ", "%C0%80", "%ED%A0%80"])],
    ["NUL byte", () => "%00"],
    ["dot segments", () => rng.pick(["..", "%2e%2e", ".", "..%2f..%2f"])],
    ["unicode id", () => segment(rng.pick(UNICODE).slice(0, 50) || "x")],
    ["uppercase hex", () => hex().toUpperCase()],
    ["empty id", () => ""],
    ["prototype key as id", () => rng.pick(POLLUTION_KEYS)],
  ];
  if (kind === "session") options.push(["other app's session", () => t.sessions.otherApp]);
  if (kind === "app") options.push(["other app", () => t.apps[1].appId]);
  const [what, make] = rng.pick(options);
  return { id: make(), what: `${kind}: ${what}` };
}

function jsonText(value: unknown): string {
  return JSON.stringify(value) ?? "";
}

/** Every path to a node of a JSON value: [["tracks", 0, "mid"], …]. */
function nodePaths(
  value: unknown,
  prefix: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (out.length > 200) return out;
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = [...prefix, Array.isArray(value) ? Number(k) : k];
      out.push(p);
      nodePaths(v, p, out);
    }
  }
  return out;
}

function setAt(root: unknown, path: (string | number)[], value: unknown, remove = false): unknown {
  if (path.length === 0) return value;
  const copy: unknown = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (remove) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else {
    Object.defineProperty(node, last, { value, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

function getAt(root: unknown, path: (string | number)[]): unknown {
  let node = root as Record<string | number, unknown> | undefined;
  for (const k of path) node = node?.[k] as Record<string | number, unknown> | undefined;
  return node;
}

/** A structural mutation of a JSON body; returns the new value (or raw text) and what was done. */
function mutateBody(value: unknown, rng: Rng): { value?: unknown; text?: string; what: string } {
  const paths = nodePaths(value);
  const path = paths.length ? rng.pick(paths) : [];
  const at = path.length ? path.join(".") : "body";
  const node = getAt(value, path);
  switch (
    rng.weighted<string>([
      [3, "drop"],
      [4, "wrong type"],
      [2, "number"],
      [3, "unicode"],
      [2, "long string"],
      [2, "deep nesting"],
      [3, "pollution"],
      [2, "duplicate key"],
      [2, "array"],
      [4, "sdp"],
      [1, "extra fields"],
    ])
  ) {
    case "drop":
      return { value: setAt(value, path, undefined, true), what: `dropped ${at}` };
    case "wrong type": {
      const v = rng.pick(WRONG_TYPES);
      return { value: setAt(value, path, v), what: `${at} = ${jsonText(v)}` };
    }
    case "number": {
      const v = rng.pick([-1, 0, 1e308, -1e308, 2 ** 53 + 1, 4294967296, -0.5, 1e-300]);
      return { value: setAt(value, path, v), what: `${at} = ${v}` };
    }
    case "unicode": {
      const v = rng.pick(UNICODE);
      const s = typeof node === "string" && rng.chance(0.5) ? node + v : v;
      return { value: setAt(value, path, s), what: `${at} = unicode ${jsonText(v).slice(0, 20)}` };
    }
    case "long string": {
      const n = rng.pick([257, 4096, 65_536, 300_000]);
      return {
        value: setAt(value, path, rng.pick(["a", "é", "😀", "%"]).repeat(n)),
        what: `${at} = ${n}-char string`,
      };
    }
    case "deep nesting": {
      const depth = rng.pick([100, 1000, 10_000, 50_000]);
      const arrays = rng.chance(0.5);
      // Built as text: structuredClone and JSON.stringify would recurse that deep.
      const inner = jsonText(node ?? 1);
      const open = arrays ? "[".repeat(depth) : '{"a":'.repeat(depth);
      const close = arrays ? "]".repeat(depth) : "}".repeat(depth);
      const marker = "\u0000NEST\u0000";
      const text = jsonText(setAt(value, path, marker)).replace(jsonText(marker), open + inner + close);
      return { text, what: `${at} nested ${depth} deep in ${arrays ? "arrays" : "objects"}` };
    }
    case "pollution": {
      const key = rng.pick(POLLUTION_KEYS);
      const payload = rng.pick<unknown>([
        { polluted: "yes" },
        { prototype: { polluted: "yes" } },
        { location: "local", sessionDescription: { type: "offer", sdp: OFFER_AUDIO } },
        "polluted",
        null,
      ]);
      // Into an object node (or the body): a key the parser turns into an own "__proto__" property.
      const targetPath = node !== null && typeof node === "object" && !Array.isArray(node) ? path : [];
      const base = jsonText(getAt(value, targetPath) ?? {});
      const injected =
        base === "{}" ? `{"${key}":${jsonText(payload)}}` : `{"${key}":${jsonText(payload)},${base.slice(1)}`;
      const marker = "\u0000POLLUTE\u0000";
      const text = targetPath.length
        ? jsonText(setAt(value, targetPath, marker)).replace(jsonText(marker), injected)
        : injected;
      return { text, what: `"${key}" key in ${targetPath.length ? targetPath.join(".") : "body"}` };
    }
    case "duplicate key": {
      // The same key twice: JSON.parse keeps the last one; the first was the valid value.
      const objPath = node !== null && typeof node === "object" && !Array.isArray(node) ? path : [];
      const obj = getAt(value, objPath);
      const keys = obj && typeof obj === "object" ? Object.keys(obj) : [];
      if (keys.length === 0) return { value: value, what: "no key to duplicate" };
      const key = rng.pick(keys);
      const dup = rng.pick(WRONG_TYPES);
      const text0 = jsonText(obj);
      const injected = `${text0.slice(0, -1)},"${key}":${jsonText(dup)}}`;
      const marker = "\u0000DUP\u0000";
      const text = objPath.length
        ? jsonText(setAt(value, objPath, marker)).replace(jsonText(marker), injected)
        : injected;
      return { text, what: `duplicate key ${[...objPath, key].join(".")} = ${jsonText(dup)}` };
    }
    case "array": {
      const arrPath = paths.find((p) => Array.isArray(getAt(value, p)));
      if (!arrPath) return { value: setAt(value, path, []), what: `${at} = []` };
      const arr = getAt(value, arrPath) as unknown[];
      const kind = rng.int(4);
      const v =
        kind === 0
          ? []
          : kind === 1
            ? Array.from({ length: rng.pick([5, 64, 1000, 20_000]) }, () => arr[0] ?? {})
            : kind === 2
              ? [null, ...arr]
              : [...arr, ...arr];
      return { value: setAt(value, arrPath, v), what: `${arrPath.join(".")} with ${v.length} items` };
    }
    case "sdp": {
      const sdpPaths = paths.filter((p) => p[p.length - 1] === "sdp" || p[p.length - 1] === "type");
      if (sdpPaths.length === 0) {
        return {
          value: setAt(value, ["sessionDescription"], {
            type: rng.pick(["offer", "answer"]),
            sdp: bogusSdp(rng),
          }),
          what: "bogus sessionDescription added",
        };
      }
      const p = rng.pick(sdpPaths);
      if (p[p.length - 1] === "type") {
        const v = rng.pick(["answer", "offer", "pranswer", "rollback", "", "OFFER"]);
        return { value: setAt(value, p, v), what: `${p.join(".")} = "${v}"` };
      }
      return { value: setAt(value, p, bogusSdp(rng)), what: `bogus SDP in ${p.join(".")}` };
    }
    default: {
      const extra = { unknownField: rng.pick(WRONG_TYPES), dataChannels: [{ location: "remote" }] };
      const v =
        node !== null && typeof node === "object" && !Array.isArray(node) ? { ...node, ...extra } : extra;
      return {
        value: setAt(value, path.length && typeof node === "object" ? path : [], v),
        what: `extra fields in ${at}`,
      };
    }
  }
}

/** Raw body texts that are not (quite) JSON. */
function rawBodyText(valid: string, rng: Rng): { text: string | Buffer; what: string } {
  switch (rng.int(12)) {
    case 0:
      return { text: valid.slice(0, rng.int(Math.max(1, valid.length))), what: "truncated JSON" };
    case 1:
      return {
        text: Buffer.concat([
          Buffer.from(valid.slice(0, 5)),
          Buffer.from([0xff, 0xfe, 0xc0, 0x80]),
          Buffer.from(valid.slice(5)),
        ]),
        what: "invalid UTF-8",
      };
    case 2:
      return { text: `\ufeff${valid}`, what: "BOM before JSON" };
    case 3:
      return { text: `${valid} trailing`, what: "trailing garbage" };
    case 4:
      return {
        text: rng.pick(["null", "[]", "1", '"s"', "true", "-0", "1e999"]),
        what: "JSON of the wrong kind",
      };
    case 5:
      return { text: rng.pick(["", " ", "\r\n", "\t\t"]), what: "empty body" };
    case 6:
      return { text: valid.replaceAll('"', "'"), what: "single-quoted JSON" };
    case 7:
      return { text: `/* c */ ${valid}`, what: "comment in JSON" };
    case 8:
      return { text: '{"a": NaN, "b": Infinity, "c": undefined}', what: "non-JSON literals" };
    case 9:
      return { text: "x".repeat(1024 * 1024 + 1 + rng.int(1000)), what: "body over 1 MiB" };
    case 10:
      return { text: `${valid}\u0000`, what: "NUL after JSON" };
    default:
      return { text: "sessionDescription[type]=offer&sdp=v%3D0", what: "form-encoded body" };
  }
}

const CONTENT_TYPES = [
  "application/json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "bogus",
  "application/json; charset=utf-16",
  "application/json; charset",
  "*/*",
  "",
];

function authVariant(t: FuzzTarget, rng: Rng): { value?: string | string[]; what: string } {
  const secret = t.apps[0].secret;
  const options: [string, () => string | string[] | undefined][] = [
    ["no Authorization", () => undefined],
    ["wrong secret", () => "Bearer wrong-secret"],
    ["other app's secret", () => `Bearer ${t.apps[1].secret}`],
    ["Basic scheme", () => `Basic ${Buffer.from(`x:${secret}`).toString("base64")}`],
    ["Bearer without token", () => "Bearer"],
    ["lowercase scheme", () => `bearer ${secret}`],
    ["double space", () => `Bearer  ${secret}`],
    ["secret with suffix", () => `Bearer ${secret}x`],
    ["secret prefix", () => `Bearer ${secret.slice(0, -1)}`],
    ["8 KiB token", () => `Bearer ${"t".repeat(8192)}`],
    ["latin-1 token", () => `Bearer ${secret}\u00e9`],
    ["two Authorization headers", () => [`Bearer wrong`, `Bearer ${secret}`]],
    ["empty", () => ""],
  ];
  const [what, make] = rng.pick(options);
  return { value: make(), what };
}

/** Protocol-level garbage, sent over a raw socket. */
function rawCase(t: FuzzTarget, rng: Rng): { raw: Buffer; what: string; expectNoResponse?: boolean } {
  const app = t.apps[0];
  const auth = `Authorization: Bearer ${app.secret}\r\n`;
  const path = `/v1/apps/${app.appId}/sessions/new`;
  const cases: [string, () => string | Buffer, boolean?][] = [
    ["random bytes", () => Buffer.from(Array.from({ length: 1 + rng.int(200) }, () => rng.int(256)))],
    [
      "unknown method",
      () => `${rng.pick(["FOO", "GETT", "BREW", "get"])} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ],
    ["HTTP/0.9", () => "GET /healthz\r\n\r\n"],
    ["HTTP/2 preface", () => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
    ["header without colon", () => `GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n`],
    ["NUL in a header", () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n`],
    ["20 KiB request line", () => `GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ["20 KiB header", () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`],
    [
      "Content-Length and chunked",
      () =>
        `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      "two Content-Lengths",
      () => `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
    ],
    [
      "bad chunk size",
      () =>
        `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    ],
    [
      "negative Content-Length",
      () => `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: -1\r\n\r\n`,
    ],
    ["space in the target", () => `GET /v1/apps/ x/sessions/new HTTP/1.1\r\nHost: x\r\n\r\n`],
    ["absolute-form target", () => `GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: x\r\n\r\n`],
    ["asterisk target", () => "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["unicode in the target", () => Buffer.from(`GET /v1/apps/é😀/sessions/new HTTP/1.1\r\nHost: x\r\n\r\n`)],
    [
      "pipelined requests",
      () =>
        `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 3\r\n\r\n{x}` +
        `GET /v1/apps/${app.appId}/sessions/%E0 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
    ],
    [
      "body cut short",
      () => `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 100\r\n\r\n{"sessionDescr`,
      true,
    ],
    ["headers cut short", () => `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Le`, true],
    ["obsolete line folding", () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n`],
    ["HTTP/1.0 keep-alive", () => `GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`],
    ["bare LF line endings", () => `GET /healthz HTTP/1.1\nHost: x\n\n`],
  ];
  const [what, make, expectNoResponse] = rng.pick(cases);
  const raw = make();
  return { raw: typeof raw === "string" ? Buffer.from(raw, "utf8") : raw, what, expectNoResponse };
}

/** The `index`-th case of the sequence for `seed` (pure: the same inputs give the same case). */
export function generateCase(t: FuzzTarget, seed: number, index: number): FuzzCase {
  // Each case has its own generator, so replaying one case does not need the ones before it.
  const rng = new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  if (rng.chance(0.04)) {
    const r = rawCase(t, rng);
    return {
      index,
      route: "RAW",
      mutation: r.what,
      method: "-",
      path: "-",
      headers: {},
      raw: r.raw,
      expectNoResponse: r.expectNoResponse,
    };
  }
  const spec = rng.weighted(
    ROUTES.filter((r) => t.examples || !r.path.startsWith("/examples")).map((r) => [r.weight, r] as const),
  );
  const mutations: string[] = [];
  const app = t.apps[0];
  let appId = app.appId;
  let sessionId =
    spec.session === "peer" ? (rng.chance(0.8) ? t.sessions.peer : t.sessions.fresh) : t.sessions.publisher;
  let adapterId = t.adapterIds.length ? rng.pick(t.adapterIds) : "0".repeat(32);
  let method = spec.method;
  let prefix = rng.chance(0.8) ? "/v1" : "";
  let query = "";
  const headers: Record<string, string | string[]> = { host: "localhost" };
  let authHeader: string | string[] | undefined = `Bearer ${app.secret}`;
  let contentType: string | undefined = "application/json";
  let chunked = false;

  // How many independent mutations: most cases get one or two, some none (the valid request).
  const count = rng.weighted([
    [2, 0],
    [5, 1],
    [3, 2],
    [1, 3],
  ]);
  // A kind applies at most once, so the mutation list describes what was actually sent.
  const kinds = new Set<string>();
  for (let i = 0; i < count; i++)
    kinds.add(
      rng.weighted<string>([
        [spec.body ? 10 : 1, "body"],
        [spec.body ? 3 : 0, "raw body"],
        [3, "auth"],
        [4, "id"],
        [2, "url"],
        [2, "method"],
        [2, "content type"],
        [1, "headers"],
      ]),
    );

  let body: unknown = spec.body?.(t, rng);
  let bodyText: string | Buffer | undefined;
  for (const kind of kinds) {
    switch (kind) {
      case "body": {
        if (bodyText !== undefined) break;
        const m = mutateBody(body ?? {}, rng);
        mutations.push(m.what);
        if (m.text !== undefined) bodyText = m.text;
        else body = m.value;
        break;
      }
      case "raw body": {
        if (bodyText !== undefined) break;
        const r = rawBodyText(jsonText(body ?? {}), rng);
        mutations.push(r.what);
        bodyText = r.text;
        break;
      }
      case "auth": {
        const a = authVariant(t, rng);
        authHeader = a.value;
        mutations.push(a.what);
        break;
      }
      case "id": {
        const which = rng.pick<"app" | "session" | "adapter">(
          spec.path.includes("{session}")
            ? ["app", "session", "session"]
            : spec.path.includes("{adapter}")
              ? ["app", "adapter"]
              : ["app"],
        );
        if (spec.scope === "root") break;
        const bad = badId(t, rng, which);
        if (which === "app") {
          appId = bad.id;
          // Another app's id goes with that app's secret half of the time (a valid request for the wrong app's objects).
          if (bad.id === t.apps[1].appId && rng.chance(0.5)) authHeader = `Bearer ${t.apps[1].secret}`;
        } else if (which === "session") sessionId = bad.id;
        else adapterId = bad.id;
        mutations.push(bad.what);
        break;
      }
      case "url": {
        const u = rng.int(8);
        if (u === 0) {
          prefix = rng.pick(["//v1", "/v1/", "/V1", "/v2", "/v1/.", "/v1/%2e"]);
          mutations.push(`prefix ${prefix}`);
        } else if (u === 1) {
          query = rng.pick([
            "?thirdparty=true",
            "?thirdparty=",
            "?thirdparty=1&thirdparty=0",
            "?thirdparty[]=x",
          ]);
          mutations.push(`query ${query}`);
        } else if (u === 2) {
          query = rng.pick([
            "?__proto__[polluted]=1",
            "?constructor[prototype][polluted]=1",
            "?__proto__=x",
            "?a[__proto__][b]=1",
          ]);
          mutations.push(`pollution query ${query}`);
        } else if (u === 3) {
          query = `?q=${"x".repeat(rng.pick([1000, 8000, 15_000]))}`;
          mutations.push(`${query.length}-char query`);
        } else if (u === 4) {
          query = rng.pick(["?%E0%A4%A", "?%", "?a=%ZZ", "?&&&==&"]);
          mutations.push(`bad query ${query}`);
        } else if (u === 5) {
          query = "/";
          mutations.push("trailing slash");
        } else if (u === 6) {
          query = `#${"frag"}`;
          mutations.push("fragment in the target");
        } else {
          query = `/${rng.pick(["extra", "..", "%2e%2e", "new", "x/y/z"])}`;
          mutations.push(`extra segment ${query}`);
        }
        break;
      }
      case "method": {
        method = rng.pick([
          "GET",
          "POST",
          "PUT",
          "DELETE",
          "PATCH",
          "HEAD",
          "OPTIONS",
          "TRACE",
          "PROPFIND",
          "FOO",
        ]);
        mutations.push(`method ${method}`);
        if (method === "OPTIONS" && rng.chance(0.5)) {
          headers.origin = "https://app.example";
          headers["access-control-request-method"] = spec.method;
        }
        break;
      }
      case "content type": {
        contentType = rng.pick(CONTENT_TYPES);
        mutations.push(`content-type "${contentType}"`);
        if (contentType === "") contentType = undefined;
        break;
      }
      default: {
        const h = rng.int(6);
        if (h === 0) {
          chunked = true;
          mutations.push("chunked body");
        } else if (h === 1) {
          headers["content-encoding"] = rng.pick(["gzip", "br", "bogus"]);
          mutations.push(`content-encoding ${headers["content-encoding"]}`);
        } else if (h === 2) {
          headers.expect = "100-continue";
          mutations.push("Expect: 100-continue");
        } else if (h === 3) {
          headers.origin = rng.pick(["https://evil.example", "null", "http://127.0.0.1"]);
          headers["sec-fetch-site"] = rng.pick(["cross-site", "same-origin", "none"]);
          mutations.push(`origin ${headers.origin}`);
        } else if (h === 4) {
          headers.host = rng.pick(["", "evil.example", "[::1]:1", "127.0.0.1:99999", "a".repeat(300)]);
          mutations.push(`host "${headers.host.slice(0, 20)}"`);
        } else {
          for (let i = 0; i < 50; i++) headers[`x-fuzz-${i}`] = "v".repeat(100);
          mutations.push("50 extra headers");
        }
      }
    }
  }

  const path =
    spec.scope === "app"
      ? `${prefix}/apps/${appId}${spec.path.replace("{session}", sessionId).replace("{adapter}", adapterId)}${query}`
      : `${spec.path}${query}`;
  if (authHeader !== undefined && spec.scope === "app") headers.authorization = authHeader;
  else if (authHeader !== undefined && rng.chance(0.3)) headers.authorization = authHeader;
  let payload: Buffer | undefined;
  if (bodyText !== undefined)
    payload = Buffer.isBuffer(bodyText)
      ? bodyText
      : Buffer.from(confineString(bodyText, t.deadEndpoints[0]), "utf8");
  else if (body !== undefined) payload = Buffer.from(jsonText(confine(body, t.deadEndpoints[0])), "utf8");
  if (payload !== undefined && contentType !== undefined) headers["content-type"] = contentType;
  return {
    index,
    route: spec.name,
    mutation: mutations.length ? mutations.join("; ") : "valid",
    method,
    path,
    headers,
    body: payload,
    chunked,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Sending and checking

export interface FuzzOutcome {
  status?: number;
  headers?: http.IncomingHttpHeaders;
  body: string;
  /** No response: a transport error (code) or a guard timeout. */
  error?: string;
  ms: number;
}

const RESPONSE_GUARD_MS = 20_000;

function sendHttp(t: FuzzTarget, c: FuzzCase, agent: http.Agent): Promise<FuzzOutcome> {
  const u = new URL(t.url);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Omit<FuzzOutcome, "ms">) => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      resolve({ ...o, ms: performance.now() - t0 });
    };
    const headers: http.OutgoingHttpHeaders = { ...c.headers };
    if (c.body !== undefined && !c.chunked) headers["content-length"] = c.body.length;
    // Explicit, or Node's client would not frame the body of a GET/HEAD/DELETE/OPTIONS at all.
    if (c.body !== undefined && c.chunked) headers["transfer-encoding"] = "chunked";
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: u.hostname,
        port: Number(u.port),
        method: c.method,
        path: c.path,
        headers,
        agent,
        setHost: false,
      });
    } catch (err) {
      // The client refused to send it (invalid header value, say): not a server result.
      resolve({
        error: `client: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        body: "",
        ms: 0,
      });
      return;
    }
    const guard = setTimeout(() => {
      req.destroy();
      finish({ error: "no response within the guard time", body: "" });
    }, RESPONSE_GUARD_MS);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () =>
        finish({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", () =>
        finish({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.on("error", (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message, body: "" }));
    if (c.body !== undefined) {
      if (c.chunked) {
        const step = Math.max(1, Math.ceil(c.body.length / 3));
        for (let i = 0; i < c.body.length; i += step) req.write(c.body.subarray(i, i + step));
      } else req.write(c.body);
    }
    req.end();
  });
}

function sendRaw(t: FuzzTarget, c: FuzzCase): Promise<FuzzOutcome[]> {
  const u = new URL(t.url);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: u.hostname, port: Number(u.port) });
    let error: string | undefined;
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on("connect", () => {
      socket.write(c.raw!);
      // Cut-short requests hang up themselves; the others give the server a moment, then hang up.
      setTimeout(() => socket.end(), c.expectNoResponse ? 50 : 500);
    });
    const guard = setTimeout(() => socket.destroy(), RESPONSE_GUARD_MS);
    socket.on("close", () => {
      clearTimeout(guard);
      const text = Buffer.concat(chunks).toString("utf8");
      const ms = performance.now() - t0;
      const outcomes: FuzzOutcome[] = parseRawResponses(text).map((r) => ({ ...r, ms }));
      if (outcomes.length === 0)
        outcomes.push({ body: text, error: error ?? "closed without a response", ms });
      resolve(outcomes);
    });
  });
}

function parseRawResponses(
  raw: string,
): { status: number; headers: http.IncomingHttpHeaders; body: string }[] {
  const out: { status: number; headers: http.IncomingHttpHeaders; body: string }[] = [];
  let rest = raw;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    const [statusLine, ...lines] = rest.slice(0, end).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) break;
    const headers: http.IncomingHttpHeaders = {};
    for (const line of lines) {
      const i = line.indexOf(":");
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    rest = rest.slice(end + 4);
    const len = Number(headers["content-length"] ?? 0);
    const buf = Buffer.from(rest, "utf8");
    out.push({ status: Number(m[1]), headers, body: buf.subarray(0, len).toString("utf8") });
    rest = buf.subarray(len).toString("utf8");
  }
  return out;
}

/**
 * Per-item codes a batch may carry when it answers 503 ("503 if all items failed", README). Besides the
 * dial failures and quotas, an egress item naming a session or track that does not exist fails with
 * not_found_track_error, so an all-unknown batch is a 503 too (documented; arguably a 4xx).
 */
const PER_ITEM_503 = new Set([
  "not_found_track_error",
  "websocket_handshake_failed",
  "websocket_connection_timeout",
  "websocket_endpoint_not_allowed",
  "adapter_not_found",
  "quota_exceeded",
  "no_udp_port",
  "service_unavailable",
]);
const TOP_LEVEL_503 = new Set(["quota_exceeded", "no_udp_port", "service_unavailable"]);

function isErrorBody(v: unknown): v is { errorCode: string; errorDescription: string } {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const keys = Object.keys(v).sort();
  const o = v as Record<string, unknown>;
  return (
    keys.length === 2 &&
    keys[0] === "errorCode" &&
    keys[1] === "errorDescription" &&
    typeof o.errorCode === "string" &&
    Object.hasOwn(ERRORS, o.errorCode) &&
    typeof o.errorDescription === "string" &&
    o.errorDescription.trim().length > 0
  );
}

/** Per-item errors inside batch answers (`tracks: [...]`) must use registered codes and say something. */
function itemProblems(body: unknown, allowed?: Set<string>): string | undefined {
  const tracks = (body as { tracks?: unknown })?.tracks;
  if (!Array.isArray(tracks)) return undefined;
  for (const [i, item] of tracks.entries()) {
    const code = (item as { errorCode?: unknown })?.errorCode;
    if (code === undefined) continue;
    const description = (item as { errorDescription?: unknown }).errorDescription;
    if (typeof code !== "string" || !Object.hasOwn(ERRORS, code))
      return `tracks[${i}].errorCode ${JSON.stringify(code)} is not registered`;
    if (allowed && !allowed.has(code)) return `tracks[${i}].errorCode ${code} is not a per-item 503 code`;
    if (typeof description !== "string" || description.trim() === "")
      return `tracks[${i}].errorDescription is empty`;
  }
  return undefined;
}

/** What is wrong with a response, or undefined when it is fine. */
export function checkOutcome(c: FuzzCase, o: FuzzOutcome): string | undefined {
  if (o.status === undefined) {
    if (c.raw && (c.expectNoResponse || o.error === "closed without a response")) return undefined;
    // The client gave up before sending (e.g. an invalid header value): nothing reached the server.
    if (o.error?.startsWith("client:")) return undefined;
    // A body over the limit may be cut off by the server's early 413 while the client still writes it.
    if (c.body && c.body.length > 1024 * 1024 && (o.error === "EPIPE" || o.error === "ECONNRESET"))
      return undefined;
    return `no response: ${o.error}`;
  }
  const s = o.status;
  const head = c.method === "HEAD";
  let json: unknown;
  const isJson = /application\/json/.test(String(o.headers?.["content-type"] ?? ""));
  if (s >= 400 || isJson) {
    if (!head && o.body !== "") {
      try {
        json = JSON.parse(o.body);
      } catch {
        return `status ${s} with a body that is not JSON: ${o.body.slice(0, 120)}`;
      }
    }
  }
  if (s >= 500) {
    if (s !== 503) return `status ${s}: ${o.body.slice(0, 300)}`;
    if (head) return undefined;
    if (isErrorBody(json) && TOP_LEVEL_503.has(json.errorCode)) return undefined;
    const tracks = (json as { tracks?: unknown })?.tracks;
    if (Array.isArray(tracks) && tracks.length > 0) {
      const all = tracks.every((t) => typeof (t as { errorCode?: unknown })?.errorCode === "string");
      if (!all) return `503 with a track that has no errorCode: ${o.body.slice(0, 300)}`;
      return itemProblems(json, PER_ITEM_503);
    }
    return `503 that is not an allowed one: ${o.body.slice(0, 300)}`;
  }
  if (s >= 400) {
    if (head) return undefined;
    if (!isErrorBody(json)) return `status ${s} without Cloudflare's error shape: ${o.body.slice(0, 300)}`;
    return undefined;
  }
  if (json !== undefined) return itemProblems(json);
  return undefined;
}

export interface FuzzViolation {
  index: number;
  route: string;
  mutation: string;
  status?: number;
  problem: string;
  /** The request as sent (raw HTTP text, bodies cut at 2 KiB). */
  request: string;
  response: string;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  durationMs: number;
  /** route → status (or "error") → count. */
  byRoute: Record<string, Record<string, number>>;
  /** status → count over all routes. */
  byStatus: Record<string, number>;
  /** Cases that made no valid request at all (the client refused to send them). */
  unsent: number;
  violations: FuzzViolation[];
  /** Slowest responses, ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The request of a case as HTTP text (for reports and replay by hand). */
export function describeRequest(c: FuzzCase, limit = 2048): string {
  if (c.raw) return c.raw.toString("utf8").slice(0, limit);
  const lines = [`${c.method} ${c.path} HTTP/1.1`];
  for (const [k, v] of Object.entries(c.headers))
    for (const x of [v].flat())
      lines.push(`${k}: ${x.length > 200 ? `${x.slice(0, 200)}…(${x.length})` : x}`);
  if (c.body && !c.chunked) lines.push(`content-length: ${c.body.length}`);
  if (c.chunked) lines.push("transfer-encoding: chunked");
  const body = c.body ? c.body.toString("utf8") : "";
  return `${lines.join("\r\n")}\r\n\r\n${body.length > limit ? `${body.slice(0, limit)}…(${body.length} bytes)` : body}`;
}

export interface FuzzOptions {
  target: FuzzTarget;
  requests: number;
  seed: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Only these case indexes (replay). */
  only?: readonly number[];
  onProgress?: (done: number, total: number) => void;
  /** Every case and what came back (raw cases may report several responses). */
  onResult?: (c: FuzzCase, o: FuzzOutcome, problem: string | undefined) => void;
}

/** Generates the cases for `seed` and sends them, `concurrency` at a time; returns the tally and any violations. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const { target, seed } = opts;
  const indexes = opts.only ?? Array.from({ length: opts.requests }, (_, i) => i);
  const cases = indexes.map((i) => generateCase(target, seed, i));
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 4 });
  const byRoute: Record<string, Record<string, number>> = {};
  const byStatus: Record<string, number> = {};
  const violations: FuzzViolation[] = [];
  const times: number[] = [];
  let unsent = 0;
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const tally = (c: FuzzCase, o: FuzzOutcome) => {
    if (o.error?.startsWith("client:")) unsent++;
    const key =
      o.status !== undefined ? String(o.status) : o.error?.startsWith("client:") ? "unsent" : "no response";
    byRoute[c.route] ??= {};
    byRoute[c.route][key] = (byRoute[c.route][key] ?? 0) + 1;
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    times.push(o.ms);
    const problem = checkOutcome(c, o);
    opts.onResult?.(c, o, problem);
    if (problem)
      violations.push({
        index: c.index,
        route: c.route,
        mutation: c.mutation,
        status: o.status,
        problem,
        request: describeRequest(c),
        response: `${o.status ?? o.error} ${o.body.slice(0, 500)}`,
      });
  };
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++];
      if (c.raw) for (const o of await sendRaw(target, c)) tally(c, o);
      else tally(c, await sendHttp(target, c, agent));
      done++;
      opts.onProgress?.(done, cases.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  } finally {
    agent.destroy();
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0;
  return {
    seed,
    requests: cases.length,
    durationMs: performance.now() - t0,
    byRoute,
    byStatus,
    unsent,
    violations,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    maxMs: times[times.length - 1] ?? 0,
  };
}

/** Fuzz target objects on a running test server: sessions, a publisher, an adapter id, dead endpoints. */
export interface FuzzFixture {
  target: FuzzTarget;
  close(): Promise<void>;
}

/**
 * Makes the objects a fuzz run aims at on `srv` (started with startTestServer): two werift clients
 * publishing audio ("mic", "cam"), a session never negotiated, a session of the other app, one ingest adapter on a loopback endpoint
 * (made here, not by the fuzzer), and the dead endpoints every fuzzed adapter request dials.
 */
export async function setupFuzzTarget(
  srv: Pick<TestServer, "url" | "api" | "apiB">,
  opts: { examples: boolean },
): Promise<FuzzFixture> {
  const dead = await startDeadEndpoints();
  const endpoint = await startEndpoint();
  const fresh = (await srv.api.newSession()).sessionId;
  const pub = await publishAudio(srv.api, "mic");
  const peer = await publishAudio(srv.api, "cam");
  // Both clients keep sending (20 ms of silence every 100 ms) so their sessions outlive the liveness timeout.
  const silence = encodeOpus(new Int16Array(1920));
  const keepalive = setInterval(() => {
    void pub.send(silence, 0).catch(() => {});
    void peer.send(silence, 0).catch(() => {});
  }, 100);
  const otherApp = (await srv.apiB.newSession()).sessionId;
  const app = TEST_APPS[0];
  const res = await fetch(`${srv.url}/v1/apps/${app.appId}/adapters/websocket/new`, {
    method: "POST",
    headers: { authorization: `Bearer ${app.secret}`, "content-type": "application/json" },
    body: JSON.stringify({
      tracks: [{ location: "local", trackName: "fixture-ingest", endpoint: endpoint.url, inputCodec: "pcm" }],
    }),
  });
  const made = (await res.json()) as { tracks: { adapterId?: string; errorCode?: string }[] };
  const adapterIds = made.tracks.flatMap((t) => (t.adapterId ? [t.adapterId] : []));
  if (adapterIds.length === 0) throw new Error(`fixture adapter not created: ${JSON.stringify(made)}`);
  return {
    target: {
      url: srv.url,
      apps: TEST_APPS,
      sessions: {
        peer: peer.sessionId,
        fresh,
        publisher: pub.sessionId,
        publisherTrack: pub.trackName,
        otherApp,
      },
      adapterIds,
      deadEndpoints: dead.urls,
      examples: opts.examples,
    },
    async close() {
      clearInterval(keepalive);
      await closePeers([pub.pc, peer.pc]);
      await endpoint.close();
      await dead.close();
    },
  };
}

/** Object.prototype keys a fuzz run may have added (prototype pollution in the server's process). */
export function prototypePollution(): string[] {
  const probe = {} as Record<string, unknown>;
  const found = Object.getOwnPropertyNames(Object.prototype).filter((k) => !BASELINE_PROTO.has(k));
  if (probe.polluted !== undefined) found.push("polluted");
  return found;
}
const BASELINE_PROTO = new Set(Object.getOwnPropertyNames(Object.prototype));
