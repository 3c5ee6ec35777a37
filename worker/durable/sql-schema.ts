/**
 * The tables of a DagRun's SQLite storage and how their rows become the run's types: the
 * RunStore (sql-store.ts) writes and reads them for the state machine, the read-only views
 * (sql-views.ts) read them for the RPC methods.
 */
import type { BlobRef } from "../../core/protocol/messages.js";
import type { TaskState } from "../../core/status.js";
import type { TaskRow } from "../run/store.js";

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, ord INTEGER NOT NULL, spec TEXT NOT NULL,
  pending_deps INTEGER NOT NULL, remaining INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node_ready (node TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS edges (dep TEXT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (dep, node));
CREATE TABLE IF NOT EXISTS tasks (key TEXT PRIMARY KEY, node TEXT NOT NULL, idx INTEGER, seq INTEGER NOT NULL,
  priority INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0, runner TEXT, output BLOB, output_sha TEXT, output_size INTEGER,
  cache_key TEXT, losses INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_node ON tasks (node, state, idx);
CREATE INDEX IF NOT EXISTS tasks_runner ON tasks (runner) WHERE runner IS NOT NULL;
CREATE TABLE IF NOT EXISTS counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (task TEXT NOT NULL, attempt INTEGER NOT NULL, runner TEXT NOT NULL,
  runner_name TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, outcome TEXT NOT NULL,
  failure TEXT, stderr TEXT NOT NULL DEFAULT '', note TEXT, PRIMARY KEY (task, attempt));
CREATE TABLE IF NOT EXISTS deadlines (kind TEXT NOT NULL, key TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS deadlines_at ON deadlines (at);
CREATE TABLE IF NOT EXISTS inputs (name TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (name, idx));
CREATE TABLE IF NOT EXISTS input_blobs (sha256 TEXT NOT NULL, name TEXT NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY (sha256, name, idx));
CREATE TABLE IF NOT EXISTS attached (id TEXT PRIMARY KEY, name TEXT NOT NULL, credit INTEGER NOT NULL,
  sent INTEGER NOT NULL, caps TEXT, cooled_until INTEGER);
CREATE TABLE IF NOT EXISTS logs (task TEXT NOT NULL, attempt INTEGER NOT NULL, offset INTEGER NOT NULL,
  size INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (task, attempt, offset));
CREATE TABLE IF NOT EXISTS log_heads (task TEXT NOT NULL, attempt INTEGER NOT NULL, bytes INTEGER NOT NULL,
  stored INTEGER NOT NULL, claimed INTEGER NOT NULL, place TEXT NOT NULL, PRIMARY KEY (task, attempt));
CREATE INDEX IF NOT EXISTS log_heads_open ON log_heads (place) WHERE place = 'open';
`;

/**
 * Columns added since a table was first made: a run stored by an older version gets them (with
 * their defaults) when its object next starts.
 */
export const ADDED_COLUMNS: readonly { table: string; column: string; type: string }[] = [
  { table: "tasks", column: "losses", type: "INTEGER NOT NULL DEFAULT 0" },
  { table: "attached", column: "cooled_until", type: "INTEGER" },
  { table: "attached", column: "backlog_told", type: "INTEGER NOT NULL DEFAULT -1" },
  { table: "attached", column: "sent_at", type: "INTEGER NOT NULL DEFAULT 0" },
  { table: "tasks", column: "item", type: "TEXT" },
  // 1 once the runner holding the attempt said it started it (its lease runs from then).
  { table: "tasks", column: "started", type: "INTEGER NOT NULL DEFAULT 0" },
  { table: "attached", column: "slots", type: "INTEGER NOT NULL DEFAULT 1" },
  { table: "attached", column: "stealing", type: "INTEGER NOT NULL DEFAULT 0" },
];

const ASCII = /^[\x00-\x7f]*$/;

/** The most bytes one bound list takes (workerd refuses a value over 2 MB). */
const LIST_BYTES = 1_500_000;

/**
 * `texts` as JSON arrays of at most LIST_BYTES each (one text per array at least), with the index
 * of each array's first text: a long list goes into a table in a few `json_each` statements.
 */
export function jsonChunks(texts: readonly string[]): { json: string; offset: number }[] {
  const encoder = new TextEncoder();
  const out: { json: string; offset: number }[] = [];
  let start = 0;
  let bytes = 2;
  for (let i = 0; i < texts.length; i++) {
    // Its UTF-8 size: its length when it is ASCII (most are), else encoded.
    const json = JSON.stringify(texts[i]);
    const size = (ASCII.test(json) ? json.length : encoder.encode(json).length) + 1;
    if (i > start && bytes + size > LIST_BYTES) {
      out.push({ json: JSON.stringify(texts.slice(start, i)), offset: start });
      start = i;
      bytes = 2;
    }
    bytes += size;
  }
  if (texts.length > start) out.push({ json: JSON.stringify(texts.slice(start)), offset: start });
  return out;
}

/** The columns of a task row as `toTask` reads them. */
export const TASK_COLUMNS = `key, node, idx, state, attempt, failures, losses, runner`;

export function toTask(row: Record<string, SqlStorageValue>): TaskRow {
  return {
    key: row.key as string,
    node: row.node as string,
    index: row.idx as number | null,
    state: row.state as TaskState,
    attempt: row.attempt as number,
    failures: row.failures as number,
    losses: row.losses as number,
    runner: row.runner as string | null,
  };
}

/** The output columns of a task row. */
export type OutputRow = { output: ArrayBuffer | null; output_sha: string | null; output_size: number | null };

/** A task's accepted output from its columns: bytes, a blob reference, or null when it has none. */
export function toOutput(row: OutputRow): Uint8Array | BlobRef | null {
  if (row.output_sha) return { sha256: row.output_sha, size: row.output_size ?? 0 };
  return row.output_size === null ? null : new Uint8Array(row.output ?? new ArrayBuffer(0));
}

/**
 * ` AND node NOT IN (…)` for `excluded` nodes, with the bindings it takes: none when there are
 * none, else the list as one JSON value, whatever its length (SQLite in a Durable Object takes
 * at most 100 bound parameters; a DAG may have more constrained nodes than that).
 */
export function notIn(excluded: readonly string[]): { sql: string; bindings: string[] } {
  if (excluded.length === 0) return { sql: "", bindings: [] };
  return { sql: ` AND node NOT IN (SELECT value FROM json_each(?))`, bindings: [JSON.stringify(excluded)] };
}
