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

/** Query parameters and `name=value` pairs whose values never reach the log (examples tokens, keys, …). */
const SECRET_NAME = /token|secret|key|auth|pass|sig|credential/i;
const REDACTED = "REDACTED";

/**
 * A URL fit for the log: the values of secret-looking query parameters (`?token=`) and any user:password
 * replaced by REDACTED. Not a URL: `redactText` of it.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return redactText(url);
  }
  if (u.username) u.username = REDACTED;
  if (u.password) u.password = REDACTED;
  for (const name of new Set(u.searchParams.keys()))
    if (SECRET_NAME.test(name)) u.searchParams.set(name, REDACTED);
  return u.href;
}

/**
 * Free text (an error description) fit for the log: secret-looking `name=value` values, bearer tokens and
 * V8's quote of an unparseable JSON body (`Unexpected token …, "…" is not valid JSON`) redacted.
 */
export function redactText(text: string): string {
  return text
    .replace(/\b(\w*)=([^&\s"'#,;)]+)/g, (all, name: string) =>
      SECRET_NAME.test(name) ? `${name}=${REDACTED}` : all,
    )
    .replace(/\b(bearer)\s+[\w.~+/=-]{8,}/gi, `$1 ${REDACTED}`)
    .replace(/, ".*"(\.\.\.)? is not valid JSON/s, ", <the body> is not valid JSON");
}
