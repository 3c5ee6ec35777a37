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
  /**
   * Number of instances for a mapped task; null for a plain task. A map over data has 0 until
   * its width is known: at submit for `files`, when the task it maps over succeeds for `over`.
   */
  instances: number | null;
  items?: unknown[];
  range?: [number, number];
  /** `map: { over }`: the (plain) task whose output, a JSON array, gives one instance per element. */
  over?: string;
  /** `map: { files }`: the folder input that gives one instance per file. */
  files?: string;
  /** The most instances a map over data may have; past it the run fails naming the cap. */
  maxInstances?: number;
  /** The run's inputs the task reads (those its `depends_on` names, and the input of `map.files`). */
  inputs?: string[];
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
  /** The names of the inputs a submission must give (`inputs:`). */
  inputs: string[];
}

/** A file of a run's input, in blob storage by sha256; over the blob limit, as parts in order. */
export interface FileRef {
  name: string;
  size: number;
  sha256: string;
  parts?: { sha256: string; size: number }[];
}

/** One input as a submission gives it: an inline value, a file, or a folder of files. */
export type RunInput = { value: unknown } | { file: FileRef } | { files: FileRef[] };

/** A node whose module has been pinned to the bytes it will run. */
export interface ResolvedNode extends NodeSpec {
  sha256: string;
}

export interface ResolvedPlan {
  name: string;
  nodes: ResolvedNode[];
  /** The submission's inputs, checked: each in blob storage, one per name the DAG declares. */
  inputs: Record<string, RunInput>;
}
