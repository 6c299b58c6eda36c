import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import { pino } from "pino";
import { type Config, loadConfig } from "../../src/config.ts";
import { type AppCredentials, AppRegistry, AppsError, newId } from "../../src/sfu/apps.ts";

const logger = pino({ level: "silent" });
const APP_A = { appId: "0123456789abcdef0123456789abcdef", secret: "secret-a-0123456789", name: "a" };
const APP_B = { appId: "fedcba9876543210fedcba9876543210", secret: "secret-b-0123456789" };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "patchbay-apps-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(env: Record<string, string> = {}, argv: string[] = []): Config {
  return loadConfig(["--data-dir", join(dir, "data"), ...argv], env);
}

async function loadError(cfg: Config): Promise<AppsError> {
  try {
    await AppRegistry.load(cfg, logger);
  } catch (err) {
    assert.ok(err instanceof AppsError, `expected AppsError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the apps to be rejected");
}

describe("newId", () => {
  test("is 32 lowercase hex characters and unique", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  });
});

describe("default app", () => {
  test("is created on first start with a fresh id and secret, in a 0600 file", async () => {
    const { registry, created } = await AppRegistry.load(config(), logger);
    assert.ok(created);
    assert.match(created.appId, /^[0-9a-f]{32}$/);
    assert.match(created.secret, /^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url
    const path = join(dir, "data", "default-app.json");
    assert.deepEqual(registry.source, { kind: "default", path });
    assert.deepEqual(
      registry.list().map((a) => a.appId),
      [created.appId],
    );
    const stored = JSON.parse(await readFile(path, "utf8")) as AppCredentials;
    assert.equal(stored.appId, created.appId);
    assert.equal(stored.secret, created.secret);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  test("is reused on restart", async () => {
    const first = await AppRegistry.load(config(), logger);
    const second = await AppRegistry.load(config(), logger);
    assert.equal(second.created, undefined);
    const [a] = first.registry.list();
    const [b] = second.registry.list();
    assert.equal(b.appId, a.appId);
    assert.equal(b.secret, a.secret);
  });

  test("differs between data directories", async () => {
    const a = await AppRegistry.load(config(), logger);
    const b = await AppRegistry.load(config({}, ["--data-dir", join(dir, "other")]), logger);
    assert.notEqual(a.created?.appId, b.created?.appId);
    assert.notEqual(a.created?.secret, b.created?.secret);
  });

  test("a corrupt file is a clear error, not a silent new app", async () => {
    await AppRegistry.load(config(), logger);
    const path = join(dir, "data", "default-app.json");
    await writeFile(path, "{ not json");
    const err = await loadError(config());
    assert.ok(err.message.includes(path));
    assert.match(err.message, /corrupt.*delete it/s);
    await writeFile(path, JSON.stringify({ appId: "nope", secret: "short" }));
    const invalid = await loadError(config());
    assert.match(invalid.message, /appId: must be 32 lowercase hex/);
    assert.match(invalid.message, /secret: must be at least 16/);
  });

  test("an unusable data directory is a clear error", async () => {
    await writeFile(join(dir, "file"), "");
    const err = await loadError(config({}, ["--data-dir", join(dir, "file", "data")]));
    assert.match(err.message, /default app file.*--data-dir/);
  });
});

describe("configured apps", () => {
  test("PATCHBAY_APPS replaces the default app", async () => {
    const { registry, created } = await AppRegistry.load(
      config({ PATCHBAY_APPS: JSON.stringify([APP_A, APP_B]) }),
      logger,
    );
    assert.equal(created, undefined);
    assert.deepEqual(registry.source, { kind: "env" });
    assert.deepEqual(
      registry.list().map((a) => [a.appId, a.name]),
      [
        [APP_A.appId, "a"],
        [APP_B.appId, undefined],
      ],
    );
    await assert.rejects(stat(join(dir, "data", "default-app.json")), { code: "ENOENT" });
  });

  test("--apps-file is read", async () => {
    const file = join(dir, "apps.json");
    await writeFile(file, JSON.stringify([APP_B]));
    const { registry } = await AppRegistry.load(config({}, ["--apps-file", file]), logger);
    assert.deepEqual(registry.source, { kind: "file", path: file });
    assert.equal(registry.get(APP_B.appId)?.secret, APP_B.secret);
  });

  test("a missing apps file names the file and the setting", async () => {
    const file = join(dir, "missing.json");
    const err = await loadError(config({}, ["--apps-file", file]));
    assert.ok(err.message.includes(file));
    assert.match(err.message, /--apps-file/);
  });

  const invalid: [what: string, json: string, expected: RegExp][] = [
    ["not JSON", "[{", /PATCHBAY_APPS is not valid JSON/],
    ["not an array", JSON.stringify(APP_A), /must be a JSON array/],
    ["empty", "[]", /at least one app/],
    ["short appId", JSON.stringify([{ ...APP_A, appId: "abc" }]), /\[0\]\.appId: must be 32 lowercase hex/],
    [
      "uppercase appId",
      JSON.stringify([{ ...APP_A, appId: APP_A.appId.toUpperCase() }]),
      /\[0\]\.appId: must be 32 lowercase hex/,
    ],
    [
      "short secret",
      JSON.stringify([APP_A, { ...APP_B, secret: "short" }]),
      /\[1\]\.secret: must be at least 16/,
    ],
    [
      "secret with a space",
      JSON.stringify([{ ...APP_A, secret: "with a space 0123456" }]),
      /\[0\]\.secret: .*spaces/,
    ],
    ["missing secret", JSON.stringify([{ appId: APP_A.appId }]), /\[0\]\.secret/],
    ["misspelled key", JSON.stringify([{ ...APP_A, secrte: "x" }]), /secrte/],
    [
      "duplicate appId",
      JSON.stringify([APP_A, { ...APP_B, appId: APP_A.appId }]),
      /\[1\]\.appId: duplicate appId/,
    ],
  ];
  for (const [what, json, expected] of invalid) {
    test(`PATCHBAY_APPS ${what} is rejected clearly`, async () => {
      const err = await loadError(config({ PATCHBAY_APPS: json }));
      assert.match(err.message, /PATCHBAY_APPS/);
      assert.match(err.message, expected);
    });
  }

  test("an invalid apps file names the file and the entry", async () => {
    const file = join(dir, "apps.json");
    await writeFile(file, JSON.stringify([{ ...APP_A, secret: "short" }]));
    const err = await loadError(config({}, ["--apps-file", file]));
    assert.ok(err.message.includes(file));
    assert.match(err.message, /\[0\]\.secret: must be at least 16/);
  });

  test("secrets are never echoed in errors", async () => {
    const err = await loadError(config({ PATCHBAY_APPS: JSON.stringify([{ ...APP_A, appId: "bad" }]) }));
    assert.ok(!err.message.includes(APP_A.secret));
  });
});

describe("authenticate", () => {
  async function registry() {
    return (await AppRegistry.load(config({ PATCHBAY_APPS: JSON.stringify([APP_A, APP_B]) }), logger))
      .registry;
  }

  test("the right secret for the app is ok", async () => {
    const apps = await registry();
    assert.equal(apps.authenticate(APP_A.appId, `Bearer ${APP_A.secret}`), "ok");
    assert.equal(apps.authenticate(APP_B.appId, `bearer ${APP_B.secret}`), "ok");
    assert.equal(apps.authenticate(APP_B.appId, `Bearer  ${APP_B.secret} `), "ok");
  });

  test("an unknown app is unknown_app whatever the header", async () => {
    const apps = await registry();
    assert.equal(apps.authenticate(newId(), `Bearer ${APP_A.secret}`), "unknown_app");
    assert.equal(apps.authenticate(newId(), undefined), "unknown_app");
  });

  test("wrong, missing or malformed credentials are unauthorized", async () => {
    const apps = await registry();
    const cases: (string | undefined)[] = [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      `Bearer ${APP_B.secret}`, // another app's secret
      `Bearer ${APP_A.secret}x`,
      `Bearer ${APP_A.secret.slice(0, -1)}`,
      `Bearer ${APP_A.secret} extra`,
      APP_A.secret, // no scheme
      `Basic ${APP_A.secret}`,
      `Basic ${Buffer.from(`${APP_A.appId}:${APP_A.secret}`).toString("base64")}`,
      `Bearer${APP_A.secret}`,
    ];
    for (const header of cases) {
      assert.equal(apps.authenticate(APP_A.appId, header), "unauthorized", JSON.stringify(header));
    }
  });
});

describe("per-app state", () => {
  test("load attaches state from the factory; withState re-attaches without re-reading", async () => {
    const cfg = config({ PATCHBAY_APPS: JSON.stringify([APP_A, APP_B]) });
    const { registry } = await AppRegistry.load(cfg, logger, (creds) => ({
      sessions: new Map(),
      id: creds.appId,
    }));
    assert.equal(registry.get(APP_A.appId)?.state.id, APP_A.appId);
    assert.equal(registry.get(newId()), undefined);

    const seen: AppCredentials[] = [];
    const plain = (await AppRegistry.load(cfg, logger)).registry;
    assert.equal(plain.get(APP_A.appId)?.state, undefined);
    const withCounts = plain.withState((creds) => {
      seen.push(creds);
      return { count: 0 };
    });
    assert.deepEqual(seen, [APP_A, APP_B]);
    assert.deepEqual(withCounts.get(APP_B.appId)?.state, { count: 0 });
    assert.equal(withCounts.authenticate(APP_B.appId, `Bearer ${APP_B.secret}`), "ok");
    assert.deepEqual(withCounts.source, plain.source);
  });

  test("apps are immutable", async () => {
    const { registry } = await AppRegistry.load(config({ PATCHBAY_APPS: JSON.stringify([APP_A]) }), logger);
    assert.ok(Object.isFrozen(registry.get(APP_A.appId)));
  });
});
