/**
 * What Distro deletes, and when (docs/reliability.md, "What is kept, and for how long"):
 *
 * - a run, at `DELETE /api/dags/:id` or `RUN_RETENTION` after it finished: its Durable Object's
 *   storage, its logs in R2, its line in the run index and its blob references;
 * - a blob in R2's `outputs/` that no run, cache entry or module holds, `BLOB_GRACE` after it last
 *   arrived (a runner uploads an output before it reports it; an operator uploads input files
 *   before submitting);
 * - result cache entries past `CACHE_MAX_AGE`, and the oldest past `CACHE_MAX_BYTES`.
 *
 * The references live in D1 (`blobs`, `blob_refs`, the cache's `output_sha`), written as uploads
 * and outputs are accepted, so a sweep reads a few tables and visits no run. A blob goes in two
 * steps: one sweep marks it (`doomed_at`) when nothing holds it, an upload of it or a run's claim
 * clears the mark, and a sweep at least half an hour later deletes its row only if it is still
 * marked and unheld, and then its bytes. A blob that was in R2 before its first upload was noted
 * (a coordinator from before retention) gets no row, and is kept. Module bytes (`modules/`) are
 * kept: the registry names them, and runs pin them by hash.
 */
import { parseDuration, parseSize } from "../core/units.js";
import { logPrefix, outputKey } from "./blob-keys.js";
import type { Env } from "./env.js";
import { valueOf } from "./errors.js";
import { IDEMPOTENCY_TTL_MS } from "./idempotency.js";

const DAY = 86_400_000;

/** The retention settings from the environment; a value that does not parse falls back to its default. */
function retention(env: Env) {
  const duration = (v: string | undefined, fallback: number) => (v && parseDuration(v)) || fallback;
  return {
    runMs: duration(env.RUN_RETENTION, 30 * DAY),
    blobGraceMs: duration(env.BLOB_GRACE, DAY),
    cacheAgeMs: duration(env.CACHE_MAX_AGE, 30 * DAY),
    // Inline entries are D1 rows: well under the 500 MB a D1 database has on the Free plan.
    cacheBytes: (env.CACHE_MAX_BYTES && parseSize(env.CACHE_MAX_BYTES)) || 256 * 2 ** 20,
  };
}

/**
 * Notes a blob that arrived in `outputs/` now: its grace starts over and a sweep's mark is
 * cleared. `fresh`: it was not in R2 before this upload; one that was, and has no row, is from
 * before retention and stays unnoted (never swept).
 */
export async function recordBlob(d1: D1Database, sha256: string, size: number, fresh: boolean, now = Date.now()) {
  const upsert = `INSERT INTO blobs (sha256, size, uploaded_at) VALUES (?, ?, ?)
     ON CONFLICT (sha256) DO UPDATE SET uploaded_at = excluded.uploaded_at, doomed_at = NULL`;
  const touch = `UPDATE blobs SET uploaded_at = ?3, doomed_at = NULL WHERE sha256 = ?1`;
  await d1
    .prepare(fresh ? upsert : touch)
    .bind(sha256, size, now)
    .run();
}

/** Notes that run `run` holds these blobs (before it accepts them: no moment holds one unnoted). */
export async function recordRefs(d1: D1Database, run: string, shas: Iterable<string>): Promise<void> {
  const list = [...new Set(shas)];
  for (let i = 0; i < list.length; i += 10_000) {
    const some = JSON.stringify(list.slice(i, i + 10_000));
    await d1.batch([
      d1.prepare(`INSERT OR IGNORE INTO blob_refs (sha256, run) SELECT value, ? FROM json_each(?)`).bind(run, some),
      d1.prepare(`UPDATE blobs SET doomed_at = NULL WHERE sha256 IN (SELECT value FROM json_each(?))`).bind(some),
    ]);
  }
}

/**
 * Deletes finished run `id`: its object's storage (409 from the object while the run is open,
 * thrown as an HTTPException by `valueOf`), its logs, its index line and its references. Blobs
 * it alone held go at the sweeps after, once past their grace. Idempotent: a delete cut short
 * (an R2 or D1 error after the object's storage went) is finished by the next one.
 */
export async function deleteRun(env: Env, id: string): Promise<void> {
  const purged = await env.DAG_RUN.get(env.DAG_RUN.idFromString(id)).purge();
  if (!purged.ok && purged.code !== "not_found") valueOf(purged);
  for (let cursor: string | undefined; ;) {
    const listed = await env.BLOBS.list({ prefix: logPrefix(id), cursor, limit: 1000 });
    if (listed.objects.length > 0) await env.BLOBS.delete(listed.objects.map((o) => o.key));
    if (!listed.truncated) break;
    cursor = listed.cursor;
  }
  await env.DB.batch([
    env.DB.prepare(`DELETE FROM run_index WHERE id = ?`).bind(id),
    env.DB.prepare(`DELETE FROM blob_refs WHERE run = ?`).bind(id),
    env.DB.prepare(`DELETE FROM idempotency_keys WHERE run = ?`).bind(id),
  ]);
}

/** What one sweep did. */
export interface Swept {
  runs: number;
  blobs: number;
  cacheEntries: number;
}

/** At most this many runs and this many blobs a sweep deletes (the next one goes on). */
const SWEEP_RUNS = 100;
const SWEEP_BLOBS = 1000;
/** How long a blob stays marked, held by nothing, before a sweep deletes it: more than one sweep apart. */
const DOOM_MS = 30 * 60_000;

/** The scheduled sweep (a Cron Trigger, wrangler.toml): runs past retention, the cache's bounds, unheld blobs. */
export async function sweep(env: Env, now = Date.now()): Promise<Swept> {
  const { runMs, blobGraceMs, cacheAgeMs, cacheBytes } = retention(env);
  const expired = await env.DB.prepare(
    `SELECT id FROM run_index WHERE finished_at IS NOT NULL AND finished_at <= ? ORDER BY finished_at LIMIT ?`,
  )
    .bind(now - runMs, SWEEP_RUNS)
    .all<{ id: string }>();
  let runs = 0;
  for (const { id } of expired.results) {
    try {
      await deleteRun(env, id);
      runs++;
    } catch (e) {
      console.error(`retention: deleting run ${id}`, e);
    }
  }
  const [aged, oversize] = await env.DB.batch([
    env.DB.prepare(`DELETE FROM cache WHERE created_at <= ?`).bind(now - cacheAgeMs),
    // Past the size bound, the oldest entries go first (the newest that fit stay).
    env.DB.prepare(
      `DELETE FROM cache WHERE key IN (SELECT key FROM (SELECT key, sum(size) OVER (ORDER BY created_at DESC, key) AS total FROM cache) WHERE total > ?)`,
    ).bind(cacheBytes),
    // Keys past their day name no run any more (worker/idempotency.ts).
    env.DB.prepare(`DELETE FROM idempotency_keys WHERE created_at <= ?`).bind(now - IDEMPOTENCY_TTL_MS),
  ]);
  const unheld = `uploaded_at <= ?1
       AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.sha256 = blobs.sha256)
       AND NOT EXISTS (SELECT 1 FROM cache c WHERE c.output_sha = blobs.sha256)`;
  // Rows go first, in one statement that checks again; only then the bytes of those it took.
  const gone = await env.DB.prepare(
    `DELETE FROM blobs WHERE sha256 IN (SELECT sha256 FROM blobs WHERE doomed_at <= ?2 AND ${unheld} LIMIT ?3)
       AND doomed_at <= ?2 AND ${unheld} RETURNING sha256`,
  )
    .bind(now - blobGraceMs, now - DOOM_MS, SWEEP_BLOBS)
    .all<{ sha256: string }>();
  await env.DB.prepare(`UPDATE blobs SET doomed_at = ?2 WHERE doomed_at IS NULL AND ${unheld}`)
    .bind(now - blobGraceMs, now)
    .run();
  const shas = gone.results.map((r) => r.sha256);
  if (shas.length > 0) {
    await env.DB.prepare(`DELETE FROM input_blobs WHERE sha256 IN (SELECT value FROM json_each(?))`)
      .bind(JSON.stringify(shas))
      .run();
    await env.BLOBS.delete(shas.map(outputKey));
  }
  return { runs, blobs: shas.length, cacheEntries: (aged?.meta.changes ?? 0) + (oversize?.meta.changes ?? 0) };
}
