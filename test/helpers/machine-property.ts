/**
 * The run state machine's property, over any `RunStore`: random DAGs (up to 12 nodes, some
 * mapped) run by three runners with random credit, a task's first attempt failing one time in
 * four. Every task ends with one accepted result, each dispatched only after everything it
 * depends on succeeded and given their outputs as inputs. It reads the store through the
 * interface only, so test/unit/machine.test.ts runs it over the in-memory store and
 * test/workers/sql-store.test.ts over the production SqlStore in workerd.
 */
import fc from "fast-check";
import { expect } from "vitest";
import { fillEnvelope, fromBase64, parseTaskKey, taskKey } from "../../core/abi";
import type { Assignment } from "../../core/protocol/messages";
import { TASK_STATES } from "../../core/status";
import { transition, type Effect, type RunEvent } from "../../worker/run/machine";
import type { RunStore } from "../../worker/run/store";
import { failed, ok, plan } from "./run-fixtures";

/** Where the property runs: a store per generated case, and the host's transaction. */
export interface PropertyHost {
  /** A new store holding no run. */
  fresh(): RunStore;
  /** Runs one transition as the host does (the DagRun: in one SQLite transaction). */
  transaction<T>(apply: () => T): T;
}

interface DagNode {
  id: string;
  deps: string[];
  map: number | undefined;
}

const dagArb: fc.Arbitrary<DagNode[]> = fc
  .array(
    fc.record({
      deps: fc.array(fc.nat(), { maxLength: 3 }),
      // Half mapped, half plain tasks (the ones a run may send ahead of their last dependency).
      map: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined, freq: 2 }),
    }),
    { minLength: 1, maxLength: 12 },
  )
  .map((nodes) =>
    nodes.map((n, i) => ({
      id: `t${i}`,
      deps: i === 0 ? [] : [...new Set(n.deps.map((d) => `t${d % i}`))],
      map: n.map,
    })),
  );

const diceArb = fc.array(fc.nat(), { minLength: 200, maxLength: 200 });

/**
 * Checks the property over `numRuns` generated cases, each on a fresh store from `host`. A
 * failure is shrunk to a smallest DAG unless `shrink` is false (for tests that expect one).
 */
export function checkMachineProperty(host: PropertyHost, { numRuns = 200, shrink = true } = {}): void {
  fc.assert(
    fc.property(dagArb, diceArb, (nodes, dice) => runCase(host, nodes, dice)),
    { numRuns, endOnFailure: !shrink },
  );
}

function runCase(host: PropertyHost, nodes: DagNode[], dice: number[]): void {
  const yaml = `tasks:\n${nodes
    .map((n) => {
      const map = n.map ? `, map: { range: [0, ${n.map}] }` : "";
      return `  - { id: ${n.id}, module: m, retries: 3, retry_delay: 0, depends_on: [${n.deps.join(", ")}]${map} }`;
    })
    .join("\n")}\n`;
  const planned = plan(yaml);
  // A node's task keys in index order, from the plan: the store is read through RunStore only.
  const keys = new Map(
    planned.nodes.map((spec) => [
      spec.id,
      spec.instances === null
        ? [taskKey(spec.id, null)]
        : Array.from({ length: spec.instances }, (_, i) => taskKey(spec.id, i)),
    ]),
  );
  const total = [...keys.values()].reduce((sum, list) => sum + list.length, 0);
  const store = host.fresh();
  const apply = (event: RunEvent, now: number) => host.transaction(() => transition(store, event, now));
  /** Tasks sent to `runner` so far: every dispatch reaches the runner at once. */
  const sent = (runner: string) => store.runner(runner)?.sent ?? 0;
  apply({ type: "start", plan: planned }, 0);

  let roll = 0;
  const die = () => dice[roll++ % dice.length]!;
  const inflight: { runner: string; a: Assignment }[] = [];
  const succeededAt = new Map<string, number>();
  let clock = 0;
  const take = (effects: Effect[]) => {
    for (const e of effects) if (e.type === "dispatch") for (const a of e.tasks) inflight.push({ runner: e.runner, a });
  };
  // r1 has one slot: what it asks for beyond it, the run may send ahead of the attempts it holds
  // (the others count for as many slots as the store's default cap, and are sent nothing ahead).
  for (const [r, slots] of [
    ["r1", 1],
    ["r2", undefined],
    ["r3", undefined],
  ] as const)
    take(apply({ type: "attach", runner: r, name: r, want: 1 + (die() % 3), holding: [], slots }, clock++));
  /** Outputs of the attempts that succeeded, by `task#attempt`; what an attempt sent ahead waits for. */
  const outputs = new Map<string, string>();
  const failedHere = new Set<string>();
  let finished: string | undefined;
  for (let steps = 0; inflight.length > 0 && steps < 10_000; steps++) {
    // An attempt sent ahead runs once the attempt it waits for succeeded; if that one failed, the
    // run takes it back (a cancel) and it never runs.
    const runnable = inflight.filter(({ a }) => !a.after || outputs.has(`${a.after.task}#${a.after.attempt}`));
    expect(runnable.length).toBeGreaterThan(0);
    const pick = runnable[die() % runnable.length]!;
    inflight.splice(inflight.indexOf(pick), 1);
    const { runner } = pick;
    const waited = pick.a.after && outputs.get(`${pick.a.after.task}#${pick.a.after.attempt}`)!;
    const a = waited ? { ...pick.a, stdin: fillEnvelope(pick.a.stdin, pick.a.after!.at, fromBase64(waited)) } : pick.a;
    const { node } = parseTaskKey(a.task);
    // Every dependency's instances succeeded before this dispatch, and their outputs are the inputs.
    const envelope = JSON.parse(a.stdin) as { inputs: Record<string, unknown> };
    for (const dep of nodes.find((n) => n.id === node)!.deps) {
      const instances = keys.get(dep)!;
      expect(instances.every((key) => store.task(key)?.state === "succeeded")).toBe(true);
      const mapped = planned.nodes.find((spec) => spec.id === dep)!.instances !== null;
      expect(envelope.inputs[dep]).toEqual(mapped ? instances : instances[0]);
    }
    // The first attempt of a task fails one time in four; retries always succeed.
    const result = a.attempt === 1 && die() % 4 === 0 ? failed(a) : ok(a, JSON.stringify(a.task));
    const effects = apply(
      {
        type: "results",
        runner,
        results: [result],
        want: 1 + (die() % (runner === "r1" ? 4 : 2)),
        received: sent(runner),
      },
      clock++,
    );
    if (result.ok) outputs.set(`${a.task}#${a.attempt}`, result.output!);
    else failedHere.add(`${a.task}#${a.attempt}`);
    for (const e of effects)
      if (e.type === "cancel")
        for (const ref of e.tasks) {
          const at = inflight.findIndex(
            (f) => f.runner === e.runner && f.a.task === ref.task && f.a.attempt === ref.attempt,
          );
          // Only what was sent ahead of an attempt that failed (or was itself taken back) is taken back.
          expect(at).toBeGreaterThanOrEqual(0);
          const after = inflight[at]!.a.after;
          expect(after).toBeDefined();
          expect(failedHere.has(`${after!.task}#${after!.attempt}`)).toBe(true);
          failedHere.add(`${ref.task}#${ref.attempt}`);
          inflight.splice(at, 1);
        }
    if (result.ok) {
      expect(succeededAt.has(a.task)).toBe(false);
      succeededAt.set(a.task, clock);
    }
    take(effects);
    for (const e of effects) if (e.type === "finished") finished = e.status;
  }
  expect(finished).toBe("succeeded");
  expect(succeededAt.size).toBe(total);
  expect([...keys.values()].flat().every((key) => store.task(key)?.state === "succeeded")).toBe(true);
  // The store's own tally agrees: every task it holds succeeded, and it holds no other.
  expect(store.counts()).toEqual(Object.fromEntries(TASK_STATES.map((s) => [s, s === "succeeded" ? total : 0])));
}
