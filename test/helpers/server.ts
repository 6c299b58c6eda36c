import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../../src/client/api-client.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger, type Logger } from "../../src/log.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { AppRegistry } from "../../src/sfu/apps.ts";

export const TEST_APPS = [
  { appId: "a".repeat(32), secret: "secret-for-app-a-0123456789" },
  { appId: "b".repeat(32), secret: "secret-for-app-b-0123456789" },
];

export interface TestServer {
  server: RunningServer;
  url: string;
  /** Clients for the two test apps. */
  api: ApiClient;
  apiB: ApiClient;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Log through this logger instead of a JSON logger on stdout (tests that assert log lines). */
  logger?: Logger;
}

/** A real server on an ephemeral loopback port with two known apps. */
export async function startTestServer(
  extraArgs: string[] = [],
  opts: TestServerOptions = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "patchbay-test-"));
  const config = loadConfig(
    [
      "--http-port",
      "0",
      "--data-dir",
      dataDir,
      "--log-level",
      process.env.LOG_LEVEL ?? "warn",
      "--log-format",
      "json",
      ...extraArgs,
    ],
    {
      PATCHBAY_APPS: JSON.stringify(TEST_APPS),
      // The suite runs on either media plane: PATCHBAY_MEDIA_PLANE=werift|native (default: the server's).
      PATCHBAY_MEDIA_PLANE: process.env.PATCHBAY_MEDIA_PLANE,
    },
  );
  const logger = opts.logger ?? createLogger(config, false);
  const { registry } = await AppRegistry.load(config, logger);
  const server = await startServer({ config, logger, apps: registry });
  return {
    server,
    url: server.url,
    api: new ApiClient(`${server.url}/v1`, TEST_APPS[0].appId, TEST_APPS[0].secret),
    apiB: new ApiClient(`${server.url}/v1`, TEST_APPS[1].appId, TEST_APPS[1].secret),
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
