/**
 * The D1 database: the index of recent runs with their task counts and histograms (kept current
 * by each run's Durable Object, at most a second behind: run-host/run-index.ts), the module
 * registry (names pinned to sha256), the blobs uploaded for runs' inputs, the result cache (cache key → output, inline or in R2), and
 * the enrolled devices and their enrollments (queried in devices.ts).
 * The schema is in migrations/ (applied with `wrangler d1 migrations apply`: docs/deploy.md); nothing
 * here creates a table.
 */
import type { ModuleListing, RunListing } from "../core/api.js";
import { deviceOfRunner } from "../core/protocol/messages.js";
import { emptyMetrics, merge, type RunMetrics } from "./metrics.js";

/** A cached output: inline bytes, or a blob in R2. */
export type CachedOutput = Uint8Array | { sha256: string; size: number };

/** Cached outputs for these keys (absent keys are misses). At most 100 keys per call. */
export async function cachedOutputs(d1: D1Database, keys: string[]): Promise<Map<string, CachedOutput>> {
  const found = new Map<string, CachedOutput>();
  if (keys.length === 0) return found;
  const { results } = await d1
    // An entry of no device (filed before entries named theirs) is not served: nothing vouches for it.
    .prepare(
      `SELECT key, output, output_sha, size FROM cache
       WHERE key IN (${keys.map(() => "?").join(", ")}) AND device IS NOT NULL`,
    )
    .bind(...keys)
    .all<{ key: string; output: ArrayBuffer | number[] | null; output_sha: string | null; size: number }>();
  for (const r of results) {
    found.set(r.key, r.output_sha ? { sha256: r.output_sha, size: r.size } : new Uint8Array(r.output ?? []));
  }
  return found;
}

/**
 * Files outputs in the cache, each with the device that produced it, and only when that device is
 * trusted and not revoked (asked in the same statement, so a device untrusted a moment ago files
 * nothing): an untrusted device's output serves its own run, never another. An existing entry for
 * a key is kept.
 */
export async function fileOutputs(
  d1: D1Database,
  entries: { key: string; output: CachedOutput; runner: string }[],
): Promise<void> {
  const now = Date.now();
  await d1.batch(
    entries.map(({ key, output, runner }) =>
      d1
        .prepare(
          `INSERT OR IGNORE INTO cache (key, output, output_sha, size, created_at, device)
           SELECT ?, ?, ?, ?, ?, id FROM devices WHERE id = ? AND trusted = 1 AND revoked_at IS NULL`,
        )
        .bind(
          key,
          output instanceof Uint8Array ? output : null,
          output instanceof Uint8Array ? null : output.sha256,
          output instanceof Uint8Array ? output.length : output.size,
          now,
          deviceOfRunner(runner),
        ),
    ),
  );
}

/** Removes every cache entry a device produced: how many. */
export async function purgeOutputsOf(d1: D1Database, device: string): Promise<number> {
  const { meta } = await d1.prepare(`DELETE FROM cache WHERE device = ?`).bind(device).run();
  return meta.changes;
}

/** Inserts or refreshes one run's line in the index, with its histograms and cache hits for /metrics. */
export async function indexRun(d1: D1Database, row: RunListing, metrics: RunMetrics): Promise<void> {
  await d1
    .prepare(
      `INSERT INTO run_index (id, name, status, tasks, counts, created_at, updated_at, finished_at, metrics)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, counts = excluded.counts,
         updated_at = excluded.updated_at, finished_at = excluded.finished_at, metrics = excluded.metrics`,
    )
    .bind(
      row.id,
      row.name,
      row.status,
      row.tasks,
      JSON.stringify(row.counts),
      row.created_at,
      row.updated_at,
      row.finished_at,
      JSON.stringify(metrics),
    )
    .run();
}

/** The most recent `limit` runs of the index, newest first. */
export async function recentRuns(d1: D1Database, limit: number): Promise<RunListing[]> {
  const { results } = await d1
    .prepare(
      `SELECT id, name, status, tasks, counts, created_at, updated_at, finished_at FROM run_index
       ORDER BY created_at DESC LIMIT ?`,
    )
    .bind(limit)
    .all<Omit<RunListing, "counts"> & { counts: string }>();
  return results.map((r) => ({ ...r, counts: JSON.parse(r.counts) as RunListing["counts"] }));
}

/**
 * Up to `limit` ids of the index that start with `prefix` (lower-case hex), in order: a range over
 * the primary key, since every id with the prefix lies in [prefix, prefix + "g") ("g" sorts after
 * every hex digit), where LIKE would scan the table.
 */
export async function runsWithPrefix(d1: D1Database, prefix: string, limit: number): Promise<string[]> {
  const { results } = await d1
    .prepare(`SELECT id FROM run_index WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`)
    .bind(prefix, `${prefix}g`, limit)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

/** Runs by status, tasks by state, histograms and cache hits, summed over every run in the index. */
export async function runTotals(
  d1: D1Database,
): Promise<{ runs: Record<string, number>; tasks: Record<string, number>; metrics: RunMetrics }> {
  const [byStatus, byState] = await d1.batch<{ k: string; n: number }>([
    d1.prepare(`SELECT status AS k, count(*) AS n FROM run_index GROUP BY status`),
    d1.prepare(`SELECT j.key AS k, sum(j.value) AS n FROM run_index, json_each(run_index.counts) AS j GROUP BY j.key`),
  ]);
  const record = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));
  const metrics = emptyMetrics();
  const { results } = await d1
    .prepare(`SELECT metrics FROM run_index WHERE metrics IS NOT NULL`)
    .all<{ metrics: string }>();
  for (const row of results) {
    const m = JSON.parse(row.metrics) as RunMetrics;
    merge(metrics.duration, m.duration);
    merge(metrics.latency, m.latency);
    metrics.cacheHits += m.cacheHits;
  }
  return { runs: record(byStatus!.results), tasks: record(byState!.results), metrics };
}

/** Runs of the index that have not ended (whose runners may hold leases). */
/** Whether the run index has a line for run `id`. */
export async function indexed(d1: D1Database, id: string): Promise<boolean> {
  return (await d1.prepare(`SELECT 1 AS n FROM run_index WHERE id = ?`).bind(id).first()) !== null;
}

export async function liveRuns(d1: D1Database): Promise<string[]> {
  const { results } = await d1
    .prepare(`SELECT id FROM run_index WHERE status NOT IN ('succeeded', 'failed', 'cancelled')`)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

export async function moduleByName(d1: D1Database, name: string): Promise<{ sha256: string; size: number } | null> {
  return d1.prepare(`SELECT sha256, size FROM modules WHERE name = ?`).bind(name).first();
}

/** The names modules were uploaded under, newest first (`GET /api/modules`). */
export async function listModules(d1: D1Database): Promise<ModuleListing["modules"]> {
  const { results } = await d1
    .prepare(`SELECT name, sha256, size, uploaded_at FROM modules ORDER BY uploaded_at DESC, name LIMIT 1000`)
    .all<ModuleListing["modules"][number]>();
  return results;
}

export async function registerModule(d1: D1Database, name: string, sha256: string, size: number): Promise<void> {
  await d1
    .prepare(
      `INSERT INTO modules (name, sha256, size, uploaded_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
         uploaded_at = excluded.uploaded_at`,
    )
    .bind(name, sha256, size, Date.now())
    .run();
}

/** Notes a blob the operator uploaded for runs' inputs (R2 checked its hash). */
export async function registerInputBlob(d1: D1Database, sha256: string, size: number): Promise<void> {
  await d1
    .prepare(`INSERT OR REPLACE INTO input_blobs (sha256, size, uploaded_at) VALUES (?, ?, ?)`)
    .bind(sha256, size, Date.now())
    .run();
}

/** The sizes of those of `shas` uploaded for inputs: a few queries however many (lists as JSON of at most 10,000). */
export async function inputBlobSizes(d1: D1Database, shas: readonly string[]): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (let i = 0; i < shas.length; i += 10_000) {
    const { results } = await d1
      .prepare(`SELECT sha256, size FROM input_blobs WHERE sha256 IN (SELECT value FROM json_each(?))`)
      .bind(JSON.stringify(shas.slice(i, i + 10_000)))
      .all<{ sha256: string; size: number }>();
    for (const r of results) found.set(r.sha256, r.size);
  }
  return found;
}
