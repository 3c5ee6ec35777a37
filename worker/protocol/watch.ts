/**
 * What watchers of a run receive on `GET /api/dags/:id/watch` (a WebSocket): one `snapshot`,
 * then `update`s coalesced to at most four a second, the last one with the final status, after
 * which the socket closes (code 4000). JSON text frames; the coordinator never reads what a
 * watcher sends (a "ping" text frame is answered "pong").
 */
import type { Requirements } from "../dag/plan.js";
import type { RunStatus, TaskState } from "../run/store.js";

/** A task's state as the API shows it: `waiting` is a ready task no connected runner can take. */
export type ViewState = TaskState | "waiting";

export interface RunSummary {
  id: string;
  name: string;
  status: RunStatus;
  created_at: number;
  updated_at: number;
  /** When the run reached its final status (null while it runs). */
  finished_at: number | null;
  counts: Record<ViewState, number>;
  tasks_total: number;
}

/** One node of the DAG (a mapped task is one node) with its instances counted by state. */
export interface NodeProgress {
  id: string;
  module: string;
  deps: string[];
  instances: number | null;
  requires: Requirements | null;
  counts: Partial<Record<TaskState, number>>;
}

/** Most task changes one update lists; past it `tasks` is null (read the run for details). */
export const MAX_TASK_CHANGES = 500;

export type WatchMessage =
  | { type: "snapshot"; run: RunSummary; nodes: NodeProgress[] }
  | {
      type: "update";
      run: RunSummary;
      /** Nodes whose counts changed, with all their counts. */
      nodes: { id: string; counts: Partial<Record<TaskState, number>> }[];
      /** Tasks whose state changed, or null when more than MAX_TASK_CHANGES did. */
      tasks: { id: string; state: TaskState }[] | null;
    };
