/**
 * The D1 index: recent runs (kept current by each run's Durable Object), the module registry
 * (names pinned to sha256) and the result cache (cache key → output, inline or in R2). The schema is created on first use in each isolate, so
 * `wrangler dev` and tests need no migration step.
 */
import type { RunStatus } from "./run/store.js";

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
     tasks INTEGER NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at DESC)`,
  `CREATE TABLE IF NOT EXISTS modules (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
     uploaded_at INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, output BLOB, output_sha TEXT, size INTEGER NOT NULL,
     created_at INTEGER NOT NULL)`,
];

/** A cached output: inline bytes, or a blob in R2. */
export type CachedOutput = Uint8Array | { sha256: string; size: number };

/** Cached outputs for these keys (absent keys are misses). At most 100 keys per call. */
export async function cachedOutputs(d1: D1Database, keys: string[]): Promise<Map<string, CachedOutput>> {
  const found = new Map<string, CachedOutput>();
  if (keys.length === 0) return found;
  const { results } = await (await db(d1))
    .prepare(`SELECT key, output, output_sha, size FROM cache WHERE key IN (${keys.map(() => "?").join(",")})`)
    .bind(...keys)
    .all<{ key: string; output: ArrayBuffer | number[] | null; output_sha: string | null; size: number }>();
  for (const r of results) {
    found.set(r.key, r.output_sha ? { sha256: r.output_sha, size: r.size } : new Uint8Array(r.output ?? []));
  }
  return found;
}

/** Files outputs in the cache; an existing entry for a key is kept. */
export async function fileOutputs(d1: D1Database, entries: { key: string; output: CachedOutput }[]): Promise<void> {
  const now = Date.now();
  const database = await db(d1);
  await database.batch(
    entries.map(({ key, output }) =>
      database
        .prepare(`INSERT OR IGNORE INTO cache (key, output, output_sha, size, created_at) VALUES (?, ?, ?, ?, ?)`)
        .bind(key, output instanceof Uint8Array ? output : null, output instanceof Uint8Array ? null : output.sha256, output instanceof Uint8Array ? output.length : output.size, now),
    ),
  );
}

let ready: Promise<unknown> | undefined;

/** The database, with its schema in place. */
export async function db(d1: D1Database): Promise<D1Database> {
  ready ??= d1.batch(SCHEMA.map((s) => d1.prepare(s))).catch((e) => {
    ready = undefined;
    throw e;
  });
  await ready;
  return d1;
}

export interface RunIndexRow {
  id: string;
  name: string;
  status: RunStatus;
  tasks: number;
  succeeded: number;
  failed: number;
  created_at: number;
  updated_at: number;
}

/** Inserts or refreshes one run's line in the index. */
export async function indexRun(d1: D1Database, row: RunIndexRow): Promise<void> {
  await (await db(d1))
    .prepare(
      `INSERT INTO runs (id, name, status, tasks, succeeded, failed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, succeeded = excluded.succeeded,
         failed = excluded.failed, updated_at = excluded.updated_at`,
    )
    .bind(row.id, row.name, row.status, row.tasks, row.succeeded, row.failed, row.created_at, row.updated_at)
    .run();
}

export async function recentRuns(d1: D1Database, limit: number): Promise<RunIndexRow[]> {
  const { results } = await (await db(d1)).prepare(`SELECT * FROM runs ORDER BY created_at DESC LIMIT ?`).bind(limit).all<RunIndexRow>();
  return results;
}

export async function moduleByName(d1: D1Database, name: string): Promise<{ sha256: string; size: number } | null> {
  return (await db(d1)).prepare(`SELECT sha256, size FROM modules WHERE name = ?`).bind(name).first();
}

export async function registerModule(d1: D1Database, name: string, sha256: string, size: number): Promise<void> {
  await (await db(d1))
    .prepare(`INSERT INTO modules (name, sha256, size, uploaded_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, uploaded_at = excluded.uploaded_at`)
    .bind(name, sha256, size, Date.now())
    .run();
}
