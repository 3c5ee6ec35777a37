/**
 * `distro submit`: reads the DAG (with any --param set), uploads the modules it names from local
 * folders, submits it, and with --watch or --wait follows the run (follow.ts) with a live progress
 * display, then says what failed, or prints (or writes) the final tasks' outputs. The submission
 * goes under an Idempotency-Key, one per invocation unless --idempotency-key names it, so that
 * sending it again after a lost answer makes one run (docs/api.md).
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { declaredFields, parseDag } from "../core/dag/parse.js";
import { coerceParam } from "../core/dag/params.js";
import type { DagPlan, Problem } from "../core/dag/plan.js";
import { formatSize } from "../core/units.js";
import type { Client } from "./client.js";
import { UsageError, type Io } from "./command.js";
import { followRun } from "./follow.js";
import { uploadInputs } from "./inputs.js";
import { safe } from "./terminal.js";

interface SubmitOptions {
  modules: string[];
  /** Follow the run: `watch` with progress, `wait` with progress and then the final outputs. */
  follow: "watch" | "wait" | null;
  json: boolean;
  out: string | undefined;
  /** `--param NAME=VALUE` as written: read as JSON unless the DAG declares the param a string. */
  params: [string, string][];
  /** `--input NAME=PATH`. */
  inputs: [string, string][];
  /** `--chunk SIZE`: cut file inputs on line boundaries into folders of chunks of at most this. */
  chunk: number | undefined;
  /** `--idempotency-key KEY`; else a fresh UUID. */
  key: string | undefined;
}

/** `--param a=1 --param name=x` → [["a", "1"], ["name", "x"]]. */
export function parseParams(list: string[]): [string, string][] {
  return list.map((p) => {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$/s.exec(p);
    if (!m) throw new UsageError(`--param: expected NAME=VALUE, got "${p}"`);
    return [m[1]!, m[2]!];
  });
}

/** Submits the DAG in `file`; returns the exit code (with a follow: 0 if the run succeeded, 1 if not). */
export async function submit(client: Client, file: string, opts: SubmitOptions, io: Io): Promise<number> {
  let yaml: string;
  try {
    yaml = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const decls = declaredFields(yaml).params;
  const params = Object.fromEntries(
    opts.params.map(([name, text]) => [name, coerceParam(text, decls.get(name)?.type)]),
  );
  const parsed = parseDag(yaml, { params });
  if (!parsed.ok) {
    io.err(`distro: ${file} is not a valid DAG`);
    printProblems(parsed.problems, file, io);
    return 2;
  }
  // The inputs are checked against the DAG before anything is read or uploaded.
  const declared = parsed.plan.inputs;
  for (const [name] of opts.inputs)
    if (!declared.includes(name))
      throw new UsageError(
        `--input ${name}: ${file} declares no such input (${declared.length > 0 ? `it declares ${declared.join(", ")}` : "it declares none"})`,
      );
  const missing = declared.filter((name) => !opts.inputs.some(([given]) => given === name));
  if (missing.length > 0)
    throw new UsageError(`${file} needs ${missing.map((name) => `--input ${name}=PATH`).join(" ")}`);
  const chunk = chunking(parsed.plan, opts);
  const dirs = [...opts.modules.map((d) => resolve(io.cwd, d)), dirname(file), join(io.cwd, "wasm_tasks", "build")];
  for (const name of new Set(parsed.plan.nodes.map((n) => n.module))) {
    if (name.startsWith("sha256:")) continue;
    const path = dirs.flatMap((d) => [join(d, name), join(d, `${name}.wasm`)]).find((p) => existsSync(p));
    if (!path) {
      io.err(`distro: no file for module "${name}" in ${dirs.join(", ")}; relying on the coordinator's registry`);
      continue;
    }
    const info = await client.uploadModule(name, readFileSync(path));
    if (!opts.json) io.out(`uploaded ${name} (${formatSize(info.size)}, sha256 ${safe(info.sha256.slice(0, 12))}…)`);
  }
  const sink = {
    tty: io.tty !== undefined,
    quiet: opts.json,
    write: (text: string) => io.write(new TextEncoder().encode(text)),
  };
  const inputs = await uploadInputs(client, opts.inputs, chunk, sink);
  const run = await client.submit(yaml, { params, inputs }, opts.key ?? randomUUID());
  if (!opts.json) io.out(`submitted run ${safe(run.id)} (${run.tasks_total} tasks)\nstatus: ${safe(run.url)}`);
  if (!opts.follow) {
    if (opts.json) io.out(JSON.stringify(run, null, 2));
    return 0;
  }
  return followRun(client, run.id, { mode: opts.follow, json: opts.json, out: opts.out }, io);
}

/** A rejected DAG's problems, one line each: `file:line:column: path: message`. */
export function printProblems(problems: Problem[], file: string, io: Io): void {
  for (const p of problems)
    io.err(`  ${file ? `${file}:` : ""}${p.line}:${p.column}: ${p.path ? `${safe(p.path)}: ` : ""}${safe(p.message)}`);
}

/** What `--chunk` cuts: the file inputs that a `map: { files }` goes over (an error when none is). */
function chunking(plan: DagPlan, opts: SubmitOptions): { bytes: number; inputs: Set<string> } | undefined {
  if (opts.chunk === undefined) return undefined;
  const mapped = new Set(plan.nodes.flatMap((n) => (n.files === undefined ? [] : [n.files])));
  if (!opts.inputs.some(([name]) => mapped.has(name)))
    throw new UsageError("--chunk cuts a file input that a `map: { files }` goes over, and none of the --input is one");
  return { bytes: opts.chunk, inputs: mapped };
}
