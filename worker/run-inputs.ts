/**
 * The inputs of a submission (`POST /api/dags` with `inputs`), checked against the DAG before any
 * run exists: one for each name its `inputs:` declares and no other, each of a known shape, every
 * file's blobs present in storage at their sizes, and a `map: { files }` within its
 * `max_instances`. Answers the located problems, or the inputs and the plan with each map over
 * files given its width.
 */
import { z } from "zod";
import type { DagPlan, FileRef, Problem, RunInput } from "../core/dag/plan.js";
import type { ParseResult } from "../core/dag/parse.js";
import { DAG_LIMITS } from "../core/dag/schema.js";
import { jsonShape, MAX_JSON_DEPTH } from "../core/abi.js";
import { MAX_OUTPUT_BYTES } from "./run/machine.js";

/** Largest inline input value, as JSON (the run keeps it in one SQLite value). */
const MAX_INLINE_INPUT_BYTES = 1_000_000;

const sha = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lower-case hex digits");
const size = z.number().int().min(0);
const part = z.strictObject({ sha256: sha, size: size.max(MAX_OUTPUT_BYTES) });
/** The largest file of an input: a task takes it whole, as base64 in its envelope. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

const file = z
  .strictObject({
    name: z.string().min(1).max(1024),
    size: size.max(
      MAX_FILE_BYTES,
      `a file is at most ${MAX_FILE_BYTES} bytes (cut larger data into a folder: distro submit --chunk)`,
    ),
    sha256: sha,
    parts: z.array(part).min(1).optional(),
  })
  .refine((f) => (f.parts ? f.parts.reduce((n, p) => n + p.size, 0) === f.size : f.size <= MAX_OUTPUT_BYTES), {
    message: `a file over ${MAX_OUTPUT_BYTES} bytes comes as parts (each at most that), whose sizes add up to its size`,
  });
// One object with exactly one of the three keys, rather than a union, so that a problem in a file
// is reported at its field (a union would only say that no branch fits).
const input = z
  .strictObject({
    value: z.unknown().optional(),
    file: file.optional(),
    files: z.array(file).min(1, "a folder input has at least one file").max(DAG_LIMITS.maxInstances).optional(),
  })
  .refine((v) => Object.keys(v).length === 1, "an input is one of {value}, {file} or {files}")
  .transform((v) => v as RunInput);

export const inputsSchema = z.record(z.string(), input);

/**
 * The parsed DAG's inputs checked (see the module's comment). `sizes` gives the sizes of those of
 * the blobs the operator uploaded for inputs.
 */
export async function checkInputs(
  parsed: Extract<ParseResult, { ok: true }>,
  given: Record<string, RunInput>,
  sizes: (shas: string[]) => Promise<Map<string, number>>,
): Promise<{ ok: true; plan: DagPlan } | { ok: false; problems: Problem[] }> {
  const { plan, where, locate } = parsed;
  const problems: Problem[] = [];
  const at = (path: (string | number)[], message: string) => problems.push({ ...where(path), message });
  plan.inputs.forEach((name, i) => {
    if (!Object.hasOwn(given, name))
      at(
        ["inputs", i],
        `input "${name}" is not given: submit it with \`--input ${name}=PATH\` (or \`inputs.${name}\` in the body)`,
      );
  });
  for (const name of Object.keys(given))
    if (!plan.inputs.includes(name))
      at(["inputs"], `input "${name}" is given but the DAG does not declare it under \`inputs:\``);
  for (const [name, value] of Object.entries(given)) {
    if ("value" in value) {
      const problem = jsonProblem(value.value, MAX_INLINE_INPUT_BYTES);
      if (problem) at(["inputs"], `input "${name}": an inline value ${problem}; upload it as a file`);
    }
    if ("files" in value) {
      const seen = new Set<string>();
      for (const f of value.files) {
        if (seen.has(f.name)) at(["inputs"], `input "${name}": the folder lists "${f.name}" twice`);
        seen.add(f.name);
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };

  const files = Object.entries(given).flatMap(([name, v]): [string, FileRef][] =>
    "file" in v ? [[name, v.file]] : "files" in v ? v.files.map((f): [string, FileRef] => [name, f]) : [],
  );
  // Every blob a file is stored as, with the size each file that names it says it has.
  const blobs = new Map<string, { input: string; size: number }>();
  for (const [name, f] of files) {
    for (const blob of f.parts ?? [{ sha256: f.sha256, size: f.size }]) {
      const seen = blobs.get(blob.sha256);
      if (seen && seen.size !== blob.size)
        at(
          ["inputs"],
          `input "${name}": blob sha256:${blob.sha256} is given as ${blob.size} bytes and as ${seen.size}`,
        );
      blobs.set(blob.sha256, { input: name, size: blob.size });
    }
  }
  const stored = await sizes([...blobs.keys()]);
  for (const [sha256, { input: name, size }] of blobs) {
    const has = stored.get(sha256);
    if (has === undefined)
      at(["inputs"], `input "${name}": blob sha256:${sha256} is not uploaded (PUT /api/blobs/sha256:${sha256} first)`);
    else if (has !== size) at(["inputs"], `input "${name}": blob sha256:${sha256} holds ${has} bytes, not ${size}`);
  }
  if (problems.length > 0) return { ok: false, problems };

  let total = 0;
  const nodes = plan.nodes.map((node) => {
    if (node.files === undefined) {
      total += node.instances ?? 1;
      return node;
    }
    const source = given[node.files]!;
    const count = "files" in source ? source.files.length : "file" in source ? 1 : 0;
    const cap = node.maxInstances ?? DAG_LIMITS.defaultMapInstances;
    const here = (message: string) => problems.push({ ...locate(node.id, "map"), message });
    if (count === 0) here(`task "${node.id}": map.files needs a file or folder input, and "${node.files}" is a value`);
    else if (count > cap)
      here(
        `task "${node.id}": input "${node.files}" has ${count} files, more than max_instances, ${cap} (raise map.max_instances)`,
      );
    total += count;
    return { ...node, instances: count };
  });
  if (total > DAG_LIMITS.maxInstances)
    at(
      ["tasks"],
      `the DAG expands to ${total} task instances with its inputs; at most ${DAG_LIMITS.maxInstances} are allowed`,
    );
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, plan: { ...plan, nodes } };
}

/** What keeps `value` from going into a run as JSON (over `maxBytes`, nested too deep), or null. */
function jsonProblem(value: unknown, maxBytes: number): string | null {
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
  }
  if (jsonShape(json).depth > MAX_JSON_DEPTH) return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
  const bytes = new TextEncoder().encode(json).length;
  return bytes > maxBytes ? `is ${bytes} bytes as JSON, more than ${maxBytes}` : null;
}
