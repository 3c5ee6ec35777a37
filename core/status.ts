/**
 * Run statuses and task states, and the predicates on them, as the HTTP API, the wire protocol,
 * the CLI and the page see them. The run's state machine (worker/run/machine.ts) moves between
 * them; everything else only reads them, from here.
 */

/**
 * `lookup`: its dependencies are done and the result cache is being asked for it; `backoff`:
 * failed, waiting out its retry delay before it is ready again.
 */
export const TASK_STATES = [
  "blocked",
  "lookup",
  "ready",
  "backoff",
  "leased",
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** A task's state as the API shows it: `waiting` is a ready task no connected runner can take. */
export type ViewState = TaskState | "waiting";

export const RUN_STATUSES = ["queued", "running", "paused", "succeeded", "failed", "cancelled"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** How an attempt ended (`running` while it runs). */
export type AttemptOutcome = "running" | "succeeded" | "failed" | "lost" | "returned" | "cancelled" | "cached";

/** Statuses a run never leaves. */
const FINAL_STATUSES: readonly RunStatus[] = ["succeeded", "failed", "cancelled"];

/** Task states that never change again. */
const DONE_STATES: readonly TaskState[] = ["succeeded", "failed", "skipped", "cancelled"];

/** True when the run has ended (no task of it can change any more). */
export function isFinal(status: string): boolean {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** How many tasks in `counts` (by state) will not change any more. */
export function finished(counts: Partial<Record<string, number>>): number {
  return DONE_STATES.reduce((n, s) => n + (counts[s] ?? 0), 0);
}
