/**
 * Which ready tasks wait for a runner that is not there: a read-time view, never stored, so it
 * never goes stale. Ready tasks no connected runner can take show as `waiting`, with the reason
 * ("no runner with label gpu") by node. Classes of work that a runner attached to the run can
 * take need no question; the pool is asked about the rest (often none, so polling a running run
 * costs no call to the pool). Used by the DagRun for its summary, its view and its watchers.
 */
import type { RunSummary, TaskView } from "../../core/api.js";
import type { DemandClass } from "../../core/match.js";
import { meets } from "../../core/match.js";
import { demand } from "../run/machine.js";
import type { RunStore } from "../run/store.js";

/** What the waiting view needs of its run. */
export interface WaitingHost {
  store: RunStore;
  /** Every node id of the run, in plan order. */
  nodeIds(): string[];
  /** Why each class of work has no connected runner (null: some runner can take it); the pool answers. */
  whyWaiting(classes: DemandClass[]): Promise<(string | null)[]>;
}

/** `summary` with the ready tasks no runner can take counted as waiting, and the reasons by node. */
export async function withWaiting(
  host: WaitingHost,
  summary: RunSummary,
): Promise<{ summary: RunSummary; waiting: Map<string, string> }> {
  const { store } = host;
  const waiting = new Map<string, string>();
  if (summary.counts.ready === 0 || summary.status === "paused") return { summary, waiting };
  const attached = store.runners().flatMap((r) => (r.caps ? [r.caps] : []));
  const open = demand(store, summary.counts.ready).filter((c) => !attached.some((caps) => meets(c.requires, caps)));
  if (open.length === 0) return { summary, waiting };
  const reasons = await host.whyWaiting(open);
  const why = new Map(open.map((c, i) => [JSON.stringify(c.requires), reasons[i]]));
  const constrained = store.constrainedNodes();
  for (const id of host.nodeIds()) {
    const reason = why.get(JSON.stringify(constrained.includes(id) ? store.node(id).spec.requires : null));
    if (reason) waiting.set(id, reason);
  }
  let moved = 0;
  for (const id of waiting.keys()) moved += store.readyIn(id);
  const counts = { ...summary.counts, ready: summary.counts.ready - moved, waiting: moved };
  return { summary: { ...summary, counts }, waiting };
}

/** Ready tasks of the nodes in `waiting` shown as waiting, with the reason. */
export function markWaiting(tasks: TaskView[], waiting: Map<string, string>): TaskView[] {
  return tasks.map((t) => {
    const why = t.state === "ready" ? waiting.get(t.node) : undefined;
    return why ? { ...t, state: "waiting" as const, waiting: why } : t;
  });
}
