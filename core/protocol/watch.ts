/**
 * What watchers of a run receive on `GET /api/dags/:id/watch` (a WebSocket): one `snapshot`,
 * then `update`s coalesced to at most four a second, the last one with the final status, after
 * which the socket closes (code 4000). JSON text frames; the coordinator never reads what a
 * watcher sends (a "ping" text frame is answered "pong").
 */
import type { NodeView, RunSummary } from "../api.js";
import type { TaskState } from "../status.js";

/** Most task changes one update lists; past it `tasks` is null (read the run for details). */
export const MAX_TASK_CHANGES = 500;

export type WatchMessage =
  | { type: "snapshot"; run: RunSummary; nodes: NodeView[] }
  | {
      type: "update";
      run: RunSummary;
      /** Nodes whose counts changed, with all their counts. */
      nodes: { id: string; counts: Partial<Record<TaskState, number>> }[];
      /** Tasks whose state changed, or null when more than MAX_TASK_CHANGES did. */
      tasks: { id: string; state: TaskState }[] | null;
    };
