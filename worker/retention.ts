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
 * and outputs are accepted, so a sweep reads a few tables and visits no run. Module bytes
 * (`modules/`) are kept: the registry names them, and runs pin them by hash.
 */
import { parseDuration, parseSize } from "../core/units.js";
import { logPrefix, outputKey } from "./blob-keys.js";
import type { Env } from "./env.js";
import { valueOf } from "./errors.js";

const DAY = 86_400_000;

/** The retention settings from the environment; a value that does not parse falls back to its default. */
function retention(env: Env) {
  const duration = (v: string | undefined, fallback: number) => (v && parseDuration(v)) || fallback;
  return {
    runMs: duration(env.RUN_RETENTION, 30 * DAY),
    blobGraceMs: duration(env.BLOB_GRACE, DAY),
    cacheAgeMs: duration(env.CACHE_MAX_AGE, 30 * DAY),
    cacheBytes: (env.CACHE_MAX_BYTES && parseSize(env.CACHE_MAX_BYTES)) || 2 ** 30,
  };
}

/** Notes a blob that arrived in `outputs/` now (again): its grace starts over. */
export async function recordBlob(d1: D1Database, sha256: string, size: number, now = Date.now()): Promise<void> {
  await d1
    .prepare(
      `INSERT INTO blobs (sha256, size, uploaded_at) VALUES (?, ?, ?)
       ON CONFLICT (sha256) DO UPDATE SET uploaded_at = excluded.uploaded_at`,
    )
    .bind(sha256, size, now)
    .run();
}

/** Notes that run `run` holds these blobs (before it accepts them: no moment holds one unnoted). */
export async function recordRefs(d1: D1Database, run: string, shas: Iterable<string>): Promise<void> {
  const list = [...new Set(shas)];
  for (let i = 0; i < list.length; i += 10_000)
    await d1
      .prepare(`INSERT OR IGNORE INTO blob_refs (sha256, run) SELECT value, ? FROM json_each(?)`)
      .bind(run, JSON.stringify(list.slice(i, i + 10_000)))
      .run();
}

/**
 * Deletes finished run `id`: its object's storage (409 from the object while the run is open,
 * thrown as an HTTPException by `valueOf`), its logs, its index line and its references. Blobs
 * it alone held go at the next sweep, once past their grace.
 */
export async function deleteRun(env: Env, id: string): Promise<void> {
  valueOf(await env.DAG_RUN.get(env.DAG_RUN.idFromString(id)).purge());
  for (let cursor: string | undefined; ;) {
    const listed = await env.BLOBS.list({ prefix: logPrefix(id), cursor, limit: 1000 });
    if (listed.objects.length > 0) await env.BLOBS.delete(listed.objects.map((o) => o.key));
    if (!listed.truncated) break;
    cursor = listed.cursor;
  }
  await env.DB.batch([
    env.DB.prepare(`DELETE FROM run_index WHERE id = ?`).bind(id),
    env.DB.prepare(`DELETE FROM blob_refs WHERE run = ?`).bind(id),
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
  ]);
  const unheld = await env.DB.prepare(
    `SELECT sha256 FROM blobs b WHERE uploaded_at <= ?
       AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.sha256 = b.sha256)
       AND NOT EXISTS (SELECT 1 FROM cache c WHERE c.output_sha = b.sha256)
     LIMIT ?`,
  )
    .bind(now - blobGraceMs, SWEEP_BLOBS)
    .all<{ sha256: string }>();
  const shas = unheld.results.map((r) => r.sha256);
  if (shas.length > 0) {
    await env.BLOBS.delete(shas.map(outputKey));
    const list = JSON.stringify(shas);
    await env.DB.batch([
      env.DB.prepare(`DELETE FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))`).bind(list),
      env.DB.prepare(`DELETE FROM input_blobs WHERE sha256 IN (SELECT value FROM json_each(?))`).bind(list),
    ]);
  }
  return { runs, blobs: shas.length, cacheEntries: (aged?.meta.changes ?? 0) + (oversize?.meta.changes ?? 0) };
}
