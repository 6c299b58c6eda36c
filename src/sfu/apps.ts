import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { newId } from "./ids.ts";

export { newId };

export interface AppCredentials {
  readonly appId: string;
  readonly secret: string;
  readonly name?: string;
}

/** Credentials plus whatever per-app state the layer above attaches; this module never looks inside it. */
export interface App<T> extends AppCredentials {
  readonly state: T;
}

export type AuthResult = "ok" | "unknown_app" | "unauthorized";

/** Where the apps came from, so the banner can say where the secret lives. */
export type AppSource =
  | { readonly kind: "default"; readonly path: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "env" };

export interface LoadedApps<T> {
  readonly registry: AppRegistry<T>;
  /** Set when this start created the default app (first run on this data directory). */
  readonly created?: AppCredentials;
}

/** Bad apps configuration or default-app file; the message names the source and the fix. */
export class AppsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppsError";
  }
}

const appSchema = z.strictObject({
  appId: z.string().regex(/^[0-9a-f]{32}$/, { error: "must be 32 lowercase hex characters" }),
  // Visible ASCII only: the secret travels in an Authorization header, where spaces and controls do not survive.
  secret: z
    .string()
    .min(16, { error: "must be at least 16 characters" })
    .regex(/^[\x21-\x7e]+$/, { error: "must be visible ASCII characters without spaces" }),
  name: z.string().min(1, { error: "must not be empty when given" }).optional(),
});

const appListSchema = z
  .array(appSchema, { error: "must be a JSON array of apps" })
  .min(1, { error: "must list at least one app" })
  .superRefine((apps, ctx) => {
    const seen = new Set<string>();
    apps.forEach((app, i) => {
      if (seen.has(app.appId)) {
        ctx.addIssue({ code: "custom", path: [i, "appId"], message: `duplicate appId ${app.appId}` });
      }
      seen.add(app.appId);
    });
  });

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
      return `  - ${where ? `${where.replace(/^\./, "")}: ` : ""}${issue.message}`;
    })
    .join("\n");
}

function parseAppList(text: string, sourceLabel: string): AppCredentials[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AppsError(`${sourceLabel} is not valid JSON: ${(err as Error).message}`);
  }
  const result = appListSchema.safeParse(json);
  if (!result.success) {
    throw new AppsError(
      `${sourceLabel} is invalid (expected [{"appId": "<32 lowercase hex>", "secret": "<16+ chars>", "name"?: "..."}]):\n` +
        describeIssues(result.error),
    );
  }
  return result.data;
}

function errorCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

async function loadOrCreateDefaultApp(
  path: string,
  logger: Logger,
): Promise<{ creds: AppCredentials; created: boolean }> {
  let text: string | undefined;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errorCode(err) !== "ENOENT") {
      throw new AppsError(
        `cannot read the default app file ${path}: ${(err as Error).message} (check --data-dir / PATCHBAY_DATA_DIR)`,
      );
    }
  }
  if (text === undefined) {
    const creds: AppCredentials = {
      appId: newId(),
      secret: randomBytes(32).toString("base64url"),
      name: "default",
    };
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      // Write aside, then link into place: readers never see a half-written file, and if another process
      // created the file meanwhile, link fails and we adopt theirs instead of printing a secret nobody stores.
      const tmp = `${path}.${process.pid}.${newId()}.tmp`;
      await writeFile(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600, flag: "wx" });
      try {
        await link(tmp, path);
        return { creds, created: true };
      } catch (err) {
        if (errorCode(err) !== "EEXIST") throw err;
        text = await readFile(path, "utf8");
      } finally {
        await unlink(tmp).catch(() => {});
      }
    } catch (err) {
      if (err instanceof AppsError) throw err;
      throw new AppsError(
        `cannot create the default app file ${path}: ${(err as Error).message} (check --data-dir / PATCHBAY_DATA_DIR)`,
      );
    }
  }
  const fix = "fix it, or delete it to create a new default app (clients then need the new id and secret)";
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AppsError(`the default app file ${path} is corrupt (${(err as Error).message}); ${fix}`);
  }
  const result = appSchema.safeParse(json);
  if (!result.success) {
    throw new AppsError(`the default app file ${path} is invalid; ${fix}:\n${describeIssues(result.error)}`);
  }
  const mode = (await stat(path)).mode;
  if ((mode & 0o077) !== 0) {
    logger.warn(
      { path, mode: (mode & 0o777).toString(8) },
      "default app file is readable by other users; chmod 600 it",
    );
  }
  return { creds: result.data, created: false };
}

interface Entry<T> {
  readonly app: App<T>;
  readonly secretDigest: Buffer;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export class AppRegistry<T> {
  readonly source: AppSource;
  readonly #entries: ReadonlyMap<string, Entry<T>>;

  private constructor(
    source: AppSource,
    apps: readonly AppCredentials[],
    factory: (creds: AppCredentials) => T,
  ) {
    this.source = source;
    this.#entries = new Map(
      apps.map((creds) => {
        const frozen: AppCredentials = Object.freeze(
          creds.name === undefined
            ? { appId: creds.appId, secret: creds.secret }
            : { appId: creds.appId, secret: creds.secret, name: creds.name },
        );
        const app: App<T> = Object.freeze({ ...frozen, state: factory(frozen) });
        return [creds.appId, { app, secretDigest: sha256(creds.secret) }];
      }),
    );
  }

  /**
   * Apps from --apps-file or PATCHBAY_APPS when configured; otherwise the default app kept in
   * `<data-dir>/default-app.json`, created on first start.
   */
  static async load(config: Pick<Config, "apps" | "dataDir">, logger: Logger): Promise<LoadedApps<undefined>>;
  static async load<T>(
    config: Pick<Config, "apps" | "dataDir">,
    logger: Logger,
    factory: (creds: AppCredentials) => T,
  ): Promise<LoadedApps<T>>;
  static async load(
    config: Pick<Config, "apps" | "dataDir">,
    logger: Logger,
    factory: (creds: AppCredentials) => unknown = () => undefined,
  ): Promise<LoadedApps<unknown>> {
    if (config.apps.file !== undefined) {
      const path = resolve(config.apps.file);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (err) {
        throw new AppsError(
          `cannot read the apps file ${path} (--apps-file / PATCHBAY_APPS_FILE): ${(err as Error).message}`,
        );
      }
      const apps = parseAppList(text, `the apps file ${path}`);
      logger.info({ path, apps: apps.length }, "loaded apps from file");
      return { registry: new AppRegistry({ kind: "file", path }, apps, factory) };
    }
    if (config.apps.json !== undefined) {
      const apps = parseAppList(config.apps.json, "PATCHBAY_APPS");
      logger.info({ apps: apps.length }, "loaded apps from PATCHBAY_APPS");
      return { registry: new AppRegistry({ kind: "env" }, apps, factory) };
    }
    const path = join(resolve(config.dataDir), "default-app.json");
    const { creds, created } = await loadOrCreateDefaultApp(path, logger);
    logger.info({ path, appId: creds.appId }, created ? "created default app" : "loaded default app");
    const registry = new AppRegistry({ kind: "default", path }, [creds], factory);
    return created ? { registry, created: creds } : { registry };
  }

  /** Same credentials, fresh state: lets the SFU attach its per-app state to a registry loaded by the CLI. */
  withState<U>(factory: (creds: AppCredentials) => U): AppRegistry<U> {
    return new AppRegistry(this.source, this.list(), factory);
  }

  get(appId: string): App<T> | undefined {
    return this.#entries.get(appId)?.app;
  }

  list(): App<T>[] {
    return [...this.#entries.values()].map((e) => e.app);
  }

  /**
   * Checks `Authorization: Bearer <secret>`. Digests are compared, not the secrets, so neither the content nor
   * the length of the secret leaks through timing.
   */
  authenticate(appId: string, authorizationHeader: string | undefined): AuthResult {
    const entry = this.#entries.get(appId);
    if (!entry) return "unknown_app";
    const match = /^\s*Bearer[ \t]+(\S+)\s*$/i.exec(authorizationHeader ?? "");
    if (!match) return "unauthorized";
    return timingSafeEqual(sha256(match[1]), entry.secretDigest) ? "ok" : "unauthorized";
  }
}
