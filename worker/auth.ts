/**
 * Bearer-token checks for the Worker's routes. Fails closed: when the secret a route needs is
 * not configured, the route answers 503 saying which secret is missing, whatever is sent.
 * A WebSocket upgrade may carry the token as `?token=` instead, because browsers cannot set
 * headers on a WebSocket.
 */
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import type { Env } from "./env.js";

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
    const header = c.req.header("Authorization") ?? "";
    const upgrade = c.req.header("Upgrade")?.toLowerCase() === "websocket";
    const given = /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? (upgrade ? c.req.query("token") : undefined);
    if (!given)
      throw unauthorized(
        `missing \`Authorization: Bearer <token>\` header${upgrade ? " (or ?token= on a WebSocket)" : ""}`,
      );
    for (const kind of configured) {
      if (await sameSecret(given, c.env[kind]!)) return next();
    }
    throw unauthorized("invalid token");
  });
}

function unauthorized(message: string): HTTPException {
  return new HTTPException(401, {
    message,
    res: new Response(JSON.stringify({ error: message }), {
      status: 401,
      headers: { "Content-Type": "application/json", "WWW-Authenticate": 'Bearer realm="distro"' },
    }),
  });
}
