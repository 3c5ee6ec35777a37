/**
 * What the run state machine needs from storage, and the row types it reads and writes.
 *
 * The machine never holds a run in memory: every decision reads and writes through this
 * interface, so a 100,000-task run costs the Durable Object a few rows per event, not the whole
 * DAG. The DagRun Durable Object implements it over SQLite (durable/sql-store.ts); unit tests
 * implement it over Maps (test/unit/memory-store.ts). Calls are synchronous, as SQLite in a
 * Durable Object is.
 */
import type { BlobRef, Failure } from "../../core/protocol/messages.js";
import type { FileRef, ResolvedNode, RunInput } from "../../core/dag/plan.js";
import type { Capabilities } from "../../core/match.js";
import type { AttemptOutcome, RunStatus, TaskState } from "../../core/status.js";

export interface NodeRow {
  spec: ResolvedNode;
  /** Dependencies (nodes) that have not yet fully succeeded. */
  pendingDeps: number;
  /** Instances that have not yet succeeded. */
  remaining: number;
}

export interface TaskRow {
  key: string;
  node: string;
  index: number | null;
  state: TaskState;
  /** Number of the latest attempt (0 before the first dispatch). */
  attempt: number;
  /** Failed attempts charged against the task's retries. */
  failures: number;
  /** Lost attempts (runner gone, lease expired) charged against its lost_retries, never its retries. */
  losses: number;
  /** The runner holding the current attempt, while leased. */
  runner: string | null;
}

/** An attempt of a task, as frames name it. */
export interface AttemptRef {
  task: string;
  attempt: number;
}

/**
 * A leased task as a runner's frame finds it: whether its runner said it started, its
 * result-cache key, and how many dependencies its node still waits for (more than none: it was
 * sent ahead of one).
 */
export interface LeasedRow extends TaskRow {
  started: boolean;
  cacheKey: string | null;
  pendingDeps: number;
}

/** An attempt that succeeded with an inline output. */
export interface Succeeded {
  row: LeasedRow;
  output: Uint8Array;
  stderr: string;
  /** When it began running, for an attempt its runner never said it started (see `startedAt`). */
  ranFrom?: number;
}

export interface AttemptRow {
  task: string;
  attempt: number;
  runner: string;
  runnerName: string;
  startedAt: number;
  endedAt: number | null;
  outcome: AttemptOutcome;
  failure: Failure | null;
  stderr: string;
  /** What else happened to the attempt (resumed after a reconnect, a late result ignored). */
  note: string | null;
}

/**
 * A started attempt's lease, a retry's back-off, a cooled-down runner's return (keyed by the
 * runner's id), and the earliest end of the leases of the attempts a runner holds and has not
 * started (`hold`, keyed by the runner's id: one row for all it holds).
 */
export type DeadlineKind = "lease" | "retry" | "cool" | "hold";

export interface RunnerRow {
  id: string;
  name: string;
  /** Tasks this runner will still take from this run. */
  credit: number;
  /** Tasks sent to this runner since it attached (to discount frames still in flight). */
  sent: number;
  /** What it offers for tasks with `requires:`; null takes none of those. */
  caps: Capabilities | null;
  /** Until when its device is cooled down (lost attempts): it is sent nothing new before then. */
  cooledUntil: number | null;
  /** The backlog it was last told (-1: none since it attached); only whether it is 0 matters. */
  backlogTold: number;
  /** When the run last sent it tasks (0: not since it attached): the pool's stall check compares with it. */
  sentAt: number;
  /** The slots it said it has, counted as at most its device's cap: it holds at most PREFETCH_FACTOR times as many attempts. */
  slots: number;
  /** A steal was asked of it and it has sent no frame since (one steal at a time). */
  stealing: boolean;
}

export interface RunStore {
  status(): RunStatus;
  /** Sets the run's status at time `at` (kept as the finish time when the status is final). */
  setStatus(status: RunStatus, at: number): void;

  /** Records the plan: nodes with their counters and one blocked or ready row per instance. */
  insertPlan(nodes: readonly NodeRow[]): void;
  node(id: string): NodeRow;
  /** A node's spec (kept in memory, unlike its counters). */
  spec(id: string): ResolvedNode;
  /** Keeps the run's inputs as the submission gave them (a folder as one entry per file). */
  insertInputs(inputs: Readonly<Record<string, RunInput>>): void;
  /** An input of the run, a folder with all its files. */
  input(name: string): RunInput;
  /** File `index` of a folder input (file 0 of a file input is the file). */
  inputFile(name: string, index: number): FileRef;
  /**
   * Creates the instances of a map over data (`map: { over }`), one per item, in state `state`,
   * after the node's other instances (it has none before); its instance count and remaining follow.
   */
  insertInstances(node: string, items: readonly unknown[], state: TaskState): void;
  /** The map item of an instance of a `map: { over }` node. */
  item(key: string): unknown;
  /** Nodes that list `id` in their `deps`. */
  dependents(id: string): string[];
  /** Notes when these nodes' instances became ready to run (their dependencies done), for the dispatch latency. */
  setNodesReady(ids: readonly string[], at: number): void;
  nodeReadyAt(id: string): number | null;
  /** Adds each node's delta to its counter (one statement for all); answers the new values. */
  bumpNodes(counter: "pendingDeps" | "remaining", deltas: ReadonlyMap<string, number>): Map<string, number>;

  task(key: string): TaskRow | undefined;
  /** Updates one task; `counts()` follows. */
  updateTask(
    key: string,
    changes: Partial<Pick<TaskRow, "state" | "attempt" | "failures" | "losses" | "runner">>,
  ): void;
  /** Moves every instance of `node` that is in state `from` to state `to`; returns how many moved. */
  moveNode(node: string, from: TaskState, to: TaskState): number;
  /** Moves the instances in state `from` of each node to its state in `to`: a statement for all plain tasks. */
  moveNodes(from: TaskState, to: ReadonlyMap<string, TaskState>): void;
  /** The tasks in one of `states` (of `node` only, when given), in submission order. */
  tasksIn(states: readonly TaskState[], node?: string): TaskRow[];
  /** Moves every task in state `from`, whatever its node, to `to`. */
  moveAll(from: TaskState, to: TaskState): number;
  /** Nodes whose spec has `requires:` (usually none). */
  constrainedNodes(): string[];
  /** Every node of the run, in plan order. */
  nodeIds(): string[];
  /** How many of a node's instances are ready. */
  readyIn(node: string): number;
  /** The highest priority of a ready task outside the `excluded` nodes, or null when there is none. */
  topReadyPriority(excluded: readonly string[]): number | null;
  /** Up to `limit` tasks in state `lookup`. */
  lookups(limit: number): TaskRow[];
  /** The result-cache key a task's accepted output should be filed under. */
  setCacheKey(key: string, cacheKey: string): void;
  /** Of `refs`, the tasks whose very attempt is leased to `runner`: one read for a whole frame. */
  leasedOf(runner: string, refs: readonly AttemptRef[]): LeasedRow[];
  /**
   * Leases up to `limit` ready tasks (highest priority first, then in submission order, none of
   * the `excluded` nodes) to `runner`, each as a new attempt
   * not yet started, with its attempt row; answers them in that order. A few statements for all.
   */
  leaseReady(runner: { id: string; name: string }, limit: number, excluded: readonly string[], now: number): TaskRow[];
  /**
   * Leases these tasks, if they are blocked, to `runner`, each as a new attempt not yet started
   * (sent ahead of the one dependency they still wait for); answers those it leased.
   */
  leaseBlocked(runner: { id: string; name: string }, keys: readonly string[], now: number): TaskRow[];
  /** Of these tasks, those that are blocked, with how many dependencies their node waits for: one read. */
  blockedOf(keys: readonly string[]): (TaskRow & { pendingDeps: number })[];
  /** Ends these attempts as succeeded with their inline outputs, their leases cleared: a few statements for all. */
  succeedAll(done: readonly Succeeded[], now: number): void;
  /** Marks the attempts of `refs` leased to `runner` and not yet started as started; answers those. */
  markStarted(runner: string, refs: readonly AttemptRef[]): TaskRow[];
  /**
   * Moves the start of these attempts to `at` (never before they were sent): a held attempt
   * started when its runner said so, or, when it never did, when its result says it began.
   */
  startedAt(starts: readonly { task: string; attempt: number; at: number }[]): void;
  /**
   * By runner: the attempts leased to it, and of those the ones it has not said it started and
   * whose inputs are all there (not sent ahead of a dependency), by node.
   */
  holdings(): Map<string, { held: number; unstarted: Map<string, number> }>;
  /** Writes what the store keeps in memory between statements (counts, runner rows); once at the end of each transition. */
  flush(): void;
  leasedTo(runner: string): TaskRow[];
  /** How many tasks are leased to `runner` (what `leasedTo` would list, counted). */
  heldBy(runner: string): number;
  /** Every leased task (at most the runners' slots). */
  leased(): TaskRow[];
  counts(): Record<TaskState, number>;

  /**
   * Accepted outputs of a node's instances in index order (one entry for a plain task): bytes,
   * or a reference to blob storage.
   */
  outputs(node: string): (Uint8Array | BlobRef)[];
  setOutput(key: string, output: Uint8Array | BlobRef): void;
  /** The bytes of a node's accepted outputs kept inline (what reading them all would cost). */
  inlineOutputBytes(node: string): number;

  addAttempt(row: AttemptRow): void;
  endAttempt(task: string, attempt: number, end: Pick<AttemptRow, "endedAt" | "outcome" | "failure" | "stderr">): void;
  /** Adds a note to `runner`'s attempt; no-op when there is no such attempt of that runner. */
  noteAttempt(task: string, attempt: number, runner: string, note: string): void;
  /** How an attempt ended (`running` while it runs), or null when there is no such attempt. */
  attemptOutcome(task: string, attempt: number): AttemptOutcome | null;
  /** The runner an attempt was leased to, or null when there is no such attempt. */
  attemptRunner(task: string, attempt: number): string | null;

  /** One deadline per (kind, task); setting it again moves it. */
  setDeadline(kind: DeadlineKind, task: string, at: number): void;
  /** Sets many deadlines of one kind. */
  setDeadlines(kind: DeadlineKind, entries: readonly { key: string; at: number }[]): void;
  /** Sets a deadline to `at` unless it is set sooner already. */
  setDeadlineBy(kind: DeadlineKind, key: string, at: number): void;
  /** The attempts leased to `runner` that it has not said it started, with when each was sent. */
  unstartedOf(runner: string): { row: TaskRow; sentAt: number }[];
  clearDeadline(kind: DeadlineKind, task: string): void;
  clearDeadlines(): void;
  /** Up to `limit` deadlines at or before `now`, earliest first. */
  dueDeadlines(now: number, limit: number): { kind: DeadlineKind; key: string; at: number }[];
  /** The earliest deadline, or null. */
  nextDeadline(): number | null;

  runner(id: string): RunnerRow | undefined;
  runners(): RunnerRow[];
  putRunner(row: RunnerRow): void;
  removeRunner(id: string): void;
}
