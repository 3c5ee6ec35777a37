/**
 * The HTTP API's request and response bodies (docs/api.md), written once: the Worker's routes and
 * Durable Objects produce them, the CLI and the page read them.
 */
import type { Requirements, Problem } from "./dag/plan.js";
import type { FailureKind, RunnerInfo } from "./protocol/messages.js";
import type { AttemptOutcome, RunStatus, TaskState, ViewState } from "./status.js";

export type { Problem };

/** Every error: `{error}`, plus the located problems of a rejected DAG or module. */
export interface ErrorBody {
  error: string;
  problems?: Problem[];
}

/** A run's status and counts (`GET /api/dags/:id?summary`, and the `run` of every watch frame). */
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

/** `POST /api/dags` (201): the new run, and where the status page shows it. */
export interface SubmitAnswer extends RunSummary {
  url: string;
}

/** One node of the DAG (a mapped task is one node) with its instances counted by state. */
export interface NodeView {
  id: string;
  module: string;
  deps: string[];
  instances: number | null;
  requires: Requirements | null;
  counts: Partial<Record<TaskState, number>>;
}

export interface AttemptView {
  attempt: number;
  runner: string;
  runner_name: string;
  started_at: number;
  ended_at: number | null;
  outcome: AttemptOutcome;
  failure_kind: FailureKind | null;
  error: string | null;
  stderr: string;
  note: string | null;
}

/** One task instance (`id` or `id[index]`) with its attempts. */
export interface TaskView {
  id: string;
  node: string;
  index: number | null;
  state: ViewState;
  /** Why a `waiting` task has no runner ("no runner with label gpu"). */
  waiting?: string;
  output_bytes: number | null;
  /** The accepted output came from the result cache. */
  cached: boolean;
  started_at: number | null;
  ended_at: number | null;
  attempts: AttemptView[];
}

/** `GET /api/dags/:id`: the run, its nodes (with the module's pinned hash) and a page of its tasks. */
export interface RunView extends RunSummary {
  nodes: (NodeView & { sha256: string })[];
  tasks: TaskView[];
}

/** One line of `GET /api/dags`, from the run index. */
export interface RunListing {
  id: string;
  name: string;
  status: RunStatus;
  tasks: number;
  /** Tasks by state. */
  counts: Partial<Record<TaskState, number>>;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

/** `POST /api/dags/:id/cancel|pause|resume`. */
export interface ControlAnswer {
  id: string;
  status: RunStatus;
}

/** One device report kept by the pool. */
export interface DeviceSample {
  at: number;
  /** CPU load, 0–100 %. */
  load: number;
  freeMemory: number;
}

/** A runner as `GET /api/runners` shows it. */
export interface RunnerView extends RunnerInfo {
  busy: number;
  /** CPU load in %, from the device's latest report kept (null before the first). */
  load: number | null;
  /** Device reports of the last ten minutes (at most one per half heartbeat), oldest first. */
  history: DeviceSample[];
  runs: string[];
  connected_at: number;
  last_seen: number;
}

/** `PUT /api/modules/:name`. */
export interface ModuleInfo {
  name: string;
  sha256: string;
  size: number;
}
