/**
 * The D1 index: recent runs (kept current by each run's Durable Object) and the module
 * registry (names pinned to sha256). The schema is created on first use in each isolate, so
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
];

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
