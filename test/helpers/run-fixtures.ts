/**
 * Plans and runner results for tests that drive the run state machine directly
 * (test/unit/machine.test.ts, and the property in machine-property.ts over any store). Nothing
 * Node-specific, so workerd tests use them too.
 */
import { parseDag } from "../../core/dag/parse";
import type { ResolvedPlan } from "../../core/dag/plan";
import type { Assignment, TaskResult } from "../../core/protocol/messages";

/**
 * The plan of a DAG, with `inputs` (a map over files given its width as the Worker gives it);
 * the result cache is off unless the DAG mentions it.
 */
export function plan(yaml: string, inputs: ResolvedPlan["inputs"] = {}): ResolvedPlan {
  const parsed = parseDag(yaml.includes("cache:") ? yaml : `cache: false\n${yaml}`);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const width = (name: string) => {
    const input = inputs[name];
    return input && "files" in input ? input.files.length : 1;
  };
  const nodes = parsed.plan.nodes.map((n) => ({
    ...n,
    sha256: "a".repeat(64),
    ...(n.files !== undefined ? { instances: width(n.files) } : {}),
  }));
  return { name: parsed.plan.name, nodes, inputs };
}

/** A successful result of the attempt in `a` with `output` as its bytes. */
export const ok = (a: Pick<Assignment, "task" | "attempt">, output: string): TaskResult => ({
  task: a.task,
  attempt: a.attempt,
  ok: true,
  output: btoa(String.fromCharCode(...new TextEncoder().encode(output))),
  stderr: "",
  durationMs: 1,
});

/** A failed result of the attempt in `a`: the task exited with code 1. */
export const failed = (a: Pick<Assignment, "task" | "attempt">, retryable = true): TaskResult => ({
  task: a.task,
  attempt: a.attempt,
  ok: false,
  stderr: "oops\n",
  durationMs: 1,
  failure: { kind: "exit", message: "exited with code 1", retryable },
});
