/**
 * The HTTP API's request and response bodies (docs/api.md), written once: the Worker's routes and
 * Durable Objects produce them, the CLI and the page read them.
 */
import type { Requirements, Problem, RunInput } from "./dag/plan.js";
import type { FailureKind, RunnerInfo } from "./protocol/messages.js";
import type { AttemptOutcome, RunStatus, TaskState, ViewState } from "./status.js";
import type { TokenScope } from "./tokens.js";

export type { Problem };

/**
 * `POST /api/dags` as JSON with a `dag` field: the DAG's text, values for its params, and its
 * inputs (files and folders uploaded to `/api/blobs` first). A body without `dag` is the DAG.
 */
export interface SubmitBody {
  dag: string;
  params?: Record<string, unknown>;
  inputs?: Record<string, RunInput>;
}

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
  /** The run this one retries from a task on (`distro retry ID --from TASK`), reusing its outputs upstream; null for a submitted run. */
  retry_of: string | null;
  /**
   * The token that submitted it: a scoped token's id and name, or `API_TOKEN` for both; null for
   * a run submitted before tokens were recorded.
   */
  submitted_by: Submitter | null;
  /**
   * Only when the coordinator profiles runs (`PROFILE_RUNS=1`, set by `npm run bench`): the
   * incoming runner WebSocket messages and the SQL statements of the run's Durable Object, until
   * the run ended.
   */
  profile?: RunProfile;
}

export interface RunProfile {
  messages: number;
  statements: number;
  /** The messages by frame type (`hello`, `results`, …). */
  frames: Record<string, number>;
}

/** `DELETE /api/dags/:id`: the run, deleted. */
export interface DeleteAnswer {
  id: string;
  deleted: true;
}

/**
 * `POST /api/dags` (201): the new run, and where the status page shows it. The same answer (200,
 * with `Idempotent-Replayed: true`) for a submission sent again under its `Idempotency-Key`.
 */
export interface SubmitAnswer extends RunSummary {
  url: string;
}

/** The header of a submission that may be sent again without making a second run (docs/api.md). */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";
/** What a key may be: 1 to 255 visible ASCII characters (a UUID, say). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** Set on the answer to a submission sent again: the run is the first one's. */
export const REPLAYED_HEADER = "Idempotent-Replayed";

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

/** `POST /api/dags/:id/retry`: the run again, and how many of its tasks run again. */
export interface RetryAnswer {
  id: string;
  status: RunStatus;
  /** Tasks given new attempts (waiting for their dependencies or ready); for a linked run, those it runs. */
  retried: number;
  /** With `from`: the run retried, whose accepted outputs upstream of the task the new run (`id`) reuses. */
  retry_of?: string;
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
  /** Until when its device gets no new leases for losing attempts (null: not cooled down). */
  cooled_until: number | null;
}

/** A device as `GET /api/runners` lists it: every device enrolled, connected or not, revoked ones too. */
export interface DeviceView {
  /** The device id the coordinator assigned; its runner processes are `<id>` and `<id>.<k>`. */
  id: string;
  /** The runner's name when it enrolled. */
  name: string;
  /** Labels its enrollment gave it (the runner may add its own). */
  labels: string[];
  trusted: boolean;
  /** The enrollment it joined with; null when it joined with the development secret (RUNNER_TOKEN). */
  enrollment: string | null;
  enrolled_at: number;
  /** When it last opened a socket or made a request (null: not since it enrolled). */
  last_seen: number | null;
  /** Some runner process of the device has a pool socket open now. */
  connected: boolean;
  revoked_at: number | null;
  /** Until when the device gets no new leases for losing attempts (null: it is not cooled down). */
  cooled_until: number | null;
}

/** `GET /api/runners`. */
export interface RunnerListing {
  /** Runner processes connected now. */
  runners: RunnerView[];
  /** Every enrolled device, newest first. */
  devices: DeviceView[];
}

/** `POST /api/enrollments`: what an operator may ask of an enrollment. */
export interface EnrollmentRequest {
  /** Labels every device joining with it gets. */
  labels?: string[];
  /** How many devices may join with it (default 1, at most 1000). */
  uses?: number;
  /** How long it stays valid: a duration such as "1h" or "30m", or seconds (default 1h, at most 30 days). */
  ttl?: string | number;
  trusted?: boolean;
}

/** An enrollment as `GET /api/enrollments` lists it (never its token). */
export interface EnrollmentView {
  id: string;
  labels: string[];
  trusted: boolean;
  uses: number;
  used: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  /** Devices that joined with it, oldest first. */
  devices: string[];
}

/** Who submitted a run: the token's id and name (`API_TOKEN` for the bootstrap token). */
export interface Submitter {
  token: string;
  name: string;
}

/** A scoped API token as `GET /api/tokens` lists it (never the token itself). */
export interface TokenView {
  id: string;
  name: string;
  scope: TokenScope;
  created_at: number;
  /** null: it does not expire. */
  expires_at: number | null;
  revoked_at: number | null;
}

/** `POST /api/tokens` (201): the token, shown in this answer only. */
export interface TokenCreated extends TokenView {
  token: string;
}

/** `GET /api/tokens/self`: the scope of the token that asks, and which token it is (null: `API_TOKEN`). */
export interface TokenSelf {
  scope: TokenScope;
  token: Pick<TokenView, "id" | "name" | "expires_at"> | null;
}

/** The one-line install-and-join command, per platform. */
export interface JoinCommands {
  /** Linux and macOS (sh, bash, zsh). */
  unix: string;
  /** Windows PowerShell. */
  powershell: string;
  /** Android under Termux. */
  termux: string;
}

/** `POST /api/enrollments`: the enrollment with its token (shown once) and the commands that use it. */
export interface EnrollmentCreated extends EnrollmentView {
  token: string;
  /** The Linux/macOS command (commands.unix). */
  command: string;
  commands: JoinCommands;
}

/** `POST /api/runners/enroll`: a device's credential, in exchange for an enrollment token (or the dev secret). */
export interface EnrollAnswer {
  device: string;
  /** `<device>.<secret>`: the Bearer token of every socket and request the device makes. */
  credential: string;
  labels: string[];
  trusted: boolean;
  enrollment: string | null;
}

/** `PUT` / `DELETE /api/runners/:id/trust`: the device as it is now, and cache entries purged (on untrust). */
export interface TrustAnswer {
  device: DeviceView;
  purged: number;
}

/** `DELETE /api/runners/:id`. */
export interface RevokeAnswer {
  device: DeviceView;
  /** Sockets of the device closed, over the pool and every run. */
  closed: number;
}

/** `PUT /api/modules/:name`. */
export interface ModuleInfo {
  name: string;
  sha256: string;
  size: number;
}

/** `GET /api/modules`: the names modules were uploaded under, newest first. */
export interface ModuleListing {
  modules: (ModuleInfo & { uploaded_at: number })[];
}

/** One attempt as the run's timeline draws it: which device ran which task, from when to when. */
export interface TimelineAttempt {
  task: string;
  attempt: number;
  runner_name: string;
  started_at: number;
  /** null while it runs. */
  ended_at: number | null;
  outcome: AttemptOutcome;
}

/**
 * `GET /api/dags/:id/timeline`: every attempt of the run by start (the newest TIMELINE_MAX when it
 * has more: `cut`), and the tasks finished over the whole run, `finished[i]` those whose last
 * attempt ended in the i-th `bucket_ms` after `created_at` (a second, or more for a run of over
 * ten minutes: at most 600 buckets).
 */
export interface TimelineView {
  created_at: number;
  finished_at: number | null;
  attempts: TimelineAttempt[];
  cut: boolean;
  bucket_ms: number;
  finished: number[];
}

/** Most attempts `GET /api/dags/:id/timeline` lists. */
export const TIMELINE_MAX = 5_000;
