/**
 * The controller state machine of one DAG run: `transition(store, event, now)` applies an
 * event to the run kept in `store` and returns the effects the host must perform (send tasks,
 * stop attempts, ask the pool for runners, report the end). It imports nothing from
 * `cloudflare:*` or `node:*`; the DagRun Durable Object is its host in production, unit tests
 * drive it directly.
 *
 * Scheduling is credit based: a runner says how many more tasks it takes from this run
 * (`want`), the machine hands out ready tasks up to that credit, highest priority first. Every
 * dispatch is an attempt with a lease; leases and retry back-offs are rows in the deadlines
 * table, handled by the `tick` event when the host's alarm fires. Tasks whose node caches
 * results pass through `lookup` on their way to `ready`: the host asks the result cache for
 * them (`cacheMaterial` → sha256 → D1) and answers with `looked_up`.
 *
 * What goes out (assignment frames, cache material, demand classes) is read from the store in
 * dispatch.ts; this module keeps every change the run makes, next to the event that causes it,
 * and stays over 350 lines because cutting it would split one state machine across files.
 */
import type { Assignment, BlobRef, Failure, TaskResult } from "../../core/protocol/messages.js";
import { type ResolvedPlan } from "../../core/dag/plan.js";
import { meets, type Capabilities, type DemandClass } from "../../core/match.js";
import type { AttemptRef, LeasedRow, NodeRow, RunnerRow, RunStore, Succeeded, TaskRow } from "./store.js";
import { fromBase64, jsonShape, MAX_JSON_DEPTH, parseTaskKey, taskKey } from "../../core/abi.js";
import { DAG_LIMITS } from "../../core/dag/schema.js";
import { type AttemptOutcome, isFinal, type RunStatus, type TaskState } from "../../core/status.js";
import {
  aheadAssignment,
  assignment,
  demand,
  INLINE_OUTPUT_BYTES,
  type InputCache,
  MAX_OUTPUT_BYTES,
  oversize,
  TooLarge,
} from "./dispatch.js";

// The host and the blob route take the run's whole API from this module.
export { cacheMaterial, demand, envelopeOf, MAX_OUTPUT_BYTES } from "./dispatch.js";

export interface MachineConfig {
  /** How long past its timeout a lease lasts, and how long a runner may stay silent. */
  leaseGraceMs: number;
  /** The most slots one runner counts for, whatever it says (its device's slot cap). */
  maxHeld: number;
}

const DEFAULT_CONFIG: MachineConfig = { leaseGraceMs: 15_000, maxHeld: 256 };

/**
 * A runner holds at most this many times its slots (and at most its device's cap): its slots
 * running, and up to 8 × slots prefetched (runner/prefetch.ts sizes what it asks for within that).
 */
const PREFETCH_FACTOR = 9;

export type RunEvent =
  /**
   * The run's plan; `seeds` are accepted outputs of run `from` that this run reuses (`retry
   * --from`), in plan order, each standing for its task as if the result cache had answered.
   */
  | {
      type: "start";
      plan: ResolvedPlan;
      from?: string;
      seeds?: { task: string; output: Uint8Array | BlobRef }[];
      blobs?: ReadonlyMap<string, Uint8Array>;
    }
  /**
   * A runner's socket said hello; `holding` are the attempts it still runs or has results for.
   * `caps` is what it offers for tasks with `requires:` (without them it takes none of those).
   */
  | {
      type: "attach";
      runner: string;
      name: string;
      want: number;
      holding: AttemptRef[];
      caps?: Capabilities;
      /** Until when the runner's device is cooled down (the pool says), if it is. */
      cooledUntil?: number | null;
      /** The slots it has (it holds at most PREFETCH_FACTOR times as many); default the device's cap. */
      slots?: number;
    }
  /** The runner's device is cooled down until `until`: nothing new goes to it before then. */
  | { type: "cool"; runner: string; until: number }
  /** `started`: held attempts the runner started since it last said (their leases run from now). */
  | { type: "want"; runner: string; want: number; received: number; started?: AttemptRef[] }
  | { type: "started"; runner: string; tasks: AttemptRef[] }
  | {
      type: "results";
      runner: string;
      results: TaskResult[];
      want: number;
      received: number;
      started?: AttemptRef[];
      /** The bytes of output blobs a `map: { over }` maps over, by sha256, as the host read them. */
      blobs?: ReadonlyMap<string, Uint8Array>;
    }
  | { type: "reject"; runner: string; tasks: AttemptRef[] }
  /** The runner's socket closed (or went silent): its attempts are lost. */
  | { type: "detach"; runner: string }
  /** The coordinator restarted and this runner's socket is gone: give it time to come back. */
  | { type: "forget"; runner: string }
  /** Deadlines may be due. */
  | { type: "tick" }
  | { type: "control"; action: "cancel" | "pause" | "resume" }
  /**
   * New attempts, in this run, for its failed, skipped and cancelled tasks (or for the `tasks`
   * named, node ids or task keys, and their skipped and cancelled dependents): the run ended
   * failed or cancelled and runs again; what succeeded keeps its output.
   */
  | { type: "retry"; tasks?: string[] }
  /** The result cache's answers for tasks in `lookup`: hits succeed at once, misses become ready. */
  | {
      type: "looked_up";
      hits: { task: string; output: Uint8Array | BlobRef }[];
      misses: { task: string; key: string }[];
      blobs?: ReadonlyMap<string, Uint8Array>;
    };

export type Effect =
  | { type: "dispatch"; runner: string; tasks: Assignment[]; backlog: number }
  /** Attempts the runner should stop: the run no longer wants their results. */
  | { type: "cancel"; runner: string; tasks: AttemptRef[] }
  /** The runner should hand back up to `count` attempts it holds and has not started (another runner is idle). */
  | { type: "steal"; runner: string; count: number }
  /**
   * Ready tasks no attached runner has credit for, by what they require (none while paused);
   * the host tells the pool, which points runners that qualify at the run.
   */
  | { type: "demand"; classes: DemandClass[] }
  /** Tasks wait in `lookup`: the host should ask the result cache. */
  | { type: "lookup" }
  /** Accepted outputs to file in the result cache under their keys, with the runner that produced each. */
  | { type: "cache"; entries: { key: string; task: string; runner: string }[] }
  /** Attempts of `runner` were lost in this event (its device may be cooled down for it). */
  | { type: "lost"; runner: string; attempts: number }
  /** Frames of `runner` named attempts it does not hold: counted, and too many close its socket. */
  | { type: "stray"; runner: string; frames: number }
  | { type: "status"; status: RunStatus }
  | { type: "finished"; status: RunStatus };

const TRANSITIONS: Record<RunStatus, readonly RunStatus[]> = {
  queued: ["running", "paused", "succeeded", "failed", "cancelled"],
  running: ["paused", "succeeded", "failed", "cancelled"],
  paused: ["running", "succeeded", "failed", "cancelled"],
  succeeded: [],
  // Only by `retry`: a run that failed or was cancelled runs its unfinished tasks again.
  failed: ["running"],
  cancelled: ["running"],
};

/** Thrown on an event the run cannot take in its current status; names both. */
export class IllegalTransition extends Error {
  constructor(
    readonly status: RunStatus,
    readonly event: string,
    detail = "",
  ) {
    super(`run is ${status}: cannot handle "${event}"${detail ? ` (${detail})` : ""}`);
  }
}

/** Applies one event; every change goes to `store`, every outside action comes back as an effect. */
export function transition(
  store: RunStore,
  event: RunEvent,
  now: number,
  config: MachineConfig = DEFAULT_CONFIG,
): Effect[] {
  const effects: Effect[] = [];
  const status = store.status();
  const blobs = "blobs" in event ? event.blobs : undefined;
  const ctx: Ctx = {
    store,
    now,
    config,
    effects,
    cache: [],
    lost: new Map(),
    stray: 0,
    blobs: blobs ?? new Map(),
    revoked: new Map(),
  };
  switch (event.type) {
    case "start":
      if (status !== "queued" || Object.values(store.counts()).some((n) => n > 0)) {
        throw new IllegalTransition(status, event.type, "the run has its plan already");
      }
      store.insertInputs(event.plan.inputs);
      store.insertPlan(
        event.plan.nodes.map((spec): NodeRow => ({
          spec,
          pendingDeps: spec.deps.length,
          remaining: spec.instances ?? 1,
        })),
      );
      store.setNodesReady(
        event.plan.nodes.filter((spec) => spec.deps.length === 0).map((spec) => spec.id),
        now,
      );
      for (const { task, output } of event.seeds ?? []) reuse(ctx, task, output, event.from ?? "");
      break;
    case "attach":
      if (!isFinal(status)) attach(ctx, event, event.holding);
      break;
    case "want": {
      const runner = store.runner(event.runner);
      if (!runner) throw new IllegalTransition(status, event.type, `runner ${event.runner} is not attached`);
      started(ctx, event.runner, event.started ?? []);
      // A want does not end a steal: it is how a runner with nothing to hand back answers one, and
      // what it holds has not changed. Its next results or reject does (no steal storm).
      store.putRunner({ ...runner, credit: credit(ctx, runner, event.want, event.received) });
      break;
    }
    case "started":
      started(ctx, event.runner, event.tasks);
      break;
    case "results": {
      started(ctx, event.runner, event.started ?? []);
      acceptAll(ctx, event.runner, event.results);
      const runner = store.runner(event.runner);
      if (runner)
        store.putRunner({ ...runner, credit: credit(ctx, runner, event.want, event.received), stealing: false });
      break;
    }
    case "reject":
      ctx.returning = event.runner;
      if (store.runner(event.runner)?.stealing) store.putRunner({ ...store.runner(event.runner)!, stealing: false });
      for (const ref of event.tasks) {
        const row = leased(store, event.runner, ref);
        if (!row) {
          // One the run took back already (sent ahead of an attempt that ended) is no stray.
          const returned = store.attemptOutcome(ref.task, ref.attempt) === "returned";
          if (!returned || store.attemptRunner(ref.task, ref.attempt) !== event.runner) ctx.stray++;
          continue;
        }
        if (takeBack(ctx, row)) continue;
        endAttempt(ctx, row, "returned", null, "");
        store.updateTask(row.key, { state: "ready", runner: null });
        revokeAhead(ctx, row);
      }
      break;
    case "detach":
      for (const row of store.leasedTo(event.runner)) {
        fail(
          ctx,
          row,
          { kind: "lost", message: "the runner disconnected or went silent during the attempt", retryable: true },
          "",
        );
      }
      store.removeRunner(event.runner);
      break;
    case "cool": {
      const runner = store.runner(event.runner);
      if (!runner || (runner.cooledUntil ?? 0) >= event.until) break;
      store.putRunner({ ...runner, cooledUntil: event.until });
      store.setDeadline("cool", event.runner, event.until);
      break;
    }
    case "forget":
      for (const row of store.leasedTo(event.runner)) store.setDeadline("lease", row.key, now + config.leaseGraceMs);
      store.removeRunner(event.runner);
      break;
    case "tick":
      tick(ctx);
      break;
    case "control":
      control(ctx, status, event.action);
      break;
    case "retry":
      retry(ctx, status, event.tasks);
      break;
    case "looked_up":
      for (const { task, output } of event.hits) {
        const row = store.task(task);
        if (row?.state !== "lookup") continue;
        const attempt = row.attempt + 1;
        store.addAttempt({
          task,
          attempt,
          runner: "cache",
          runnerName: "result cache",
          startedAt: now,
          endedAt: now,
          outcome: "cached",
          failure: null,
          stderr: "",
          note: null,
        });
        succeed(ctx, { ...row, attempt }, output);
      }
      for (const { task, key } of event.misses) {
        if (store.task(task)?.state !== "lookup") continue;
        store.setCacheKey(task, key);
        store.updateTask(task, { state: "ready" });
      }
      break;
  }
  if (ctx.cache.length > 0) effects.push({ type: "cache", entries: ctx.cache });
  for (const [runner, tasks] of ctx.revoked) effects.push({ type: "cancel", runner, tasks });
  for (const [runner, attempts] of ctx.lost) effects.push({ type: "lost", runner, attempts });
  if (ctx.stray > 0 && "runner" in event) effects.push({ type: "stray", runner: event.runner, frames: ctx.stray });
  if (!isFinal(store.status())) {
    const { sent, runners } = dispatch(ctx);
    // One read of the counts serves the backlog, the demand, the status and the cache lookups.
    const counts = store.counts();
    const paused = store.status() === "paused";
    tellBacklogs(ctx, sent, paused ? 0 : counts.ready, runners);
    // Only a runner holding more than its slots can have work that surely waits (a chain's one
    // leased task never does: no query for it).
    const fewest = Math.min(...runners.map((r) => Math.max(1, r.slots)));
    if (!paused && counts.ready === 0 && counts.leased > fewest) steal(ctx, runners);
    effects.push({ type: "demand", classes: paused ? [] : demand(store, counts.ready) });
    settle(ctx, counts);
    if (counts.lookup > 0) effects.push({ type: "lookup" });
  }
  store.flush();
  return effects;
}

interface Ctx {
  store: RunStore;
  now: number;
  config: MachineConfig;
  effects: Effect[];
  /** Outputs accepted in this transition that the result cache should keep. */
  cache: { key: string; task: string; runner: string }[];
  /** Attempts lost in this transition, by runner. */
  lost: Map<string, number>;
  /** Entries of this event's frame that named attempts its runner does not hold. */
  stray: number;
  /** Blob outputs a map goes over, read by the host, by sha256. */
  blobs: ReadonlyMap<string, Uint8Array>;
  /** The runner whose `reject` this event is: what it handed back goes to others first. */
  returning?: string;
  /** Attempts sent ahead that this event took back, by runner: it is told to drop them. */
  revoked: Map<string, AttemptRef[]>;
}

/**
 * What a runner can take now: its `want`, less what was sent but had not reached it when it spoke,
 * and never more than leaves it holding `maxHeld` attempts (a runner that asks again and again as
 * if it held nothing is not believed).
 */
function credit(ctx: Ctx, runner: RunnerRow, want: number, received: number): number {
  const room = holdCap(ctx.config, runner.slots) - ctx.store.heldBy(runner.id);
  return Math.max(0, Math.min(room, want - Math.max(0, runner.sent - received)));
}

/**
 * The most attempts a runner of `slots` slots holds: its slots and what it may prefetch, and never
 * more than its device counts for (so no device hoards more than its cap, prefetch or not).
 */
function holdCap(config: MachineConfig, slots: number): number {
  return Math.min(config.maxHeld, PREFETCH_FACTOR * Math.max(1, slots));
}

/**
 * Held attempts `runner` says it started: their leases (timeout plus grace) run from now. Until
 * then a held attempt's lease runs from its dispatch.
 */
function started(ctx: Ctx, runner: string, refs: readonly AttemptRef[]): void {
  const { store, now, config } = ctx;
  const rows = store.markStarted(runner, refs);
  if (rows.length > 0) store.startedAt(rows.map((row) => ({ task: row.key, attempt: row.attempt, at: now })));
  const at = (row: TaskRow) => now + store.spec(row.node).timeoutMs + config.leaseGraceMs;
  if (rows.length > 0)
    store.setDeadlines(
      "lease",
      rows.map((row) => ({ key: row.key, at: at(row) })),
    );
}

/**
 * Work stealing: a runner with credit and nothing of its own waiting to start, while the run has
 * nothing ready for it, gets half of what the runner holding the most unstarted attempts holds
 * (at least one, when it holds nothing of the run).
 * The holder is asked (`steal`) and hands back only attempts it has not started (`reject`), so a
 * steal never makes a task run twice; one steal is asked of a runner at a time.
 */
function steal(ctx: Ctx, runners: RunnerRow[]): void {
  const { store, now } = ctx;
  const idle = runners.filter((r) => r.credit > 0 && (r.cooledUntil ?? 0) <= now);
  if (idle.length === 0) return;
  const holdings = store.holdings();
  // What surely waits to start: not said to be started, and beyond the slots it runs at once (a
  // task of a second that has run 20 ms has no mark yet, and is no more to be stolen than a started one).
  const waiting = new Map(
    runners.map((r) => {
      const h = holdings.get(r.id);
      const unstarted = h ? [...h.unstarted.values()].reduce((a, b) => a + b, 0) : 0;
      return [r.id, Math.min(unstarted, Math.max(0, (h?.held ?? 0) - Math.max(1, r.slots)))];
    }),
  );
  const constrained = new Set(store.constrainedNodes());
  // A thief takes whatever the holder hands back: it must qualify for every node of it.
  const qualifies = (thief: RunnerRow, holder: string) =>
    [...(holdings.get(holder)?.unstarted.keys() ?? [])].every(
      (node) => !constrained.has(node) || (thief.caps !== null && meets(store.spec(node).requires, thief.caps)),
    );
  for (const thief of idle) {
    if (waiting.get(thief.id)! > 0) continue;
    // A runner with nothing at all of the run takes even a last one; else two or more must wait
    // (half goes), so that short tasks do not go back and forth.
    const least = (holdings.get(thief.id)?.held ?? 0) === 0 ? 1 : 2;
    let victim: RunnerRow | undefined;
    for (const r of runners) {
      if (r.id === thief.id || r.stealing || waiting.get(r.id)! < least || !qualifies(thief, r.id)) continue;
      if (!victim || waiting.get(r.id)! > waiting.get(victim.id)!) victim = r;
    }
    if (!victim) continue;
    const count = Math.min(thief.credit, Math.max(1, Math.floor(waiting.get(victim.id)! / 2)));
    waiting.set(victim.id, waiting.get(victim.id)! - count);
    const row = { ...victim, stealing: true };
    runners[runners.indexOf(victim)] = row;
    store.putRunner(row);
    ctx.effects.push({ type: "steal", runner: victim.id, count });
  }
}

/** The task row of `ref` if that very attempt is leased to `runner`. */
function leased(store: RunStore, runner: string, ref: AttemptRef): TaskRow | undefined {
  const row = store.task(ref.task);
  return row && row.state === "leased" && row.runner === runner && row.attempt === ref.attempt ? row : undefined;
}

/**
 * A runner (re)attaches. Attempts it still holds and that are still its own keep running; one
 * that was re-queued but not yet handed out again is given back to it; any other is stale and
 * the runner is told to stop it. Its leases that it no longer holds are lost.
 */
function attach(
  ctx: Ctx,
  { runner, name, want, caps, cooledUntil, slots }: Extract<RunEvent, { type: "attach" }>,
  holding: AttemptRef[],
): void {
  const { store, now, config } = ctx;
  const held = new Set(holding.map((h) => `${h.task}#${h.attempt}`));
  const stale: AttemptRef[] = [];
  for (const ref of holding) {
    const row = store.task(ref.task);
    if (row && leased(store, runner, ref)) continue;
    // Only its own attempt, and one it may take: a runner cannot claim another's, nor dodge
    // `requires:`. The loss it cost stays charged, so a runner that keeps dropping and resuming
    // a task cannot hold it forever.
    const own = row !== undefined && store.attemptRunner(row.key, ref.attempt) === runner;
    const spec = row && store.spec(row.node);
    const may = spec !== undefined && (!spec.requires || (caps !== undefined && meets(spec.requires, caps)));
    // Only an attempt that was lost: one that ended with a result (a retried run's) stays ended.
    const lost = row !== undefined && store.attemptOutcome(row.key, ref.attempt) === "lost";
    if (row && own && may && lost && row.state === "ready" && row.attempt === ref.attempt) {
      store.updateTask(row.key, { state: "leased", runner });
      store.endAttempt(row.key, row.attempt, { endedAt: null, outcome: "running", failure: null, stderr: "" });
      store.noteAttempt(row.key, row.attempt, runner, "resumed: the runner reconnected still running it");
      // It may have run before it was lost: its lease runs from now, as if it started now.
      store.markStarted(runner, [ref]);
      store.setDeadline("lease", row.key, now + store.spec(row.node).timeoutMs + config.leaseGraceMs);
      continue;
    }
    stale.push(ref);
  }
  for (const row of store.leasedTo(runner)) {
    if (!held.has(`${row.key}#${row.attempt}`)) {
      fail(ctx, row, { kind: "lost", message: "the runner reconnected without this attempt", retryable: true }, "");
    }
  }
  const cooled = cooledUntil !== undefined && cooledUntil !== null && cooledUntil > now ? cooledUntil : null;
  const counted = Math.min(slots ?? config.maxHeld, config.maxHeld);
  const room = holdCap(config, counted) - store.heldBy(runner);
  store.putRunner({
    id: runner,
    name,
    credit: Math.max(0, Math.min(want, room)),
    sent: 0,
    caps: caps ?? null,
    cooledUntil: cooled,
    backlogTold: -1,
    sentAt: 0,
    slots: counted,
    stealing: false,
  });
  if (cooled !== null) store.setDeadline("cool", runner, cooled);
  if (stale.length > 0) ctx.effects.push({ type: "cancel", runner, tasks: stale });
}

/**
 * Takes a frame's results: each accepted only from the runner holding that very attempt, once;
 * anything else is noted and ignored. The rows are read in one query, and the plain successes
 * (an inline output, of a node no map goes over) are recorded together (`succeedAll`): a frame of
 * results costs a few statements, not a few per result.
 */
function acceptAll(ctx: Ctx, runner: string, results: readonly TaskResult[]): void {
  const { store } = ctx;
  const rows = new Map(store.leasedOf(runner, results).map((row) => [`${row.key}#${row.attempt}`, row]));
  let plain: Succeeded[] = [];
  /** Plain tasks whose success is among `plain` (not yet recorded): what a task sent ahead waited for. */
  const here = new Set<string>();
  for (const result of results) {
    const ref = `${result.task}#${result.attempt}`;
    const row = rows.get(ref);
    rows.delete(ref); // a result named twice in a frame counts once
    if (!row) {
      ctx.stray++;
      store.noteAttempt(
        result.task,
        result.attempt,
        runner,
        `a ${result.ok ? "successful" : "failed"} result arrived after the attempt had ended; ignored`,
      );
      continue;
    }
    // Sent ahead, an attempt's result counts only after the one it waited for (in this frame or before).
    // (Read again when the frame's own successes seem not to cover it: one may have been
    // recorded already, through `accept` or a flush of `plain`.)
    const covered = (pending: number) => pending <= store.spec(row.node).deps.filter((dep) => here.has(dep)).length;
    const waits = row.pendingDeps > 0 && !covered(row.pendingDeps) ? store.node(row.node).pendingDeps : row.pendingDeps;
    if (waits > 0 && !covered(waits)) {
      ctx.stray++;
      const note = "a result arrived before the attempt it needed the output of had succeeded; ignored";
      store.noteAttempt(result.task, result.attempt, runner, note);
      takeBack(ctx, row);
      continue;
    }
    // An attempt whose start its runner never said (its result went first) ran for as long as
    // the result says: its start moves from when it was sent to then (the page's timeline).
    const ranFrom = row.started ? undefined : ctx.now - Math.round(result.durationMs);
    const output = result.ok && result.output !== undefined ? fromBase64(result.output) : undefined;
    if (output && output.length <= INLINE_OUTPUT_BYTES && !mappedOver(store, row)) {
      plain.push({ row, output, stderr: result.stderr, ranFrom });
      if (row.index === null) here.add(row.node);
      continue;
    }
    // What it waited for is recorded first, so that its own success releases in order.
    if (waits > 0) {
      succeedPlain(ctx, runner, plain);
      plain = [];
      here.clear();
    }
    if (ranFrom !== undefined) store.startedAt([{ task: row.key, attempt: row.attempt, at: ranFrom }]);
    accept(ctx, runner, row, result);
  }
  succeedPlain(ctx, runner, plain);
}

/** Records plain successes together; a node whose last instance this was releases its dependents. */
function succeedPlain(ctx: Ctx, runner: string, plain: readonly Succeeded[]): void {
  const { store } = ctx;
  if (plain.length === 0) return;
  store.succeedAll(plain, ctx.now);
  const done = new Map<string, number>();
  for (const { row } of plain) {
    done.set(row.node, (done.get(row.node) ?? 0) + 1);
    if (row.cacheKey) ctx.cache.push({ key: row.cacheKey, task: row.key, runner });
  }
  const remaining = store.bumpNodes("remaining", new Map([...done].map(([node, n]) => [node, -n])));
  release(
    ctx,
    [...remaining].filter(([, left]) => left === 0).map(([node]) => node),
  );
}

/** Whether a map goes over the output of `row` (a plain task some `map: { over }` names). */
function mappedOver(store: RunStore, row: TaskRow): boolean {
  return row.index === null && store.dependents(row.node).some((node) => store.spec(node).over === row.node);
}

/** Takes one result of an attempt leased to `runner` that is not a plain success. */
function accept(ctx: Ctx, runner: string, row: LeasedRow, result: TaskResult): void {
  if (!result.ok || (result.output === undefined && result.outputRef === undefined)) {
    fail(
      ctx,
      row,
      result.failure ?? { kind: "exit", message: "the runner reported a failure without a reason", retryable: true },
      result.stderr,
    );
    return;
  }
  const output: Uint8Array | BlobRef = result.outputRef ?? fromBase64(result.output!);
  const size = output instanceof Uint8Array ? output.length : output.size;
  const limit = output instanceof Uint8Array ? INLINE_OUTPUT_BYTES : MAX_OUTPUT_BYTES;
  if (size > limit) {
    const inline = output instanceof Uint8Array ? " for inline outputs" : "";
    const message = `output of ${size} bytes exceeds the limit of ${limit}${inline}`;
    fail(ctx, row, { kind: "output", message, retryable: false }, result.stderr);
    return;
  }
  endAttempt(ctx, row, "succeeded", null, result.stderr);
  if (row.cacheKey) ctx.cache.push({ key: row.cacheKey, task: row.key, runner });
  succeed(ctx, row, output);
}

/**
 * Records an accepted output; the last instance of a node to succeed releases its dependents. An
 * output a `map: { over }` maps over first creates that map's instances; one that cannot (not
 * an array, too long) fails the task instead, naming why.
 */
function succeed(ctx: Ctx, row: TaskRow, output: Uint8Array | BlobRef): void {
  const { store } = ctx;
  const failure = expand(ctx, row, output);
  if (failure) {
    fail(ctx, row, failure, "");
    return;
  }
  store.setOutput(row.key, output);
  store.updateTask(row.key, { state: "succeeded", runner: null, attempt: row.attempt });
  if (store.bumpNodes("remaining", new Map([[row.node, -1]])).get(row.node)! > 0) return;
  release(ctx, [row.node]);
}

/** A task takes an output accepted in run `from` (a linked retry), as a cache hit would. */
function reuse(ctx: Ctx, task: string, output: Uint8Array | BlobRef, from: string): void {
  const { store, now } = ctx;
  const row = store.task(task);
  if (!row || row.state === "succeeded") return;
  const attempt = row.attempt + 1;
  store.addAttempt({
    task,
    attempt,
    runner: `run:${from}`,
    runnerName: `run ${from.slice(0, 12)}`,
    startedAt: now,
    endedAt: now,
    outcome: "cached",
    failure: null,
    stderr: "",
    note: `the output accepted in run ${from}, reused`,
  });
  succeed(ctx, { ...row, attempt }, output);
}

/**
 * Every instance of each of `nodes` succeeded: dependents with nothing else to wait for become
 * ready (or go to the result cache), a few statements for all. (One of a plain task that was sent
 * ahead is leased already: it stays so.)
 */
function release(ctx: Ctx, nodes: readonly string[]): void {
  const { store } = ctx;
  const deltas = new Map<string, number>();
  for (const node of nodes)
    for (const dependent of store.dependents(node)) deltas.set(dependent, (deltas.get(dependent) ?? 0) - 1);
  if (deltas.size === 0) return;
  const free = [...store.bumpNodes("pendingDeps", deltas)].filter(([, left]) => left === 0).map(([node]) => node);
  if (free.length === 0) return;
  store.moveNodes("blocked", new Map(free.map((node) => [node, store.spec(node).cache ? "lookup" : "ready"])));
  store.setNodesReady(free, ctx.now);
  // A map over an empty array has no instances: it is done as soon as it may start.
  release(
    ctx,
    free.filter((node) => store.spec(node).instances === 0),
  );
}

/**
 * Creates the instances of each map over the output of `row` (a plain task), one per element
 * of the JSON array; answers the failure of an output that cannot be mapped over, or null.
 */
function expand(ctx: Ctx, row: TaskRow, output: Uint8Array | BlobRef): Failure | null {
  const { store } = ctx;
  // Only a plain task is mapped over: an instance of a map costs nothing here.
  if (row.index !== null) return null;
  const maps: [string, unknown[]][] = [];
  // The run's size is read only for an output some map goes over (most succeed without it).
  let total: number | undefined;
  for (const node of store.dependents(row.node)) {
    const spec = store.spec(node);
    if (spec.over !== row.node) continue;
    total ??= Object.values(store.counts()).reduce((a, b) => a + b, 0);
    const bad = (message: string, retryable = false): Failure => ({
      kind: "output",
      message: `task "${node}" maps over this output (map.over): ${message}`,
      retryable,
    });
    const bytes = output instanceof Uint8Array ? output : ctx.blobs.get(output.sha256);
    if (bytes === undefined) return bad(`its blob sha256:${(output as BlobRef).sha256} could not be read`, true);
    const cap = spec.maxInstances ?? DAG_LIMITS.defaultMapInstances;
    const items = mapItems(bytes, cap);
    if (typeof items === "string") return bad(items);
    total += items.length;
    if (total > DAG_LIMITS.maxInstances)
      return bad(
        `its ${count(items.length)} elements would make the run ${count(total)} task instances; at most ${count(DAG_LIMITS.maxInstances)}`,
      );
    maps.push([node, items]);
  }
  for (const [node, items] of maps) store.insertInstances(node, items, "blocked");
  return null;
}

const count = (n: number) => n.toLocaleString("en-US");
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const encoder = new TextEncoder();

/**
 * The elements of an output a map goes over, or what keeps it from being mapped over. Its shape
 * is checked before it is parsed, so that no output costs the run more than its limits allow.
 */
function mapItems(bytes: Uint8Array, cap: number): unknown[] | string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return "it must be a JSON array, and it is not JSON";
  }
  const { depth, values } = jsonShape(text, DAG_LIMITS.maxMapValues);
  if (values > DAG_LIMITS.maxMapValues) return `its JSON holds more than ${count(DAG_LIMITS.maxMapValues)} values`;
  if (depth > MAX_JSON_DEPTH) return `it is nested deeper than ${MAX_JSON_DEPTH} levels`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "it must be a JSON array, and it is not JSON";
  }
  if (!Array.isArray(value)) return `it must be a JSON array, and it is ${describe(value)}`;
  if (value.length > cap)
    return `its ${count(value.length)} elements are more than max_instances, ${count(cap)} (raise map.max_instances, at most ${count(DAG_LIMITS.maxInstances)})`;
  const items: unknown[] = value;
  for (const [i, item] of items.entries()) {
    const json = JSON.stringify(item) ?? "null";
    const size = json.length * 3 > DAG_LIMITS.maxItemBytes ? encoder.encode(json).length : json.length;
    if (size > DAG_LIMITS.maxItemBytes) return `element ${i} is over ${count(DAG_LIMITS.maxItemBytes)} bytes as JSON`;
  }
  return items;
}

/** What a value is, for a message: "an object", "a number". */
function describe(value: unknown): string {
  if (value === null) return "null";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function endAttempt(ctx: Ctx, row: TaskRow, outcome: AttemptOutcome, failure: Failure | null, stderr: string): void {
  ctx.store.endAttempt(row.key, row.attempt, { endedAt: ctx.now, outcome, failure, stderr });
  ctx.store.clearDeadline("lease", row.key);
}

/**
 * Ends an attempt as failed or lost. A lost attempt (its runner gone, its lease expired) is never
 * the task's doing: it costs the task's `lostRetries`, never its `retries`, and goes back to ready
 * at once. While retries remain a retryable failure goes back to ready after an exponential
 * back-off. Past its budget the task fails and everything downstream is skipped.
 */
function fail(ctx: Ctx, row: TaskRow, failure: Failure, stderr: string): void {
  const { store, now } = ctx;
  // Sent ahead, it never had its input: it goes back to wait, costing the task nothing.
  if (takeBack(ctx, row)) return;
  const lost = failure.kind === "lost";
  endAttempt(ctx, row, lost ? "lost" : "failed", failure, stderr);
  revokeAhead(ctx, row);
  const spec = store.spec(row.node);
  if (lost) {
    if (row.runner) ctx.lost.set(row.runner, (ctx.lost.get(row.runner) ?? 0) + 1);
    const losses = row.losses + 1;
    if (losses > spec.lostRetries) {
      store.updateTask(row.key, { state: "failed", runner: null, losses });
      skipDependents(store, row.node);
      return;
    }
    store.updateTask(row.key, { state: "ready", runner: null, losses });
    return;
  }
  const failures = row.failures + 1;
  if (!failure.retryable || failures > spec.retries) {
    store.updateTask(row.key, { state: "failed", runner: null, failures });
    skipDependents(store, row.node);
    return;
  }
  if (spec.retryDelayMs === 0) {
    store.updateTask(row.key, { state: "ready", runner: null, failures });
    return;
  }
  store.updateTask(row.key, { state: "backoff", runner: null, failures });
  store.setDeadline("retry", row.key, now + Math.min(spec.retryDelayMaxMs, spec.retryDelayMs * 2 ** (failures - 1)));
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

/**
 * Whether the task in `row` is of a node that may be sent ahead of its last dependency: a plain
 * task whose dependencies are all plain tasks, and that neither maps nor asks the result cache
 * (whose key needs the input). Read from its spec alone.
 */
function goesAhead(store: RunStore, row: TaskRow): boolean {
  return row.index === null && aheadNode(store, row.node);
}

function aheadNode(store: RunStore, node: string): boolean {
  const spec = store.spec(node);
  const plain = (s: typeof spec) => s.instances === null && s.over === undefined && s.files === undefined;
  return plain(spec) && !spec.cache && spec.deps.length > 0 && spec.deps.every((dep) => plain(store.spec(dep)));
}

/** Whether any node of the run may be sent ahead (a run's nodes never change: kept by store). */
const anyAhead = new WeakMap<RunStore, boolean>();
function mayGoAhead(store: RunStore): boolean {
  let known = anyAhead.get(store);
  if (known === undefined) anyAhead.set(store, (known = store.nodeIds().some((node) => aheadNode(store, node))));
  return known;
}

/**
 * If `row` is an attempt sent ahead whose dependency has not succeeded, takes it back: it ends
 * `returned`, its task waits again (blocked), its runner is told to drop it, and so is what was
 * sent ahead of it. Answers whether it was one (true also when it was taken back already).
 */
function takeBack(ctx: Ctx, row: TaskRow): boolean {
  const { store } = ctx;
  if (!goesAhead(store, row) || store.node(row.node).pendingDeps === 0) return false;
  const now = store.task(row.key);
  if (now?.state !== "leased" || now.attempt !== row.attempt || now.runner !== row.runner) return true;
  endAttempt(ctx, now, "returned", null, "");
  store.updateTask(now.key, { state: "blocked", runner: null });
  const ref = { task: now.key, attempt: now.attempt };
  if (ctx.revoked.has(now.runner!)) ctx.revoked.get(now.runner!)!.push(ref);
  else ctx.revoked.set(now.runner!, [ref]);
  revokeAhead(ctx, now);
  return true;
}

/** The attempt in `row` ended without a success: whatever was sent ahead of it is taken back. */
function revokeAhead(ctx: Ctx, row: TaskRow): void {
  const { store } = ctx;
  if (row.index !== null) return;
  // Only a node that may be sent ahead is read (from its spec alone, the others are not).
  for (const node of store.dependents(row.node)) {
    const dependent = aheadNode(store, node) ? store.task(taskKey(node, null)) : undefined;
    if (dependent?.state === "leased" && dependent.runner === row.runner) takeBack(ctx, dependent);
  }
}

/** Handles due deadlines: expired leases are lost attempts, finished back-offs make tasks ready. */
function tick(ctx: Ctx): void {
  const { store, now } = ctx;
  for (;;) {
    const due = store.dueDeadlines(now, 500);
    for (const d of due) {
      store.clearDeadline(d.kind, d.key);
      // A cool-down's end needs nothing but the dispatch every transition ends with.
      if (d.kind === "cool") continue;
      if (d.kind === "hold") {
        expireHeld(ctx, d.key);
        continue;
      }
      const row = store.task(d.key);
      if (!row) continue;
      if (d.kind === "retry" && row.state === "backoff") store.updateTask(row.key, { state: "ready" });
      if (d.kind === "lease" && row.state === "leased") {
        const grace = ctx.config.leaseGraceMs;
        const message = `no result within the task's timeout plus ${grace} ms; the attempt is presumed lost`;
        fail(ctx, row, { kind: "lost", message, retryable: true }, "");
      }
    }
    if (due.length < 500) return;
  }
}

/**
 * The `hold` deadline of `runner` is due: each attempt it holds and has not said it started
 * whose lease (timeout plus grace from its dispatch) has ended is lost; the deadline moves to
 * the earliest end of the others.
 */
function expireHeld(ctx: Ctx, runner: string): void {
  const { store, now, config } = ctx;
  let next = Infinity;
  for (const { row, sentAt } of store.unstartedOf(runner)) {
    const { timeoutMs } = store.spec(row.node);
    // One sent ahead waits for its dependency, whose own lease keeps the runner honest: its
    // lease runs from when that one was accepted (its node ready), and it is looked at again later.
    if (goesAhead(store, row) && store.node(row.node).pendingDeps > 0) {
      next = Math.min(next, now + timeoutMs + config.leaseGraceMs);
      continue;
    }
    const from = goesAhead(store, row) ? Math.max(sentAt, store.nodeReadyAt(row.node) ?? sentAt) : sentAt;
    const end = from + timeoutMs + config.leaseGraceMs;
    if (end > now) {
      next = Math.min(next, end);
      continue;
    }
    const message = `not started within the task's timeout plus ${config.leaseGraceMs} ms of its dispatch; the attempt is presumed lost`;
    fail(ctx, row, { kind: "lost", message, retryable: true }, "");
  }
  if (next < Infinity) store.setDeadline("hold", runner, next);
}

function control(ctx: Ctx, status: RunStatus, action: "cancel" | "pause" | "resume"): void {
  const { store } = ctx;
  if (action === "pause") {
    if (status === "paused") return;
    moveStatus(ctx, status, "paused", action);
  } else if (action === "resume") {
    if (status !== "paused") throw new IllegalTransition(status, action, "only a paused run resumes");
    moveStatus(ctx, status, "running", action);
  } else {
    if (isFinal(status)) throw new IllegalTransition(status, action);
    const byRunner = new Map<string, AttemptRef[]>();
    for (const row of store.leased()) {
      endAttempt(ctx, row, "cancelled", null, "");
      byRunner.set(row.runner!, [...(byRunner.get(row.runner!) ?? []), { task: row.key, attempt: row.attempt }]);
    }
    for (const [runner, tasks] of byRunner) ctx.effects.push({ type: "cancel", runner, tasks });
    for (const state of ["blocked", "lookup", "ready", "backoff", "leased"] as const) store.moveAll(state, "cancelled");
    store.clearDeadlines();
    moveStatus(ctx, status, "cancelled", action);
    ctx.effects.push({ type: "finished", status: "cancelled" });
  }
}

/** The states a retry takes a task out of. */
const RETRIED: readonly TaskState[] = ["failed", "skipped", "cancelled"];

/**
 * Gives the run's failed, skipped and cancelled tasks (or the named ones and their skipped and
 * cancelled dependents) fresh budgets and sends them back to wait for their dependencies; a task
 * that still depends on a failure not retried is skipped again. The node counters need no change:
 * only a success moves them, and a retried task has none.
 */
function retry(ctx: Ctx, status: RunStatus, names: string[] | undefined): void {
  const { store, now } = ctx;
  if (status !== "failed" && status !== "cancelled") {
    const why = status === "succeeded" ? "every task succeeded" : "only a run that ended failed or cancelled retries";
    throw new IllegalTransition(status, "retry", why);
  }
  const rows = names === undefined ? store.tasksIn(RETRIED) : named(store, names);
  if (rows.length === 0) throw new IllegalTransition(status, "retry", "no task to retry");
  const ready = new Set<string>();
  for (const row of rows) {
    const { spec, pendingDeps } = store.node(row.node);
    const state: TaskState = pendingDeps > 0 ? "blocked" : spec.cache ? "lookup" : "ready";
    if (state !== "blocked") ready.add(row.node);
    store.updateTask(row.key, { state, failures: 0, losses: 0, runner: null });
  }
  store.setNodesReady([...ready], now);
  for (const { node } of store.tasksIn(["failed"])) skipDependents(store, node);
  // (The host applies an event in one transaction: a refusal here leaves the run as it was.)
  if (rows.every((row) => store.task(row.key)?.state === "skipped"))
    throw new IllegalTransition(status, "retry", "every task named still waits for a failure not retried: name it too");
  // The runners of the first round left with its end (their sockets closed): they come back
  // when the pool points them here again, and nothing goes to them before.
  for (const runner of store.runners()) store.removeRunner(runner.id);
  moveStatus(ctx, status, "running", "retry");
}

/** The tasks `names` (node ids or task keys) stand for, with their skipped and cancelled dependents. */
function named(store: RunStore, names: string[]): TaskRow[] {
  const rows = new Map<string, TaskRow>();
  const downstream: string[] = [];
  for (const name of names) {
    const { node, index } = parseTaskKey(name);
    let spec;
    try {
      spec = store.node(node).spec;
    } catch {
      throw new IllegalTransition(store.status(), "retry", `the run has no task ${name}`);
    }
    const own = store.tasksIn(RETRIED, spec.id).filter((r) => index === null || r.index === index);
    if (own.length === 0 && spec.over !== undefined && spec.instances === 0) {
      const why = `${name} has no instances yet: it maps over ${spec.over}, which did not succeed; retry ${spec.over}`;
      throw new IllegalTransition(store.status(), "retry", why);
    }
    if (own.length === 0) {
      const task = index === null ? undefined : store.task(name);
      if (index !== null && !task) throw new IllegalTransition(store.status(), "retry", `the run has no task ${name}`);
      throw new IllegalTransition(store.status(), "retry", `${name} succeeded: its output stays (nothing to retry)`);
    }
    for (const r of own) rows.set(r.key, r);
    downstream.push(...store.dependents(spec.id));
  }
  const seen = new Set<string>();
  while (downstream.length > 0) {
    const node = downstream.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const r of store.tasksIn(["skipped", "cancelled"], node)) rows.set(r.key, r);
    downstream.push(...store.dependents(node));
  }
  return [...rows.values()];
}

function moveStatus(ctx: Ctx, from: RunStatus, to: RunStatus, event: string): void {
  if (!TRANSITIONS[from].includes(to)) throw new IllegalTransition(from, event);
  ctx.store.setStatus(to, ctx.now);
  ctx.effects.push({ type: "status", status: to });
}

/**
 * Hands ready tasks to runners with credit (nothing while paused), each only tasks whose
 * `requires:` it meets; the caller adds the backlog. Answers the runners' rows as they are now.
 */
function dispatch(ctx: Ctx): { sent: Extract<Effect, { type: "dispatch" }>[]; runners: RunnerRow[] } {
  const { store } = ctx;
  const runners = store.runners();
  const sent: Extract<Effect, { type: "dispatch" }>[] = [];
  if (store.status() === "paused") return { sent, runners };
  const inputs: InputCache = new Map();
  const constrained = store.constrainedNodes();
  // Who may take: not a runner that has just handed tasks back (it said it has no room for them).
  const takers = runners.filter((r) => r.credit > 0 && (r.cooledUntil ?? 0) <= ctx.now && r.id !== ctx.returning);
  // When the runners ask for more than is ready (a run's last tasks), each gets its share by
  // slots, not whoever asks first all of it: prefetch then does not keep work from an idle runner.
  const ready = store.counts().ready;
  const asked = takers.reduce((n, r) => n + r.credit, 0);
  const slots = takers.reduce((n, r) => n + Math.max(1, r.slots), 0);
  const share = (r: RunnerRow) => (asked <= ready ? r.credit : Math.ceil((ready * Math.max(1, r.slots)) / slots));
  // The one asking for the most first: what a steal handed back goes to the runner that was idle.
  // Shares first; what a runner with less credit than its share left goes to the others after.
  const order = [...runners.keys()].sort((a, b) => runners[b]!.credit - runners[a]!.credit);
  for (const [pass, i] of [...order.map((i) => [0, i]), ...order.map((i) => [1, i])] as [number, number][]) {
    const runner = runners[i]!;
    if (store.counts().ready === 0) break;
    if (runner.credit <= 0 || !takers.some((t) => t.id === runner.id)) continue;
    const excluded = constrained.filter((node) => !runner.caps || !meets(store.spec(node).requires, runner.caps));
    const limit = pass === 0 ? Math.min(runner.credit, share(runner)) : runner.credit;
    const rows = store.leaseReady(runner, limit, excluded, ctx.now);
    if (rows.length === 0) {
      if (excluded.length === 0) break;
      continue;
    }
    // Until the runner says it started one, a held attempt's lease runs from now: a runner that
    // holds attempts and never starts them loses them as one that went silent would. One row
    // (`hold`) keeps the earliest end of them all for the runner.
    const ends = rows.map((row) => ctx.now + store.spec(row.node).timeoutMs + ctx.config.leaseGraceMs);
    store.setDeadlineBy("hold", runner.id, Math.min(...ends));
    const tasks = rows.flatMap((row) => assign(ctx, row, runner, inputs) ?? []);
    runners[i] = { ...runner, credit: runner.credit - tasks.length, sent: runner.sent + tasks.length, sentAt: ctx.now };
    store.putRunner(runners[i]);
    // One frame a runner: the second pass adds to the first's.
    addToFrame(sent, runner.id, tasks);
  }
  if (store.counts().blocked > 0 && mayGoAhead(store))
    for (const [i, runner] of runners.entries())
      if (runner.credit > 0 && takers.some((t) => t.id === runner.id)) sendAhead(ctx, runners, i, sent);
  return { sent, runners };
}

/** Adds tasks to the one frame of `runner` in this event. */
function addToFrame(sent: Extract<Effect, { type: "dispatch" }>[], runner: string, tasks: Assignment[]): void {
  const frame = sent.find((e) => e.runner === runner);
  if (frame) frame.tasks.push(...tasks);
  else if (tasks.length > 0) sent.push({ type: "dispatch", runner, tasks, backlog: 0 });
}

/**
 * Sends a runner, beyond what is ready, the tasks that wait only for an attempt it holds (the next
 * links of a chain): it starts each once that attempt succeeded there, with its output
 * (`Assignment.after`), so that a chain does not wait a round trip through the run per link.
 * Only within what the runner holds beyond its slots (its prefetch): what waits here never keeps
 * a slot from another run's ready work. Here they stay blocked until what they wait for is
 * accepted; should that attempt end any other way, they are taken back (`revokeAhead`).
 */
function sendAhead(ctx: Ctx, runners: RunnerRow[], i: number, sent: Extract<Effect, { type: "dispatch" }>[]): void {
  const { store, now } = ctx;
  const runner = runners[i]!;
  const held = store.leasedTo(runner.id);
  const budget = Math.min(runner.credit, held.length + runner.credit - Math.max(1, runner.slots));
  if (budget <= 0) return;
  // The plain tasks that may follow what it holds, link by link (read from the specs alone), then
  // their rows in one read: each goes if it is blocked with one dependency to go, the one before it.
  const holds = new Set(held.map((row) => row.node));
  const links: { node: string; before: string }[] = [];
  const frontier = held.filter((row) => row.index === null).map((row) => row.node);
  while (frontier.length > 0 && links.length < budget) {
    const before = frontier.shift()!;
    for (const node of store.dependents(before)) {
      if (links.length >= budget || holds.has(node) || !aheadNode(store, node)) continue;
      const { requires } = store.spec(node);
      if (requires && !(runner.caps && meets(requires, runner.caps))) continue;
      links.push({ node, before });
      holds.add(node);
      frontier.push(node);
    }
  }
  const rows = new Map(store.blockedOf(links.map((l) => taskKey(l.node, null))).map((row) => [row.node, row]));
  const attempts = new Map(held.map((row) => [row.node, { task: row.key, attempt: row.attempt }]));
  const picked: { row: TaskRow; task: Assignment }[] = [];
  for (const { node, before } of links) {
    const row = rows.get(node);
    const after = attempts.get(before);
    if (!row || row.pendingDeps !== 1 || !after) continue;
    const task = aheadAssignment(store, row, row.attempt + 1, before, after);
    if (!task) continue;
    picked.push({ row, task });
    attempts.set(node, { task: row.key, attempt: row.attempt + 1 });
  }
  if (picked.length === 0) return;
  const sentAhead = store.leaseBlocked(
    runner,
    picked.map((p) => p.row.key),
    now,
  );
  const leased = new Set(sentAhead.map((row) => row.key));
  const tasks = picked.filter((p) => leased.has(p.row.key)).map((p) => p.task);
  const ends = sentAhead.map((row) => now + store.spec(row.node).timeoutMs + ctx.config.leaseGraceMs);
  store.setDeadlineBy("hold", runner.id, Math.min(...ends));
  runners[i] = { ...runner, credit: runner.credit - tasks.length, sent: runner.sent + tasks.length, sentAt: now };
  store.putRunner(runners[i]);
  addToFrame(sent, runner.id, tasks);
}

/**
 * Each attached runner hears how many ready tasks it could take: with the tasks it was sent, and
 * in a frame of no tasks whenever that goes from none to some or back. Its slot allocator then
 * neither keeps credit for a run with nothing ready (while another waits) nor withholds it from
 * one whose work came back (a reject, a retry, a finished dependency): docs/reliability.md.
 */
function tellBacklogs(
  ctx: Ctx,
  sent: Extract<Effect, { type: "dispatch" }>[],
  ready: number,
  runners: RunnerRow[],
): void {
  const { store, now } = ctx;
  const backlogOf = backlogs(store, ready, now);
  for (const [i, runner] of runners.entries()) {
    const frame = sent.find((e) => e.runner === runner.id);
    const backlog = backlogOf(runner);
    const changed = runner.backlogTold < 0 || runner.backlogTold > 0 !== backlog > 0;
    if (frame) ctx.effects.push({ ...frame, backlog });
    else if (changed) ctx.effects.push({ type: "dispatch", runner: runner.id, tasks: [], backlog });
    // Kept in `runners` too: a steal after this writes these rows back whole.
    if (changed) store.putRunner((runners[i] = { ...runner, backlogTold: backlog }));
  }
}

/**
 * The backlog of each attached runner when the run has `ready` tasks (none while it is paused):
 * those it can take, none while its device is cooled down. Each constrained node is read once.
 */
export function backlogs(store: RunStore, ready: number, now: number): (runner: RunnerRow) => number {
  const constrained =
    ready > 0
      ? store.constrainedNodes().map((node) => ({ requires: store.spec(node).requires, ready: store.readyIn(node) }))
      : [];
  return (runner) => {
    if (ready === 0 || (runner.cooledUntil ?? 0) > now) return 0;
    let excluded = 0;
    for (const node of constrained) if (!runner.caps || !meets(node.requires, runner.caps)) excluded += node.ready;
    return ready - excluded;
  };
}

/**
 * Builds the frame that sends the attempt in `row`, just leased to `runner` (`leaseReady`); one
 * whose inputs are too large to send fails at once (kind `input`, not retried) and is not sent.
 */
function assign(ctx: Ctx, row: TaskRow, runner: RunnerRow, inputs: InputCache): Assignment | null {
  let frame: Assignment | TooLarge;
  try {
    frame = assignment(ctx.store, row, row.attempt, inputs);
  } catch (e) {
    if (!(e instanceof TooLarge)) throw e;
    frame = e;
  }
  const problem = oversize(frame);
  if (!problem && !(frame instanceof TooLarge)) return frame;
  const message = problem ?? "its inputs are too large to send";
  fail(ctx, { ...row, runner: runner.id }, { kind: "input", message, retryable: false }, "");
  return null;
}

/** Moves the run's status along with its tasks: running once work went out, final once all is done. */
function settle(ctx: Ctx, counts: Record<TaskState, number>): void {
  const { store } = ctx;
  const open = counts.blocked + counts.lookup + counts.ready + counts.backoff + counts.leased;
  const status = store.status();
  let next = status;
  if (open === 0) next = counts.failed > 0 ? "failed" : counts.cancelled > 0 ? "cancelled" : "succeeded";
  else if (status === "queued" && counts.leased + counts.succeeded > 0) next = "running";
  if (next === status) return;
  moveStatus(ctx, status, next, "settle");
  if (isFinal(next)) ctx.effects.push({ type: "finished", status: next });
}
