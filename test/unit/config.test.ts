import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, configHelp, DEFAULTS, loadConfig } from "../../src/config.ts";

// The settings the product promises, written out independently of the implementation's own table.
const SETTINGS = [
  "http-host",
  "http-port",
  "announced-ip",
  "rtc-listen-ip",
  "rtc-min-port",
  "rtc-max-port",
  "media-plane",
  "rtc-shared-port",
  "publish-bitrate-cap",
  "turn-secret",
  "turn-urls",
  "stun-urls",
  "data-dir",
  "log-level",
  "log-format",
  "apps-file",
  "session-connect-timeout-ms",
  "session-disconnect-grace-ms",
  "session-liveness-timeout-ms",
  "ws-connect-timeout-ms",
  "ws-max-message-bytes",
  "ingest-high-water-ms",
  "ingest-low-water-ms",
  "endpoint-policy",
  "ws-ca-file",
  "egress-reorder",
  "ingest-opus-fec",
  "ingest-opus-complexity",
  "examples",
  "http-headers-timeout-ms",
  "http-request-timeout-ms",
  "http-idle-timeout-ms",
  "http-max-connections",
  "egress-reconnect-window-ms",
  "ws-ping-interval-ms",
  "ws-max-messages-per-second",
  "ffmpeg-path",
  "jpeg-fps",
  "max-sessions-per-app",
  "max-sessions",
  "max-adapters-per-app",
  "max-adapters",
  "max-tracks-per-request",
  "max-tracks-per-session",
  "examples-recording-max-mb",
  "examples-disk-quota-mb",
];

const envOf = (name: string) => `PATCHBAY_${name.toUpperCase().replaceAll("-", "_")}`;

function configError(argv: string[], env: Record<string, string> = {}): ConfigError {
  try {
    loadConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(argv)} ${JSON.stringify(env)} to be rejected`);
}

describe("loadConfig defaults", () => {
  test("no flags and no env give DEFAULTS", () => {
    assert.deepEqual(loadConfig([], {}), DEFAULTS);
    assert.equal(DEFAULTS.http.host, "127.0.0.1");
    assert.equal(DEFAULTS.http.port, 8787);
    assert.equal(DEFAULTS.rtc.announcedIp, undefined);
    assert.equal(DEFAULTS.rtc.listenIp, "127.0.0.1");
    assert.equal(DEFAULTS.rtc.minPort, 0);
    assert.equal(DEFAULTS.rtc.maxPort, 0);
    assert.equal(DEFAULTS.dataDir, "./data");
    assert.deepEqual(DEFAULTS.log, { level: "info", format: "auto" });
    assert.deepEqual(DEFAULTS.apps, { file: undefined, json: undefined });
    assert.deepEqual(DEFAULTS.session, {
      connectTimeoutMs: 60000,
      disconnectGraceMs: 30000,
      livenessTimeoutMs: 30000,
    });
    assert.equal(DEFAULTS.rtc.publishBitrateCap, 2_500_000);
    assert.deepEqual(DEFAULTS.adapter, {
      connectTimeoutMs: 5000,
      maxMessageBytes: 32768,
      ingestHighWaterMs: 60000,
      ingestLowWaterMs: 30000,
      endpointPolicy: "default",
      caFile: undefined,
      egressReorder: true,
      ingestOpusFec: "adaptive",
      ingestOpusComplexity: 5,
      egressReconnectWindowMs: 15000,
      pingIntervalMs: 10000,
      maxMessagesPerSecond: 1000,
      ffmpegPath: "ffmpeg",
      jpegFps: 1,
    });
    assert.deepEqual(DEFAULTS.turn, { secret: undefined, urls: [], stunUrls: [] });
    assert.deepEqual(DEFAULTS.limits, {
      sessionsPerApp: 500,
      sessions: 1000,
      adaptersPerApp: 200,
      adapters: 400,
      tracksPerRequest: 64,
      tracksPerSession: 256,
    });
    assert.deepEqual(DEFAULTS.http, {
      host: "127.0.0.1",
      port: 8787,
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      idleTimeoutMs: 5000,
      maxConnections: 1000,
    });
    assert.equal(DEFAULTS.examples, true);
  });

  test("DEFAULTS cannot be mutated", () => {
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.ok(Object.isFrozen(DEFAULTS.http));
  });

  test("unrelated environment variables are ignored", () => {
    assert.deepEqual(loadConfig([], { HOME: "/root", PATCHBAY_SOMETHING_ELSE: "x" }), DEFAULTS);
  });
});

describe("loadConfig precedence", () => {
  test("env wins over default, flag wins over env", () => {
    assert.equal(loadConfig([], { PATCHBAY_HTTP_PORT: "9000" }).http.port, 9000);
    assert.equal(loadConfig(["--http-port", "9001"], { PATCHBAY_HTTP_PORT: "9000" }).http.port, 9001);
    assert.equal(loadConfig(["--http-port=9002"], { PATCHBAY_HTTP_PORT: "9000" }).http.port, 9002);
  });

  test("a valid flag overrides an invalid env value", () => {
    assert.equal(loadConfig(["--log-level", "debug"], { PATCHBAY_LOG_LEVEL: "loud" }).log.level, "debug");
  });

  test("the last occurrence of a flag wins", () => {
    assert.equal(loadConfig(["--http-port", "1", "--http-port", "2"], {}).http.port, 2);
  });

  test("an empty environment variable counts as unset", () => {
    assert.equal(loadConfig([], { PATCHBAY_HTTP_PORT: "" }).http.port, 8787);
  });

  test("every setting is reachable by flag and by env", () => {
    const values: Record<string, [string, (c: ReturnType<typeof loadConfig>) => unknown, unknown]> = {
      "http-host": ["0.0.0.0", (c) => c.http.host, "0.0.0.0"],
      "http-port": ["0", (c) => c.http.port, 0],
      "announced-ip": ["203.0.113.7", (c) => c.rtc.announcedIp, "203.0.113.7"],
      "rtc-listen-ip": ["10.0.0.2", (c) => c.rtc.listenIp, "10.0.0.2"],
      "data-dir": ["/var/lib/patchbay", (c) => c.dataDir, "/var/lib/patchbay"],
      "log-level": ["trace", (c) => c.log.level, "trace"],
      "log-format": ["json", (c) => c.log.format, "json"],
      "apps-file": ["/etc/patchbay/apps.json", (c) => c.apps.file, "/etc/patchbay/apps.json"],
      "session-connect-timeout-ms": ["1000", (c) => c.session.connectTimeoutMs, 1000],
      "session-disconnect-grace-ms": ["2000", (c) => c.session.disconnectGraceMs, 2000],
      "ws-connect-timeout-ms": ["3000", (c) => c.adapter.connectTimeoutMs, 3000],
      "ws-max-message-bytes": ["65536", (c) => c.adapter.maxMessageBytes, 65536],
      "ingest-high-water-ms": ["90000", (c) => c.adapter.ingestHighWaterMs, 90000],
      "ingest-low-water-ms": ["100", (c) => c.adapter.ingestLowWaterMs, 100],
      "endpoint-policy": ["strict", (c) => c.adapter.endpointPolicy, "strict"],
      "ws-ca-file": ["/etc/ssl/private-ca.pem", (c) => c.adapter.caFile, "/etc/ssl/private-ca.pem"],
      "egress-reorder": ["false", (c) => c.adapter.egressReorder, false],
      "ingest-opus-fec": ["false", (c) => c.adapter.ingestOpusFec, false],
      "ingest-opus-complexity": ["9", (c) => c.adapter.ingestOpusComplexity, 9],
      examples: ["false", (c) => c.examples, false],
      "ffmpeg-path": ["/opt/ffmpeg/bin/ffmpeg", (c) => c.adapter.ffmpegPath, "/opt/ffmpeg/bin/ffmpeg"],
      "jpeg-fps": ["2.5", (c) => c.adapter.jpegFps, 2.5],
      "stun-urls": [
        "stun:198.51.100.7:3478, stuns:turn.example.com",
        (c) => c.turn.stunUrls,
        ["stun:198.51.100.7:3478", "stuns:turn.example.com"],
      ],
    };
    for (const [name, [raw, read, expected]] of Object.entries(values)) {
      assert.deepEqual(read(loadConfig([`--${name}`, raw], {})), expected, `--${name}`);
      assert.deepEqual(read(loadConfig([], { [envOf(name)]: raw })), expected, envOf(name));
    }
    const ports = loadConfig(["--rtc-min-port", "40000", "--rtc-max-port", "40100"], {});
    assert.deepEqual([ports.rtc.minPort, ports.rtc.maxPort], [40000, 40100]);
    const envPorts = loadConfig([], { PATCHBAY_RTC_MIN_PORT: "40000", PATCHBAY_RTC_MAX_PORT: "40000" });
    assert.deepEqual([envPorts.rtc.minPort, envPorts.rtc.maxPort], [40000, 40000]);
    assert.equal(loadConfig([], { PATCHBAY_APPS: "[]" }).apps.json, "[]");
  });

  test("TURN: the secret and its URLs go together; the secret never appears in an error", () => {
    const urls = "turn:198.51.100.7:3478?transport=udp,turns:turn.example.com:5349?transport=tcp";
    const c = loadConfig(["--turn-secret", "0123456789abcdef0123", "--turn-urls", urls], {});
    assert.equal(c.turn.secret, "0123456789abcdef0123");
    assert.deepEqual(c.turn.urls, [
      "turn:198.51.100.7:3478?transport=udp",
      "turns:turn.example.com:5349?transport=tcp",
    ]);
    const env = loadConfig([], { PATCHBAY_TURN_SECRET: "0123456789abcdef0123", PATCHBAY_TURN_URLS: urls });
    assert.equal(env.turn.secret, "0123456789abcdef0123");
    assert.equal(loadConfig([], {}).turn.secret, undefined);
    assert.deepEqual(loadConfig([], {}).turn.urls, []);
    assert.match(
      configError(["--turn-secret", "0123456789abcdef0123"]).message,
      /--turn-urls.*at least one turn: URL/,
    );
    const short = configError(["--turn-secret", "hunter2", "--turn-urls", urls]);
    assert.match(short.message, /--turn-secret.*at least 16 characters/);
    assert.ok(!short.message.includes("hunter2"), short.message);
    assert.match(
      configError(["--turn-urls", "http://x"]).message,
      /--turn-urls.*turn\/turns: URLs.*"http:\/\/x"/,
    );
    assert.match(configError(["--stun-urls", "turn:x:3478"]).message, /--stun-urls.*"turn:x:3478"/);
  });

  test("ingest-opus-fec: adaptive (default), true, false, --no-", () => {
    assert.equal(loadConfig([], {}).adapter.ingestOpusFec, "adaptive");
    assert.equal(loadConfig(["--ingest-opus-fec", "true"], {}).adapter.ingestOpusFec, true);
    assert.equal(loadConfig(["--no-ingest-opus-fec"], {}).adapter.ingestOpusFec, false);
    assert.equal(
      loadConfig(["--ingest-opus-fec", "ADAPTIVE", "--http-port", "1"], {}).adapter.ingestOpusFec,
      "adaptive",
    );
    assert.equal(loadConfig([], { PATCHBAY_INGEST_OPUS_FEC: "0" }).adapter.ingestOpusFec, false);
    assert.match(
      configError(["--ingest-opus-fec=sometimes"]).message,
      /--ingest-opus-fec.*expected adaptive, true, false, 1 or 0/,
    );
  });

  test("rtc-listen-ip follows http-host unless set", () => {
    assert.equal(loadConfig(["--http-host", "127.0.0.1"], {}).rtc.listenIp, "127.0.0.1");
    assert.equal(loadConfig(["--http-host", "localhost"], {}).rtc.listenIp, "127.0.0.1");
    assert.equal(loadConfig(["--http-host", "::1"], {}).rtc.listenIp, "127.0.0.1");
    assert.equal(loadConfig(["--http-host", "0.0.0.0"], {}).rtc.listenIp, "0.0.0.0");
    assert.equal(loadConfig(["--http-host", "192.168.1.5"], {}).rtc.listenIp, "0.0.0.0");
    assert.equal(
      loadConfig(["--http-host", "0.0.0.0", "--rtc-listen-ip", "10.1.2.3"], {}).rtc.listenIp,
      "10.1.2.3",
    );
  });

  test("booleans accept true/false/1/0 and --no-", () => {
    assert.equal(loadConfig(["--no-examples"], {}).examples, false);
    assert.equal(loadConfig(["--examples"], { PATCHBAY_EXAMPLES: "0" }).examples, true);
    assert.equal(loadConfig(["--examples", "0"], {}).examples, false);
    assert.equal(loadConfig(["--examples=false"], {}).examples, false);
    assert.equal(loadConfig([], { PATCHBAY_EXAMPLES: "0" }).examples, false);
    assert.equal(loadConfig([], { PATCHBAY_EXAMPLES: "TRUE" }).examples, true);
    assert.equal(loadConfig([], { PATCHBAY_EXAMPLES: "1" }).examples, true);
    // A bare boolean flag never swallows the next flag.
    const c = loadConfig(["--examples", "--http-port", "1"], {});
    assert.equal(c.examples, true);
    assert.equal(c.http.port, 1);
  });
});

describe("loadConfig validation", () => {
  const bad: [name: string, value: string, otherArgs?: string[]][] = [
    ["http-port", "abc"],
    ["http-port", "12abc"],
    ["http-port", "-1"],
    ["http-port", "1.5"],
    ["http-port", "65536"],
    ["http-port", " 80"],
    ["http-host", "http://example.com"],
    ["http-host", "example.com:80"],
    ["announced-ip", "example.com"],
    ["announced-ip", "1.2.3"],
    ["rtc-listen-ip", "all"],
    ["rtc-min-port", "80", ["--rtc-max-port", "2000"]],
    ["rtc-max-port", "70000", ["--rtc-min-port", "2000"]],
    ["data-dir", ""],
    ["log-level", "loud"],
    ["log-format", "xml"],
    ["session-connect-timeout-ms", "0"],
    ["session-disconnect-grace-ms", "1e3"],
    ["ws-connect-timeout-ms", "3000000000"],
    ["ws-max-message-bytes", "0"],
    ["ingest-high-water-ms", "-5"],
    ["ingest-low-water-ms", "ten"],
    ["endpoint-policy", "lax"],
    ["jpeg-fps", "0"],
    ["jpeg-fps", "31"],
    ["jpeg-fps", "1e1"],
    ["examples", "yes"],
  ];

  for (const [name, value, otherArgs = []] of bad) {
    test(`--${name} ${JSON.stringify(value)} is rejected, naming flag, env and value`, () => {
      const err = configError([`--${name}=${value}`, ...otherArgs]);
      assert.equal(err.problems.length, 1, err.message);
      assert.match(err.problems[0], new RegExp(`--${name}\\b`));
      assert.ok(err.problems[0].includes(envOf(name)), err.message);
      assert.ok(err.problems[0].includes(JSON.stringify(value)), err.message);
    });
  }

  test("an env error says it came from the environment", () => {
    const err = configError([], { PATCHBAY_HTTP_PORT: "abc" });
    assert.match(err.message, /PATCHBAY_HTTP_PORT.*"abc" from PATCHBAY_HTTP_PORT/);
  });

  test("every problem is reported at once", () => {
    const err = configError(["--http-port", "x", "--log-level", "y"], { PATCHBAY_INGEST_LOW_WATER_MS: "z" });
    assert.equal(err.problems.length, 3, err.message);
    for (const name of ["http-port", "log-level", "ingest-low-water-ms"])
      assert.ok(err.message.includes(name));
  });

  test("rtc ports: both or neither, min <= max", () => {
    assert.match(configError(["--rtc-min-port", "40000"]).message, /rtc-max-port.*rtc-min-port/);
    assert.match(configError([], { PATCHBAY_RTC_MAX_PORT: "40000" }).message, /rtc-min-port.*rtc-max-port/);
    assert.match(
      configError(["--rtc-min-port", "40001", "--rtc-max-port", "40000"]).message,
      /--rtc-min-port.*must not exceed rtc-max-port/,
    );
  });

  test("ingest low water must be below high water", () => {
    assert.match(
      configError(["--ingest-low-water-ms", "60000"]).message,
      /--ingest-low-water-ms.*below ingest-high-water-ms \(60000\)/,
    );
    assert.match(
      configError(["--ingest-high-water-ms", "1000"]).message,
      /ingest-low-water-ms.*below ingest-high-water-ms \(1000\)/,
    );
  });

  test("apps-file and PATCHBAY_APPS are mutually exclusive, and the inline JSON is never echoed", () => {
    const err = configError(["--apps-file", "apps.json"], {
      PATCHBAY_APPS: '[{"secret":"hunter2hunter2hunter2"}]',
    });
    assert.match(err.message, /PATCHBAY_APPS.*apps-file/);
    assert.ok(!err.message.includes("hunter2"));
  });

  test("unknown flags, missing values and stray arguments are rejected", () => {
    assert.match(
      configError(["--http-prot", "1"]).message,
      /unknown flag "--http-prot"; did you mean --http-port\?/,
    );
    assert.match(configError(["--no-example"]).message, /did you mean --no-examples\?/);
    assert.match(configError(["--no-http-port"]).message, /--http-port is not an on\/off setting/);
    assert.doesNotMatch(configError(["--colour", "1"]).message, /did you mean/);
    assert.match(configError(["--apps", "[]"]).message, /unknown flag "--apps".*PATCHBAY_APPS/);
    assert.match(configError(["--no-http-port"]).message, /unknown flag/);
    assert.match(configError(["--http-port"]).message, /--http-port needs a value/);
    assert.match(configError(["--data-dir", "--http-port", "1"]).message, /--data-dir needs a value/);
    assert.match(configError(["8787"]).message, /unexpected argument "8787"/);
    assert.match(configError(["--no-examples=1"]).message, /--no-examples takes no value/);
  });
});

describe("configHelp", () => {
  test("lists every setting with its flag, env var and default", () => {
    const help = configHelp();
    for (const name of SETTINGS) {
      assert.ok(help.includes(`--${name}`) || help.includes(`--[no-]${name}`), `help lacks --${name}`);
      assert.ok(help.includes(envOf(name)), `help lacks ${envOf(name)}`);
    }
    assert.ok(help.includes("PATCHBAY_APPS "), "help lacks PATCHBAY_APPS");
    for (const def of ["127.0.0.1", "8787", "./data", "info", "auto", "60000", "30000", "5000", "32768"]) {
      assert.ok(help.includes(def), `help lacks default ${def}`);
    }
  });

  test("markdown variant has one row per setting", () => {
    const rows = configHelp("markdown")
      .split("\n")
      .filter((l) => l.startsWith("| `"));
    assert.equal(rows.length, SETTINGS.length + 1); // + PATCHBAY_APPS
  });
});

describe("patchbay CLI", () => {
  const bin = fileURLToPath(new URL("../../bin/patchbay.js", import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000 });

  test("--help exits 0 and prints every setting", () => {
    const r = run("--help");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Cloudflare Realtime SFU/);
    for (const name of SETTINGS) assert.ok(r.stdout.includes(envOf(name)), `--help lacks ${envOf(name)}`);
  });

  test("--version prints the package version", () => {
    const r = run("--version");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  test("--http-port abc exits 2 naming http-port", () => {
    const r = run("--http-port", "abc");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--http-port.*"abc"/);
    assert.equal(r.stdout, "");
  });
});
