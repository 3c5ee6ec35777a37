/**
 * Turns a DAG document (YAML, or JSON, which YAML reads too) into a `DagPlan`, or into a list
 * of problems each located by path, line and column. Used by the Worker on `POST /api/dags`
 * and by the `distro` CLI before it uploads anything.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { DAG_LIMITS, dagSchema, TASK_DEFAULTS, type DagDocument } from "./schema.js";
import type { DagPlan, NodeSpec, Problem } from "./plan.js";
import { declarations, type ParamDecl, resolveParams, substituteParams } from "./params.js";
import { jsonShape, MAX_JSON_DEPTH } from "../abi.js";

/** Where a field of a task stands in the source, for problems found after parsing. */
type Locate = (taskId: string, field: string) => Omit<Problem, "message">;

export type ParseResult =
  | { ok: true; plan: DagPlan; locate: Locate; where: (path: PathPart[]) => Omit<Problem, "message"> }
  | { ok: false; problems: Problem[] };

type PathPart = string | number;

/** What a submission gives beside the document: values of the DAG's params. */
export interface ParseOptions {
  params?: Record<string, unknown>;
}

/** The fields of a task (and of `defaults:`) where `{{params.x}}` is substituted before validation. */
const SHAPING_FIELDS = [
  "map",
  "requires",
  "retries",
  "lost_retries",
  "retry_delay",
  "retry_delay_max",
  "timeout",
  "memory",
  "priority",
];

/** Parses and validates a DAG document, with the params given at submit. Never throws on bad input. */
export function parseDag(text: string, options: ParseOptions = {}): ParseResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return { path: "", line: at.line, column: at.col, message: `YAML syntax error: ${firstLine(e.message)}` };
      }),
    };
  }
  const locate = (path: PathPart[]): Omit<Problem, "message"> => {
    const { line, col } = lines.linePos(offsetOf(doc, path));
    return { path: formatPath(path), line, column: col };
  };
  const problem = (path: PathPart[], message: string): Problem => ({ ...locate(path), message });

  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, problems: [problem([], "a DAG is a mapping with a `tasks` list")] };
  }
  const shaped = applyParams(raw as Record<string, unknown>, options.params ?? {}, problem);
  if (!shaped.ok) return { ok: false, problems: shaped.problems };
  const parsed = dagSchema.safeParse(shaped.doc);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((issue) => schemaProblem(issue, problem)) };
  }
  const problems = checkGraph(parsed.data, problem);
  if (problems.length > 0) return { ok: false, problems };
  const order = new Map(parsed.data.tasks.map((t, i) => [t.id, i]));
  return {
    ok: true,
    plan: toPlan(parsed.data),
    locate: (taskId, field) => locate(["tasks", order.get(taskId) ?? 0, field]),
    where: locate,
  };
}

/**
 * The document with its params resolved (declarations checked, given values checked against
 * them, defaults filled) and substituted into the fields that shape the run.
 */
function applyParams(
  raw: Record<string, unknown>,
  given: Record<string, unknown>,
  problem: (path: PathPart[], message: string) => Problem,
): { ok: true; doc: Record<string, unknown> } | { ok: false; problems: Problem[] } {
  const declared = raw.params;
  if (declared !== undefined && (declared === null || typeof declared !== "object" || Array.isArray(declared)))
    return {
      ok: false,
      problems: [problem(["params"], "`params`: a mapping of param names to values or declarations")],
    };
  const table = (declared ?? {}) as Record<string, unknown>;
  const at = (name: string): PathPart[] => (Object.hasOwn(table, name) ? ["params", name] : declared ? ["params"] : []);
  const { decls, problems: bad } = declarations(table);
  const { values, problems: wrong } = resolveParams(decls, given);
  const problems = [...bad, ...wrong].map((p) => problem(at(p.param), `\`params.${p.param}\`: ${p.message}`));
  if (problems.length > 0) return { ok: false, problems };
  // Every task keeps the DAG's params in its definition, and every envelope carries them.
  const tooBig = paramsProblem(values);
  if (tooBig) return { ok: false, problems: [problem(declared ? ["params"] : [], tooBig)] };
  const budget = { left: SUBSTITUTION_CHARS };
  const unknown = (path: PathPart[], name: string) =>
    problems.push(problem(path, `\`{{params.${name}}}\` names no param of the DAG or the task`));
  const shape = (target: unknown, path: PathPart[], params: Record<string, unknown>) => {
    if (target === null || typeof target !== "object" || Array.isArray(target)) return target;
    const out = { ...(target as Record<string, unknown>) };
    for (const field of SHAPING_FIELDS)
      if (field in out) out[field] = substituteParams(out[field], params, unknown, budget, [...path, field]);
    return out;
  };
  const doc: Record<string, unknown> = { ...raw, params: values };
  if ("defaults" in raw) doc.defaults = shape(raw.defaults, ["defaults"], values);
  if (Array.isArray(raw.tasks))
    doc.tasks = raw.tasks.map((t: unknown, i) => {
      const own = (t as { params?: unknown } | null)?.params;
      const mine = own && typeof own === "object" && !Array.isArray(own) ? (own as Record<string, unknown>) : {};
      return shape(t, ["tasks", i], { ...values, ...mine });
    });
  if (budget.left < 0)
    problems.push(
      problem(
        [],
        `placeholders would put more than ${SUBSTITUTION_CHARS.toLocaleString("en-US")} characters of params into the DAG`,
      ),
    );
  return problems.length > 0 ? { ok: false, problems } : { ok: true, doc };
}

/** The most characters `{{params.x}}` placeholders may put into a DAG's fields, all together. */
const SUBSTITUTION_CHARS = 4_000_000;

function schemaProblem(issue: z.core.$ZodIssue, problem: (path: PathPart[], message: string) => Problem): Problem {
  const path = issue.path.filter((p): p is PathPart => typeof p !== "symbol");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    return problem([...path, key], `unknown field ${issue.keys.map((k) => `\`${k}\``).join(", ")}`);
  }
  const where = path.length > 0 ? `\`${path[path.length - 1]}\`: ` : "";
  return problem(path, `${where}${issue.message}`);
}

/** Cross-task checks: unique ids, known dependencies, no cycles, instance budget. */
function checkGraph(dag: DagDocument, problem: (path: PathPart[], message: string) => Problem): Problem[] {
  const problems: Problem[] = [];
  const index = new Map<string, number>();
  dag.tasks.forEach((t, i) => {
    const first = index.get(t.id);
    if (first !== undefined)
      problems.push(problem(["tasks", i, "id"], `duplicate task id "${t.id}" (first defined at tasks[${first}])`));
    else index.set(t.id, i);
  });
  const inputs = new Set(dag.inputs);
  dag.inputs.forEach((name, i) => {
    if (index.has(name)) problems.push(problem(["inputs", i], `input "${name}" has the name of a task`));
  });
  if (inputs.size < dag.inputs.length) problems.push(problem(["inputs"], "input names are listed once each"));
  dag.tasks.forEach((t, i) => {
    t.depends_on.forEach((dep, j) => {
      if (dep === t.id) problems.push(problem(["tasks", i, "depends_on", j], `task "${t.id}" depends on itself`));
      else if (!index.has(dep) && !inputs.has(dep))
        problems.push(
          problem(
            ["tasks", i, "depends_on", j],
            `unknown dependency "${dep}" of task "${t.id}" (no task or input has that name)`,
          ),
        );
    });
    if (t.map && "over" in t.map) {
      const source = dag.tasks[index.get(t.map.over) ?? -1];
      const where = ["tasks", i, "map", "over"];
      if (t.map.over === t.id) problems.push(problem(where, `task "${t.id}" maps over its own output`));
      else if (!source) problems.push(problem(where, `map.over names no task: "${t.map.over}"`));
      else if (source.map)
        problems.push(problem(where, `map.over names task "${source.id}", which is mapped; it must be a plain task`));
    }
    if (t.map && "files" in t.map && !inputs.has(t.map.files))
      problems.push(
        problem(
          ["tasks", i, "map", "files"],
          `map.files names no input: "${t.map.files}" (declare it under \`inputs:\`)`,
        ),
      );
  });
  if (problems.length > 0) return problems;

  const cycle = findCycle(dag);
  if (cycle) {
    const from = cycle[0]!;
    const to = cycle[1]!;
    const i = index.get(from)!;
    const j = dag.tasks[i]!.depends_on.indexOf(to);
    const where = j < 0 ? ["tasks", i, "map", "over"] : ["tasks", i, "depends_on", j];
    problems.push(problem(where, `dependency cycle: ${cycle.join(" → ")}`));
    return problems;
  }

  dag.tasks.forEach((t, i) => {
    const bytes = new TextEncoder().encode(JSON.stringify(t)).length;
    if (bytes <= DAG_LIMITS.maxTaskBytes) return;
    const where = t.map && "items" in t.map ? ["tasks", i, "map", "items"] : ["tasks", i];
    const what = where.length > 2 ? "its map.items make its definition" : "its definition is";
    const limit = DAG_LIMITS.maxTaskBytes.toLocaleString("en-US");
    problems.push(
      problem(
        where,
        `task "${t.id}": ${what} ${bytes.toLocaleString("en-US")} bytes as JSON; at most ${limit} (split the list over several tasks)`,
      ),
    );
  });

  let total = 0;
  dag.tasks.forEach((t) => (total += instanceCount(t.map) ?? 1));
  if (total > DAG_LIMITS.maxInstances) {
    problems.push(
      problem(["tasks"], `the DAG expands to ${total} task instances; at most ${DAG_LIMITS.maxInstances} are allowed`),
    );
  }
  return problems;
}

/** A cycle as a list of ids `[a, b, ..., a]` where each depends on the next, or null. */
function findCycle(dag: DagDocument): string[] | null {
  const deps = new Map(
    dag.tasks.map((t) => [t.id, [...t.depends_on, ...(t.map && "over" in t.map ? [t.map.over] : [])]]),
  );
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    state.set(id, "open");
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      const s = state.get(dep);
      if (s === "open") return [...stack.slice(stack.indexOf(dep)), dep];
      if (s === undefined) {
        const found = visit(dep);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, "done");
    return null;
  };
  for (const t of dag.tasks) {
    if (!state.has(t.id)) {
      const found = visit(t.id);
      if (found) return found;
    }
  }
  return null;
}

/** How many instances a task has (null: a plain task; 0: a map over data, whose width comes later). */
function instanceCount(map: DagDocument["tasks"][number]["map"]): number | null {
  if (!map) return null;
  if ("items" in map) return map.items.length;
  if ("range" in map) return map.range[1] - map.range[0];
  return 0;
}

/** Normalises a valid document: defaults applied, nodes in dependency order. */
function toPlan(dag: DagDocument): DagPlan {
  const d = dag.defaults;
  const inputs = new Set(dag.inputs);
  const byId = new Map(dag.tasks.map((t) => [t.id, t]));
  const ordered: NodeSpec[] = [];
  const placed = new Set<string>();
  const place = (id: string) => {
    if (placed.has(id)) return;
    placed.add(id);
    const t = byId.get(id)!;
    const over = t.map && "over" in t.map ? [t.map.over] : [];
    const files = t.map && "files" in t.map ? [t.map.files] : [];
    const deps = [...new Set([...t.depends_on.filter((dep) => !inputs.has(dep)), ...over])];
    deps.forEach(place);
    const node: NodeSpec = {
      id: t.id,
      module: t.module,
      deps,
      inputs: [...new Set([...t.depends_on.filter((dep) => inputs.has(dep)), ...files])],
      instances: instanceCount(t.map),
      args: t.args,
      env: t.env,
      params: { ...dag.params, ...t.params },
      retries: t.retries ?? d.retries ?? TASK_DEFAULTS.retries,
      lostRetries: t.lost_retries ?? d.lost_retries ?? TASK_DEFAULTS.lostRetries,
      retryDelayMs: t.retry_delay ?? d.retry_delay ?? TASK_DEFAULTS.retryDelayMs,
      retryDelayMaxMs: t.retry_delay_max ?? d.retry_delay_max ?? TASK_DEFAULTS.retryDelayMaxMs,
      timeoutMs: t.timeout ?? d.timeout ?? TASK_DEFAULTS.timeoutMs,
      memoryBytes: t.memory ?? d.memory ?? TASK_DEFAULTS.memoryBytes,
      priority: t.priority ?? d.priority ?? TASK_DEFAULTS.priority,
      cache: dag.cache && (t.cache ?? true),
    };
    if (t.map && "items" in t.map) node.items = t.map.items;
    if (t.map && "range" in t.map) node.range = t.map.range;
    if (t.map && ("over" in t.map || "files" in t.map)) {
      if ("over" in t.map) node.over = t.map.over;
      else node.files = t.map.files;
      node.maxInstances = t.map.max_instances ?? DAG_LIMITS.defaultMapInstances;
    }
    if (t.requires) node.requires = t.requires;
    ordered.push(node);
  };
  dag.tasks.forEach((t) => place(t.id));
  return { name: dag.name ?? "unnamed", nodes: ordered, inputs: dag.inputs };
}

/** The source offset of the deepest node on `path` that exists (a key where its value is empty). */
function offsetOf(doc: Document, path: PathPart[]): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(part));
      if (!pair) break;
      offset = rangeStart(pair.value) ?? rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof part === "number" && node.items[part]) {
      node = node.items[part];
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0];
}

/** `["tasks", 2, "depends_on", 0]` → `tasks[2].depends_on[0]`. */
function formatPath(path: PathPart[]): string {
  return path.reduce<string>(
    (out, part) => (typeof part === "number" ? `${out}[${part}]` : out ? `${out}.${part}` : part),
    "",
  );
}

function firstLine(message: string): string {
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

/**
 * What a submission of a DAG document may give, read even when the document has other problems:
 * the params it declares (a plain value's type is its own) and the inputs it names; empty when
 * the document is unreadable. The CLI reads `--param`s by these types; the page builds its form.
 */
export function declaredFields(text: string): { params: Map<string, ParamDecl>; inputs: string[] } {
  let raw: unknown;
  try {
    raw = parseDocument(text, { prettyErrors: false }).toJS({ maxAliasCount: 100 });
  } catch {
    return { params: new Map(), inputs: [] };
  }
  const doc = (raw ?? {}) as { params?: unknown; inputs?: unknown };
  const inputs = Array.isArray(doc.inputs) ? doc.inputs.filter((n): n is string => typeof n === "string") : [];
  const params = doc.params;
  if (params === null || typeof params !== "object" || Array.isArray(params)) return { params: new Map(), inputs };
  return { params: declarations(params as Record<string, unknown>).decls, inputs };
}

/** What keeps the DAG's params from every task's definition (too large, nested too deep), or null. */
function paramsProblem(values: Record<string, unknown>): string | null {
  let json: string;
  try {
    json = JSON.stringify(values);
  } catch {
    json = "";
  }
  if (json === "" || jsonShape(json).depth > MAX_JSON_DEPTH + 1)
    return `the DAG's params are nested deeper than ${MAX_JSON_DEPTH} levels`;
  const bytes = new TextEncoder().encode(json).length;
  if (bytes <= DAG_LIMITS.maxParamsBytes) return null;
  const limit = DAG_LIMITS.maxParamsBytes.toLocaleString("en-US");
  return `the DAG's params come to ${bytes.toLocaleString("en-US")} bytes as JSON (with those given at submit); at most ${limit}: give large data as an input`;
}
