import { createHmac } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Config } from "../../config.ts";
import type { AppState } from "../../sfu/app-state.ts";
import type { AppRegistry } from "../../sfu/apps.ts";
import { ApiError } from "../errors.ts";
import { decode } from "../schemas.ts";

// Cloudflare's TURN credential API (developers.cloudflare.com/realtime/turn/generate-credentials), for a TURN
// server the operator runs (coturn). A Patchbay app doubles as the TURN key: the key id is the app id and
// the bearer token its secret, so client code moves from Cloudflare by changing the base URL and the secret.
// Credentials follow the TURN REST scheme coturn verifies with `use-auth-secret` (draft-uberti-behave-turn-rest):
// username "<expiry unix seconds>:<key id>", credential base64(HMAC-SHA1(shared secret, username)).

/** Cloudflare's limit: 48 h. */
export const MAX_TTL_SECONDS = 172_800;
const DEFAULT_TTL_SECONDS = 86_400;

const GenerateBody = z.looseObject({ ttl: z.number().optional() });

export interface TurnCredential {
  username: string;
  credential: string;
  /** Unix seconds. */
  expires: number;
}

/** A credential coturn accepts until `now + ttl` (its `use-auth-secret` check). */
export function turnCredential(
  secret: string,
  keyId: string,
  ttlSeconds: number,
  nowMs: number,
): TurnCredential {
  const expires = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = `${expires}:${keyId}`;
  const credential = createHmac("sha1", secret).update(username).digest("base64");
  return { username, credential, expires };
}

export interface TurnDeps {
  apps: AppRegistry<AppState>;
  turn: Config["turn"];
  now?: () => number;
}

/** Routes under `/v1/turn/keys/:keyId` (and without `/v1`, as the SFU routes). */
export function turnRoutes(app: FastifyInstance, deps: TurnDeps): void {
  const now = deps.now ?? Date.now;

  const authorize = (req: FastifyRequest): string => {
    const { keyId } = req.params as { keyId: string };
    const auth = deps.apps.authenticate(keyId, req.headers.authorization);
    if (auth === "unknown_app")
      throw new ApiError("not_found", `no TURN key ${keyId} (TURN keys are app ids)`);
    if (auth === "unauthorized")
      throw new ApiError(
        "unauthorized",
        "missing or wrong bearer token (Authorization: Bearer <app secret>; the app is the TURN key)",
      );
    return keyId;
  };

  const issue = (req: FastifyRequest): TurnCredential & { ttl: number } => {
    const keyId = authorize(req);
    const body = decode(GenerateBody, req.body);
    const ttl = body.ttl ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS)
      throw new ApiError(
        "invalid_params",
        `ttl must be an integer number of seconds from 1 to ${MAX_TTL_SECONDS}, got ${ttl}`,
      );
    const { secret, urls } = deps.turn;
    if (secret === undefined)
      throw new ApiError(
        "turn_not_configured",
        "this server issues no TURN credentials: start it with --turn-secret (PATCHBAY_TURN_SECRET) and --turn-urls naming your TURN server (docs/TURN.md)",
      );
    if (urls.length === 0) throw new ApiError("turn_not_configured", "--turn-urls names no TURN server");
    return { ...turnCredential(secret, keyId, ttl, now()), ttl };
  };

  app.post("/turn/keys/:keyId/credentials/generate-ice-servers", async (req, reply) => {
    const c = issue(req);
    const iceServers: { urls: string[]; username?: string; credential?: string }[] = [];
    if (deps.turn.stunUrls.length > 0) iceServers.push({ urls: [...deps.turn.stunUrls] });
    iceServers.push({ urls: [...deps.turn.urls], username: c.username, credential: c.credential });
    return reply.status(201).send({ iceServers });
  });

  // The older shape Cloudflare still documents: one object with every URL.
  app.post("/turn/keys/:keyId/credentials/generate", async (req, reply) => {
    const c = issue(req);
    return reply.status(201).send({
      iceServers: {
        urls: [...deps.turn.stunUrls, ...deps.turn.urls],
        username: c.username,
        credential: c.credential,
      },
    });
  });

  app.post("/turn/keys/:keyId/credentials/:username/revoke", async (req) => {
    authorize(req);
    throw new ApiError(
      "turn_revoke_unsupported",
      "credentials for a shared-secret TURN server (coturn use-auth-secret) cannot be revoked before they expire: issue short ttl values",
    );
  });
}
