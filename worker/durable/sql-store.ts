/**
 * `RunStore` over a Durable Object's SQLite storage: the run's state machine reads and writes
 * rows here, never a whole DAG in memory. Also answers the read-only views (run detail, task
 * output) for the DagRun's RPC methods.
 */
import type { AttemptView, TaskView } from "../../core/api.js";
import type { ResolvedNode } from "../../core/dag/plan.js";
import type { BlobRef, Failure } from "../../core/protocol/messages.js";
import {
  type AttemptRow,
  type DeadlineKind,
  type NodeRow,
  type RunnerRow,
  type RunStore,
  type TaskRow,
} from "../run/store.js";
import { type RunStatus, TASK_STATES, type TaskState } from "../../core/status.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, ord INTEGER NOT NULL, spec TEXT NOT NULL,
  pending_deps INTEGER NOT NULL, remaining INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node_ready (node TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS edges (dep TEXT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (dep, node));
CREATE TABLE IF NOT EXISTS tasks (key TEXT PRIMARY KEY, node TEXT NOT NULL, idx INTEGER, seq INTEGER NOT NULL,
  priority INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0, runner TEXT, output BLOB, output_sha TEXT, output_size INTEGER, cache_key TEXT);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_node ON tasks (node, state, idx);
CREATE INDEX IF NOT EXISTS tasks_runner ON tasks (runner) WHERE runner IS NOT NULL;
CREATE TABLE IF NOT EXISTS counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (task TEXT NOT NULL, attempt INTEGER NOT NULL, runner TEXT NOT NULL,
  runner_name TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, outcome TEXT NOT NULL,
  failure TEXT, stderr TEXT NOT NULL DEFAULT '', note TEXT, PRIMARY KEY (task, attempt));
CREATE TABLE IF NOT EXISTS deadlines (kind TEXT NOT NULL, key TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS deadlines_at ON deadlines (at);
CREATE TABLE IF NOT EXISTS attached (id TEXT PRIMARY KEY, name TEXT NOT NULL, credit INTEGER NOT NULL, sent INTEGER NOT NULL, caps TEXT);
`;

type Row = Record<string, SqlStorageValue>;

/** What changed since watchers were last told: nodes whose counts moved, and tasks by key. */
export class Changes {
  readonly nodes = new Set<string>();
  readonly tasks = new Map<string, TaskState>();
  /** Some change was not listed task by task (a whole node or state moved). */
  bulk = false;

  get empty(): boolean {
    return this.nodes.size === 0 && !this.bulk;
  }
}

export class SqlStore implements RunStore {
  private readonly specs = new Map<string, ResolvedNode>();
  private deps: Map<string, string[]> | undefined;
  private constrained: string[] | undefined;
  private readonly readyAt = new Map<string, number | null>();
  /** Set while someone watches the run: every state change is noted here. */
  watching: Changes | null = null;

  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
  }

  meta(key: string): string | undefined {
    const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0];
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec(
      `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      key,
      value,
    );
  }

  status(): RunStatus {
    return (this.meta("status") as RunStatus | undefined) ?? "queued";
  }

  setStatus(status: RunStatus, at: number): void {
    this.setMeta("status", status);
    if (status === "succeeded" || status === "failed" || status === "cancelled")
      this.setMeta("finished_at", String(at));
  }

  insertPlan(nodes: readonly NodeRow[]): void {
    let seq = 0;
    for (const [ord, { spec, pendingDeps, remaining }] of nodes.entries()) {
      this.sql.exec(
        `INSERT INTO nodes (id, ord, spec, pending_deps, remaining) VALUES (?, ?, ?, ?, ?)`,
        spec.id,
        ord,
        JSON.stringify(spec),
        pendingDeps,
        remaining,
      );
      for (const dep of spec.deps) this.sql.exec(`INSERT INTO edges (dep, node) VALUES (?, ?)`, dep, spec.id);
      const state: TaskState = pendingDeps > 0 ? "blocked" : spec.cache ? "lookup" : "ready";
      if (spec.instances === null) {
        this.sql.exec(
          `INSERT INTO tasks (key, node, idx, seq, priority, state) VALUES (?, ?, NULL, ?, ?, ?)`,
          spec.id,
          spec.id,
          seq,
          spec.priority,
          state,
        );
      } else {
        // One statement per mapped task, however many instances it has.
        this.sql.exec(
          `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
           INSERT INTO tasks (key, node, idx, seq, priority, state) SELECT ? || '[' || i || ']', ?, i, ? + i, ?, ? FROM n`,
          spec.instances,
          spec.id,
          spec.id,
          seq,
          spec.priority,
          state,
        );
      }
      const count = spec.instances ?? 1;
      seq += count;
      this.addCount(state, count);
    }
  }

  node(id: string): NodeRow {
    const row = this.sql
      .exec<{ spec: string; pending_deps: number; remaining: number }>(
        `SELECT spec, pending_deps, remaining FROM nodes WHERE id = ?`,
        id,
      )
      .one();
    let spec = this.specs.get(id);
    if (!spec) this.specs.set(id, (spec = JSON.parse(row.spec) as ResolvedNode));
    return { spec, pendingDeps: row.pending_deps, remaining: row.remaining };
  }

  /** Node ids in plan order. */
  nodeIds(): string[] {
    return this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
  }

  dependents(id: string): string[] {
    if (!this.deps) {
      this.deps = new Map();
      for (const { dep, node } of this.sql.exec<{ dep: string; node: string }>(`SELECT dep, node FROM edges`)) {
        const list = this.deps.get(dep) ?? [];
        list.push(node);
        this.deps.set(dep, list);
      }
    }
    return this.deps.get(id) ?? [];
  }

  setNodeReady(id: string, at: number): void {
    this.sql.exec(`INSERT OR REPLACE INTO node_ready (node, at) VALUES (?, ?)`, id, at);
    this.readyAt.set(id, at);
  }

  nodeReadyAt(id: string): number | null {
    if (!this.readyAt.has(id))
      this.readyAt.set(
        id,
        this.sql.exec<{ at: number }>(`SELECT at FROM node_ready WHERE node = ?`, id).toArray()[0]?.at ?? null,
      );
    return this.readyAt.get(id)!;
  }

  bumpNode(id: string, counter: "pendingDeps" | "remaining", delta: number): number {
    const column = counter === "pendingDeps" ? "pending_deps" : "remaining";
    return this.sql
      .exec<{ v: number }>(
        `UPDATE nodes SET ${column} = ${column} + ? WHERE id = ? RETURNING ${column} AS v`,
        delta,
        id,
      )
      .one().v;
  }

  task(key: string): TaskRow | undefined {
    const row = this.sql
      .exec(`SELECT key, node, idx, state, attempt, failures, runner FROM tasks WHERE key = ?`, key)
      .toArray()[0];
    return row && toTask(row);
  }

  updateTask(key: string, changes: Partial<Pick<TaskRow, "state" | "attempt" | "failures" | "runner">>): void {
    const prior = changes.state ? this.task(key) : undefined;
    const before = prior?.state;
    const sets: string[] = [];
    const values: SqlStorageValue[] = [];
    for (const [field, value] of Object.entries(changes)) {
      sets.push(`${field} = ?`);
      values.push(value);
    }
    if (sets.length === 0) return;
    this.sql.exec(`UPDATE tasks SET ${sets.join(", ")} WHERE key = ?`, ...values, key);
    if (before && changes.state && before !== changes.state) {
      this.addCount(before, -1);
      this.addCount(changes.state, 1);
      this.watching?.nodes.add(prior.node);
      this.watching?.tasks.set(key, changes.state);
    }
  }

  moveNode(node: string, from: TaskState, to: TaskState): number {
    this.sql.exec(`UPDATE tasks SET state = ? WHERE node = ? AND state = ?`, to, node, from);
    // rowsWritten counts index entries too; changes() counts rows.
    const moved = this.sql.exec<{ n: number }>(`SELECT changes() AS n`).one().n;
    if (moved > 0) {
      this.addCount(from, -moved);
      this.addCount(to, moved);
      if (this.watching) {
        this.watching.nodes.add(node);
        this.watching.bulk = true;
      }
    }
    return moved;
  }

  moveAll(from: TaskState, to: TaskState): number {
    this.sql.exec(`UPDATE tasks SET state = ? WHERE state = ?`, to, from);
    const moved = this.sql.exec<{ n: number }>(`SELECT changes() AS n`).one().n;
    if (moved > 0) {
      this.addCount(from, -moved);
      this.addCount(to, moved);
      if (this.watching) {
        for (const id of this.nodeIds()) this.watching.nodes.add(id);
        this.watching.bulk = true;
      }
    }
    return moved;
  }

  /** Instances counted by state for each of `nodes` (every node when omitted). */
  nodeCounts(nodes?: string[]): Map<string, Partial<Record<TaskState, number>>> {
    const out = new Map<string, Partial<Record<TaskState, number>>>();
    const rows = nodes
      ? nodes.flatMap((node) =>
          this.sql
            .exec<{ node: string; state: TaskState; n: number }>(
              `SELECT node, state, count(*) AS n FROM tasks WHERE node = ? GROUP BY state`,
              node,
            )
            .toArray(),
        )
      : this.sql
          .exec<{ node: string; state: TaskState; n: number }>(
            `SELECT node, state, count(*) AS n FROM tasks GROUP BY node, state`,
          )
          .toArray();
    for (const id of nodes ?? this.nodeIds()) out.set(id, {});
    for (const { node, state, n } of rows) out.get(node)![state] = n;
    return out;
  }

  leased(): TaskRow[] {
    return this.sql
      .exec(`SELECT key, node, idx, state, attempt, failures, runner FROM tasks WHERE state = 'leased'`)
      .toArray()
      .map(toTask);
  }

  lookups(limit: number): TaskRow[] {
    return this.sql
      .exec(
        `SELECT key, node, idx, state, attempt, failures, runner FROM tasks WHERE state = 'lookup' ORDER BY seq LIMIT ?`,
        limit,
      )
      .toArray()
      .map(toTask);
  }

  setCacheKey(key: string, cacheKey: string): void {
    this.sql.exec(`UPDATE tasks SET cache_key = ? WHERE key = ?`, cacheKey, key);
  }

  cacheKey(key: string): string | null {
    return (
      this.sql.exec<{ k: string | null }>(`SELECT cache_key AS k FROM tasks WHERE key = ?`, key).toArray()[0]?.k ?? null
    );
  }

  ready(limit: number, excluded: readonly string[] = []): TaskRow[] {
    return this.sql
      .exec(
        `SELECT key, node, idx, state, attempt, failures, runner FROM tasks WHERE state = 'ready'${notIn(excluded)} ORDER BY priority DESC, seq LIMIT ?`,
        ...excluded,
        limit,
      )
      .toArray()
      .map(toTask);
  }

  constrainedNodes(): string[] {
    this.constrained ??= this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes WHERE json_extract(spec, '$.requires') IS NOT NULL ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
    return this.constrained;
  }

  readyIn(node: string): number {
    return this.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM tasks WHERE node = ? AND state = 'ready'`, node)
      .one().n;
  }

  topReadyPriority(excluded: readonly string[]): number | null {
    const row = this.sql
      .exec<{ p: number }>(
        `SELECT priority AS p FROM tasks WHERE state = 'ready'${notIn(excluded)} ORDER BY priority DESC, seq LIMIT 1`,
        ...excluded,
      )
      .toArray()[0];
    return row?.p ?? null;
  }

  leasedTo(runner: string): TaskRow[] {
    return this.sql
      .exec(
        `SELECT key, node, idx, state, attempt, failures, runner FROM tasks WHERE runner = ? AND state = 'leased'`,
        runner,
      )
      .toArray()
      .map(toTask);
  }

  counts(): Record<TaskState, number> {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const { state, n } of this.sql.exec<{ state: TaskState; n: number }>(`SELECT state, n FROM counts`))
      counts[state] = n;
    return counts;
  }

  private addCount(state: TaskState, delta: number): void {
    this.sql.exec(
      `INSERT INTO counts (state, n) VALUES (?, ?) ON CONFLICT (state) DO UPDATE SET n = n + excluded.n`,
      state,
      delta,
    );
  }

  outputs(node: string): (Uint8Array | BlobRef)[] {
    return this.sql
      .exec<OutputRow>(`SELECT output, output_sha, output_size FROM tasks WHERE node = ? ORDER BY idx`, node)
      .toArray()
      .map((r) => toOutput(r) ?? new Uint8Array(0));
  }

  setOutput(key: string, output: Uint8Array | BlobRef): void {
    if (output instanceof Uint8Array)
      this.sql.exec(`UPDATE tasks SET output = ?, output_size = ? WHERE key = ?`, output, output.length, key);
    else
      this.sql.exec(`UPDATE tasks SET output_sha = ?, output_size = ? WHERE key = ?`, output.sha256, output.size, key);
  }

  /** A task's state and accepted output (bytes, or where they are), for the output route. */
  output(key: string): { state: TaskState; output: Uint8Array | BlobRef | null } | undefined {
    const row = this.sql
      .exec<OutputRow & { state: TaskState }>(
        `SELECT state, output, output_sha, output_size FROM tasks WHERE key = ?`,
        key,
      )
      .toArray()[0];
    return row && { state: row.state, output: toOutput(row) };
  }

  addAttempt(a: AttemptRow): void {
    this.sql.exec(
      `INSERT INTO attempts (task, attempt, runner, runner_name, started_at, ended_at, outcome, failure, stderr, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      a.task,
      a.attempt,
      a.runner,
      a.runnerName,
      a.startedAt,
      a.endedAt,
      a.outcome,
      a.failure ? JSON.stringify(a.failure) : null,
      a.stderr,
      a.note,
    );
  }

  endAttempt(task: string, attempt: number, end: Pick<AttemptRow, "endedAt" | "outcome" | "failure" | "stderr">): void {
    this.sql.exec(
      `UPDATE attempts SET ended_at = ?, outcome = ?, failure = ?, stderr = ? WHERE task = ? AND attempt = ?`,
      end.endedAt,
      end.outcome,
      end.failure ? JSON.stringify(end.failure) : null,
      end.stderr,
      task,
      attempt,
    );
  }

  noteAttempt(task: string, attempt: number, note: string): void {
    this.sql.exec(`UPDATE attempts SET note = ? WHERE task = ? AND attempt = ?`, note, task, attempt);
  }

  setDeadline(kind: DeadlineKind, key: string, at: number): void {
    this.sql.exec(
      `INSERT INTO deadlines (kind, key, at) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET at = excluded.at`,
      kind,
      key,
      at,
    );
  }

  clearDeadline(kind: DeadlineKind, key: string): void {
    this.sql.exec(`DELETE FROM deadlines WHERE kind = ? AND key = ?`, kind, key);
  }

  clearDeadlines(): void {
    this.sql.exec(`DELETE FROM deadlines`);
  }

  dueDeadlines(now: number, limit: number): { kind: DeadlineKind; key: string; at: number }[] {
    return this.sql
      .exec<{ kind: DeadlineKind; key: string; at: number }>(
        `SELECT kind, key, at FROM deadlines WHERE at <= ? ORDER BY at LIMIT ?`,
        now,
        limit,
      )
      .toArray();
  }

  nextDeadline(): number | null {
    return this.sql.exec<{ at: number | null }>(`SELECT min(at) AS at FROM deadlines`).one().at;
  }

  runner(id: string): RunnerRow | undefined {
    return this.runnerRows(`SELECT id, name, credit, sent, caps FROM attached WHERE id = ?`, id)[0];
  }

  runners(): RunnerRow[] {
    return this.runnerRows(`SELECT id, name, credit, sent, caps FROM attached ORDER BY id`);
  }

  private runnerRows(query: string, ...bindings: SqlStorageValue[]): RunnerRow[] {
    return this.sql
      .exec<{ id: string; name: string; credit: number; sent: number; caps: string | null }>(query, ...bindings)
      .toArray()
      .map((r) => ({ ...r, caps: r.caps === null ? null : (JSON.parse(r.caps) as RunnerRow["caps"]) }));
  }

  putRunner(row: RunnerRow): void {
    this.sql.exec(
      `INSERT INTO attached (id, name, credit, sent, caps) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, credit = excluded.credit, sent = excluded.sent, caps = excluded.caps`,
      row.id,
      row.name,
      row.credit,
      row.sent,
      row.caps === null ? null : JSON.stringify(row.caps),
    );
  }

  removeRunner(id: string): void {
    this.sql.exec(`DELETE FROM attached WHERE id = ?`, id);
  }

  /** Tasks with their attempts, in submission order, for `GET /api/dags/:id` (a page of them when `limit` is set). */
  taskViews(offset = 0, limit = -1, state?: TaskState): TaskView[] {
    // `?1 IS NULL OR state = ?1` keeps one statement for "all tasks" and "tasks in a state".
    const where = `WHERE ?1 IS NULL OR state = ?1`;
    const page = `SELECT key FROM tasks ${where} ORDER BY seq LIMIT ?2 OFFSET ?3`;
    const attempts = new Map<string, AttemptView[]>();
    for (const a of this.sql.exec(
      `SELECT * FROM attempts WHERE task IN (${page}) ORDER BY task, attempt`,
      state ?? null,
      limit,
      offset,
    )) {
      const failure = a.failure ? (JSON.parse(a.failure as string) as Failure) : null;
      const list = attempts.get(a.task as string) ?? [];
      list.push({
        attempt: a.attempt as number,
        runner: a.runner as string,
        runner_name: a.runner_name as string,
        started_at: a.started_at as number,
        ended_at: a.ended_at as number | null,
        outcome: a.outcome as AttemptRow["outcome"],
        failure_kind: failure?.kind ?? null,
        error: failure?.message ?? null,
        stderr: a.stderr as string,
        note: a.note as string | null,
      });
      attempts.set(a.task as string, list);
    }
    return this.sql
      .exec(
        `SELECT key, node, idx, state, attempt, output_size AS output_bytes FROM tasks ${where} ORDER BY seq LIMIT ?2 OFFSET ?3`,
        state ?? null,
        limit,
        offset,
      )
      .toArray()
      .map((t) => {
        const list = attempts.get(t.key as string) ?? [];
        const first = list[0];
        const last = list[list.length - 1];
        return {
          id: t.key as string,
          node: t.node as string,
          index: t.idx as number | null,
          state: t.state as TaskState,
          output_bytes: t.output_bytes as number | null,
          cached: last?.outcome === "cached",
          started_at: first?.started_at ?? null,
          ended_at: last?.ended_at ?? null,
          attempts: list,
        };
      });
  }
}

type OutputRow = { output: ArrayBuffer | null; output_sha: string | null; output_size: number | null };

function toOutput(row: OutputRow): Uint8Array | BlobRef | null {
  if (row.output_sha) return { sha256: row.output_sha, size: row.output_size ?? 0 };
  return row.output_size === null ? null : new Uint8Array(row.output ?? new ArrayBuffer(0));
}

/** ` AND node NOT IN (?, …)` for `excluded` nodes, or nothing. */
function notIn(excluded: readonly string[]): string {
  return excluded.length === 0 ? "" : ` AND node NOT IN (${excluded.map(() => "?").join(", ")})`;
}

function toTask(row: Row): TaskRow {
  return {
    key: row.key as string,
    node: row.node as string,
    index: row.idx as number | null,
    state: row.state as TaskState,
    attempt: row.attempt as number,
    failures: row.failures as number,
    runner: row.runner as string | null,
  };
}
