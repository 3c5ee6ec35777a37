/**
 * Idempotent submission (`POST /api/dags` with an `Idempotency-Key` header): a client that sent a
 * submission and lost the answer sends it again with the same key, and gets the run the first
 * one made rather than a second run. A key is the submitting token's own (two tokens' keys never
 * meet), names its run for a day (IDEMPOTENCY_TTL_MS), and belongs to one body: the same key with
 * another body is refused (422), as the IETF's Idempotency-Key draft has it. Keys live in D1
 * (migrations/0004_idempotency.sql); the route claims one only once the submission is valid, so a
 * refused submission holds no key.
 */
import { HTTPException } from "hono/http-exception";
import { IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY } from "../core/api.js";
import { sha256Hex } from "./sha256.js";

/** How long a key names the run it made. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60_000;
/**
 * How long a claimed key whose run does not exist yet is taken as still starting it (409); past
 * that its request died between the claim and the start, and the key is let go.
 */
export const ABANDONED_CLAIM_MS = 60_000;

/** A submission made under a key: whose key, the key, and the body's sha256. */
export interface Keyed {
  token: string;
  key: string;
  bodySha256: string;
}

/** The keyed submission of a request: undefined without the header, a 400 for a malformed key. */
export async function keyed(header: string | undefined, token: string, body: string): Promise<Keyed | undefined> {
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header))
    throw new HTTPException(400, {
      message: `${IDEMPOTENCY_HEADER} takes 1 to 255 visible ASCII characters (a UUID, say), not "${header.slice(0, 80)}"`,
    });
  return { token, key: header, bodySha256: await sha256Hex(body) };
}

/**
 * The run an earlier submission under this key made, within the day; undefined when there is
 * none. A 422 when the key came with another body.
 */
export async function priorRun(
  db: D1Database,
  k: Keyed,
  now = Date.now(),
): Promise<{ run: string; createdAt: number } | undefined> {
  const row = await db
    .prepare(`SELECT run, body_sha256, created_at FROM idempotency_keys WHERE token = ? AND key = ? AND created_at > ?`)
    .bind(k.token, k.key, now - IDEMPOTENCY_TTL_MS)
    .first<{ run: string; body_sha256: string; created_at: number }>();
  if (!row) return undefined;
  if (row.body_sha256 !== k.bodySha256)
    throw new HTTPException(422, {
      message: `${IDEMPOTENCY_HEADER} "${k.key}" came with another submission within the day (run ${row.run.slice(0, 12)}): a new submission takes a new key`,
    });
  return { run: row.run, createdAt: row.created_at };
}

/** Claims the key for run `id` (a key older than the day is claimed anew): false when another submission holds it. */
export async function claimKey(db: D1Database, k: Keyed, id: string, now = Date.now()): Promise<boolean> {
  const claimed = await db
    .prepare(
      `INSERT INTO idempotency_keys (token, key, body_sha256, run, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (token, key) DO UPDATE SET body_sha256 = ?3, run = ?4, created_at = ?5 WHERE created_at <= ?6
       RETURNING run`,
    )
    .bind(k.token, k.key, k.bodySha256, id, now, now - IDEMPOTENCY_TTL_MS)
    .first<{ run: string }>();
  return claimed?.run === id;
}

/** Lets go of a key whose run did not start, so that the submission may be sent again. */
export async function releaseKey(db: D1Database, k: Keyed, id: string): Promise<void> {
  await db
    .prepare(`DELETE FROM idempotency_keys WHERE token = ? AND key = ? AND run = ?`)
    .bind(k.token, k.key, id)
    .run();
}
