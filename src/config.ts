import { isIP } from "node:net";
import { z } from "zod";
import { didYouMean } from "./util/did-you-mean.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
export type LogFormat = "auto" | "json" | "pretty";
export type EndpointPolicy = "default" | "strict";

export interface Config {
  readonly http: {
    readonly host: string;
    /** 0 asks the OS for a free port (tests). */
    readonly port: number;
    /** Slowloris guards: a request's headers, the whole request, and an idle keep-alive connection. */
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly maxConnections: number;
  };
  readonly rtc: {
    /** When set, host candidates in SDP carry this address instead of the bound one. */
    readonly announcedIp: string | undefined;
    readonly listenIp: string;
    /** Both 0 = OS-assigned ports; otherwise an inclusive range. */
    readonly minPort: number;
    readonly maxPort: number;
    /** Bits/s announced to video publishers (REMB). */
    readonly publishBitrateCap: number;
    /** Which implementation moves packets: the C++ addon or werift (docs/NATIVE.md). */
    readonly mediaPlane: "native" | "werift";
    /** Native plane only: one UDP port for every session (0 = a port per session). */
    readonly sharedPort: number;
  };
  /** TURN credentials issued by `turn/keys/{appId}/credentials/…` (docs/TURN.md). */
  readonly turn: {
    /** The TURN server's shared secret (coturn's static-auth-secret); undefined = TURN routes answer 503. */
    readonly secret: string | undefined;
    readonly urls: readonly string[];
    readonly stunUrls: readonly string[];
  };
  readonly dataDir: string;
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  readonly apps: {
    /** Path of a JSON apps file (--apps-file). */
    readonly file: string | undefined;
    /** Inline JSON from PATCHBAY_APPS; parsed by the app registry so both sources share one schema. */
    readonly json: string | undefined;
  };
  readonly session: {
    readonly connectTimeoutMs: number;
    readonly disconnectGraceMs: number;
    /** Silence from a connected peer after which its transport counts as lost. */
    readonly livenessTimeoutMs: number;
  };
  readonly adapter: {
    readonly connectTimeoutMs: number;
    readonly maxMessageBytes: number;
    readonly ingestHighWaterMs: number;
    readonly ingestLowWaterMs: number;
    readonly endpointPolicy: EndpointPolicy;
    readonly caFile: string | undefined;
    readonly egressReorder: boolean;
    readonly ingestOpusFec: boolean | "adaptive";
    readonly ingestOpusComplexity: number;
    /** A peer we are reading from that sends nothing (not even a pong) this long after a ping is dropped. */
    readonly pingIntervalMs: number;
    /** Egress redial gives up this long after the first failure of a run of failures. */
    readonly egressReconnectWindowMs: number;
    /** Token bucket on messages an ingest endpoint sends; above it the server stops reading (back-pressure). */
    readonly maxMessagesPerSecond: number;
    /** The video decoder for `outputCodec: "jpeg"` egress. */
    readonly ffmpegPath: string;
    /** JPEG images per second of a jpeg egress adapter. */
    readonly jpegFps: number;
  };
  /** Quotas: each refusal is a Cloudflare-shaped error naming the limit and its flag. */
  readonly limits: {
    readonly sessionsPerApp: number;
    readonly sessions: number;
    readonly adaptersPerApp: number;
    readonly adapters: number;
    readonly tracksPerRequest: number;
    readonly tracksPerSession: number;
  };
  readonly examples: boolean;
  readonly exampleLimits: {
    /** Bytes one recording may write. */
    readonly recordingMaxBytes: number;
    /** Bytes all recordings together may hold on disk. */
    readonly diskQuotaBytes: number;
  };
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}\n` +
        "Run `patchbay --help` to list every setting.",
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

// setTimeout silently turns larger delays into 1 ms, so durations are capped here rather than misbehaving later.
const MAX_TIMER_MS = 2_147_483_647;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

function integer(min: number, max: number, expected = `an integer from ${min} to ${max}`) {
  return z.string().transform((text, ctx): number => {
    const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!(value >= min && value <= max)) {
      ctx.addIssue({ code: "custom", message: `expected ${expected}` });
      return z.NEVER;
    }
    return value;
  });
}

const port = (expected?: string) => integer(0, 65535, expected);
function decimal(min: number, max: number, expected: string) {
  return z.string().transform((text, ctx): number => {
    const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
    if (!(value >= min && value <= max)) {
      ctx.addIssue({ code: "custom", message: `expected ${expected}` });
      return z.NEVER;
    }
    return value;
  });
}
const rtcPort = integer(0, 65535, "0 (OS-assigned) or a port from 1024 to 65535").refine(
  (p) => p === 0 || p >= 1024,
  { message: "expected 0 (OS-assigned) or a port from 1024 to 65535" },
);
const durationMs = integer(1, MAX_TIMER_MS, `a duration in milliseconds from 1 to ${MAX_TIMER_MS}`);

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(z.enum(values, { error: `expected one of: ${values.join(", ")}` }));
}

const boolean = z.string().transform((text, ctx): boolean => {
  const lower = text.toLowerCase();
  if (lower === "true" || lower === "1") return true;
  if (lower === "false" || lower === "0") return false;
  ctx.addIssue({ code: "custom", message: "expected true, false, 1 or 0" });
  return z.NEVER;
});

const ip = z.string().refine((s) => isIP(s) !== 0, { message: "expected an IPv4 or IPv6 address" });
const host = z.string().refine((s) => /^[^\s/[\]]+$/.test(s) && (!s.includes(":") || isIP(s) === 6), {
  message: "expected a host name or IP address, without scheme, brackets or port",
});
const path = z.string().min(1, { message: "expected a non-empty path" });
/** A comma-separated list of ICE server URLs with one of `schemes` (RFC 7064 / 7065), e.g. turn:host:3478?transport=udp. */
function iceUrls(schemes: readonly string[]) {
  const re = new RegExp(`^(${schemes.join("|")}):[^\\s,]+$`);
  return z.string().transform((text, ctx): string[] => {
    const list = text
      .split(",")
      .map((u) => u.trim())
      .filter((u) => u !== "");
    const bad = list.find((u) => !re.test(u));
    if (bad !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `expected comma-separated ${schemes.join("/")}: URLs, e.g. ${schemes[0]}:198.51.100.7:3478; got ${JSON.stringify(bad)}`,
      });
      return z.NEVER;
    }
    return list;
  });
}

// Every schema takes the raw text (flag, env or default) so defaults go through the same parsing as user input.
const shape = {
  "http-host": host,
  "http-port": port(),
  "http-headers-timeout-ms": durationMs,
  "http-request-timeout-ms": durationMs,
  "http-idle-timeout-ms": durationMs,
  "http-max-connections": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "announced-ip": ip.optional(),
  "rtc-listen-ip": ip.optional(),
  "rtc-min-port": rtcPort,
  "rtc-max-port": rtcPort,
  "media-plane": oneOf(["native", "werift"]),
  "rtc-shared-port": rtcPort,
  "publish-bitrate-cap": integer(30_000, 100_000_000, "bits per second from 30000 to 100000000"),
  "turn-secret": z.string().min(16, { message: "expected at least 16 characters" }).optional(),
  "turn-urls": iceUrls(["turn", "turns"]),
  "stun-urls": iceUrls(["stun", "stuns"]),
  "data-dir": path,
  "log-level": oneOf(LOG_LEVELS),
  "log-format": oneOf(["auto", "json", "pretty"]),
  "apps-file": path.optional(),
  apps: z.string().optional(),
  "session-connect-timeout-ms": durationMs,
  "session-disconnect-grace-ms": durationMs,
  "session-liveness-timeout-ms": durationMs,
  "ws-connect-timeout-ms": durationMs,
  "ws-max-message-bytes": integer(1, 64 * 1024 * 1024, "a size in bytes from 1 to 67108864"),
  "ingest-high-water-ms": durationMs,
  "ingest-low-water-ms": durationMs,
  "endpoint-policy": oneOf(["default", "strict"]),
  "ws-ca-file": path.optional(),
  "egress-reorder": boolean,
  "ingest-opus-fec": z.string().transform((text, ctx): boolean | "adaptive" => {
    const lower = text.toLowerCase();
    if (lower === "adaptive") return "adaptive";
    if (lower === "true" || lower === "1") return true;
    if (lower === "false" || lower === "0") return false;
    ctx.addIssue({ code: "custom", message: "expected adaptive, true, false, 1 or 0" });
    return z.NEVER;
  }),
  "ingest-opus-complexity": integer(0, 10, "an integer from 0 to 10"),
  "egress-reconnect-window-ms": durationMs,
  "ws-ping-interval-ms": durationMs,
  "ws-max-messages-per-second": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "ffmpeg-path": path,
  "jpeg-fps": decimal(0.1, 30, "images per second from 0.1 to 30"),
  "max-sessions-per-app": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "max-sessions": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "max-adapters-per-app": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "max-adapters": integer(1, 1_000_000, "an integer from 1 to 1000000"),
  "max-tracks-per-request": integer(1, 10_000, "an integer from 1 to 10000"),
  "max-tracks-per-session": integer(1, 100_000, "an integer from 1 to 100000"),
  examples: boolean,
  "examples-recording-max-mb": integer(1, 1_000_000, "a size in MiB from 1 to 1000000"),
  "examples-disk-quota-mb": integer(1, 10_000_000, "a size in MiB from 1 to 10000000"),
};

export type SettingName = keyof typeof shape;

interface SettingMeta {
  readonly default?: string;
  /** Shown in help instead of `default` when the default is computed or absent. */
  readonly defaultLabel?: string;
  readonly valueName?: string;
  readonly envOnly?: boolean;
  /** Never echoed in error messages (holds secrets). */
  readonly sensitive?: boolean;
  readonly description: string;
}

const SETTINGS: { readonly [K in SettingName]: SettingMeta } = {
  "http-host": { default: "127.0.0.1", valueName: "host", description: "Address the HTTP API binds to." },
  "http-port": { default: "8787", valueName: "port", description: "HTTP API port (0 = any free port)." },
  "http-headers-timeout-ms": {
    default: "10000",
    valueName: "ms",
    description: "A client must send a request's complete headers within this time (slowloris guard).",
  },
  "http-request-timeout-ms": {
    default: "30000",
    valueName: "ms",
    description: "A client must send a whole request, body included, within this time.",
  },
  "http-idle-timeout-ms": {
    default: "5000",
    valueName: "ms",
    description: "An idle keep-alive connection is closed after this time.",
  },
  "http-max-connections": {
    default: "1000",
    valueName: "n",
    description: "Open HTTP connections above which new ones are refused.",
  },
  "announced-ip": {
    defaultLabel: "(none)",
    valueName: "ip",
    description:
      "Public IP put in ICE host candidates instead of the bound interface addresses (NAT, containers).",
  },
  "rtc-listen-ip": {
    defaultLabel: "127.0.0.1 if http-host is loopback, else 0.0.0.0",
    valueName: "ip",
    description: "Address WebRTC UDP sockets bind to; 0.0.0.0 means all interfaces.",
  },
  "rtc-min-port": {
    default: "0",
    valueName: "port",
    description: "Lowest UDP port for WebRTC (0 = OS-assigned; set both min and max, 1024-65535).",
  },
  "rtc-max-port": {
    default: "0",
    valueName: "port",
    description: "Highest UDP port for WebRTC (see rtc-min-port).",
  },
  "media-plane": {
    default: "native",
    valueName: "plane",
    description:
      "What moves media packets: native (the C++ addon: UDP, ICE-lite, DTLS-SRTP, SRTP) or werift (the pure-TypeScript stack of earlier releases). Sessions with ?thirdparty=true (full ICE) always use werift.",
  },
  "rtc-shared-port": {
    default: "0",
    valueName: "port",
    description:
      "Native media plane: one UDP port for all sessions, demultiplexed by ICE username then 5-tuple (0 = a port per session from the range).",
  },
  "publish-bitrate-cap": {
    default: "2500000",
    valueName: "bps",
    description:
      "Video bitrate announced to each publishing session (REMB): Patchbay does not estimate bandwidth, browsers ramp up to this and back off on loss.",
  },
  "turn-secret": {
    defaultLabel: "(none: TURN routes answer 503)",
    valueName: "secret",
    sensitive: true,
    description:
      "Shared secret of your TURN server (coturn use-auth-secret + static-auth-secret, at least 16 characters); turn/keys/{appId}/credentials/generate-ice-servers issues credentials for it (docs/TURN.md). Prefer the environment variable: flags show in ps.",
  },
  "turn-urls": {
    default: "",
    defaultLabel: "(none)",
    valueName: "urls",
    description:
      "TURN server URLs handed out with the credentials, comma-separated (e.g. turn:198.51.100.7:3478?transport=udp,turn:198.51.100.7:3478?transport=tcp); required with turn-secret.",
  },
  "stun-urls": {
    default: "",
    defaultLabel: "(none)",
    valueName: "urls",
    description:
      "STUN server URLs handed out beside the TURN ones, comma-separated (e.g. stun:198.51.100.7:3478).",
  },
  "data-dir": {
    default: "./data",
    valueName: "dir",
    description: "Directory for persistent state (the default app's credentials).",
  },
  "log-level": { default: "info", valueName: "level", description: `Log level: ${LOG_LEVELS.join(", ")}.` },
  "log-format": {
    default: "auto",
    valueName: "format",
    description: "auto, json or pretty; auto is pretty when stdout is a terminal, JSON lines otherwise.",
  },
  "apps-file": {
    defaultLabel: "(none)",
    valueName: "file",
    description:
      'JSON file [{"appId": "<32 hex>", "secret": "<16+ chars>", "name"?: "..."}] replacing the default app.',
  },
  apps: {
    defaultLabel: "(none)",
    envOnly: true,
    sensitive: true,
    description: "The same JSON as apps-file, inline. Cannot be combined with apps-file.",
  },
  "session-connect-timeout-ms": {
    default: "60000",
    valueName: "ms",
    description: "A session that never connects is closed after this time.",
  },
  "session-disconnect-grace-ms": {
    default: "30000",
    valueName: "ms",
    description: "A connected session whose transport is lost stays reusable this long.",
  },
  "session-liveness-timeout-ms": {
    default: "30000",
    valueName: "ms",
    description:
      "A connected peer that sends nothing (no media, no RTCP, no ICE consent check) this long has lost its transport (RFC 7675's 30 s, as mediasoup).",
  },
  "ws-connect-timeout-ms": {
    default: "5000",
    valueName: "ms",
    description: "Timeout of the adapter's WebSocket handshake to an endpoint.",
  },
  "ws-max-message-bytes": {
    default: "32768",
    valueName: "bytes",
    description: "Largest WebSocket message accepted from an ingest endpoint (larger: close 1009).",
  },
  "ingest-high-water-ms": {
    default: "60000",
    valueName: "ms",
    description: "Queued ingest audio above which the server stops reading the socket.",
  },
  "ingest-low-water-ms": {
    default: "30000",
    valueName: "ms",
    description: "Queued ingest audio below which reading resumes (must be below the high-water mark).",
  },
  "endpoint-policy": {
    default: "default",
    valueName: "policy",
    description:
      "Adapter endpoint guard: default denies link-local/metadata addresses; strict also denies loopback and private ranges.",
  },
  "ws-ca-file": {
    defaultLabel: "(system CAs)",
    valueName: "file",
    description: "Extra PEM CA bundle trusted for wss:// endpoints (private CAs).",
  },
  "ingest-opus-fec": {
    default: "adaptive",
    description:
      "Opus in-band FEC on ingest tracks: adaptive (on while a subscriber's receiver reports show loss, off 10 s after they are clean), true (always; ~3x the encode CPU) or false.",
  },
  "ingest-opus-complexity": {
    default: "5",
    valueName: "0-10",
    description: "Opus encoder complexity for ingest tracks (higher: slightly better quality, more CPU).",
  },
  "egress-reorder": {
    default: "true",
    description:
      "Egress adapters reorder packets and conceal losses (20-40 ms adaptive buffer); false passes packets through in arrival order.",
  },
  "egress-reconnect-window-ms": {
    default: "15000",
    valueName: "ms",
    description:
      "An egress adapter whose endpoint keeps failing (refused, or accepted then dropped) is closed this long after the first failure.",
  },
  "ws-ping-interval-ms": {
    default: "10000",
    valueName: "ms",
    description:
      "Adapters ping an endpoint they have not heard from for this long and drop it when the next interval passes in silence; never while reading is paused for back-pressure.",
  },
  "ws-max-messages-per-second": {
    default: "1000",
    valueName: "n",
    description:
      "Messages per second an ingest endpoint may send (1 s burst); above it reading pauses, which the endpoint sees as TCP back-pressure.",
  },
  "ffmpeg-path": {
    default: "ffmpeg",
    valueName: "path",
    description:
      'Video decoder for outputCodec "jpeg" egress adapters (Debian: apt-get install ffmpeg); looked up in PATH unless a path.',
  },
  "jpeg-fps": {
    default: "1",
    valueName: "n",
    description: "Images per second a jpeg egress adapter sends (0.1 to 30; Cloudflare sends about 1).",
  },
  "max-sessions-per-app": {
    default: "500",
    valueName: "n",
    description: "Open sessions (WebRTC and adapter sessions) per app.",
  },
  "max-sessions": { default: "1000", valueName: "n", description: "Open sessions in the whole server." },
  "max-adapters-per-app": { default: "200", valueName: "n", description: "Open WebSocket adapters per app." },
  "max-adapters": {
    default: "400",
    valueName: "n",
    description: "Open WebSocket adapters in the whole server.",
  },
  "max-tracks-per-request": {
    default: "64",
    valueName: "n",
    description: "Items in one tracks/new, tracks/close or tracks/update request.",
  },
  "max-tracks-per-session": {
    default: "256",
    valueName: "n",
    description: "Tracks (published and pulled, open or recycled m-lines) one session may hold.",
  },
  "examples-recording-max-mb": {
    default: "100",
    valueName: "MiB",
    description: "Largest file one example recording may write; the recording stops there.",
  },
  "examples-disk-quota-mb": {
    default: "1024",
    valueName: "MiB",
    description: "Disk all example recordings together may use; new recordings are refused above it.",
  },
  examples: {
    default: "true",
    description: "Serve the bundled examples next to the demo console; --no-examples turns them off.",
  },
};

const NAMES = Object.keys(shape) as SettingName[];
const BOOLEAN_SETTINGS = new Set<SettingName>(["examples", "egress-reorder", "ingest-opus-fec"]);

export function envName(name: SettingName): string {
  return `PATCHBAY_${name.toUpperCase().replaceAll("-", "_")}`;
}

function label(name: SettingName): string {
  return SETTINGS[name].envOnly ? envName(name) : `--${name} / ${envName(name)}`;
}

function isLoopbackHost(h: string): boolean {
  return h === "localhost" || h === "::1" || (isIP(h) === 4 && h.startsWith("127."));
}

const schema = z
  .object(shape)
  .superRefine(
    (v, ctx) => {
      const min = v["rtc-min-port"];
      const max = v["rtc-max-port"];
      if (typeof min === "number" && typeof max === "number") {
        if ((min === 0) !== (max === 0)) {
          ctx.addIssue({
            code: "custom",
            path: [min === 0 ? "rtc-min-port" : "rtc-max-port"],
            message: `must be set together with ${min === 0 ? "rtc-max-port" : "rtc-min-port"} (both 0 = OS-assigned)`,
          });
        } else if (min > max) {
          ctx.addIssue({
            code: "custom",
            path: ["rtc-min-port"],
            message: `must not exceed rtc-max-port (${max})`,
          });
        }
      }
      const low = v["ingest-low-water-ms"];
      const high = v["ingest-high-water-ms"];
      if (typeof low === "number" && typeof high === "number" && low >= high) {
        ctx.addIssue({
          code: "custom",
          path: ["ingest-low-water-ms"],
          message: `must be below ingest-high-water-ms (${high})`,
        });
      }
      if (v["turn-secret"] !== undefined && Array.isArray(v["turn-urls"]) && v["turn-urls"].length === 0) {
        ctx.addIssue({
          code: "custom",
          path: ["turn-urls"],
          message: "must name at least one turn: URL when turn-secret is set",
        });
      }
      if (v["apps-file"] !== undefined && v.apps !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["apps"],
          message: "cannot be combined with --apps-file / PATCHBAY_APPS_FILE; use one source of apps",
        });
      }
    },
    {
      // Run even when single fields failed, so one start reports every problem; hence the type guards above.
      when: () => true,
    },
  )
  .transform(
    (v): Config => ({
      http: {
        host: v["http-host"],
        port: v["http-port"],
        headersTimeoutMs: v["http-headers-timeout-ms"],
        requestTimeoutMs: v["http-request-timeout-ms"],
        idleTimeoutMs: v["http-idle-timeout-ms"],
        maxConnections: v["http-max-connections"],
      },
      rtc: {
        announcedIp: v["announced-ip"],
        listenIp: v["rtc-listen-ip"] ?? (isLoopbackHost(v["http-host"]) ? "127.0.0.1" : "0.0.0.0"),
        minPort: v["rtc-min-port"],
        maxPort: v["rtc-max-port"],
        publishBitrateCap: v["publish-bitrate-cap"],
        mediaPlane: v["media-plane"],
        sharedPort: v["rtc-shared-port"],
      },
      turn: { secret: v["turn-secret"], urls: v["turn-urls"], stunUrls: v["stun-urls"] },
      dataDir: v["data-dir"],
      log: { level: v["log-level"], format: v["log-format"] },
      apps: { file: v["apps-file"], json: v.apps },
      session: {
        connectTimeoutMs: v["session-connect-timeout-ms"],
        disconnectGraceMs: v["session-disconnect-grace-ms"],
        livenessTimeoutMs: v["session-liveness-timeout-ms"],
      },
      adapter: {
        connectTimeoutMs: v["ws-connect-timeout-ms"],
        maxMessageBytes: v["ws-max-message-bytes"],
        ingestHighWaterMs: v["ingest-high-water-ms"],
        ingestLowWaterMs: v["ingest-low-water-ms"],
        endpointPolicy: v["endpoint-policy"],
        caFile: v["ws-ca-file"],
        egressReorder: v["egress-reorder"],
        ingestOpusFec: v["ingest-opus-fec"],
        ingestOpusComplexity: v["ingest-opus-complexity"],
        egressReconnectWindowMs: v["egress-reconnect-window-ms"],
        pingIntervalMs: v["ws-ping-interval-ms"],
        maxMessagesPerSecond: v["ws-max-messages-per-second"],
        ffmpegPath: v["ffmpeg-path"],
        jpegFps: v["jpeg-fps"],
      },
      limits: {
        sessionsPerApp: v["max-sessions-per-app"],
        sessions: v["max-sessions"],
        adaptersPerApp: v["max-adapters-per-app"],
        adapters: v["max-adapters"],
        tracksPerRequest: v["max-tracks-per-request"],
        tracksPerSession: v["max-tracks-per-session"],
      },
      examples: v.examples,
      exampleLimits: {
        recordingMaxBytes: v["examples-recording-max-mb"] * 1024 * 1024,
        diskQuotaBytes: v["examples-disk-quota-mb"] * 1024 * 1024,
      },
    }),
  );

type Origin = { readonly source: string; readonly raw: string };

function isSettingName(s: string): s is SettingName {
  return Object.hasOwn(shape, s);
}

/** Why a flag is unknown, or the flag that was probably meant. */
function unknownFlagHint(key: string): string {
  if (isSettingName(key)) return ` (${envName(key)} is set through the environment only)`;
  if (key.startsWith("no-") && isSettingName(key.slice(3)))
    return ` (--${key.slice(3)} is not an on/off setting: give it a value)`;
  const flags = NAMES.filter((n) => !SETTINGS[n].envOnly).flatMap((n) =>
    BOOLEAN_SETTINGS.has(n) ? [n, `no-${n}`] : [n],
  );
  const guess = didYouMean(key, [...flags, "help", "version"]);
  return guess ? `; did you mean --${guess}?` : "";
}

/** Flag values by setting name; problems are collected rather than thrown so one run reports all of them. */
function parseFlags(argv: readonly string[], problems: string[]): Map<SettingName, Origin> {
  const out = new Map<SettingName, Origin>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (!token.startsWith("--") || token === "--") {
      problems.push(`unexpected argument ${JSON.stringify(token)} (settings are given as --name value)`);
      continue;
    }
    const eq = token.indexOf("=");
    let key = eq === -1 ? token.slice(2) : token.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : token.slice(eq + 1);
    let negated = false;
    if (
      key.startsWith("no-") &&
      isSettingName(key.slice(3)) &&
      BOOLEAN_SETTINGS.has(key.slice(3) as SettingName)
    ) {
      key = key.slice(3);
      negated = true;
    }
    if (!isSettingName(key) || SETTINGS[key].envOnly) {
      problems.push(
        `unknown flag ${JSON.stringify(token.slice(0, eq === -1 ? undefined : eq))}${unknownFlagHint(key)}`,
      );
      continue;
    }
    if (BOOLEAN_SETTINGS.has(key)) {
      if (negated) {
        if (value !== undefined) problems.push(`--no-${key} takes no value (got ${JSON.stringify(value)})`);
        value = "false";
      } else if (value === undefined) {
        // `--examples false` reads naturally; only a boolean literal is consumed, so the next flag is never eaten.
        const next = argv[i + 1];
        const literal = key === "ingest-opus-fec" ? /^(true|false|1|0|adaptive)$/i : /^(true|false|1|0)$/i;
        if (next !== undefined && literal.test(next)) {
          value = next;
          i++;
        } else {
          value = "true";
        }
      }
      out.set(key, { source: negated ? `--no-${key}` : `--${key}`, raw: value });
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        problems.push(`--${key} needs a value`);
        continue;
      }
      value = next;
      i++;
    }
    out.set(key, { source: `--${key}`, raw: value });
  }
  return out;
}

/**
 * Builds the config from flags (highest precedence), then PATCHBAY_* environment variables, then defaults.
 * An empty environment variable counts as unset, as shells make "unset" and "empty" hard to tell apart.
 */
export function loadConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Config {
  const problems: string[] = [];
  const flags = parseFlags(argv, problems);
  const origins = new Map<SettingName, Origin>();
  const raw: Partial<Record<SettingName, string>> = {};
  for (const name of NAMES) {
    const envValue = env[envName(name)];
    const origin =
      flags.get(name) ??
      (envValue !== undefined && envValue !== "" ? { source: envName(name), raw: envValue } : undefined) ??
      (SETTINGS[name].default !== undefined ? { source: "default", raw: SETTINGS[name].default } : undefined);
    if (origin) {
      origins.set(name, origin);
      raw[name] = origin.raw;
    }
  }
  const result = schema.safeParse(raw);
  if (result.success && problems.length === 0) return result.data;
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = issue.path[0];
      if (typeof key !== "string" || !isSettingName(key)) {
        problems.push(issue.message);
        continue;
      }
      const origin = origins.get(key);
      const got =
        origin && !SETTINGS[key].sensitive ? `, got ${JSON.stringify(origin.raw)} from ${origin.source}` : "";
      problems.push(`${label(key)}: ${issue.message}${got}`);
    }
  }
  throw new ConfigError(problems);
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v && typeof v === "object") deepFreeze(v);
  return Object.freeze(o);
}

/** The configuration used when nothing is set: a valid Config, handy as a base in tests. */
export const DEFAULTS: Config = deepFreeze(loadConfig([], {}));

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** Table of every setting. "markdown" is for the README; "text" for `patchbay --help`. */
export function configHelp(format: "text" | "markdown" = "text"): string {
  const rows = NAMES.map((name) => {
    const meta = SETTINGS[name];
    const flag = meta.envOnly
      ? "(env only)"
      : BOOLEAN_SETTINGS.has(name)
        ? `--[no-]${name}`
        : `--${name} <${meta.valueName ?? "value"}>`;
    return [flag, envName(name), meta.defaultLabel ?? meta.default ?? "", meta.description] as const;
  });
  const header = ["Flag", "Environment variable", "Default", "Description"] as const;
  if (format === "markdown") {
    const cell = (s: string) => s.replaceAll("|", "\\|");
    return [
      `| ${header.join(" | ")} |`,
      "|---|---|---|---|",
      ...rows.map(([f, e, d, desc]) => `| \`${cell(f)}\` | \`${e}\` | ${cell(d)} | ${cell(desc)} |`),
    ].join("\n");
  }
  // Two lines per setting keeps the table readable in an 80-column terminal despite long defaults.
  const flagWidth = Math.max(...rows.map((r) => r[0].length));
  const envWidth = Math.max(...rows.map((r) => r[1].length));
  const out = [
    `  ${header[0].padEnd(flagWidth)}  ${header[1].padEnd(envWidth)}  ${header[2]}`,
    `      ${header[3]}`,
    "",
  ];
  for (const [flag, envVar, def, desc] of rows) {
    out.push(
      `  ${flag.padEnd(flagWidth)}  ${envVar.padEnd(envWidth)}  ${def ? `default: ${def}` : ""}`.trimEnd(),
    );
    for (const line of wrap(desc, 74)) out.push(`      ${line}`);
  }
  return out.join("\n");
}
