/**
 * The validated, normalised form of a DAG: what the coordinator schedules. Produced by
 * `parseDag` (parse.ts) from YAML, completed with module hashes by the Worker, consumed by the
 * run's state machine. What a task instance sees of it (item, placeholders, envelope) is the
 * task ABI, in core/abi.ts.
 */

/** One problem with a submission, located in the source document. */
export interface Problem {
  /** Where in the document, e.g. `tasks[2].depends_on[0]`; empty for the whole document. */
  path: string;
  line: number;
  column: number;
  message: string;
}

export interface Requirements {
  memory?: number;
  cores?: number;
  labels?: string[];
  arch?: string;
  platform?: string;
}

/** One task of the DAG file; a mapped task stands for `instances` task instances. */
export interface NodeSpec {
  id: string;
  /** The module as written: a registry name or `sha256:<hex>`. */
  module: string;
  deps: string[];
  /** Number of instances for a mapped task; null for a plain task. */
  instances: number | null;
  items?: unknown[];
  range?: [number, number];
  args: string[];
  env: Record<string, string>;
  params: Record<string, unknown>;
  /** Failed attempts (the task's own doing) allowed after the first. */
  retries: number;
  /** Lost attempts (runner gone, lease expired: never the task's doing) allowed; they never count as `retries`. */
  lostRetries: number;
  /** Delay before the first retry; doubles with each failure up to `retryDelayMaxMs`. */
  retryDelayMs: number;
  retryDelayMaxMs: number;
  timeoutMs: number;
  memoryBytes: number;
  priority: number;
  /** Whether a cached result for the same module and envelope may stand in for running it. */
  cache: boolean;
  requires?: Requirements;
}

/** A parsed DAG whose nodes are in dependency order (every node after its dependencies). */
export interface DagPlan {
  name: string;
  nodes: NodeSpec[];
}

/** A node whose module has been pinned to the bytes it will run. */
export interface ResolvedNode extends NodeSpec {
  sha256: string;
}

export interface ResolvedPlan {
  name: string;
  nodes: ResolvedNode[];
}
