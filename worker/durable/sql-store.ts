/**
 * `RunStore` over a Durable Object's SQLite storage (tables in sql-schema.ts): the run's state
 * machine reads and writes rows here, never a whole DAG in memory. Also keeps the run's `meta`
 * values (its id, name and status, and the small durable state of the DagRun's concerns), and
 * tells a change log of every task that changes state, for the watchers. The read-only views of
 * the run (summary, nodes, tasks, outputs) are in sql-views.ts.
 */
import type { FileRef, ResolvedNode, RunInput } from "../../core/dag/plan.js";
import { fileBlobs } from "../../core/abi.js";
import type { BlobRef } from "../../core/protocol/messages.js";
import {
  type AttemptRef,
  type AttemptRow,
  type DeadlineKind,
  type LeasedRow,
  type NodeRow,
  type RunnerRow,
  type RunStore,
  type Succeeded,
  type TaskRow,
} from "../run/store.js";
import { type AttemptOutcome, type RunStatus, TASK_STATES, type TaskState } from "../../core/status.js";
import type { ChangeLog } from "../run-host/watchers.js";
import {
  ADDED_COLUMNS,
  jsonChunks,
  notIn,
  type OutputRow,
  SCHEMA,
  TASK_COLUMNS,
  toOutput,
  toTask,
} from "./sql-schema.js";

type Deadline = { kind: DeadlineKind; key: string; at: number };

/** Outputs up to this size travel in a batch's bound list as hex; larger ones are bound as bytes. */
const HEX_OUTPUT_BYTES = 1024;
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
const hex = (bytes: Uint8Array) => {
  let out = "";
  for (const b of bytes) out += HEX[b]!;
  return out;
};

export class SqlStore implements RunStore {
  private readonly specs = new Map<string, ResolvedNode>();
  private deps: Map<string, string[]> | undefined;
  private ids: string[] | undefined;
  private constrained: string[] | undefined;
  private sources: Set<string> | undefined;
  private readonly readyAt = new Map<string, number | null>();
  /** The meta table, read once (only this object writes it). */
  private metas: Map<string, string> | undefined;
  /** The counts table, read once; changes are written by `flush`, once a transition. */
  private countCache: Record<TaskState, number> | undefined;
  private readonly dirty = new Set<TaskState>();
  private attachedRows: Map<string, RunnerRow> | undefined;
  /** Runner rows changed in this transition, written by `flush`. */
  private readonly dirtyRunners = new Set<string>();
  /** The rowids of the rows `leasedOf` read in this transition, by key. */
  private readonly rowids = new Map<string, number>();
  /** Told of every change of a task's state: the DagRun's watchers, who keep them while someone watches. */
  changes: ChangeLog | null = null;

  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
    for (const { table, column, type } of ADDED_COLUMNS) {
      const has = sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info(?)`, table).toArray();
      if (!has.some((c) => c.name === column)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
  }

  meta(key: string): string | undefined {
    this.metas ??= new Map(
      this.sql
        .exec<{ key: string; value: string }>(`SELECT key, value FROM meta`)
        .toArray()
        .map((r) => [r.key, r.value]),
    );
    return this.metas.get(key);
  }

  setMeta(key: string, value: string): void {
    if (this.meta(key) === value) return;
    const upsert = `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    this.sql.exec(upsert, key, value);
    this.metas!.set(key, value);
  }

  deleteMeta(key: string): void {
    if (this.meta(key) === undefined) return;
    this.sql.exec(`DELETE FROM meta WHERE key = ?`, key);
    this.metas!.delete(key);
  }

  /**
   * Drops what the store keeps in memory (meta values, counts, specs), to be read again: after a
   * transaction that threw, whose writes SQLite rolled back.
   */
  forget(): void {
    this.metas = undefined;
    this.countCache = undefined;
    this.dirty.clear();
    this.specs.clear();
    this.deps = undefined;
    this.constrained = undefined;
    this.ids = undefined;
    this.sources = undefined;
    this.readyAt.clear();
    this.attachedRows = undefined;
    this.dirtyRunners.clear();
    this.rowids.clear();
  }

  status(): RunStatus {
    return (this.meta("status") as RunStatus | undefined) ?? "queued";
  }

  setStatus(status: RunStatus, at: number): void {
    this.setMeta("status", status);
    if (status === "succeeded" || status === "failed" || status === "cancelled")
      this.setMeta("finished_at", String(at));
    else this.deleteMeta("finished_at"); // a retried run runs again
  }

  insertPlan(nodes: readonly NodeRow[]): void {
    // A few statements however many nodes: each row is one JSON text of a bound list.
    const rows = { nodes: [] as string[], edges: [] as string[], plain: [] as string[] };
    const mapped: { spec: ResolvedNode; seq: number; state: TaskState }[] = [];
    let seq = 0;
    for (const [ord, { spec, pendingDeps, remaining }] of nodes.entries()) {
      rows.nodes.push(JSON.stringify([spec.id, ord, JSON.stringify(spec), pendingDeps, remaining]));
      for (const dep of spec.deps) rows.edges.push(JSON.stringify([dep, spec.id]));
      const state: TaskState = pendingDeps > 0 ? "blocked" : spec.cache ? "lookup" : "ready";
      if (spec.instances === 0) continue; // a map over data: instances come with its data
      if (spec.instances === null) rows.plain.push(JSON.stringify([spec.id, seq, spec.priority, state]));
      else mapped.push({ spec, seq, state });
      const count = spec.instances ?? 1;
      seq += count;
      this.addCount(state, count);
    }
    const column = (i: number) => `json_extract(value, '$[${i}]')`;
    const insert = (into: string, width: number, list: string[]) => {
      const values = Array.from({ length: width }, (_, i) => column(i)).join(", ");
      for (const { json } of jsonChunks(list))
        this.sql.exec(`INSERT INTO ${into} SELECT ${values} FROM json_each(?)`, json);
    };
    insert("nodes (id, ord, spec, pending_deps, remaining)", 5, rows.nodes);
    insert("edges (dep, node)", 2, rows.edges);
    for (const { json } of jsonChunks(rows.plain))
      this.sql.exec(
        `INSERT INTO tasks (key, node, idx, seq, priority, state)
         SELECT ${column(0)}, ${column(0)}, NULL, ${column(1)}, ${column(2)}, ${column(3)} FROM json_each(?)`,
        json,
      );
    for (const { spec, seq, state } of mapped)
      // One statement per mapped task, however many instances it has.
      this.sql.exec(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
         INSERT INTO tasks (key, node, idx, seq, priority, state)
         SELECT ? || '[' || i || ']', ?, i, ? + i, ?, ? FROM n`,
        spec.instances,
        spec.id,
        spec.id,
        seq,
        spec.priority,
        state,
      );
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

  spec(id: string): ResolvedNode {
    const known = this.specs.get(id);
    if (known) return known;
    // The first read loads every node's: a run reads most of them, one statement for all.
    if (this.specs.size === 0) {
      for (const row of this.sql.exec<{ id: string; spec: string }>(`SELECT id, spec FROM nodes`))
        this.specs.set(row.id, JSON.parse(row.spec) as ResolvedNode);
      const loaded = this.specs.get(id);
      if (loaded) return loaded;
    }
    const row = this.sql.exec<{ spec: string }>(`SELECT spec FROM nodes WHERE id = ?`, id).toArray()[0];
    if (!row) throw new Error(`the run has no node ${id}`);
    const spec = JSON.parse(row.spec) as ResolvedNode;
    this.specs.set(id, spec);
    return spec;
  }

  insertInputs(inputs: Readonly<Record<string, RunInput>>): void {
    const put = `INSERT INTO inputs (name, idx, kind, value) VALUES (?, 0, ?, ?)`;
    for (const [name, input] of Object.entries(inputs)) {
      const files = "files" in input ? input.files : "file" in input ? [input.file] : [];
      if ("value" in input) this.sql.exec(put, name, "value", JSON.stringify(input.value));
      else if ("file" in input) this.sql.exec(put, name, "file", JSON.stringify(input.file));
      else
        for (const { json, offset } of jsonChunks(input.files.map((f) => JSON.stringify(f))))
          this.sql.exec(
            `INSERT INTO inputs (name, idx, kind, value) SELECT ?, key + ?, 'folder', value FROM json_each(?)`,
            name,
            offset,
            json,
          );
      // Each blob with the index of its file: an instance of a map over the files reads only its own.
      const blobs = files.flatMap((f, idx) => fileBlobs(f).map((sha) => JSON.stringify([sha, idx])));
      for (const { json } of jsonChunks(blobs))
        this.sql.exec(
          `INSERT OR IGNORE INTO input_blobs (sha256, name, idx)
           SELECT json_extract(value, '$[0]'), ?, json_extract(value, '$[1]') FROM json_each(?)`,
          name,
          json,
        );
    }
  }

  input(name: string): RunInput {
    const rows = this.sql
      .exec<{ kind: string; value: string }>(`SELECT kind, value FROM inputs WHERE name = ? ORDER BY idx`, name)
      .toArray();
    const kind = rows[0]?.kind;
    if (kind === "value") return { value: JSON.parse(rows[0]!.value) };
    if (kind === "file") return { file: JSON.parse(rows[0]!.value) as FileRef };
    return { files: rows.map((r) => JSON.parse(r.value) as FileRef) };
  }

  inputFile(name: string, index: number): FileRef {
    const query = `SELECT value FROM inputs WHERE name = ? AND idx = ?`;
    return JSON.parse(this.sql.exec<{ value: string }>(query, name, index).one().value) as FileRef;
  }

  insertInstances(node: string, items: readonly unknown[], state: TaskState): void {
    const spec = this.spec(node);
    const seq = this.sql.exec<{ s: number | null }>(`SELECT max(seq) AS s FROM tasks`).one().s ?? -1;
    // A few statements however many items: each item's JSON is one text of a bound list.
    for (const { json, offset } of jsonChunks(items.map((item) => JSON.stringify(item) ?? "null")))
      this.sql.exec(
        `INSERT INTO tasks (key, node, idx, seq, priority, state, item)
         SELECT ? || '[' || (key + ?) || ']', ?, key + ?, ? + key, ?, ?, value FROM json_each(?)`,
        ...[node, offset, node, offset, seq + 1 + offset, spec.priority, state, json],
      );
    this.addCount(state, items.length);
    const update = `UPDATE nodes SET remaining = ?, spec = json_set(spec, '$.instances', ?) WHERE id = ?`;
    this.sql.exec(update, items.length, items.length, node);
    this.specs.set(node, { ...spec, instances: items.length });
    if (items.length > 0) this.changes?.moved(node);
  }

  item(key: string): unknown {
    const row = this.sql.exec<{ item: string | null }>(`SELECT item FROM tasks WHERE key = ?`, key).one();
    return row.item === null ? undefined : JSON.parse(row.item);
  }

  /**
   * For a linked retry from node `task`: the plan as submitted (a map over an output back to no
   * instances) with the run's inputs, and the accepted outputs of every task that is neither of
   * `task` nor downstream of it, in plan order; or why not (an unknown task, over `maxBytes`).
   */
  linkFrom(
    task: string,
    maxBytes: number,
  ):
    | {
        plan: { nodes: ResolvedNode[]; inputs: Record<string, RunInput> };
        seeds: { task: string; output: Uint8Array | BlobRef }[];
      }
    | string {
    const ids = this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
    // A node, or an instance of one: the whole node runs again either way (its instances are one step).
    const node = ids.includes(task) ? task : task.replace(/\[\d+\]$/, "");
    if (!ids.includes(node) || (node !== task && !this.task(task))) return `the run has no task ${task}`;
    const again = new Set<string>();
    const pending = [node];
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (again.has(id)) continue;
      again.add(id);
      pending.push(...this.dependents(id));
    }
    const nodes = ids.map((id) => {
      const { spec } = this.node(id);
      return spec.over === undefined ? spec : { ...spec, instances: 0 };
    });
    const names = this.sql.exec<{ name: string }>(`SELECT DISTINCT name FROM inputs`).toArray();
    const inputs = Object.fromEntries(names.map(({ name }) => [name, this.input(name)]));
    const rows = this.sql
      .exec<OutputRow & { key: string }>(
        `SELECT t.key, t.output, t.output_sha, t.output_size FROM tasks t JOIN nodes n ON n.id = t.node
         WHERE t.state = 'succeeded' AND t.node NOT IN (SELECT value FROM json_each(?)) ORDER BY n.ord, t.idx`,
        JSON.stringify([...again]),
      )
      .toArray();
    let bytes = 0;
    const seeds: { task: string; output: Uint8Array | BlobRef }[] = [];
    for (const row of rows) {
      const output = toOutput(row) ?? new Uint8Array(0);
      if (output instanceof Uint8Array) bytes += output.length;
      if (bytes > maxBytes)
        return `the outputs to reuse are over ${maxBytes} bytes: retry in place (distro retry ID) instead`;
      seeds.push({ task: row.key, output });
    }
    return { plan: { nodes, inputs }, seeds };
  }

  /** The nodes some `map: { over }` maps over: the host reads their blob outputs for the machine. */
  overSources(): Set<string> {
    this.sources ??= new Set(
      this.sql
        .exec<{ over: string }>(`SELECT json_extract(spec, '$.over') AS over FROM nodes WHERE over IS NOT NULL`)
        .toArray()
        .map((r) => r.over),
    );
    return this.sources;
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

  setNodesReady(ids: readonly string[], at: number): void {
    for (const { json } of jsonChunks(ids))
      this.sql.exec(`INSERT OR REPLACE INTO node_ready (node, at) SELECT value, ? FROM json_each(?)`, at, json);
    for (const id of ids) this.readyAt.set(id, at);
  }

  nodeReadyAt(id: string): number | null {
    if (!this.readyAt.has(id)) {
      const row = this.sql.exec<{ at: number }>(`SELECT at FROM node_ready WHERE node = ?`, id).toArray()[0];
      this.readyAt.set(id, row?.at ?? null);
    }
    return this.readyAt.get(id)!;
  }

  bumpNodes(counter: "pendingDeps" | "remaining", deltas: ReadonlyMap<string, number>): Map<string, number> {
    const column = counter === "pendingDeps" ? "pending_deps" : "remaining";
    const out = new Map<string, number>();
    const bump = `UPDATE nodes SET ${column} = ${column} + json_extract(j.value, '$[1]')
      FROM json_each(?) AS j WHERE nodes.id = json_extract(j.value, '$[0]') RETURNING id, ${column} AS v`;
    for (const { json } of jsonChunks([...deltas].map((entry) => JSON.stringify(entry))))
      for (const { id, v } of this.sql.exec<{ id: string; v: number }>(bump, json)) out.set(id, v);
    return out;
  }

  task(key: string): TaskRow | undefined {
    return this.tasks(`WHERE key = ?`, key)[0];
  }

  updateTask(
    key: string,
    changes: Partial<Pick<TaskRow, "state" | "attempt" | "failures" | "losses" | "runner">>,
  ): void {
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
      this.changes?.task(prior.node, key, changes.state);
    }
  }

  moveNode(node: string, from: TaskState, to: TaskState): number {
    const update = `UPDATE tasks SET state = ? WHERE node = ? AND state = ?`;
    let moved: number;
    if (this.spec(node).instances === null) {
      // A plain task: whether it moved comes back with the update (one statement, not two).
      moved = this.sql.exec(`${update} RETURNING 1`, to, node, from).toArray().length;
      this.addCount(from, -moved);
      this.addCount(to, moved);
    } else {
      this.sql.exec(update, to, node, from);
      moved = this.moved(from, to);
    }
    if (moved > 0) this.changes?.moved(node);
    return moved;
  }

  moveNodes(from: TaskState, to: ReadonlyMap<string, TaskState>): void {
    const plain = new Map<TaskState, string[]>();
    for (const [node, state] of to) {
      if (this.spec(node).instances !== null) this.moveNode(node, from, state);
      else if (plain.has(state)) plain.get(state)!.push(node);
      else plain.set(state, [node]);
    }
    const update = `UPDATE tasks SET state = ? WHERE node IN (SELECT value FROM json_each(?)) AND state = ? RETURNING node`;
    for (const [state, nodes] of plain)
      for (const { json } of jsonChunks(nodes)) {
        const moved = this.sql.exec<{ node: string }>(update, state, json, from).toArray();
        this.addCount(from, -moved.length);
        this.addCount(state, moved.length);
        for (const { node } of moved) this.changes?.moved(node);
      }
  }

  moveAll(from: TaskState, to: TaskState): number {
    this.sql.exec(`UPDATE tasks SET state = ? WHERE state = ?`, to, from);
    const moved = this.moved(from, to);
    if (moved > 0) this.changes?.movedAll();
    return moved;
  }

  /** Counts the rows the last UPDATE moved from state `from` to `to`; returns how many. */
  private moved(from: TaskState, to: TaskState): number {
    // rowsWritten counts index entries too; changes() counts rows.
    const moved = this.sql.exec<{ n: number }>(`SELECT changes() AS n`).one().n;
    if (moved > 0) {
      this.addCount(from, -moved);
      this.addCount(to, moved);
    }
    return moved;
  }

  tasksIn(states: readonly TaskState[], node?: string): TaskRow[] {
    const where = `WHERE state IN (SELECT value FROM json_each(?))${node === undefined ? "" : " AND node = ?"} ORDER BY seq`;
    return this.tasks(where, JSON.stringify(states), ...(node === undefined ? [] : [node]));
  }

  leased(): TaskRow[] {
    return this.tasks(`WHERE state = 'leased'`);
  }

  lookups(limit: number): TaskRow[] {
    return this.tasks(`WHERE state = 'lookup' ORDER BY seq LIMIT ?`, limit);
  }

  setCacheKey(key: string, cacheKey: string): void {
    this.sql.exec(`UPDATE tasks SET cache_key = ? WHERE key = ?`, cacheKey, key);
  }

  constrainedNodes(): string[] {
    this.constrained ??= this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes WHERE json_extract(spec, '$.requires') IS NOT NULL ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
    return this.constrained;
  }

  nodeIds(): string[] {
    this.ids ??= this.sql
      .exec<{ id: string }>(`SELECT id FROM nodes ORDER BY ord`)
      .toArray()
      .map((r) => r.id);
    return this.ids;
  }

  readyIn(node: string): number {
    return this.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM tasks WHERE node = ? AND state = 'ready'`, node)
      .one().n;
  }

  topReadyPriority(excluded: readonly string[]): number | null {
    const not = notIn(excluded);
    const top = `SELECT priority AS p FROM tasks WHERE state = 'ready'${not.sql}
      ORDER BY priority DESC, seq LIMIT 1`;
    return this.sql.exec<{ p: number }>(top, ...not.bindings).toArray()[0]?.p ?? null;
  }

  leasedOf(runner: string, refs: readonly AttemptRef[]): LeasedRow[] {
    if (refs.length === 0) return [];
    const wanted = new Set(refs.map((r) => `${r.task}#${r.attempt}`));
    const list = JSON.stringify(refs.map((r) => [r.task, r.attempt]));
    return this.sql
      .exec(
        `SELECT ${TASK_COLUMNS}, started, cache_key, tasks.rowid AS id, pending_deps FROM tasks
         JOIN nodes ON nodes.id = tasks.node
         WHERE key IN (SELECT json_extract(value, '$[0]') FROM json_each(?1)) AND state = 'leased' AND runner = ?2`,
        list,
        runner,
      )
      .toArray()
      .flatMap((r) => {
        const row = toTask(r);
        if (!wanted.has(`${row.key}#${row.attempt}`)) return [];
        this.rowids.set(row.key, r.id as number);
        const pendingDeps = r.pending_deps as number;
        return [{ ...row, started: r.started === 1, cacheKey: r.cache_key as string | null, pendingDeps }];
      });
  }

  leaseReady(runner: { id: string; name: string }, limit: number, excluded: readonly string[], now: number): TaskRow[] {
    if (limit <= 0) return [];
    const not = notIn(excluded);
    // Read, then updated by rowid: cheaper in workerd than one UPDATE … RETURNING (measured).
    const picked = this.sql
      .exec(
        `SELECT ${TASK_COLUMNS}, rowid AS id FROM tasks WHERE state = 'ready'${not.sql} ORDER BY priority DESC, seq LIMIT ?`,
        ...not.bindings,
        limit,
      )
      .toArray();
    return this.lease(picked, "ready", runner, now);
  }

  blockedOf(keys: readonly string[]): (TaskRow & { pendingDeps: number })[] {
    if (keys.length === 0) return [];
    return this.sql
      .exec(
        `SELECT ${TASK_COLUMNS}, pending_deps FROM tasks JOIN nodes ON nodes.id = tasks.node
         WHERE key IN (SELECT value FROM json_each(?)) AND state = 'blocked'`,
        JSON.stringify(keys),
      )
      .toArray()
      .map((r) => ({ ...toTask(r), pendingDeps: r.pending_deps as number }));
  }

  leaseBlocked(runner: { id: string; name: string }, keys: readonly string[], now: number): TaskRow[] {
    if (keys.length === 0) return [];
    const picked = this.sql
      .exec(
        `SELECT ${TASK_COLUMNS}, rowid AS id FROM tasks
         WHERE key IN (SELECT value FROM json_each(?)) AND state = 'blocked'`,
        JSON.stringify(keys),
      )
      .toArray();
    return this.lease(picked, "blocked", runner, now);
  }

  /** Leases the rows picked (with their rowid as `id`), all in state `from`, as new attempts: three statements. */
  private lease(
    picked: Record<string, SqlStorageValue>[],
    from: TaskState,
    runner: { id: string; name: string },
    now: number,
  ): TaskRow[] {
    if (picked.length === 0) return [];
    this.sql.exec(
      `UPDATE tasks SET state = 'leased', attempt = attempt + 1, runner = ?, started = 0
       WHERE rowid IN (SELECT value FROM json_each(?))`,
      runner.id,
      JSON.stringify(picked.map((r) => r.id)),
    );
    const rows = picked.map((r) => ({
      ...toTask(r),
      state: "leased" as const,
      attempt: (r.attempt as number) + 1,
      runner: runner.id,
    }));
    for (const { json } of jsonChunks(rows.map((r) => JSON.stringify([r.key, r.attempt]))))
      this.sql.exec(
        `INSERT INTO attempts (task, attempt, runner, runner_name, started_at, outcome)
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, ?, ?, 'running'
         FROM json_each(?)`,
        runner.id,
        runner.name,
        now,
        json,
      );
    this.addCount(from, -rows.length);
    this.addCount("leased", rows.length);
    for (const row of rows) this.changes?.task(row.node, row.key, "leased");
    return rows;
  }

  succeedAll(done: readonly Succeeded[], now: number): void {
    if (done.length === 0) return;
    // Small outputs go in the list as hex; a larger one is bound as it is, in a statement of its own.
    const small = (output: Uint8Array) => output.length <= HEX_OUTPUT_BYTES;
    // By rowid (leasedOf read them in this transition): no search of the key index per row.
    const id = (key: string) =>
      this.rowids.get(key) ??
      this.sql.exec<{ id: number }>(`SELECT rowid AS id FROM tasks WHERE key = ?`, key).one().id;
    const tasks = done.map(({ row, output }) =>
      JSON.stringify([id(row.key), small(output) ? hex(output) : "", output.length]),
    );
    for (const { json } of jsonChunks(tasks))
      this.sql.exec(
        `UPDATE tasks SET state = 'succeeded', runner = NULL, output = unhex(json_extract(j.value, '$[1]')),
           output_size = json_extract(j.value, '$[2]')
         FROM json_each(?) AS j WHERE tasks.rowid = json_extract(j.value, '$[0]')`,
        json,
      );
    for (const { row, output } of done)
      if (!small(output)) this.sql.exec(`UPDATE tasks SET output = ? WHERE key = ?`, output, row.key);
    // `ranFrom`, when given, moves the start (never before the dispatch): see startedAt.
    const attempts = done.map(({ row, stderr, ranFrom }) => JSON.stringify([row.key, row.attempt, stderr, ranFrom]));
    for (const { json } of jsonChunks(attempts))
      this.sql.exec(
        `UPDATE attempts SET ended_at = ?, outcome = 'succeeded', failure = NULL, stderr = json_extract(j.value, '$[2]'),
           started_at = max(started_at, coalesce(json_extract(j.value, '$[3]'), started_at))
         FROM json_each(?) AS j
         WHERE attempts.task = json_extract(j.value, '$[0]') AND attempts.attempt = json_extract(j.value, '$[1]')`,
        now,
        json,
      );
    // Only a started attempt has a lease of its own (the others share their runner's `hold`).
    for (const { json } of jsonChunks(done.filter((d) => d.row.started).map((d) => d.row.key)))
      this.sql.exec(`DELETE FROM deadlines WHERE kind = 'lease' AND key IN (SELECT value FROM json_each(?))`, json);
    this.addCount("leased", -done.length);
    this.addCount("succeeded", done.length);
    for (const { row } of done) this.changes?.task(row.node, row.key, "succeeded");
  }

  markStarted(runner: string, refs: readonly AttemptRef[]): TaskRow[] {
    if (refs.length === 0) return [];
    return this.sql
      .exec(
        `UPDATE tasks SET started = 1
         WHERE key IN (SELECT json_extract(value, '$[0]') FROM json_each(?1))
           AND key || '#' || attempt IN (SELECT json_extract(value, '$[0]') || '#' || json_extract(value, '$[1]') FROM json_each(?1))
           AND state = 'leased' AND runner = ?2 AND started = 0
         RETURNING ${TASK_COLUMNS}`,
        JSON.stringify(refs.map((r) => [r.task, r.attempt])),
        runner,
      )
      .toArray()
      .map(toTask);
  }

  startedAt(starts: readonly { task: string; attempt: number; at: number }[]): void {
    for (const { json } of jsonChunks(starts.map((s) => JSON.stringify([s.task, s.attempt, s.at]))))
      this.sql.exec(
        `UPDATE attempts SET started_at = max(started_at, json_extract(j.value, '$[2]')) FROM json_each(?) AS j
         WHERE attempts.task = json_extract(j.value, '$[0]') AND attempts.attempt = json_extract(j.value, '$[1]')`,
        json,
      );
  }

  holdings(): Map<string, { held: number; unstarted: Map<string, number> }> {
    // Sent ahead (its node still waits for a dependency), an attempt cannot be handed to another.
    const query = `SELECT runner, node, count(*) AS n, sum(started = 0 AND pending_deps = 0) AS u
      FROM tasks JOIN nodes ON nodes.id = tasks.node WHERE state = 'leased' GROUP BY runner, node`;
    const out = new Map<string, { held: number; unstarted: Map<string, number> }>();
    for (const { runner, node, n, u } of this.sql.exec<{ runner: string; node: string; n: number; u: number }>(query)) {
      const known = out.get(runner) ?? { held: 0, unstarted: new Map<string, number>() };
      known.held += n;
      if (u > 0) known.unstarted.set(node, u);
      out.set(runner, known);
    }
    return out;
  }

  setDeadlines(kind: DeadlineKind, entries: readonly { key: string; at: number }[]): void {
    for (const { json } of jsonChunks(entries.map((e) => JSON.stringify([e.key, e.at]))))
      this.sql.exec(
        `INSERT INTO deadlines (kind, key, at)
         SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
         WHERE true ON CONFLICT (kind, key) DO UPDATE SET at = excluded.at`,
        kind,
        json,
      );
  }

  leasedTo(runner: string): TaskRow[] {
    return this.tasks(`WHERE runner = ? AND state = 'leased'`, runner);
  }

  heldBy(runner: string): number {
    const query = `SELECT COUNT(*) AS n FROM tasks WHERE runner = ? AND state = 'leased'`;
    return this.sql.exec<{ n: number }>(query, runner).one().n;
  }

  /** Task rows matching `where` (and what follows it). */
  private tasks(where: string, ...bindings: SqlStorageValue[]): TaskRow[] {
    return this.sql
      .exec(`SELECT ${TASK_COLUMNS} FROM tasks ${where}`, ...bindings)
      .toArray()
      .map(toTask);
  }

  counts(): Record<TaskState, number> {
    if (!this.countCache) {
      const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
      for (const { state, n } of this.sql.exec<{ state: TaskState; n: number }>(`SELECT state, n FROM counts`))
        counts[state] = n;
      this.countCache = counts;
    }
    return { ...this.countCache };
  }

  private addCount(state: TaskState, delta: number): void {
    if (delta === 0) return;
    this.counts();
    this.countCache![state] += delta;
    this.dirty.add(state);
  }

  flush(): void {
    this.rowids.clear();
    this.flushRunners();
    if (this.dirty.size === 0) return;
    const rows = [...this.dirty].map((state) => [state, this.countCache![state]]);
    this.dirty.clear();
    this.sql.exec(
      `INSERT INTO counts (state, n) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
       WHERE true ON CONFLICT (state) DO UPDATE SET n = excluded.n`,
      JSON.stringify(rows),
    );
  }

  outputs(node: string): (Uint8Array | BlobRef)[] {
    return this.sql
      .exec<OutputRow>(`SELECT output, output_sha, output_size FROM tasks WHERE node = ? ORDER BY idx`, node)
      .toArray()
      .map((r) => toOutput(r) ?? new Uint8Array(0));
  }

  inlineOutputBytes(node: string): number {
    const query = `SELECT coalesce(sum(output_size), 0) AS n FROM tasks WHERE node = ? AND output_sha IS NULL`;
    return this.sql.exec<{ n: number }>(query, node).one().n;
  }

  setOutput(key: string, output: Uint8Array | BlobRef): void {
    if (output instanceof Uint8Array)
      this.sql.exec(`UPDATE tasks SET output = ?, output_size = ? WHERE key = ?`, output, output.length, key);
    else
      this.sql.exec(`UPDATE tasks SET output_sha = ?, output_size = ? WHERE key = ?`, output.sha256, output.size, key);
  }

  addAttempt(a: AttemptRow): void {
    const failure = a.failure ? JSON.stringify(a.failure) : null;
    this.sql.exec(
      `INSERT INTO attempts (task, attempt, runner, runner_name, started_at, ended_at, outcome, failure, stderr, note)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ...[a.task, a.attempt, a.runner, a.runnerName, a.startedAt, a.endedAt, a.outcome, failure, a.stderr, a.note],
    );
  }

  endAttempt(task: string, attempt: number, end: Pick<AttemptRow, "endedAt" | "outcome" | "failure" | "stderr">): void {
    const failure = end.failure ? JSON.stringify(end.failure) : null;
    this.sql.exec(
      `UPDATE attempts SET ended_at = ?, outcome = ?, failure = ?, stderr = ? WHERE task = ? AND attempt = ?`,
      ...[end.endedAt, end.outcome, failure, end.stderr, task, attempt],
    );
  }

  noteAttempt(task: string, attempt: number, runner: string, note: string): void {
    const update = `UPDATE attempts SET note = ? WHERE task = ? AND attempt = ? AND runner = ?`;
    this.sql.exec(update, note, task, attempt, runner);
  }

  attemptOutcome(task: string, attempt: number): AttemptOutcome | null {
    const query = `SELECT outcome FROM attempts WHERE task = ? AND attempt = ?`;
    return this.sql.exec<{ outcome: AttemptOutcome }>(query, task, attempt).toArray()[0]?.outcome ?? null;
  }

  attemptRunner(task: string, attempt: number): string | null {
    const query = `SELECT runner FROM attempts WHERE task = ? AND attempt = ?`;
    return this.sql.exec<{ runner: string }>(query, task, attempt).toArray()[0]?.runner ?? null;
  }

  setDeadlineBy(kind: DeadlineKind, key: string, at: number): void {
    const upsert = `INSERT INTO deadlines (kind, key, at) VALUES (?, ?, ?)
      ON CONFLICT (kind, key) DO UPDATE SET at = min(at, excluded.at)`;
    this.sql.exec(upsert, kind, key, at);
  }

  unstartedOf(runner: string): { row: TaskRow; sentAt: number }[] {
    return this.sql
      .exec(
        `SELECT ${TASK_COLUMNS.split(", ")
          .map((c) => `t.${c}`)
          .join(", ")}, a.started_at AS sent_at
         FROM tasks t JOIN attempts a ON a.task = t.key AND a.attempt = t.attempt
         WHERE t.runner = ? AND t.state = 'leased' AND t.started = 0`,
        runner,
      )
      .toArray()
      .map((r) => ({ row: toTask(r), sentAt: r.sent_at as number }));
  }

  setDeadline(kind: DeadlineKind, key: string, at: number): void {
    const upsert = `INSERT INTO deadlines (kind, key, at) VALUES (?, ?, ?)
      ON CONFLICT (kind, key) DO UPDATE SET at = excluded.at`;
    this.sql.exec(upsert, kind, key, at);
  }

  clearDeadline(kind: DeadlineKind, key: string): void {
    this.sql.exec(`DELETE FROM deadlines WHERE kind = ? AND key = ?`, kind, key);
  }

  clearDeadlines(): void {
    this.sql.exec(`DELETE FROM deadlines`);
  }

  dueDeadlines(now: number, limit: number): Deadline[] {
    const due = `SELECT kind, key, at FROM deadlines WHERE at <= ? ORDER BY at LIMIT ?`;
    return this.sql.exec<Deadline>(due, now, limit).toArray();
  }

  nextDeadline(): number | null {
    return this.sql.exec<{ at: number | null }>(`SELECT min(at) AS at FROM deadlines`).one().at;
  }

  runner(id: string): RunnerRow | undefined {
    const row = this.attached().get(id);
    return row && { ...row };
  }

  runners(): RunnerRow[] {
    return [...this.attached().values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((r) => ({ ...r }));
  }

  /** The attached table, read once (only this object writes it). */
  private attached(): Map<string, RunnerRow> {
    this.attachedRows ??= new Map(
      this.sql
        .exec<{
          id: string;
          name: string;
          credit: number;
          sent: number;
          caps: string | null;
          cooled_until: number | null;
          backlog_told: number;
          sent_at: number;
          slots: number;
          stealing: number;
        }>(`SELECT id, name, credit, sent, caps, cooled_until, backlog_told, sent_at, slots, stealing FROM attached`)
        .toArray()
        .map(({ cooled_until, backlog_told, sent_at, stealing, ...r }) => [
          r.id,
          {
            ...r,
            caps: r.caps === null ? null : (JSON.parse(r.caps) as RunnerRow["caps"]),
            cooledUntil: cooled_until,
            backlogTold: backlog_told,
            sentAt: sent_at,
            stealing: stealing === 1,
          },
        ]),
    );
    return this.attachedRows;
  }

  putRunner(row: RunnerRow): void {
    this.attached().set(row.id, { ...row });
    this.dirtyRunners.add(row.id);
  }

  /** Writes the runner rows changed since the last flush, in one statement. */
  private flushRunners(): void {
    if (this.dirtyRunners.size === 0) return;
    const rows = [...this.dirtyRunners].map((id) => {
      const r = this.attached().get(id)!;
      const caps = r.caps === null ? null : JSON.stringify(r.caps);
      return [
        r.id,
        r.name,
        r.credit,
        r.sent,
        caps,
        r.cooledUntil,
        r.backlogTold,
        r.sentAt,
        r.slots,
        r.stealing ? 1 : 0,
      ];
    });
    this.dirtyRunners.clear();
    const fields = Array.from({ length: 10 }, (_, i) => `json_extract(value, '$[${i}]')`).join(", ");
    this.sql.exec(
      `INSERT INTO attached (id, name, credit, sent, caps, cooled_until, backlog_told, sent_at, slots, stealing)
       SELECT ${fields} FROM json_each(?) WHERE true
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, credit = excluded.credit, sent = excluded.sent,
         caps = excluded.caps, cooled_until = excluded.cooled_until, backlog_told = excluded.backlog_told,
         sent_at = excluded.sent_at, slots = excluded.slots, stealing = excluded.stealing`,
      JSON.stringify(rows),
    );
  }

  removeRunner(id: string): void {
    if (!this.attached().has(id)) return;
    this.sql.exec(`DELETE FROM attached WHERE id = ?`, id);
    this.attached().delete(id);
    this.dirtyRunners.delete(id);
  }
}
