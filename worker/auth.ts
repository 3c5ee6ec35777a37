/**
 * Bearer-token checks for the Worker's routes. Fails closed: when the secret a route needs is
 * not configured, the route answers 503 saying which secret is missing, whatever is sent.
 * A WebSocket upgrade may carry the token as `?token=` instead, because browsers cannot set
 * headers on a WebSocket. Runners prove a device credential (devices.ts); the routes they use
 * read the proven device id as `c.var.caller`.
 */
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { deviceOf } from "./devices.js";
import type { Env } from "./env.js";

/** Who made a request: the operator (API token) or an enrolled device. */
type Caller = { kind: "api" } | { kind: "device"; device: string };

/** The Hono environment of routes that runners call. */
export type CallerEnv = { Bindings: Env; Variables: { caller: Caller } };

export type TokenKind = "API_TOKEN" | "RUNNER_TOKEN";

const encoder = new TextEncoder();

async function sameSecret(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([given, expected].map((s) => crypto.subtle.digest("SHA-256", encoder.encode(s))));
  return crypto.subtle.timingSafeEqual(a!, b!);
}

/** Middleware that admits a request bearing any of the given tokens. */
export function requireToken(...kinds: TokenKind[]) {
  return createMiddleware<{ Bindings: Env }>(async (c, next) => {
    const configured = kinds.filter((k) => Boolean(c.env[k]));
    if (configured.length === 0) {
      const missing = `the coordinator has no ${kinds.join(" or ")} configured, so it refuses this request`;
      const fix = `set it with \`wrangler secret put ${kinds[0]}\` (or in .dev.vars for local development)`;
      throw new HTTPException(503, { message: `${missing}; ${fix}` });
    }
    const given = bearer(c.req.raw);
    for (const kind of configured) {
      if (await sameSecret(given, c.env[kind]!)) return next();
    }
    throw unauthorized("invalid token");
  });
}

/** Whether a request bears `kind`'s secret (false when it is not configured). */
export async function bears(env: Env, request: Request, kind: TokenKind): Promise<boolean> {
  const secret = env[kind];
  return Boolean(secret) && (await sameSecret(bearer(request), secret!));
}

/**
 * Middleware for the routes runners call: admits a device credential that is neither unknown
 * (401) nor revoked (403), and with `orApi` the API token too; sets `caller`.
 */
export function requireDevice(options: { orApi: boolean }) {
  return createMiddleware<CallerEnv>(async (c, next) => {
    const given = bearer(c.req.raw);
    if (options.orApi && (await bears(c.env, c.req.raw, "API_TOKEN"))) {
      c.set("caller", { kind: "api" });
      return next();
    }
    const proven = await deviceOf(c.env.DB, given);
    if ("refused" in proven) {
      if (proven.refused === 401) throw unauthorized(`${proven.message}: runners use their device credential`);
      throw new HTTPException(403, { message: proven.message });
    }
    c.set("caller", { kind: "device", device: proven.device });
    return next();
  });
}

/** The Bearer token of a request (or `?token=` on a WebSocket upgrade); 401 when there is none. */
function bearer(request: Request): string {
  const header = request.headers.get("Authorization") ?? "";
  const upgrade = request.headers.get("Upgrade")?.toLowerCase() === "websocket";
  const given =
    /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? (upgrade ? new URL(request.url).searchParams.get("token") : null);
  if (!given)
    throw unauthorized(
      `missing \`Authorization: Bearer <token>\` header${upgrade ? " (or ?token= on a WebSocket)" : ""}`,
    );
  return given;
}

export function unauthorized(message: string): HTTPException {
  return new HTTPException(401, {
    message,
    res: new Response(JSON.stringify({ error: message }), {
      status: 401,
      headers: { "Content-Type": "application/json", "WWW-Authenticate": 'Bearer realm="distro"' },
    }),
  });
}
