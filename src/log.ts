import { pino } from "pino";
import type { Config } from "./config.ts";

export type Logger = pino.Logger;

/**
 * JSON lines by default; pretty output goes through pino-pretty as a transport so formatting runs on a worker
 * thread instead of the media event loop. pino flushes transports on process exit.
 */
export function createLogger(
  config: Pick<Config, "log">,
  isTTY: boolean = process.stdout.isTTY === true,
): Logger {
  const pretty = config.log.format === "pretty" || (config.log.format === "auto" && isTTY);
  return pino({
    name: "patchbay",
    level: config.log.level,
    ...(pretty
      ? {
          transport: { target: "pino-pretty", options: { colorize: isTTY, translateTime: "SYS:HH:MM:ss.l" } },
        }
      : {}),
  });
}
