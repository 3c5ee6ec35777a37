/**
 * `RunStore` over Maps, so unit and property tests drive the run state machine without
 * workerd. Kept deliberately plain: scans instead of indexes. It refuses what SQLite in a
 * Durable Object refuses of the values the SqlStore binds (`bound`): more than 100 of them in a
 * statement, or one over 2 MB; lists go as one JSON value, as the SqlStore binds them
 * (`json_each`). Its statements are fixed text, so the 100 KB statement limit cannot be reached.
 */
import {
  type AttemptRef,
  type AttemptRow,
  type LeasedRow,
  type Succeeded,
  type DeadlineKind,
  type NodeRow,
  type RunnerRow,
  type RunStore,
  type TaskRow,
} from "../../worker/run/store";
import type { BlobRef } from "../../core/protocol/messages";
import type { FileRef, RunInput } from "../../core/dag/plan";
import { type RunStatus, TASK_STATES, type TaskState } from "../../core/status";

/** SQLite's limits as workerd sets them. */
const SQLITE = { params: 100, valueBytes: 2_000_000 };

/** Throws as workerd's SQLite does for the values of one statement. */
function bound(...values: unknown[]): void {
  if (values.length > SQLITE.params) throw new Error(`too many SQL variables (${values.length})`);
  for (const v of values) {
    const bytes = typeof v === "string" ? new TextEncoder().encode(v).length : v instanceof Uint8Array ? v.length : 0;
    if (bytes > SQLITE.valueBytes) throw new Error("string or blob too big: SQLITE_TOOBIG");
  }
}

export class MemoryStore implements RunStore {
  runStatus: RunStatus = "queued";
  readonly nodes = new Map<string, NodeRow>();
  readonly tasks = new Map<
    string,
    TaskRow & { seq: number; priority: number; output?: Uint8Array | BlobRef; item?: string; started?: boolean }
  >();
  readonly inputs = new Map<string, RunInput>();
  readonly attempts: AttemptRow[] = [];
  readonly runnerRows = new Map<string, RunnerRow>();
  readonly deadlines = new Map<string, { kind: DeadlineKind; key: string; at: number }>();

  status() {
    return this.runStatus;
  }
  finishedAt: number | null = null;
  setStatus(status: RunStatus, at: number) {
    this.runStatus = status;
    this.finishedAt = ["succeeded", "failed", "cancelled"].includes(status) ? at : null;
  }
  tasksIn(states: readonly TaskState[], node?: string) {
    return [...this.tasks.values()]
      .filter((t) => states.includes(t.state) && (node === undefined || t.node === node))
      .sort((a, b) => a.seq - b.seq);
  }
  insertPlan(nodes: readonly NodeRow[]) {
    let seq = 0;
    for (const row of nodes) {
      bound(row.spec.id, 0, JSON.stringify(row.spec), row.pendingDeps, row.remaining);
      this.nodes.set(row.spec.id, { ...row });
      const state: TaskState = row.pendingDeps > 0 ? "blocked" : row.spec.cache ? "lookup" : "ready";
      const count = row.spec.instances ?? 1;
      for (let i = 0; i < count; i++) {
        const index = row.spec.instances === null ? null : i;
        const key = index === null ? row.spec.id : `${row.spec.id}[${i}]`;
        this.tasks.set(key, {
          key,
          node: row.spec.id,
          index,
          state,
          attempt: 0,
          failures: 0,
          losses: 0,
          runner: null,
          seq: seq++,
          priority: row.spec.priority,
        });
      }
    }
  }
  node(id: string) {
    return this.nodes.get(id)!;
  }
  spec(id: string) {
    return this.nodes.get(id)!.spec;
  }
  leasedOf(runner: string, refs: readonly AttemptRef[]): LeasedRow[] {
    if (refs.length > 0) bound(JSON.stringify(refs.map((r) => [r.task, r.attempt])), runner);
    const out = new Map<string, LeasedRow>();
    for (const ref of refs) {
      const t = this.tasks.get(ref.task);
      if (!t || t.state !== "leased" || t.runner !== runner || t.attempt !== ref.attempt) continue;
      out.set(t.key, {
        ...this.task(t.key)!,
        started: t.started === true,
        cacheKey: this.cacheKeys.get(t.key) ?? null,
        pendingDeps: this.nodes.get(t.node)!.pendingDeps,
      });
    }
    return [...out.values()];
  }
  leaseReady(runner: { id: string; name: string }, limit: number, excluded: readonly string[], now: number) {
    return this.lease(this.ready(limit, excluded), runner, now);
  }
  blockedOf(keys: readonly string[]) {
    bound(JSON.stringify(keys));
    return keys.flatMap((key) =>
      this.tasks.get(key)?.state === "blocked"
        ? [{ ...this.task(key)!, pendingDeps: this.nodes.get(this.tasks.get(key)!.node)!.pendingDeps }]
        : [],
    );
  }
  leaseBlocked(runner: { id: string; name: string }, keys: readonly string[], now: number) {
    bound(JSON.stringify(keys));
    const rows = keys.flatMap((key) => (this.tasks.get(key)?.state === "blocked" ? [this.task(key)!] : []));
    return this.lease(rows, runner, now);
  }
  private lease(rows: TaskRow[], runner: { id: string; name: string }, now: number) {
    bound(JSON.stringify(rows.map((r) => [r.key, r.attempt + 1])), runner.id, runner.name, now);
    return rows.map((row) => {
      const attempt = row.attempt + 1;
      Object.assign(this.tasks.get(row.key)!, { state: "leased", attempt, runner: runner.id, started: false });
      this.addAttempt({
        task: row.key,
        attempt,
        runner: runner.id,
        runnerName: runner.name,
        startedAt: now,
        endedAt: null,
        outcome: "running",
        failure: null,
        stderr: "",
        note: null,
      });
      return this.task(row.key)!;
    });
  }
  succeedAll(done: readonly Succeeded[], now: number) {
    for (const { row, output, stderr, ranFrom } of done) {
      this.setOutput(row.key, output);
      Object.assign(this.tasks.get(row.key)!, { state: "succeeded", runner: null });
      this.endAttempt(row.key, row.attempt, { endedAt: now, outcome: "succeeded", failure: null, stderr });
      if (ranFrom !== undefined) this.startedAt([{ task: row.key, attempt: row.attempt, at: ranFrom }]);
      this.clearDeadline("lease", row.key);
    }
  }
  markStarted(runner: string, refs: readonly AttemptRef[]) {
    return this.leasedOf(runner, refs)
      .filter((r) => !r.started)
      .map(({ started: _s, cacheKey: _k, pendingDeps: _p, ...row }) => {
        this.tasks.get(row.key)!.started = true;
        return row;
      });
  }
  startedAt(starts: readonly { task: string; attempt: number; at: number }[]) {
    for (const { task, attempt, at } of starts) {
      const a = this.attempts.find((x) => x.task === task && x.attempt === attempt);
      if (a) a.startedAt = Math.max(a.startedAt, at);
    }
  }
  holdings() {
    const out = new Map<string, { held: number; unstarted: Map<string, number> }>();
    for (const t of this.tasks.values()) {
      if (t.state !== "leased" || !t.runner) continue;
      const known = out.get(t.runner) ?? { held: 0, unstarted: new Map<string, number>() };
      known.held++;
      if (!t.started && this.nodes.get(t.node)!.pendingDeps === 0)
        known.unstarted.set(t.node, (known.unstarted.get(t.node) ?? 0) + 1);
      out.set(t.runner, known);
    }
    return out;
  }
  flush() {}
  setDeadlines(kind: DeadlineKind, entries: readonly { key: string; at: number }[]) {
    for (const { key, at } of entries) this.setDeadline(kind, key, at);
  }
  insertInputs(inputs: Readonly<Record<string, RunInput>>) {
    for (const [name, input] of Object.entries(inputs)) {
      bound(name, JSON.stringify("value" in input ? input.value : "file" in input ? input.file : input.files[0]));
      this.inputs.set(name, input);
    }
  }
  input(name: string) {
    return this.inputs.get(name)!;
  }
  inputFile(name: string, index: number): FileRef {
    const input = this.inputs.get(name)!;
    if ("value" in input) throw new Error(`input ${name} is a value`);
    return "file" in input ? input.file : input.files[index]!;
  }
  insertInstances(node: string, items: readonly unknown[], state: TaskState) {
    const row = this.nodes.get(node)!;
    let seq = Math.max(-1, ...[...this.tasks.values()].map((t) => t.seq));
    items.forEach((item, i) => {
      const key = `${node}[${i}]`;
      const json = JSON.stringify(item) ?? "null";
      bound(json);
      this.tasks.set(key, {
        key,
        node,
        index: i,
        state,
        attempt: 0,
        failures: 0,
        losses: 0,
        runner: null,
        seq: ++seq,
        priority: row.spec.priority,
        item: json,
      });
    });
    this.nodes.set(node, { ...row, spec: { ...row.spec, instances: items.length }, remaining: items.length });
  }
  item(key: string) {
    const item = this.tasks.get(key)?.item;
    return item === undefined ? undefined : JSON.parse(item);
  }
  dependents(id: string) {
    return [...this.nodes.values()].filter((n) => n.spec.deps.includes(id)).map((n) => n.spec.id);
  }
  readonly readyAt = new Map<string, number>();
  setNodesReady(ids: readonly string[], at: number) {
    for (const id of ids) this.readyAt.set(id, at);
  }
  nodeReadyAt(id: string) {
    return this.readyAt.get(id) ?? null;
  }
  bumpNodes(counter: "pendingDeps" | "remaining", deltas: ReadonlyMap<string, number>) {
    for (const [id, delta] of deltas) bound(JSON.stringify([id, delta]));
    const out = new Map<string, number>();
    for (const [id, delta] of deltas) {
      const n = this.nodes.get(id)!;
      n[counter] += delta;
      out.set(id, n[counter]);
    }
    return out;
  }
  task(key: string) {
    const t = this.tasks.get(key);
    return (
      t && {
        key: t.key,
        node: t.node,
        index: t.index,
        state: t.state,
        attempt: t.attempt,
        failures: t.failures,
        losses: t.losses,
        runner: t.runner,
      }
    );
  }
  updateTask(key: string, changes: Partial<Pick<TaskRow, "state" | "attempt" | "failures" | "losses" | "runner">>) {
    Object.assign(this.tasks.get(key)!, changes);
  }
  moveNodes(from: TaskState, to: ReadonlyMap<string, TaskState>) {
    for (const [node, state] of to) this.moveNode(node, from, state);
  }
  moveNode(node: string, from: TaskState, to: TaskState) {
    let moved = 0;
    for (const t of this.tasks.values()) {
      if (t.node === node && t.state === from) {
        t.state = to;
        moved++;
      }
    }
    return moved;
  }
  moveAll(from: TaskState, to: TaskState) {
    let moved = 0;
    for (const t of this.tasks.values()) {
      if (t.state === from) {
        t.state = to;
        moved++;
      }
    }
    return moved;
  }
  leased() {
    return [...this.tasks.values()].filter((t) => t.state === "leased").map((t) => this.task(t.key)!);
  }
  lookups(limit: number) {
    return [...this.tasks.values()]
      .filter((t) => t.state === "lookup")
      .slice(0, limit)
      .map((t) => this.task(t.key)!);
  }
  readonly cacheKeys = new Map<string, string>();
  setCacheKey(key: string, cacheKey: string) {
    bound(cacheKey, key);
    this.cacheKeys.set(key, cacheKey);
  }
  private ready(limit: number, excluded: readonly string[]) {
    bound(limit, JSON.stringify(excluded));
    return this.readyRows(excluded)
      .slice(0, limit)
      .map((t) => this.task(t.key)!);
  }
  private readyRows(excluded: readonly string[]) {
    return [...this.tasks.values()]
      .filter((t) => t.state === "ready" && !excluded.includes(t.node))
      .sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  }
  constrainedNodes() {
    return [...this.nodes.values()].filter((n) => n.spec.requires).map((n) => n.spec.id);
  }
  nodeIds() {
    return [...this.nodes.keys()];
  }
  readyIn(node: string) {
    return [...this.tasks.values()].filter((t) => t.state === "ready" && t.node === node).length;
  }
  topReadyPriority(excluded: readonly string[]) {
    bound(JSON.stringify(excluded));
    return this.readyRows(excluded)[0]?.priority ?? null;
  }
  heldBy(runner: string) {
    return this.leasedTo(runner).length;
  }
  leasedTo(runner: string) {
    return [...this.tasks.values()]
      .filter((t) => t.state === "leased" && t.runner === runner)
      .map((t) => this.task(t.key)!);
  }
  counts() {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const t of this.tasks.values()) counts[t.state]++;
    return counts;
  }
  outputs(node: string) {
    return [...this.tasks.values()]
      .filter((t) => t.node === node)
      .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
      .map((t) => t.output ?? new Uint8Array(0));
  }
  inlineOutputBytes(node: string) {
    let n = 0;
    for (const t of this.tasks.values()) if (t.node === node && t.output instanceof Uint8Array) n += t.output.length;
    return n;
  }
  setOutput(key: string, output: Uint8Array | BlobRef) {
    bound(output instanceof Uint8Array ? output : output.sha256, key);
    this.tasks.get(key)!.output = output;
  }
  addAttempt(row: AttemptRow) {
    bound(...Object.values(row).map((v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : v)));
    this.attempts.push({ ...row });
  }
  endAttempt(task: string, attempt: number, end: Pick<AttemptRow, "endedAt" | "outcome" | "failure" | "stderr">) {
    Object.assign(
      this.attempts.find((a) => a.task === task && a.attempt === attempt)!,
      end,
    );
  }
  attemptOutcome(task: string, attempt: number) {
    return this.attempts.find((a) => a.task === task && a.attempt === attempt)?.outcome ?? null;
  }
  noteAttempt(task: string, attempt: number, runner: string, note: string) {
    const a = this.attempts.find((x) => x.task === task && x.attempt === attempt && x.runner === runner);
    if (a) a.note = note;
  }
  attemptRunner(task: string, attempt: number) {
    return this.attempts.find((x) => x.task === task && x.attempt === attempt)?.runner ?? null;
  }
  setDeadlineBy(kind: DeadlineKind, key: string, at: number) {
    const known = this.deadlines.get(`${kind}:${key}`);
    this.setDeadline(kind, key, known ? Math.min(known.at, at) : at);
  }
  unstartedOf(runner: string) {
    return [...this.tasks.values()]
      .filter((t) => t.state === "leased" && t.runner === runner && !t.started)
      .map((t) => ({
        row: this.task(t.key)!,
        sentAt: this.attempts.find((a) => a.task === t.key && a.attempt === t.attempt)!.startedAt,
      }));
  }
  setDeadline(kind: DeadlineKind, key: string, at: number) {
    this.deadlines.set(`${kind}:${key}`, { kind, key, at });
  }
  clearDeadline(kind: DeadlineKind, key: string) {
    this.deadlines.delete(`${kind}:${key}`);
  }
  clearDeadlines() {
    this.deadlines.clear();
  }
  dueDeadlines(now: number, limit: number) {
    return [...this.deadlines.values()]
      .filter((d) => d.at <= now)
      .sort((a, b) => a.at - b.at)
      .slice(0, limit);
  }
  nextDeadline() {
    const all = [...this.deadlines.values()].map((d) => d.at);
    return all.length ? Math.min(...all) : null;
  }
  runner(id: string) {
    const r = this.runnerRows.get(id);
    return r && { ...r };
  }
  runners() {
    return [...this.runnerRows.values()].map((r) => ({ ...r }));
  }
  putRunner(row: RunnerRow) {
    const { id, name, credit, sent, caps, cooledUntil, backlogTold, sentAt, slots, stealing } = row;
    bound(id, name, credit, sent, JSON.stringify(caps), cooledUntil, backlogTold, sentAt, slots, stealing);
    this.runnerRows.set(row.id, { ...row });
  }
  removeRunner(id: string) {
    this.runnerRows.delete(id);
  }
}
