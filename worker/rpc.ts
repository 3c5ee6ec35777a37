/**
 * What the Worker may call on each Durable Object over RPC. The classes implement these
 * interfaces, and `Env` types its namespaces with them rather than with the classes, so the
 * bindings (env.ts) never import a Durable Object module that imports them back.
 */
import type { RetryAnswer, RunnerView, RunSummary, RunView, Submitter, TimelineView } from "../core/api.js";
import type { ResolvedPlan } from "../core/dag/plan.js";
import type { DemandClass } from "../core/match.js";
import type { BlobRef } from "../core/protocol/messages.js";
import type { RunStatus, TaskState } from "../core/status.js";
import type { SocketKind } from "./durable/meter.js";
import type { LogRead } from "./durable/run-logs.js";
import type { Answer } from "./errors.js";

export type ControlAction = "cancel" | "pause" | "resume";

/** A run retried from a task: the run it retries, and the outputs it reuses from there. */
export interface RunLink {
  from: string;
  seeds: { task: string; output: Uint8Array | BlobRef }[];
}

/**
 * The header on a runner's socket upgrade that names the device the Worker authenticated. The
 * Worker sets it (overwriting whatever came in); the objects accept from a hello only runner ids
 * of that device.
 */
export const DEVICE_HEADER = "X-Distro-Device";

/**
 * What a runner may fetch for a run: a module (by its sha256) or an input blob; or what it may
 * upload there: an output (`kind: "output"`, any sha256), while it holds a lease in the run.
 */
export type Fetchable = { kind: "module" | "blob" | "output"; sha256: string };

/** One run (durable/dag-run.ts). Its sockets come in through `fetch`. */
export interface DagRunRpc extends Rpc.DurableObjectBranded {
  /**
   * Records the plan and starts scheduling; a conflict when the run has its plan already. With
   * `link`, the run retries run `link.from` and takes its accepted outputs in `link.seeds`.
   */
  start(id: string, plan: ResolvedPlan, by: Submitter, link?: RunLink): Promise<Answer<RunSummary>>;
  /** Deletes a finished run's storage (retention.ts); 409 while it is open. */
  purge(): Promise<Answer<{ id: string }>>;
  /**
   * What a linked retry from `task` needs of this run (ended): its plan as submitted, and the
   * accepted outputs of every task that is neither `task` nor downstream of it, in plan order.
   */
  retryFrom(task: string): Answer<{ plan: ResolvedPlan } & RunLink>;
  /** The run's status and counts without its tasks. */
  status(): Promise<Answer<RunSummary>>;
  /** The run with its tasks and attempts (all, or `limit` from `offset`; only those in `state` when given). */
  view(offset?: number, limit?: number, state?: TaskState): Promise<Answer<RunView>>;
  /** Every attempt (the first TIMELINE_MAX), and the tasks finished per bucket over the whole run. */
  timeline(): Answer<TimelineView>;
  /**
   * New attempts for the failed, skipped and cancelled tasks of a run that ended (or for the
   * named ones and their skipped dependents): its status and how many tasks run again, or a
   * conflict naming why it cannot.
   */
  retry(tasks?: string[]): Promise<Answer<RetryAnswer>>;
  /** Cancels, pauses or resumes the run: its new status, or a conflict naming why it cannot. */
  control(action: ControlAction): Promise<Answer<{ status: RunStatus }>>;
  /** A task's accepted output (bytes, or where they are in blob storage); a conflict while it has none. */
  output(key: string): Answer<Uint8Array | BlobRef>;
  /**
   * The stderr of `task`'s attempt (its latest when not given) from byte `offset`: its bytes, or
   * its key in R2 (durable/run-logs.ts); not found for a task or attempt the run does not have.
   */
  logs(task: string, attempt: number | undefined, offset: number): Answer<LogRead>;
  /** The envelope of a task attempt leased to a runner of `device` (one too large for its frame); forbidden otherwise. */
  envelope(device: string, task: string, attempt: number): Answer<string>;
  /** Whether a lease a runner of `device` holds in this run names the module or input blob (any lease, for an output). */
  names(device: string, what: Fetchable): boolean;
  /**
   * Whether `runner`, idle since `since`, gets nothing from this run though the run has ready
   * work it can take (the pool's stall check).
   */
  starved(runner: string, since: number): boolean;
  /** Closes the sockets of `device`'s runners (CLOSE.revoked) and hands their leases back: how many closed. */
  revoke(device: string): Promise<number>;
  /** `device` is cooled down until `until`: its runners here are leased nothing new before then. */
  cool(device: string, until: number): Promise<void>;
}

/** The pool in numbers, for `/metrics`. */
export interface PoolTotals {
  runners: number;
  slots: number;
  busy: number;
  /** Device reports dropped for coming sooner than a half heartbeat after the last one kept. */
  samplesDropped: number;
  /** Sockets closed for their rate limit, by kind. */
  rateLimited: Record<SocketKind, number>;
  /** Cool-downs started since the pool started. */
  cooldowns: number;
  /** Devices cooled down now. */
  devicesCooled: number;
  /** Entries of runner frames that named attempts their runner did not hold. */
  strayFrames: number;
  /** Runners the pool found idle beside ready work and pointed at it again. */
  stallRepairs: number;
}

/** Presence and matchmaking (durable/runner-pool.ts); none of its calls can fail. */
export interface RunnerPoolRpc extends Rpc.DurableObjectBranded {
  /** A run reports the ready work no attached runner has taken, by class; none withdraws its demand. */
  demand(run: string, classes: DemandClass[]): void;
  /** Why each class of work has no connected runner to take it (null: some runner can). */
  waiting(classes: DemandClass[]): (string | null)[];
  /** Connected runners with their device report, load and history. */
  list(): RunnerView[];
  /** Runners, slots and counters without any history: what `/metrics` needs. */
  totals(): PoolTotals;
  /** A DagRun closed one of its sockets for its rate limit: counted where /metrics reads. */
  countRateLimited(kind: SocketKind): void;
  /** Closes `device`'s pool sockets (CLOSE.revoked): the runs its runners were in, and how many closed. */
  revoke(device: string): { runs: string[]; closed: number };
  /** Devices with a pool socket open now. */
  connectedDevices(): string[];
  /** A run lost attempts of `device` (`times` events): until when the device is cooled down now, or null. */
  lost(device: string, times: number, from: string): Promise<number | null>;
  /** Until when `device` is cooled down, or null. */
  cooledUntil(device: string): number | null;
  /** Devices cooled down now, with until when. */
  cooled(): Map<string, number>;
  /** A run ignored `frames` entries naming attempts their runner did not hold. */
  countStray(frames: number): void;
}
