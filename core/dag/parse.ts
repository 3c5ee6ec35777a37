/**
 * Turns a DAG document (YAML, or JSON, which YAML reads too) into a `DagPlan`, or into a list
 * of problems each located by path, line and column. Used by the Worker on `POST /api/dags`
 * and by the `distro` CLI before it uploads anything.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { DAG_LIMITS, dagSchema, TASK_DEFAULTS, type DagDocument } from "./schema.js";
import type { DagPlan, NodeSpec, Problem } from "./plan.js";

/** Where a field of a task stands in the source, for problems found after parsing. */
type Locate = (taskId: string, field: string) => Omit<Problem, "message">;

export type ParseResult = { ok: true; plan: DagPlan; locate: Locate } | { ok: false; problems: Problem[] };

type PathPart = string | number;

/** Parses and validates a DAG document. Never throws on bad input. */
export function parseDag(text: string): ParseResult {
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
  const parsed = dagSchema.safeParse(raw);
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
  };
}

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
  dag.tasks.forEach((t, i) => {
    t.depends_on.forEach((dep, j) => {
      if (dep === t.id) problems.push(problem(["tasks", i, "depends_on", j], `task "${t.id}" depends on itself`));
      else if (!index.has(dep))
        problems.push(problem(["tasks", i, "depends_on", j], `unknown dependency "${dep}" of task "${t.id}"`));
    });
  });
  if (problems.length > 0) return problems;

  const cycle = findCycle(dag);
  if (cycle) {
    const from = cycle[0]!;
    const to = cycle[1]!;
    const i = index.get(from)!;
    const j = dag.tasks[i]!.depends_on.indexOf(to);
    problems.push(problem(["tasks", i, "depends_on", j], `dependency cycle: ${cycle.join(" → ")}`));
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
  const deps = new Map(dag.tasks.map((t) => [t.id, t.depends_on]));
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

function instanceCount(map: DagDocument["tasks"][number]["map"]): number | null {
  if (!map) return null;
  return "items" in map ? map.items.length : map.range[1] - map.range[0];
}

/** Normalises a valid document: defaults applied, nodes in dependency order. */
function toPlan(dag: DagDocument): DagPlan {
  const d = dag.defaults;
  const byId = new Map(dag.tasks.map((t) => [t.id, t]));
  const ordered: NodeSpec[] = [];
  const placed = new Set<string>();
  const place = (id: string) => {
    if (placed.has(id)) return;
    placed.add(id);
    const t = byId.get(id)!;
    t.depends_on.forEach(place);
    const node: NodeSpec = {
      id: t.id,
      module: t.module,
      deps: [...new Set(t.depends_on)],
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
    if (t.requires) node.requires = t.requires;
    ordered.push(node);
  };
  dag.tasks.forEach((t) => place(t.id));
  return { name: dag.name ?? "unnamed", nodes: ordered };
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
