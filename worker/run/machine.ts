/**
 * The controller state machine of one DAG run: `transition(store, event, now)` applies an
 * event to the run kept in `store` and returns the effects the host must perform (send tasks,
 * ask the pool for runners, report the end). It imports nothing from `cloudflare:*` or
 * `node:*`; the DagRun Durable Object is its host in production, unit tests drive it directly.
 *
 * Scheduling is credit based: a runner says how many more tasks it takes from this run
 * (`want`), the machine hands out ready tasks up to that credit, highest priority first.
 */
import type { Assignment, TaskResult } from "../protocol/messages.js";
import { envelope, fromBase64, itemOf, outputValue, substitute, type ResolvedPlan } from "../dag/plan.js";
import { type NodeRow, type RunnerRow, type RunStatus, type RunStore, type TaskRow } from "./store.js";

/** Largest output kept in the run's own storage (a SQLite row holds at most 2 MB). */
export const MAX_OUTPUT_BYTES = 1024 * 1024;

export type RunEvent =
  | { type: "start"; plan: ResolvedPlan }
  | { type: "attach"; runner: string; name: string; want: number }
  | { type: "want"; runner: string; want: number; received: number }
  | { type: "results"; runner: string; results: TaskResult[]; want: number; received: number }
  | { type: "reject"; runner: string; tasks: { task: string; attempt: number }[] }
  | { type: "detach"; runner: string };

export type Effect =
  | { type: "dispatch"; runner: string; tasks: Assignment[]; backlog: number }
  /** Ready tasks no connected runner has credit for; the host tells the pool. */
  | { type: "demand"; ready: number }
  | { type: "status"; status: RunStatus }
  | { type: "finished"; status: RunStatus };

const TRANSITIONS: Record<RunStatus, readonly RunStatus[]> = {
  queued: ["running", "succeeded", "failed", "cancelled", "paused"],
  running: ["succeeded", "failed", "cancelled", "paused"],
  paused: ["running", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** Thrown on an event the run cannot take in its current status; names both. */
export class IllegalTransition extends Error {
  constructor(readonly status: RunStatus, readonly event: string, detail = "") {
    super(`run is ${status}: cannot handle "${event}"${detail ? ` (${detail})` : ""}`);
  }
}

/** Applies one event; every change goes to `store`, every outside action comes back as an effect. */
export function transition(store: RunStore, event: RunEvent, now: number): Effect[] {
  const effects: Effect[] = [];
  const status = store.status();
  const finished = TRANSITIONS[status].length === 0;
  switch (event.type) {
    case "start":
      if (status !== "queued" || Object.values(store.counts()).some((n) => n > 0)) {
        throw new IllegalTransition(status, event.type, "the run has its plan already");
      }
      start(store, event.plan);
      break;
    case "attach":
      if (finished) break;
      store.putRunner({ id: event.runner, name: event.name, credit: event.want, sent: 0 });
      break;
    case "want": {
      const runner = store.runner(event.runner);
      if (!runner) throw new IllegalTransition(status, event.type, `runner ${event.runner} is not attached`);
      store.putRunner({ ...runner, credit: credit(runner, event.want, event.received) });
      break;
    }
    case "results": {
      const runner = store.runner(event.runner);
      for (const result of event.results) accept(store, event.runner, result, now);
      if (runner && !finished) store.putRunner({ ...runner, credit: credit(runner, event.want, event.received) });
      break;
    }
    case "reject":
      for (const { task, attempt } of event.tasks) {
        const row = store.task(task);
        if (row && row.state === "leased" && row.runner === event.runner && row.attempt === attempt) {
          store.endAttempt(task, attempt, { endedAt: now, outcome: "returned", failure: null, stderr: "" });
          store.updateTask(task, { state: "ready", runner: null });
        }
      }
      break;
    case "detach":
      for (const row of store.leasedTo(event.runner)) {
        fail(store, row, { kind: "lost", message: "the runner disconnected during the attempt", retryable: true }, "", now, "lost");
      }
      store.removeRunner(event.runner);
      break;
  }
  if (TRANSITIONS[store.status()].length > 0) {
    dispatch(store, now, effects);
    settle(store, effects);
  }
  return effects;
}

/** What a runner can take now: its `want`, less what was sent but had not reached it when it spoke. */
function credit(runner: RunnerRow, want: number, received: number): number {
  return Math.max(0, want - Math.max(0, runner.sent - received));
}

function start(store: RunStore, plan: ResolvedPlan): void {
  const rows: NodeRow[] = plan.nodes.map((spec) => ({ spec, pendingDeps: spec.deps.length, remaining: spec.instances ?? 1 }));
  store.insertPlan(rows);
}

/** Takes one result: accepted only from the runner holding that very attempt. */
function accept(store: RunStore, runner: string, result: TaskResult, now: number): void {
  const row = store.task(result.task);
  if (!row || row.state !== "leased" || row.runner !== runner || row.attempt !== result.attempt) return;
  if (!result.ok || result.output === undefined) {
    const failure = result.failure ?? { kind: "exit" as const, message: "the runner reported a failure without a reason", retryable: true };
    fail(store, row, failure, result.stderr, now, "failed");
    return;
  }
  const output = fromBase64(result.output);
  if (output.length > MAX_OUTPUT_BYTES) {
    const message = `output of ${output.length} bytes exceeds the limit of ${MAX_OUTPUT_BYTES}`;
    fail(store, row, { kind: "output", message, retryable: false }, result.stderr, now, "failed");
    return;
  }
  store.setOutput(row.key, output);
  store.updateTask(row.key, { state: "succeeded", runner: null });
  store.endAttempt(row.key, row.attempt, { endedAt: now, outcome: "succeeded", failure: null, stderr: result.stderr });
  if (store.bumpNode(row.node, "remaining", -1) > 0) return;
  for (const dependent of store.dependents(row.node)) {
    if (store.bumpNode(dependent, "pendingDeps", -1) === 0) store.moveNode(dependent, "blocked", "ready");
  }
}

/** Ends an attempt as failed; the task goes back to ready while it has retries left. */
function fail(
  store: RunStore,
  row: TaskRow,
  failure: NonNullable<TaskResult["failure"]>,
  stderr: string,
  now: number,
  outcome: "failed" | "lost",
): void {
  store.endAttempt(row.key, row.attempt, { endedAt: now, outcome, failure, stderr });
  const failures = row.failures + 1;
  const retries = store.node(row.node).spec.retries;
  if (failure.retryable && failures <= retries) {
    store.updateTask(row.key, { state: "ready", runner: null, failures });
    return;
  }
  store.updateTask(row.key, { state: "failed", runner: null, failures });
  skipDependents(store, row.node);
}

/** Every task downstream of a failed node can never run: it ends skipped. */
function skipDependents(store: RunStore, node: string): void {
  const pending = [...store.dependents(node)];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    store.moveNode(id, "blocked", "skipped");
    pending.push(...store.dependents(id));
  }
}

/** Hands ready tasks to runners with credit, and reports what is left over as demand. */
function dispatch(store: RunStore, now: number, effects: Effect[]): void {
  if (store.status() === "paused") return;
  const inputs = new Map<string, unknown>();
  for (const runner of store.runners()) {
    if (runner.credit <= 0) continue;
    const rows = store.ready(runner.credit);
    if (rows.length === 0) break;
    const tasks = rows.map((row) => assign(store, row, runner.id, runner.name, now, inputs));
    store.putRunner({ ...runner, credit: runner.credit - tasks.length, sent: runner.sent + tasks.length });
    effects.push({ type: "dispatch", runner: runner.id, tasks, backlog: 0 });
  }
  const backlog = store.counts().ready;
  for (const effect of effects) if (effect.type === "dispatch") effect.backlog = backlog;
  effects.push({ type: "demand", ready: backlog });
}

function assign(
  store: RunStore,
  row: TaskRow,
  runner: string,
  runnerName: string,
  now: number,
  inputs: Map<string, unknown>,
): Assignment {
  const { spec } = store.node(row.node);
  const attempt = row.attempt + 1;
  store.updateTask(row.key, { state: "leased", attempt, runner });
  store.addAttempt({ task: row.key, attempt, runner, runnerName, startedAt: now, endedAt: null, outcome: "running", failure: null, stderr: "" });
  const item = itemOf(spec, row.index);
  const params = spec.params;
  return {
    task: row.key,
    attempt,
    module: spec.sha256,
    args: spec.args.map((a) => substitute(a, row.index, item, params)),
    env: Object.fromEntries(Object.entries(spec.env).map(([k, v]) => [k, substitute(v, row.index, item, params)])),
    stdin: envelope(spec, row.index, inputsOf(store, spec.deps, inputs)),
    timeoutMs: spec.timeoutMs,
    memoryBytes: spec.memoryBytes,
    maxOutputBytes: MAX_OUTPUT_BYTES,
  };
}

/** The `inputs` of the task ABI: each dependency's output, an array for a mapped dependency. */
function inputsOf(store: RunStore, deps: string[], cache: Map<string, unknown>): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const dep of deps) {
    if (!cache.has(dep)) {
      const values = store.outputs(dep).map(outputValue);
      cache.set(dep, store.node(dep).spec.instances === null ? values[0] : values);
    }
    inputs[dep] = cache.get(dep);
  }
  return inputs;
}

/** Moves the run's status along with its tasks: running once work went out, final once all is. */
function settle(store: RunStore, effects: Effect[]): void {
  const counts = store.counts();
  const open = counts.blocked + counts.ready + counts.leased;
  let status = store.status();
  if (open === 0) status = counts.failed > 0 ? "failed" : counts.cancelled > 0 ? "cancelled" : "succeeded";
  else if (status === "queued" && counts.leased > 0) status = "running";
  if (status === store.status()) return;
  if (!TRANSITIONS[store.status()].includes(status)) throw new IllegalTransition(store.status(), `settle to ${status}`);
  store.setStatus(status);
  effects.push({ type: "status", status });
  if (TRANSITIONS[status].length === 0) effects.push({ type: "finished", status });
}

/** True when no task of the run can change any more. */
export function isFinal(status: RunStatus): boolean {
  return TRANSITIONS[status].length === 0;
}
