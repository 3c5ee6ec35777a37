/**
 * What the run sends out, worked out from the store without writing to it: the `Assignment` a
 * leased task travels in (args, env and the stdin envelope of the task ABI, the blobs its inputs
 * refer to, the output limits), the material its result is cached under, and the demand for
 * ready work by what it requires. The state machine (machine.ts) makes every change and calls
 * these; the DagRun host calls `cacheMaterial` for its lookups and `demand` for waiting tasks.
 */
import { type Assignment, ENVELOPE_INLINE_BYTES } from "../../core/protocol/messages.js";
import type { DemandClass } from "../../core/match.js";
import { envelope, fileBlobs, fileMarker, itemOf, outputValue, substitute } from "../../core/abi.js";
import type { ResolvedNode } from "../../core/dag/plan.js";
import type { RunStore, TaskRow } from "./store.js";

/** Largest output a task may produce; past it the attempt fails with kind `output`. */
export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/**
 * Outputs up to this size travel in the results frame and stay in the run's SQLite storage;
 * larger ones go to blob storage (R2).
 */
export const INLINE_OUTPUT_BYTES = 256 * 1024;

/**
 * Dependencies' outputs as task inputs, by node, and the run's inputs (as `input:<name>`), read
 * once for all the tasks of one dispatch.
 */
export type InputCache = Map<string, { value: unknown; refs: string[] }>;

/**
 * The frame that hands attempt `attempt` of the task in `row` to a runner. An envelope over
 * ENVELOPE_INLINE_BYTES (a reducer over thousands of instances) stays out of the frame: the
 * runner fetches it (`envelope`), so no frame meets the frame limit.
 */
export function assignment(store: RunStore, row: TaskRow, attempt: number, inputs: InputCache): Assignment {
  const spec = store.spec(row.node);
  const refs = new Set<string>();
  const { args, env, stdin, files } = prepare(store, row, inputs, refs, attempt);
  const bytes = stdin.length * 3 > ENVELOPE_INLINE_BYTES ? new TextEncoder().encode(stdin).length : 0;
  return {
    task: row.key,
    attempt,
    module: spec.sha256,
    args,
    env,
    ...(bytes > ENVELOPE_INLINE_BYTES ? { stdin: "", stdinBytes: bytes } : { stdin }),
    files,
    refs: [...refs],
    timeoutMs: spec.timeoutMs,
    memoryBytes: spec.memoryBytes,
    maxOutputBytes: MAX_OUTPUT_BYTES,
    inlineOutputBytes: INLINE_OUTPUT_BYTES,
  };
}

/**
 * The frame that sends attempt `attempt` of the task in `row` ahead of the attempt `after` of its
 * one dependency not yet done, `pending`: its envelope has that dependency's output left out, and
 * `after.at` says where the runner writes it. Null when it cannot go ahead: its envelope would
 * not fit a frame, or it could not be sent at all (its dispatch, later, says why).
 */
export function aheadAssignment(
  store: RunStore,
  row: TaskRow,
  attempt: number,
  pending: string,
  after: { task: string; attempt: number },
): Assignment | null {
  // A mark no envelope holds otherwise (a random id) stands where the output goes, and is cut out.
  const id = `ahead:${crypto.randomUUID()}`;
  const mark = JSON.stringify(id);
  const inputs: InputCache = new Map([[pending, { value: id, refs: [] }]]);
  let frame: Assignment;
  try {
    frame = assignment(store, row, attempt, inputs);
  } catch (e) {
    if (e instanceof TooLarge) return null;
    throw e;
  }
  const at = frame.stdin.indexOf(mark);
  if (frame.stdinBytes !== undefined || at < 0 || oversize(frame)) return null;
  const stdin = frame.stdin.slice(0, at) + frame.stdin.slice(at + mark.length);
  return { ...frame, stdin, after: { ...after, at } };
}

/** The envelope of attempt `attempt` of the task in `row`, whatever its size (what `stdinBytes` says to fetch). */
export function envelopeOf(store: RunStore, row: TaskRow, attempt: number): string {
  return prepare(store, row, new Map(), new Set(), attempt).stdin;
}

/**
 * What identifies a task's result for the cache: its module and everything it is given (args,
 * env, and the envelope without the attempt number). The host hashes it into the cache key.
 */
export function cacheMaterial(store: RunStore, row: TaskRow, inputs: InputCache = new Map()): string {
  const spec = store.spec(row.node);
  try {
    const prepared = prepare(store, row, inputs, new Set(), 0);
    return JSON.stringify([spec.sha256, prepared.args, prepared.env, prepared.stdin]);
  } catch (e) {
    // A task whose inputs are too large to send is never a hit: its dispatch fails it, saying why.
    if (e instanceof TooLarge) return JSON.stringify([spec.sha256, row.key, "too large"]);
    throw e;
  }
}

/** Thrown while an envelope is built when its dependencies' outputs alone pass MAX_ENVELOPE_BYTES. */
export class TooLarge extends Error {}

/**
 * The run's ready work by what it requires: one class for the tasks any runner can take, one
 * per distinct `requires:` of a node with ready tasks, each with its best priority.
 */
export function demand(store: RunStore, ready: number): DemandClass[] {
  if (ready === 0) return [];
  const classes = new Map<string, DemandClass>();
  let constrainedReady = 0;
  const constrained = store.constrainedNodes();
  for (const node of constrained) {
    const n = store.readyIn(node);
    if (n === 0) continue;
    constrainedReady += n;
    const { requires, priority } = store.spec(node);
    const key = JSON.stringify(requires);
    const known = classes.get(key);
    if (!known || known.priority < priority) classes.set(key, { requires: requires!, priority });
  }
  const out = [...classes.values()];
  if (ready > constrainedReady) out.unshift({ requires: null, priority: store.topReadyPriority(constrained) ?? 0 });
  return out;
}

/** A task instance's args, env and stdin envelope (task ABI), with the blobs its inputs refer to. */
function prepare(store: RunStore, row: TaskRow, inputs: InputCache, refs: Set<string>, attempt: number) {
  const spec = store.spec(row.node);
  const file = spec.files !== undefined && row.index !== null ? store.inputFile(spec.files, row.index) : null;
  const item = spec.over !== undefined ? store.item(row.key) : file ? file.name : itemOf(spec, row.index);
  // An instance of a map over a task's output gets its element as its item, not the whole output.
  const deps = spec.over === undefined ? spec.deps : spec.deps.filter((dep) => dep !== spec.over);
  const given = inputsOf(store, deps, inputs, refs);
  const files: string[] = [];
  Object.assign(given, runInputs(store, spec, inputs, refs, files));
  if (file) {
    // The instance of a map over files reads its own file under the input's name.
    given[spec.files!] = fileMarker(file);
    files.push(spec.files!);
    for (const sha of fileBlobs(file)) refs.add(sha);
  }
  return {
    args: spec.args.map((a) => substitute(a, row.index, item, spec.params)),
    env: Object.fromEntries(Object.entries(spec.env).map(([k, v]) => [k, substitute(v, row.index, item, spec.params)])),
    stdin: envelope(spec, row.index, given, attempt, item),
    files,
  };
}

/**
 * The run's inputs a task reads (task ABI): a value as it is, a file as a marker the runner
 * fetches (its blobs added to `refs`), a folder as the list of its files (name, size, sha256).
 */
function runInputs(
  store: RunStore,
  spec: ResolvedNode,
  cache: InputCache,
  refs: Set<string>,
  files: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of spec.inputs ?? []) {
    if (name === spec.files) continue;
    let entry = cache.get(`input:${name}`);
    if (!entry) {
      const input = store.input(name);
      if ("value" in input) entry = { value: input.value, refs: [] };
      else if ("file" in input) entry = { value: fileMarker(input.file), refs: fileBlobs(input.file) };
      else entry = { value: input.files.map(({ name, size, sha256 }) => ({ name, size, sha256 })), refs: [] };
      cache.set(`input:${name}`, entry);
    }
    out[name] = entry.value;
    if (entry.refs.length > 0) files.push(name);
    for (const sha of entry.refs) refs.add(sha);
  }
  return out;
}

/**
 * The `inputs` of the task ABI: each dependency's output, an array for a mapped dependency. An
 * output in blob storage stands as {"$ref": sha256} and its hash is added to `refs`.
 */
function inputsOf(store: RunStore, deps: string[], cache: InputCache, refs: Set<string>): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const dep of deps) {
    let entry = cache.get(dep);
    if (!entry) {
      // Measured before they are read: a reducer over 100,000 large outputs is refused, not built.
      const bytes = store.inlineOutputBytes(dep);
      if (bytes > MAX_ENVELOPE_BYTES)
        throw new TooLarge(`the outputs of ${dep} alone are ${(bytes / 1024 / 1024).toFixed(1)} MiB`);
      const outputs = store.outputs(dep);
      const values = outputs.map((o) => (o instanceof Uint8Array ? outputValue(o) : { $ref: o.sha256 }));
      const blobs = outputs.flatMap((o) => (o instanceof Uint8Array ? [] : [o.sha256]));
      entry = { value: store.spec(dep).instances === null ? values[0] : values, refs: blobs };
      cache.set(dep, entry);
    }
    inputs[dep] = entry.value;
    for (const sha of entry.refs) refs.add(sha);
  }
  return inputs;
}

/** The largest envelope a task may have (one fetched by its runner is answered over RPC, capped at 32 MiB). */
const MAX_ENVELOPE_BYTES = 24 * 1024 * 1024;
/** The most bytes of args and env values a task may have once placeholders are filled. */
const MAX_ARGS_BYTES = 4 * 1024 * 1024;

/** Why `task` cannot be sent (its envelope, or its args and env, too large), or null. */
export function oversize(task: Assignment | TooLarge): string | null {
  if (task instanceof TooLarge)
    return `its envelope would be more than ${(MAX_ENVELOPE_BYTES / 1024 / 1024).toFixed(1)} MiB (${task.message}): reduce in stages (e.g. a map over groups of the instances, then a task over their results)`;
  const size = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if ((task.stdinBytes ?? 0) > MAX_ENVELOPE_BYTES)
    return `its envelope would be ${size(task.stdinBytes!)}, more than ${size(MAX_ENVELOPE_BYTES)}: reduce in stages (e.g. a map over groups of the instances, then a task over their results)`;
  let chars = 0;
  for (const a of task.args) chars += a.length;
  for (const [k, v] of Object.entries(task.env)) chars += k.length + v.length;
  if (chars * 3 <= MAX_ARGS_BYTES) return null;
  const encoder = new TextEncoder();
  let bytes = 0;
  for (const a of task.args) bytes += encoder.encode(a).length;
  for (const [k, v] of Object.entries(task.env)) bytes += encoder.encode(k + v).length;
  return bytes > MAX_ARGS_BYTES ? `its args and env come to ${size(bytes)}, more than ${size(MAX_ARGS_BYTES)}` : null;
}
