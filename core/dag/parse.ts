/**
 * Turns a DAG document (YAML, or JSON, which YAML reads too) into a `DagPlan`, or into a list
 * of problems each located by path, line and column. Used by the Worker on `POST /api/dags`
 * and by the `distro` CLI before it uploads anything.
 */
import {
  Composer,
  type CST,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  parseDocument,
  YAMLParseError,
  type Document,
  type Node,
} from "yaml";
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
  // yaml builds a document recursively, and one nested hundreds of levels deep runs it out of stack
  // (which can abort Node outright); its parser recurses too, closing many block levels at once.
  // So first lines indented too far, then the syntax tree (walked without recursion) for nesting
  // and keys, and only then the document.
  const indented = overIndented(text);
  if (indented >= 0) {
    const line = text.slice(0, indented).split("\n").length;
    const message = `a line indented past ${MAX_INDENT} columns (counting the "- ", "? " and ": " before its content)`;
    return { ok: false, problems: [{ path: "", line, column: MAX_INDENT + 1, message }] };
  }
  const lines = new LineCounter();
  const tokens = [...new Parser(lines.addNewLine).parse(text)];
  const shape = shapeProblem(tokens);
  if (shape) {
    const at = lines.linePos(shape.offset);
    return { ok: false, problems: [{ path: "", line: at.line, column: at.col, message: shape.message }] };
  }
  // The first document, built from that tree as parseDocument builds it: a second one is an error.
  const [first, second] = new Composer({ uniqueKeys: true }).compose(tokens, true, text.length);
  const doc = first!; // there is always one (forceDoc)
  if (second) {
    const message = "Source contains multiple documents; please use YAML.parseAllDocuments()";
    doc.errors.push(new YAMLParseError([second.range[0], second.range[1]], "MULTIPLE_DOCS", message));
  }
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

  let raw: unknown;
  try {
    // Throws on an alias with no anchor before it, and on aliases that would expand past
    // maxAliasCount nodes (a "billion laughs" document).
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return {
      ok: false,
      problems: [problem([], `YAML alias error: ${firstLine(e instanceof Error ? e.message : String(e))}`)],
    };
  }
  const expanded = aliasProblem(raw);
  if (expanded) return { ok: false, problems: [problem([], expanded)] };
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
  // Depth first on a stack of its own (a chain of thousands of tasks would overflow the call
  // stack): the open path, and for each task on it the index of its next dependency to visit.
  const stack: string[] = [];
  const next: number[] = [];
  const open = (id: string) => {
    state.set(id, "open");
    stack.push(id);
    next.push(0);
  };
  for (const t of dag.tasks) {
    if (state.has(t.id)) continue;
    open(t.id);
    while (stack.length > 0) {
      const id = stack[stack.length - 1]!;
      const i = next[next.length - 1]!;
      const dep = (deps.get(id) ?? [])[i];
      if (dep === undefined) {
        stack.pop();
        next.pop();
        state.set(id, "done");
        continue;
      }
      next[next.length - 1] = i + 1;
      const s = state.get(dep);
      if (s === "open") return [...stack.slice(stack.indexOf(dep)), dep];
      if (s === undefined) open(dep);
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
  const emit = (t: DagDocument["tasks"][number], deps: string[]) => {
    const files = t.map && "files" in t.map ? [t.map.files] : [];
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
  // Depth first on a stack of its own (a chain of thousands of tasks would overflow the call
  // stack): a task is emitted once every task it depends on has been.
  const stack: { t: DagDocument["tasks"][number]; deps: string[]; next: number }[] = [];
  const enter = (id: string) => {
    if (placed.has(id)) return;
    placed.add(id);
    const t = byId.get(id)!;
    const over = t.map && "over" in t.map ? [t.map.over] : [];
    stack.push({ t, deps: [...new Set([...t.depends_on.filter((dep) => !inputs.has(dep)), ...over])], next: 0 });
  };
  for (const task of dag.tasks) {
    enter(task.id);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.deps.length) enter(top.deps[top.next++]!);
      else emit(stack.pop()!.t, top.deps);
    }
  }
  return { name: dag.name ?? "unnamed", nodes: ordered, inputs: dag.inputs };
}

/**
 * The deepest a DAG document may nest, as written and with its aliases expanded: well past what
 * any field needs (params nest at most MAX_JSON_DEPTH levels), well short of where yaml runs out of
 * stack building a document (near 800 levels in Node).
 */
const MAX_NESTING = 2 * MAX_JSON_DEPTH;

/**
 * The most a line may be indented, the block indicators before its content counted: a block
 * collection starts further right than the one it is in (or as far, a list in a mapping), so
 * this bounds how deep block collections nest, before yaml's parser reads them.
 */
const MAX_INDENT = 2 * MAX_NESTING;

/** The offset of the first line whose indentation passes MAX_INDENT, or -1. */
function overIndented(text: string): number {
  const indent = /(?:[ \t\r]|[-?:][ \t\r])*/y;
  for (let start = 0; ;) {
    indent.lastIndex = start;
    indent.exec(text);
    if (indent.lastIndex - start > MAX_INDENT) return start;
    const end = text.indexOf("\n", start);
    if (end < 0) return -1;
    start = end + 1;
  }
}

/**
 * What the syntax tree has that the document must not be built from, with its offset, or null:
 * collections nested deeper than MAX_NESTING, or a key that is a list, a mapping or an alias (a
 * DAG's keys are names; yaml turns such a key into text, in time that grows steeply with its depth).
 */
function shapeProblem(tokens: Iterable<CST.Token>): { offset: number; message: string } | null {
  // Depth first, in document order: the first problem in the text is the one reported.
  const stack: [CST.Token | null | undefined, number][] = [...tokens].reverse().map((token) => [token, 0]);
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!;
    if (token?.type === "document") stack.push([token.value, depth]);
    if (token?.type !== "block-map" && token?.type !== "block-seq" && token?.type !== "flow-collection") continue;
    if (depth >= MAX_NESTING)
      return { offset: token.offset, message: `collections nested deeper than ${MAX_NESTING} levels` };
    for (const item of token.items) {
      const key = item.key;
      if (!key || !["block-map", "block-seq", "flow-collection", "alias"].includes(key.type)) continue;
      // `retries: {{params.n}}` unquoted is a mapping whose key is a mapping: say how to write it.
      const braces = token.type === "flow-collection" && key.offset === token.offset + 1;
      const hint = braces ? ' (a placeholder goes in quotes: "{{params.x}}")' : "";
      return { offset: key.offset, message: `a key is a plain name, not a list, a mapping or an alias${hint}` };
    }
    for (let i = token.items.length - 1; i >= 0; i--) stack.push([token.items[i]!.value, depth + 1]);
  }
  return null;
}

/**
 * What keeps the document, its aliases expanded, from being plain data, or null: an alias inside
 * the node it names (the document would contain itself), or nesting deeper than MAX_NESTING.
 */
function aliasProblem(raw: unknown): string | null {
  const tooDeep = `with its aliases expanded, the document nests deeper than ${MAX_NESTING} levels`;
  let json: string;
  try {
    json = JSON.stringify(raw) ?? "";
  } catch (e) {
    // A cycle is a TypeError; otherwise JSON.stringify ran out of stack.
    return e instanceof TypeError
      ? "an alias stands inside the node it names (the document would contain itself)"
      : tooDeep;
  }
  return jsonShape(json).depth > MAX_NESTING ? tooDeep : null;
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
