/**
 * The read-only views of a run for the DagRun's RPC methods and its watchers: the summary, the
 * nodes with their instances counted by state, the tasks with their attempts (a page of them),
 * and one task's output. They read the tables of sql-schema.ts and never write.
 */
import {
  TIMELINE_MAX,
  type AttemptView,
  type NodeView,
  type RunSummary,
  type Submitter,
  type TaskView,
  type TimelineAttempt,
  type TimelineView,
} from "../../core/api.js";
import type { BlobRef, Failure } from "../../core/protocol/messages.js";
import type { AttemptOutcome, TaskState } from "../../core/status.js";
import type { Fetchable } from "../rpc.js";
import type { SqlStore } from "./sql-store.js";
import { type OutputRow, toOutput } from "./sql-schema.js";

/** The submitter a run's meta keeps (JSON), or null for a run from before it was kept. */
function submitter(meta: string | undefined): Submitter | null {
  if (!meta) return null;
  const { token, name } = JSON.parse(meta) as Submitter;
  return { token, name };
}

/** What every view of an attempt shows of its row: which one, on which device, when, and how it ended. */
function attemptSpan(a: Record<string, SqlStorageValue>): Omit<TimelineAttempt, "task"> {
  return {
    attempt: a.attempt as number,
    runner_name: a.runner_name as string,
    started_at: a.started_at as number,
    ended_at: a.ended_at as number | null,
    outcome: a.outcome as AttemptOutcome,
  };
}

/** Instances of each node by state. */
export type NodeCounts = Map<string, Partial<Record<TaskState, number>>>;

export class RunViews {
  constructor(
    private readonly sql: SqlStorage,
    private readonly store: SqlStore,
  ) {}

  /** The run's status and counts as stored (none `waiting`: see run-host/waiting.ts), or null before it has a plan. */
  summary(now = Date.now()): RunSummary | null {
    const { store } = this;
    const id = store.meta("id");
    if (!id) return null;
    const counts = store.counts();
    const finished = store.meta("finished_at");
    return {
      id,
      name: store.meta("name") ?? "unnamed",
      status: store.status(),
      created_at: Number(store.meta("created_at")),
      updated_at: now,
      finished_at: finished ? Number(finished) : null,
      counts: { ...counts, waiting: 0 },
      tasks_total: Object.values(counts).reduce((a, b) => a + b, 0),
      retry_of: store.meta("retry_of") ?? null,
      submitted_by: submitter(store.meta("submitted_by")),
    };
  }

  /**
   * Whether a task leased to a runner of `device` (`<device>` or `<device>.<k>`) runs the module,
   * or takes the blob as an input (the output of a task it depends on); for an output, whether
   * the device holds any lease here (whose output it may be).
   */
  names(device: string, what: Fetchable): boolean {
    const mine = `t.state = 'leased' AND (t.runner = ?1 OR substr(t.runner, 1, length(?1) + 1) = ?1 || '.')`;
    const query = {
      module: `SELECT 1 FROM tasks t JOIN nodes n ON n.id = t.node
        WHERE ${mine} AND json_extract(n.spec, '$.sha256') = ?2 LIMIT 1`,
      // A dependency's output in blob storage (not the output a map goes over: its instances get
      // their elements), or a file of an input the task reads (of a map over files, its own file).
      blob: `SELECT 1 FROM tasks t JOIN nodes n ON n.id = t.node JOIN edges e ON e.node = t.node
          JOIN tasks d ON d.node = e.dep
        WHERE ${mine} AND d.output_sha = ?2 AND e.dep IS NOT json_extract(n.spec, '$.over')
        UNION ALL SELECT 1 FROM tasks t JOIN nodes n ON n.id = t.node, json_each(n.spec, '$.inputs') u
          JOIN input_blobs b ON b.name = u.value
        WHERE ${mine} AND b.sha256 = ?2 AND (u.value IS NOT json_extract(n.spec, '$.files') OR b.idx = t.idx)
        LIMIT 1`,
      output: `SELECT 1 FROM tasks t WHERE ${mine} AND ?2 IS NOT NULL LIMIT 1`,
    }[what.kind];
    return this.sql.exec(query, device, what.sha256).toArray().length > 0;
  }

  /** Node ids in plan order. */
  nodeIds(): string[] {
    return this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
  }

  /** Every node in plan order, with its module and its instances counted by state. */
  nodes(): (NodeView & { sha256: string })[] {
    const counts = this.nodeCounts();
    return this.nodeIds().map((id) => {
      const { spec } = this.store.node(id);
      const { module, sha256, deps, instances } = spec;
      return { id, module, sha256, deps, instances, requires: spec.requires ?? null, counts: counts.get(id) ?? {} };
    });
  }

  /** Instances counted by state for each of `nodes` (every node when omitted). */
  nodeCounts(nodes?: string[]): NodeCounts {
    type Count = { node: string; state: TaskState; n: number };
    const out: NodeCounts = new Map();
    const rows = nodes
      ? nodes.flatMap((node) =>
          this.sql
            .exec<Count>(`SELECT node, state, count(*) AS n FROM tasks WHERE node = ? GROUP BY state`, node)
            .toArray(),
        )
      : this.sql.exec<Count>(`SELECT node, state, count(*) AS n FROM tasks GROUP BY node, state`).toArray();
    for (const id of nodes ?? this.nodeIds()) out.set(id, {});
    for (const { node, state, n } of rows) out.get(node)![state] = n;
    return out;
  }

  /** Tasks with their attempts, in submission order, for `GET /api/dags/:id` (a page of them when `limit` is set). */
  taskViews(offset = 0, limit = -1, state?: TaskState): TaskView[] {
    // `?1 IS NULL OR state = ?1` keeps one statement for "all tasks" and "tasks in a state".
    const where = `WHERE ?1 IS NULL OR state = ?1`;
    const page = `SELECT key FROM tasks ${where} ORDER BY seq LIMIT ?2 OFFSET ?3`;
    const attempts = new Map<string, AttemptView[]>();
    const bindings = [state ?? null, limit, offset];
    for (const a of this.sql.exec(
      `SELECT * FROM attempts WHERE task IN (${page}) ORDER BY task, attempt`,
      ...bindings,
    )) {
      const failure = a.failure ? (JSON.parse(a.failure as string) as Failure) : null;
      const list = attempts.get(a.task as string) ?? [];
      list.push({
        ...attemptSpan(a),
        runner: a.runner as string,
        failure_kind: failure?.kind ?? null,
        error: failure?.message ?? null,
        stderr: a.stderr as string,
        note: a.note as string | null,
      });
      attempts.set(a.task as string, list);
    }
    const tasks = `SELECT key, node, idx, state, attempt, output_size AS output_bytes FROM tasks ${where}
      ORDER BY seq LIMIT ?2 OFFSET ?3`;
    return this.sql
      .exec(tasks, ...bindings)
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

  /**
   * Every attempt (the newest TIMELINE_MAX when there are more), by start, and the tasks finished
   * in each bucket of the run: the page's per-device timeline and its throughput over the whole run.
   */
  timeline(now = Date.now()): TimelineView | null {
    const created = Number(this.store.meta("created_at"));
    if (!this.store.meta("id")) return null;
    const finishedMeta = this.store.meta("finished_at");
    const finishedAt = finishedMeta ? Number(finishedMeta) : null;
    // The newest attempts, by rowid (the order they were sent in: no sort, no index to keep up).
    const rows = this.sql
      .exec(
        `SELECT task, attempt, runner_name, started_at, ended_at, outcome FROM attempts ORDER BY rowid DESC LIMIT ?`,
        TIMELINE_MAX + 1,
      )
      .toArray();
    const cut = rows.length > TIMELINE_MAX;
    const attempts = rows
      .slice(0, TIMELINE_MAX)
      .map((a) => ({ task: a.task as string, ...attemptSpan(a) }))
      .sort((a, b) => a.started_at - b.started_at || a.task.localeCompare(b.task) || a.attempt - b.attempt);
    // Buckets of a second, or wider so that a long run has at most 600.
    const span = Math.max(0, (finishedAt ?? now) - created);
    const bucket = Math.max(1000, Math.ceil(span / 600 / 1000) * 1000);
    const finished = new Array<number>(Math.max(1, Math.ceil(span / bucket))).fill(0);
    for (const row of this.sql.exec(
      `SELECT (a.ended_at - ?1) / ?2 AS b, count(*) AS n FROM tasks t
       JOIN attempts a ON a.task = t.key AND a.attempt = t.attempt
       WHERE t.state IN ('succeeded', 'failed', 'cancelled') AND a.ended_at IS NOT NULL GROUP BY b`,
      created,
      bucket,
    )) {
      const at = Math.min(Math.max(0, Math.floor(row.b as number)), finished.length - 1);
      finished[at]! += row.n as number;
    }
    return { created_at: created, finished_at: finishedAt, attempts, cut, bucket_ms: bucket, finished };
  }

  /** A task's state and accepted output (bytes, or where they are), or undefined when there is no such task. */
  output(key: string): { state: TaskState; output: Uint8Array | BlobRef | null } | undefined {
    const row = this.sql
      .exec<OutputRow & { state: TaskState }>(
        `SELECT state, output, output_sha, output_size FROM tasks WHERE key = ?`,
        key,
      )
      .toArray()[0];
    return row && { state: row.state, output: toOutput(row) };
  }
}
