/**
 * Scoped API tokens, kept in D1 by the SHA-256 of each (secrets.ts): minted by an admin
 * (`POST /api/tokens`), listed, revoked; what each scope may do is core/tokens.ts. A token is
 * `dat_<43 characters>`: 256 random bits. `API_TOKEN` (a secret, not a row) stays the bootstrap
 * admin token.
 */
import type { TokenView } from "../core/api.js";
import { TOKEN_PREFIX, type TokenScope } from "../core/tokens.js";
import type { Refused } from "./devices.js";
import { hex, random, sha256 } from "./secrets.js";

/** The columns of `api_tokens` but the hash: a row of them is a TokenView. */
const COLUMNS = "id, name, scope, created_at, expires_at, revoked_at";

/** Mints a token; it is in the answer and nowhere else. `ttlMs` null: it does not expire. */
export async function createToken(
  d1: D1Database,
  spec: { name: string; scope: TokenScope; ttlMs: number | null },
  now = Date.now(),
): Promise<{ view: TokenView; token: string }> {
  const id = hex(8);
  const token = `${TOKEN_PREFIX}${random(32)}`;
  const expires = spec.ttlMs === null ? null : now + spec.ttlMs;
  await d1
    .prepare(`INSERT INTO api_tokens (id, name, scope, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`)
    .bind(id, spec.name, spec.scope, await sha256(token), now, expires)
    .run();
  const view: TokenView = {
    id,
    name: spec.name,
    scope: spec.scope,
    created_at: now,
    expires_at: expires,
    revoked_at: null,
  };
  return { view, token };
}

/** Every token, newest first. */
export async function tokens(d1: D1Database): Promise<TokenView[]> {
  const { results } = await d1
    .prepare(`SELECT ${COLUMNS} FROM api_tokens ORDER BY created_at DESC, id`)
    .all<TokenView>();
  return results;
}

/** Revokes a token at once (every later request with it gets 401); null for an unknown id. */
export async function revokeToken(d1: D1Database, id: string, now = Date.now()): Promise<TokenView | null> {
  return d1
    .prepare(`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING ${COLUMNS}`)
    .bind(now, id)
    .first<TokenView>();
}

/** The token `given` is, while it is good: its id, name and scope; else why it is refused (401). */
export async function tokenOf(
  d1: D1Database,
  given: string,
  now = Date.now(),
): Promise<Pick<TokenView, "id" | "name" | "scope" | "expires_at"> | Refused> {
  const row = given.startsWith(TOKEN_PREFIX)
    ? await d1
        .prepare(`SELECT ${COLUMNS} FROM api_tokens WHERE token_hash = ?`)
        .bind(await sha256(given))
        .first<TokenView>()
    : null;
  if (!row) return { refused: 401, message: "invalid token" };
  if (row.revoked_at !== null)
    return {
      refused: 401,
      message: `token ${row.id} (${row.name}) was revoked at ${new Date(row.revoked_at).toISOString()}`,
    };
  if (row.expires_at !== null && row.expires_at <= now)
    return {
      refused: 401,
      message: `token ${row.id} (${row.name}) expired at ${new Date(row.expires_at).toISOString()}`,
    };
  return { id: row.id, name: row.name, scope: row.scope, expires_at: row.expires_at };
}
