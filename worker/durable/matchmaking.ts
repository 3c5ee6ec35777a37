/**
 * The RunnerPool's matchmaking, pure: which connected runners hear of which run (`join`). A run
 * with new demand is told to the runners that qualify: idle ones, and busy ones when it outranks
 * every run they work on; a runner with idle slots is pointed at the most important run it can
 * serve. The pool (runner-pool.ts) reads the rows and sends what this returns;
 * test/unit/liveness.test.ts drives it beside the runner's allocator and the run state machine.
 */
import { meets, type DemandClass } from "../../core/match.js";
import { deviceOfRunner, type RunnerInfo } from "../../core/protocol/messages.js";

export interface PoolRunner {
  id: string;
  info: RunnerInfo;
  /** Slots not running a task, as the runner last said. */
  free: number;
  /** The runs it is in, as it last said. */
  runs: string[];
}

export interface PoolDemand {
  run: string;
  classes: DemandClass[];
}

export interface Join {
  runner: string;
  run: string;
  priority: number;
}

/**
 * The joins a change of `run`'s demand calls for, with `demands` already changed (oldest first).
 * New demand goes to the runners that qualify, those already in the run included when its
 * priority for them is not the one they heard with `before` (the demand it replaces); a withdrawn one points the idle runners at what else there is, since some of
 * them may have been sent to `run` for nothing.
 */
export function joinsOnDemand(
  run: string,
  classes: DemandClass[],
  runners: readonly PoolRunner[],
  demands: readonly PoolDemand[],
  cooled: ReadonlySet<string>,
  before: DemandClass[] = [],
): Join[] {
  if (classes.length === 0) return runners.flatMap((runner) => matchFor(runner, demands, cooled) ?? []);
  const joins: Join[] = [];
  for (const runner of runners) {
    if (cooled.has(deviceOfRunner(runner.id))) continue;
    const priority = bestFor(classes, runner.info);
    if (priority === null) continue;
    // A runner in the run hears its priority now: its slot allocator ranks runs by it.
    if (runner.runs.includes(run)) {
      if (bestFor(before, runner.info) !== priority) joins.push({ runner: runner.id, run, priority });
      continue;
    }
    // A busy runner hears of the run only when it outranks everything the runner works on.
    const current = Math.max(
      -Infinity,
      ...demands.filter((d) => runner.runs.includes(d.run)).map((d) => bestFor(d.classes, runner.info) ?? -Infinity),
    );
    if (runner.free > 0 || priority > current) joins.push({ runner: runner.id, run, priority });
  }
  return joins;
}

/** The run to point an idle runner at: the most important it can serve and is not in (the oldest among equals). */
export function matchFor(
  runner: PoolRunner,
  demands: readonly PoolDemand[],
  cooled: ReadonlySet<string>,
): Join | undefined {
  if (runner.free <= 0 || cooled.has(deviceOfRunner(runner.id))) return undefined;
  let best: Join | undefined;
  for (const d of demands) {
    if (runner.runs.includes(d.run)) continue;
    const priority = bestFor(d.classes, runner.info);
    if (priority !== null && (!best || priority > best.priority)) best = { runner: runner.id, run: d.run, priority };
  }
  return best;
}

/** A runner with idle slots since `idleSince`, or a demand since `since`: what `stalls` reads. */
export type Since<T> = T & { since: number };

/**
 * Runners idle for `stallMs` beside a run with ready work they qualify for, waiting as long: a
 * stall the joins and the runs' frames should have prevented. Each comes with the most important
 * such run (the oldest among equals), which the pool points the runner at again, in it or not.
 */
export function stalls(
  runners: readonly Since<PoolRunner>[],
  demands: readonly Since<PoolDemand>[],
  cooled: ReadonlySet<string>,
  now: number,
  stallMs: number,
): Join[] {
  const old = demands.filter((d) => d.since <= now - stallMs);
  const out: Join[] = [];
  for (const runner of runners) {
    if (runner.free <= 0 || runner.since > now - stallMs || cooled.has(deviceOfRunner(runner.id))) continue;
    const join = matchFor({ ...runner, runs: [] }, old, cooled);
    if (join) out.push(join);
  }
  return out;
}

/**
 * When to look for stalls next: the first moment an idle runner will have waited `stallMs`
 * beside demand it qualifies for (a period from now for one that has already, and was not a
 * stall), or null when no idle runner qualifies for any demand.
 */
export function nextStallCheck(
  runners: readonly Since<PoolRunner>[],
  demands: readonly Since<PoolDemand>[],
  cooled: ReadonlySet<string>,
  now: number,
  stallMs: number,
): number | null {
  let next: number | null = null;
  for (const runner of runners) {
    if (runner.free <= 0 || cooled.has(deviceOfRunner(runner.id))) continue;
    for (const d of demands) {
      if (bestFor(d.classes, runner.info) === null) continue;
      const due = Math.max(runner.since, d.since) + stallMs;
      const at = due > now ? due : now + stallMs;
      next = next === null ? at : Math.min(next, at);
    }
  }
  return next;
}

/** The best priority among the classes `info` qualifies for, or null when it qualifies for none. */
function bestFor(classes: DemandClass[], info: RunnerInfo): number | null {
  let best: number | null = null;
  for (const c of classes) if (meets(c.requires, info) && (best === null || c.priority > best)) best = c.priority;
  return best;
}
