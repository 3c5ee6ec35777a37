// Retrying a run that ended (the machine's `retry` event): its failed, skipped and cancelled
// tasks get new attempts in the same run, or only the named ones and their dependents; what
// succeeded keeps its accepted output, and a run that is running, or succeeded, refuses.
import { describe, expect, it } from "vitest";
import { IllegalTransition, transition, type Effect, type RunEvent } from "../../worker/run/machine";
import { failed, ok, plan } from "../helpers/run-fixtures";
import { MemoryStore } from "./memory-store";

const DAG = `defaults: { retries: 0, retry_delay: 0 }
tasks:
  - { id: good, module: m }
  - { id: flaky, module: m }
  - { id: after, module: m, depends_on: [flaky, good] }
  - { id: other, module: m }
  - { id: last, module: m, depends_on: [other] }
`;
const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? e.tasks : []));
const results = (store: MemoryStore, list: ReturnType<typeof ok>[], at: number) =>
  transition(store, { type: "results", runner: "r", results: list, want: 10, received: store.runner("r")!.sent }, at);

/** The run after one round: `good` succeeded, `flaky` (and `other` when asked) failed for good. */
function ended(failOther = false) {
  const store = new MemoryStore();
  transition(store, { type: "start", plan: plan(DAG) }, 0);
  const attach: RunEvent = { type: "attach", runner: "r", name: "r", want: 10, holding: [] };
  const by = new Map(dispatched(transition(store, attach, 1)).map((a) => [a.task, a]));
  const other = failOther ? failed(by.get("other")!) : ok(by.get("other")!, '"o"');
  const next = dispatched(results(store, [ok(by.get("good")!, '"g"'), failed(by.get("flaky")!), other], 2));
  if (!failOther)
    results(
      store,
      next.map((a) => ok(a, '"l"')),
      3,
    );
  return store;
}

describe("retry", () => {
  it("gives failed and skipped tasks new attempts in the same run; what succeeded keeps its output", () => {
    const store = ended();
    expect(store.status()).toBe("failed");
    expect([store.tasks.get("flaky")!.state, store.tasks.get("after")!.state]).toEqual(["failed", "skipped"]);
    const good = store.tasks.get("good")!.output;
    const effects = transition(store, { type: "retry" }, 10);
    expect(effects).toContainEqual({ type: "status", status: "running" });
    expect(store.finishedAt).toBeNull();
    expect([store.tasks.get("flaky")!.state, store.tasks.get("after")!.state]).toEqual(["ready", "blocked"]);
    expect(store.tasks.get("flaky")).toMatchObject({ failures: 0, losses: 0, attempt: 1 });
    // The first round's runner left with it: nothing is sent to it before it comes back.
    expect(store.runners()).toEqual([]);
    // A runner comes back: the retried task's next attempt is its second; the first round stays in its history.
    const attach: RunEvent = { type: "attach", runner: "r2", name: "r2", want: 10, holding: [] };
    const [again] = dispatched(transition(store, attach, 11));
    expect([again!.task, again!.attempt]).toEqual(["flaky", 2]);
    const round2 = transition(
      store,
      { type: "results", runner: "r2", results: [ok(again!, '"f"')], want: 10, received: 1 },
      12,
    );
    const [after] = dispatched(round2);
    expect(JSON.parse(after!.stdin).inputs).toEqual({ flaky: "f", good: "g" });
    const done = transition(
      store,
      { type: "results", runner: "r2", results: [ok(after!, '"a"')], want: 10, received: 2 },
      13,
    );
    expect(done).toContainEqual({ type: "finished", status: "succeeded" });
    expect(store.tasks.get("good")!.output).toBe(good);
    expect(store.attempts.filter((a) => a.task === "flaky").map((a) => a.outcome)).toEqual(["failed", "succeeded"]);
  });

  it("retries only the named task and its skipped dependents; a task still behind a failure is skipped again", () => {
    const store = ended(true);
    expect(["flaky", "other", "after", "last"].map((k) => store.tasks.get(k)!.state)).toEqual([
      "failed",
      "failed",
      "skipped",
      "skipped",
    ]);
    transition(store, { type: "retry", tasks: ["other"] }, 10);
    expect(["flaky", "other", "after", "last"].map((k) => store.tasks.get(k)!.state)).toEqual([
      "failed",
      "ready",
      "skipped",
      "blocked",
    ]);
    // `after` named as well, but `flaky` is not: it stays skipped behind the failure.
    const other = ended(true);
    transition(other, { type: "retry", tasks: ["after", "other"] }, 10);
    expect(other.tasks.get("after")!.state).toBe("skipped");
  });

  it("refuses a run that is running or succeeded, a task that succeeded or does not exist", () => {
    const refused = (store: MemoryStore, event: RunEvent) => {
      try {
        transition(store, event, 20);
      } catch (e) {
        expect(e).toBeInstanceOf(IllegalTransition);
        return (e as Error).message;
      }
      throw new Error("not refused");
    };
    const running = new MemoryStore();
    transition(running, { type: "start", plan: plan(DAG) }, 0);
    expect(refused(running, { type: "retry" })).toBe(
      'run is queued: cannot handle "retry" (only a run that ended failed or cancelled retries)',
    );
    const store = ended();
    expect(refused(store, { type: "retry", tasks: ["good"] })).toContain("good succeeded: its output stays");
    expect(refused(store, { type: "retry", tasks: ["nope"] })).toContain("the run has no task nope");
    expect(refused(store, { type: "retry", tasks: ["flaky[3]"] })).toContain("the run has no task flaky[3]");
    expect(store.status()).toBe("failed");
  });

  it("a retried task's ended attempt cannot be taken back by its runner: only a lost one resumes", () => {
    const store = ended();
    transition(store, { type: "retry" }, 10);
    const back: RunEvent = {
      type: "attach",
      runner: "r",
      name: "r",
      want: 0,
      holding: [{ task: "flaky", attempt: 1 }],
    };
    const effects = transition(store, back, 11);
    expect(effects).toContainEqual({ type: "cancel", runner: "r", tasks: [{ task: "flaky", attempt: 1 }] });
    expect(store.tasks.get("flaky")!.state).toBe("ready");
    expect(store.attempts.find((a) => a.task === "flaky" && a.attempt === 1)!.outcome).toBe("failed");
  });

  it("refuses a named retry that would run nothing, every task named still behind a failure", () => {
    const store = ended(true);
    expect(() => transition(store, { type: "retry", tasks: ["after"] }, 10)).toThrow(
      "every task named still waits for a failure not retried: name it too",
    );
  });

  it("names the source of a map over an output that never had instances", () => {
    const store = new MemoryStore();
    const dag =
      "defaults: { retries: 0 }\ntasks:\n  - { id: s, module: m }\n  - { id: each, module: m, map: { over: s } }\n";
    transition(store, { type: "start", plan: plan(dag) }, 0);
    const [s] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    transition(store, { type: "results", runner: "r", results: [failed(s!, false)], want: 1, received: 1 }, 2);
    expect(store.status()).toBe("failed");
    expect(() => transition(store, { type: "retry", tasks: ["each"] }, 3)).toThrow(
      "each has no instances yet: it maps over s, which did not succeed; retry s",
    );
    transition(store, { type: "retry", tasks: ["s"] }, 4);
    expect(store.tasks.get("s")!.state).toBe("ready");
  });

  it("brings back the tasks a cancel ended", () => {
    const store = new MemoryStore();
    transition(store, { type: "start", plan: plan(DAG) }, 0);
    transition(store, { type: "control", action: "cancel" }, 1);
    expect(store.status()).toBe("cancelled");
    transition(store, { type: "retry" }, 2);
    expect(store.status()).toBe("running");
    expect(["good", "flaky", "after"].map((k) => store.tasks.get(k)!.state)).toEqual(["ready", "ready", "blocked"]);
  });
});

describe("a linked retry's start", () => {
  it("takes the outputs it is given as its own, a map over one included, and runs only the rest", () => {
    const store = new MemoryStore();
    const dag = `tasks:
  - { id: split, module: m }
  - { id: each, module: m, map: { over: split } }
  - { id: sum, module: m, depends_on: [each] }
  - { id: side, module: m }
`;
    const bytes = (text: string) => new TextEncoder().encode(text);
    const seeds = [
      { task: "split", output: bytes("[1,2]") },
      { task: "each[0]", output: bytes("10") },
      { task: "side", output: bytes('"s"') },
    ];
    transition(store, { type: "start", plan: plan(dag), from: "a".repeat(64), seeds }, 0);
    expect(["split", "each[0]", "each[1]", "side", "sum"].map((k) => store.tasks.get(k)?.state)).toEqual([
      "succeeded",
      "succeeded",
      "ready",
      "succeeded",
      "blocked",
    ]);
    expect(store.attempts.find((a) => a.task === "each[0]")).toMatchObject({
      outcome: "cached",
      runner: `run:${"a".repeat(64)}`,
      note: `the output accepted in run ${"a".repeat(64)}, reused`,
    });
    const attach: RunEvent = { type: "attach", runner: "r", name: "r", want: 5, holding: [] };
    const [one] = dispatched(transition(store, attach, 1));
    expect(one!.task).toBe("each[1]");
    const [sum] = dispatched(
      transition(store, { type: "results", runner: "r", results: [ok(one!, "20")], want: 5, received: 1 }, 2),
    );
    expect(JSON.parse(sum!.stdin).inputs).toEqual({ each: [10, 20] });
  });
});
