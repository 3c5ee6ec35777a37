/**
 * Scenarios of prefetch and work stealing for the run state machine, over any store: the unit
 * tests run them over the MemoryStore, the workers tests over the SqlStore in a DagRun (whose
 * set-based statements take a whole frame at once). `apply` runs one transition as the host does.
 */
import { expect } from "vitest";
import type { Effect, RunEvent } from "../../worker/run/machine";
import type { RunStore } from "../../worker/run/store";
import { failed, ok, plan } from "./run-fixtures";

export type Apply = (event: RunEvent, now: number) => Effect[];

const ref = (task: string, attempt = 1) => ({ task, attempt });
const dispatched = (effects: Effect[], runner: string) =>
  effects.flatMap((e) => (e.type === "dispatch" && e.runner === runner ? e.tasks.map((t) => t.task) : []));
const strays = (effects: Effect[]) => effects.flatMap((e) => (e.type === "stray" ? [e.frames] : []));

/** Every task of the run has exactly one succeeded attempt, and the run succeeded. */
function acceptedOnce(store: RunStore, tasks: string[]): void {
  for (const task of tasks) {
    const row = store.task(task)!;
    expect(row.state, task).toBe("succeeded");
    const succeeded = Array.from({ length: row.attempt }, (_, i) => store.attemptOutcome(task, i + 1)).filter(
      (o) => o === "succeeded",
    );
    expect(succeeded, task).toHaveLength(1);
  }
  expect(store.status()).toBe("succeeded");
}

/**
 * One results frame, half of it stale: attempts handed back and given to another runner, a
 * wrong attempt number, a task the run does not have, a result named twice, beside valid
 * successes and a failure. The valid ones are taken, the rest noted and counted; nothing else moves.
 */
export function halfStaleBatch(store: RunStore, apply: Apply): void {
  apply(
    { type: "start", plan: plan(`tasks: [{ id: w, module: m, map: { range: [0, 6] }, retries: 1, retry_delay: 0 }]`) },
    1,
  );
  apply({ type: "attach", runner: "a", name: "a", want: 6, holding: [], slots: 1 }, 2);
  expect(store.leasedTo("a").map((r) => r.key)).toHaveLength(6);
  apply({ type: "reject", runner: "a", tasks: [ref("w[4]"), ref("w[5]")] }, 3);
  const b = apply({ type: "attach", runner: "b", name: "b", want: 2, holding: [], slots: 1 }, 4);
  expect(dispatched(b, "b").sort()).toEqual(["w[4]", "w[5]"]);

  const results = [
    ok(ref("w[0]"), "zero"),
    ok(ref("w[1]"), "one"),
    ok(ref("w[1]"), "one again"),
    failed(ref("w[2]")),
    ok(ref("w[4]"), "stale four"),
    ok(ref("w[5]"), "stale five"),
    ok(ref("w[0]", 2), "no such attempt"),
    ok(ref("nope"), "no such task"),
  ];
  const effects = apply({ type: "results", runner: "a", results, want: 0, received: 6 }, 5);
  expect(strays(effects)).toEqual([5]);
  const text = (key: string) => {
    const outputs = store.outputs("w");
    const out = outputs[Number(/\[(\d+)\]/.exec(key)![1])];
    return out instanceof Uint8Array ? new TextDecoder().decode(out) : out;
  };
  expect([store.task("w[0]")?.state, text("w[0]")]).toEqual(["succeeded", "zero"]);
  expect([store.task("w[1]")?.state, text("w[1]")]).toEqual(["succeeded", "one"]);
  expect(store.task("w[2]")).toMatchObject({ failures: 1 }); // its retry is ready again
  expect(store.task("w[3]")).toMatchObject({ state: "leased", runner: "a", attempt: 1 });
  for (const key of ["w[4]", "w[5]"])
    expect(store.task(key)).toMatchObject({ state: "leased", runner: "b", attempt: 2 });
  expect(store.counts()).toMatchObject({ succeeded: 2, leased: 3 });

  // The rest ends as it should: every task accepted once.
  apply(
    { type: "results", runner: "b", results: [ok(ref("w[4]", 2), "4"), ok(ref("w[5]", 2), "5")], want: 1, received: 3 },
    6,
  );
  apply({ type: "results", runner: "a", results: [ok(ref("w[3]"), "3")], want: 1, received: 6 }, 7);
  const retry = store.task("w[2]")!;
  const holder = retry.runner!;
  apply({ type: "results", runner: holder, results: [ok(ref("w[2]", retry.attempt), "2")], want: 1, received: 9 }, 8);
  acceptedOnce(store, ["w[0]", "w[1]", "w[2]", "w[3]", "w[4]", "w[5]"]);
}

/**
 * A steal racing a start: the run asks the runner holding the most unstarted attempts to hand
 * back half (one steal of it at a time); meanwhile that runner started one more, so it hands back
 * only attempts it has not started, and they run on the idle runner. A result it sends for an
 * attempt it handed back is stale. No task runs to an accepted result twice.
 */
export function stealRacingStart(store: RunStore, apply: Apply): void {
  apply({ type: "start", plan: plan(`tasks: [{ id: w, module: m, map: { range: [0, 8] } }]`) }, 1);
  apply({ type: "attach", runner: "a", name: "a", want: 8, holding: [], slots: 1 }, 2);
  apply({ type: "started", runner: "a", tasks: [ref("w[0]")] }, 3);
  const idle = apply({ type: "attach", runner: "b", name: "b", want: 2, holding: [], slots: 1 }, 4);
  expect(idle).toContainEqual({ type: "steal", runner: "a", count: 2 });
  // Another idle runner before the holder answers: no second steal of it.
  const other = apply({ type: "attach", runner: "c", name: "c", want: 2, holding: [], slots: 1 }, 5);
  expect(other.filter((e) => e.type === "steal")).toEqual([]);

  // The holder had started w[1] too (its mark crossed the steal): it hands back its two latest unstarted.
  apply({ type: "started", runner: "a", tasks: [ref("w[1]")] }, 6);
  const back = apply({ type: "reject", runner: "a", tasks: [ref("w[7]"), ref("w[6]")] }, 7);
  const given = [...dispatched(back, "b"), ...dispatched(back, "c")].sort();
  expect(given).toEqual(["w[6]", "w[7]"]);
  expect(store.task("w[1]")).toMatchObject({ state: "leased", runner: "a", attempt: 1 });

  // A result for an attempt it handed back is stale; its others are taken.
  const late = apply(
    { type: "results", runner: "a", results: [ok(ref("w[0]"), "0"), ok(ref("w[7]"), "stale")], want: 0, received: 8 },
    8,
  );
  expect(strays(late)).toEqual([1]);
  for (const key of ["w[6]", "w[7]"]) {
    const row = store.task(key)!;
    expect(row).toMatchObject({ state: "leased", attempt: 2 });
    apply({ type: "results", runner: row.runner!, results: [ok(ref(key, 2), key)], want: 0, received: 1 }, 9);
  }
  const rest = ["w[1]", "w[2]", "w[3]", "w[4]", "w[5]"].map((key) => ok(ref(key), key));
  apply({ type: "results", runner: "a", results: rest, want: 0, received: 8 }, 10);
  acceptedOnce(
    store,
    Array.from({ length: 8 }, (_, i) => `w[${i}]`),
  );
  expect(store.runner("a")?.stealing).toBe(false);
}
