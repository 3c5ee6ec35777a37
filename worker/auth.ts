/**
 * Bearer-token checks for the Worker's routes. Fails closed: when the secret a route needs is
 * not configured, the route answers 503 saying which secret is missing, whatever is sent.
 * A WebSocket upgrade may carry the token as `?token=` instead, because browsers cannot set
 * headers on a WebSocket. Operators use `API_TOKEN` (admin) or a scoped token (tokens.ts); a
 * route needs a scope (core/tokens.ts), and a token below it gets 403 naming both. Runners prove a
 * device credential (devices.ts). Either way the caller is `c.var.caller`.
 */
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { covers, TOKEN_PREFIX, type TokenScope } from "../core/tokens.js";
import { deviceOf } from "./devices.js";
import type { Env } from "./env.js";
import { tokenOf } from "./tokens.js";

/** An operator's token: `API_TOKEN` (id and name `API_TOKEN`, scope admin) or a scoped one. */
export type ApiCaller = { kind: "api"; scope: TokenScope; token: string; name: string; expires_at: number | null };

/** Who made a request: an operator's token, or an enrolled device. */
type Caller = ApiCaller | { kind: "device"; device: string };

/** The Hono environment of routes that check their caller. */
export type CallerEnv = { Bindings: Env; Variables: { caller: Caller } };

const encoder = new TextEncoder();

async function sameSecret(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([given, expected].map((s) => crypto.subtle.digest("SHA-256", encoder.encode(s))));
  return crypto.subtle.timingSafeEqual(a!, b!);
}

/** Whether a request bears `kind`'s secret (false when it is not configured). */
export async function bears(env: Env, request: Request, kind: "API_TOKEN" | "RUNNER_TOKEN"): Promise<boolean> {
  const secret = env[kind];
  return Boolean(secret) && (await sameSecret(bearer(request), secret!));
}

/**
 * Whether `given` has a scoped token's form: `dat_` and no dot. A device credential is
 * `<device>.<secret>`, whatever its device id starts with (a device may be called `dat_box`).
 */
const isScopedToken = (given: string) => given.startsWith(TOKEN_PREFIX) && !given.includes(".");

/** 503 when the coordinator has no API_TOKEN: nothing an operator sends is taken then. */
function needApiToken(env: Env): void {
  if (env.API_TOKEN) return;
  const missing = "the coordinator has no API_TOKEN configured, so it refuses this request";
  const fix = "set it with `wrangler secret put API_TOKEN` (or in .dev.vars for local development)";
  throw new HTTPException(503, { message: `${missing}; ${fix}` });
}

/**
 * The operator token `given` is: API_TOKEN, or a scoped token that is good; 401 otherwise (unknown,
 * revoked, expired).
 */
async function apiCaller(env: Env, given: string): Promise<ApiCaller> {
  if (await sameSecret(given, env.API_TOKEN!))
    return { kind: "api", scope: "admin", token: "API_TOKEN", name: "API_TOKEN", expires_at: null };
  const token = await tokenOf(env.DB, given);
  if ("refused" in token) throw unauthorized(token.message);
  return { kind: "api", scope: token.scope, token: token.id, name: token.name, expires_at: token.expires_at };
}

/** 403 unless `caller` has `scope`, naming what it has and what the request needs. */
function checkScope(caller: ApiCaller, scope: TokenScope, request: Request): void {
  if (covers(caller.scope, scope)) return;
  const route = `${request.method} ${new URL(request.url).pathname}`;
  throw new HTTPException(403, {
    message: `token ${caller.token} (${caller.name}) has scope ${caller.scope}; ${route} needs ${scope}`,
  });
}

/**
 * Middleware that admits an operator token of at least `scope` (a function of the request, for
 * a group of routes whose methods differ); sets `caller`.
 */
export function requireScope(scope: TokenScope | ((request: Request) => TokenScope)) {
  return createMiddleware<CallerEnv>(async (c, next) => {
    needApiToken(c.env);
    const caller = await apiCaller(c.env, bearer(c.req.raw));
    checkScope(caller, typeof scope === "function" ? scope(c.req.raw) : scope, c.req.raw);
    c.set("caller", caller);
    return next();
  });
}

/** Reads with GET and HEAD, writes with anything else: what a group of run routes needs. */
export const readOrSubmit = (request: Request): TokenScope =>
  request.method === "GET" || request.method === "HEAD" ? "read" : "submit";

/**
 * Middleware for the routes runners call: admits a device credential that is neither unknown
 * (401) nor revoked (403), and with `orScope` an operator token of that scope too; sets `caller`.
 */
export function requireDevice(options: { orScope: TokenScope | null }) {
  return createMiddleware<CallerEnv>(async (c, next) => {
    const given = bearer(c.req.raw);
    const operator =
      options.orScope !== null &&
      Boolean(c.env.API_TOKEN) &&
      (isScopedToken(given) || (await sameSecret(given, c.env.API_TOKEN!)));
    if (operator) {
      const caller = await apiCaller(c.env, given);
      checkScope(caller, options.orScope!, c.req.raw);
      c.set("caller", caller);
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
