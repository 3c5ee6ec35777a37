import { describe, expect, it } from "vitest";
import type { TaskResult } from "../../core/protocol/messages";
import { transition, type Effect, type RunEvent } from "../../worker/run/machine";
import { failed, ok, plan } from "../helpers/run-fixtures";
import { MemoryStore } from "./memory-store";

function started(yaml: string): MemoryStore {
  const store = new MemoryStore();
  transition(store, { type: "start", plan: plan(yaml) }, 0);
  return store;
}
const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? e.tasks : []));
const attach = (store: MemoryStore, want: number, slots = 1) =>
  transition(store, { type: "attach", runner: "r", name: "r", want, holding: [], slots }, 1);
const results = (results: TaskResult[], want = 0): RunEvent => ({
  type: "results",
  runner: "r",
  results,
  want,
  received: 99,
});

describe("review: sent ahead", () => {
  it("BUG1: dependency mapped over (accepted via accept), its sent-ahead dependent in the same frame", () => {
    const store = started(`tasks:
  - { id: t, module: m }
  - { id: d, module: m, depends_on: [t] }
  - { id: fan, module: m, map: { over: t } }
`);
    const tasks = dispatched(attach(store, 3));
    console.log(tasks.map((x) => [x.task, x.attempt, x.after]));
    const t = tasks.find((x) => x.task === "t")!;
    const d = tasks.find((x) => x.task === "d")!;
    expect(d.after).toMatchObject({ task: "t", attempt: 1 });
    // An honest runner: t succeeds (output inline), d filled and run, results batched in one frame.
    const effects = transition(store, results([ok(t, "[1,2]"), ok(d, '"D"')], 2), 2);
    console.log(
      effects.filter((e) => e.type !== "demand"),
      store.task("d"),
      store.attempts.filter((a) => a.task === "d"),
    );
    // Expected: d succeeded (it ran on exactly the accepted output of t#1).
    expect(store.task("t")!.state).toBe("succeeded");
    expect(store.task("d")!.state).toBe("succeeded");
  });

  it("BUG2: two links sent ahead of t; one fails, the other's success in the same frame is ignored and stays leased", () => {
    const store = started(`tasks:
  - { id: t, module: m }
  - { id: d, module: m, depends_on: [t], retries: 0 }
  - { id: x, module: m, depends_on: [t], lost_retries: 0 }
`);
    const tasks = dispatched(attach(store, 3));
    console.log(tasks.map((x) => [x.task, x.attempt, x.after]));
    const [t, d, x] = ["t", "d", "x"].map((k) => tasks.find((a) => a.task === k)!);
    expect(d!.after).toBeDefined();
    expect(x!.after).toBeDefined();
    // t ok, d (run on t's output) fails, x (run on t's output) succeeds: one frame.
    const effects = transition(store, results([ok(t!, "1"), failed(d!, false), ok(x!, "2")], 2), 2);
    console.log(
      effects.filter((e) => e.type !== "demand"),
      store.task("x"),
      store.attempts.filter((a) => a.task === "x"),
    );
    expect(store.task("x")!.state).toBe("succeeded");
  });
});

describe("review: consequences", () => {
  it("BUG2b: the ignored success costs a loss; with lost_retries 0 the run fails", () => {
    const store = started(`tasks:
  - { id: t, module: m }
  - { id: d, module: m, depends_on: [t], retries: 0 }
  - { id: x, module: m, depends_on: [t], lost_retries: 0 }
`);
    const tasks = dispatched(attach(store, 3));
    const [t, d, x] = ["t", "d", "x"].map((k) => tasks.find((a) => a.task === k)!);
    const ev: RunEvent = {
      type: "results",
      runner: "r",
      results: [ok(t!, "1"), failed(d!, false), ok(x!, "2")],
      started: [t!, d!, x!],
      want: 0,
      received: 99,
    };
    transition(store, ev, 2);
    expect(store.task("x")!.state).toBe("leased");
    const effects = transition(store, { type: "tick" }, 2 + 30_000 + 15_000 + 1);
    console.log(effects.filter((e) => e.type !== "demand"), store.task("x"), store.status());
    expect(store.task("x")!.state).toBe("succeeded");
  });

  it("BUG2c: unrelated sent-ahead failure flushes `here`", () => {
    const store = started(`tasks:
  - { id: t, module: m }
  - { id: d, module: m, depends_on: [t] }
  - { id: s, module: m }
  - { id: y, module: m, depends_on: [s], retries: 0 }
`);
    const tasks = dispatched(attach(store, 4, 2));
    console.log(tasks.map((a) => [a.task, a.after]));
    const by = (k: string) => tasks.find((a) => a.task === k)!;
    transition(store, results([ok(by("t"), "1"), ok(by("s"), "2"), failed(by("y"), false), ok(by("d"), "3")]), 2);
    console.log(store.task("d"), store.attempts.filter((a) => a.task === "d"));
    expect(store.task("d")!.state).toBe("succeeded");
  });
});

describe("review: churn", () => {
  it("a link sent ahead of a long task is taken back and sent again every timeout+grace", () => {
    const store = started(`tasks:
  - { id: t, module: m, timeout: 10m }
  - { id: d, module: m, depends_on: [t], timeout: 5s }
`);
    const tasks = dispatched(attach(store, 3));
    console.log(tasks.map((a) => [a.task, a.attempt, a.after]));
    transition(store, { type: "started", runner: "r", tasks: [tasks[0]!] }, 2);
    let now = 2;
    for (let i = 0; i < 5; i++) {
      now += 20_001;
      const eff = transition(store, { type: "tick" }, now);
      transition(store, { type: "want", runner: "r", want: 2, received: 99 }, now);
      console.log(i, eff.filter((e) => e.type === "cancel" || e.type === "dispatch").map((e) => JSON.stringify(e).slice(0, 160)));
    }
    console.log(store.attempts.filter((a) => a.task === "d").map((a) => `${a.attempt}:${a.outcome}`));
  });
});
