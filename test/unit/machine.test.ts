// The run state machine, driven directly over an in-memory store: dispatch order and credit,
// the task envelope, retries and failures, stale results, lost runners, and the property over
// random DAGs with random runners and failures (test/helpers/machine-property.ts; the workers
// project runs it over SqlStore too).
import { describe, expect, it } from "vitest";
import { fillEnvelope } from "../../core/abi";
import type { TaskResult } from "../../core/protocol/messages";
import {
  cacheMaterial,
  envelopeOf,
  IllegalTransition,
  transition,
  type Effect,
  type RunEvent,
} from "../../worker/run/machine";
import { checkMachineProperty } from "../helpers/machine-property";
import { halfStaleBatch, stealRacingStart } from "../helpers/prefetch-scenarios";
import { failed, ok, plan } from "../helpers/run-fixtures";
import { MemoryStore } from "./memory-store";

function started(yaml: string): MemoryStore {
  const store = new MemoryStore();
  transition(store, { type: "start", plan: plan(yaml) }, 0);
  return store;
}

/** Tasks sent to `runner` so far: in these tests every dispatch reaches the runner at once. */
const sent = (store: MemoryStore, runner: string) => store.runner(runner)?.sent ?? 0;
const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? e.tasks : []));

describe("transition", () => {
  it("dispatches no more than a runner's credit, highest priority first, then in submission order", () => {
    const store = started(`
tasks:
  - { id: low, module: m }
  - { id: high, module: m, priority: 5 }
  - { id: mid, module: m, map: { range: [0, 3] } }
`);
    const effects = transition(store, { type: "attach", runner: "r", name: "r", want: 2, holding: [] }, 1);
    expect(dispatched(effects).map((a) => a.task)).toEqual(["high", "low"]);
    expect(effects).toContainEqual({ type: "demand", classes: [{ requires: null, priority: 0 }] });
    expect(effects).toContainEqual({ type: "status", status: "running" });
    expect(store.runner("r")!.credit).toBe(0);
  });

  it("gives a runner only tasks whose requires it meets, and reports the rest as demand by class", () => {
    const store = started(`
tasks:
  - { id: plain, module: m, map: { range: [0, 2] } }
  - { id: render, module: m, priority: 3, requires: { labels: [gpu], memory: 1GiB } }
  - { id: arm, module: m, requires: { arch: aarch64 } }
`);
    const cpu = { memory: 8 * 1024 ** 3, cores: 4, labels: ["fast"], arch: "x64", platform: "linux" };
    const first = transition(store, { type: "attach", runner: "cpu", name: "cpu", want: 5, holding: [], caps: cpu }, 1);
    expect(dispatched(first).map((a) => a.task)).toEqual(["plain[0]", "plain[1]"]);
    expect(first).toContainEqual({
      type: "demand",
      classes: [
        { requires: { labels: ["gpu"], memory: 1024 ** 3 }, priority: 3 },
        { requires: { arch: "aarch64" }, priority: 0 },
      ],
    });
    // A runner without a device report takes no constrained task either.
    expect(
      dispatched(transition(store, { type: "attach", runner: "bare", name: "bare", want: 5, holding: [] }, 2)),
    ).toEqual([]);
    const gpu = { ...cpu, labels: ["gpu"] };
    expect(
      dispatched(
        transition(store, { type: "attach", runner: "gpu", name: "gpu", want: 5, holding: [], caps: gpu }, 3),
      ).map((a) => a.task),
    ).toEqual(["render"]);
    const phone = { ...cpu, memory: 512 * 1024 ** 2, arch: "arm64", platform: "android" };
    const last = transition(
      store,
      { type: "attach", runner: "phone", name: "phone", want: 5, holding: [], caps: phone },
      4,
    );
    expect(dispatched(last).map((a) => a.task)).toEqual(["arm"]);
    expect(last).toContainEqual({ type: "demand", classes: [] });
  });

  it("gives dependents the accepted outputs and keeps mapped outputs in index order", () => {
    const store = started(`
tasks:
  - { id: a, module: m }
  - { id: b, module: m, depends_on: [a], map: { items: [p, q] } }
  - { id: c, module: m, depends_on: [b, a] }
`);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 2, holding: [] }, 1));
    const bs = dispatched(
      transition(
        store,
        { type: "results", runner: "r", results: [ok(a!, `{"n":1}`)], want: 2, received: sent(store, "r") },
        2,
      ),
    );
    expect(bs.map((x) => x.task)).toEqual(["b[0]", "b[1]"]);
    expect(JSON.parse(bs[1]!.stdin)).toMatchObject({ inputs: { a: { n: 1 } }, item: "q", index: 1 });
    const [c] = dispatched(
      transition(
        store,
        {
          type: "results",
          runner: "r",
          results: [ok(bs[1]!, `"Q"`), ok(bs[0]!, `"P"`)],
          want: 2,
          received: sent(store, "r"),
        },
        3,
      ),
    );
    expect(JSON.parse(c!.stdin).inputs).toEqual({ b: ["P", "Q"], a: { n: 1 } });
    const end = transition(
      store,
      { type: "results", runner: "r", results: [ok(c!, "1")], want: 2, received: sent(store, "r") },
      4,
    );
    expect(end).toContainEqual({ type: "finished", status: "succeeded" });
  });

  it("retries a retryable failure, then fails the task and skips everything downstream", () => {
    const store = started(`
tasks:
  - { id: a, module: m, retries: 1, retry_delay: 1s }
  - { id: b, module: m, depends_on: [a] }
  - { id: c, module: m, depends_on: [b] }
  - { id: free, module: m }
`);
    const [first, other] = dispatched(
      transition(store, { type: "attach", runner: "r", name: "r", want: 2, holding: [] }, 1),
    );
    expect(first!.task).toBe("a");
    let effects = transition(
      store,
      { type: "results", runner: "r", results: [failed(first!), ok(other!, "1")], want: 1, received: sent(store, "r") },
      2,
    );
    expect(dispatched(effects)).toEqual([]);
    expect(store.task("a")!.state).toBe("backoff");
    expect(store.nextDeadline()).toBe(1002);
    expect(dispatched(transition(store, { type: "tick" }, 1001))).toEqual([]);
    const [retry] = dispatched(transition(store, { type: "tick" }, 1002));
    expect(retry).toMatchObject({ task: "a", attempt: 2 });
    effects = transition(
      store,
      { type: "results", runner: "r", results: [failed(retry!)], want: 1, received: sent(store, "r") },
      1003,
    );
    expect(effects).toContainEqual({ type: "finished", status: "failed" });
    expect(store.task("a")!.state).toBe("failed");
    expect(store.task("b")!.state).toBe("skipped");
    expect(store.task("c")!.state).toBe("skipped");
    expect(store.attempts.filter((x) => x.task === "a").map((x) => x.outcome)).toEqual(["failed", "failed"]);
  });

  it("does not retry a failure marked not retryable", () => {
    const store = started(`tasks: [{ id: a, module: m, retries: 5 }]`);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    const effects = transition(
      store,
      { type: "results", runner: "r", results: [failed(a!, false)], want: 1, received: sent(store, "r") },
      2,
    );
    expect(effects).toContainEqual({ type: "finished", status: "failed" });
    expect(store.attempts).toHaveLength(1);
  });

  it("ignores a result from another runner or for an older attempt", () => {
    const store = started(`tasks: [{ id: a, module: m }]`);
    transition(store, { type: "attach", runner: "r1", name: "r1", want: 1, holding: [] }, 1);
    transition(store, { type: "attach", runner: "r2", name: "r2", want: 1, holding: [] }, 1);
    const lease = store.task("a")!;
    const stranger = lease.runner === "r1" ? "r2" : "r1";
    transition(
      store,
      {
        type: "results",
        runner: stranger,
        results: [{ ...ok({ task: "a", attempt: 1 }, "x") }],
        want: 1,
        received: sent(store, stranger),
      },
      2,
    );
    expect(store.task("a")!.state).toBe("leased");
    transition(
      store,
      {
        type: "results",
        runner: lease.runner!,
        results: [{ ...ok({ task: "a", attempt: 9 }, "x") }],
        want: 1,
        received: sent(store, lease.runner!),
      },
      2,
    );
    expect(store.task("a")!.state).toBe("leased");
  });

  it("re-queues a departed runner's attempts and takes back rejected tasks without charging them", () => {
    const store = started(`tasks: [{ id: a, module: m, retries: 0 }, { id: b, module: m, retries: 0 }]`);
    transition(store, { type: "attach", runner: "r1", name: "r1", want: 2, holding: [] }, 1);
    const effects = transition(store, { type: "reject", runner: "r1", tasks: [{ task: "b", attempt: 1 }] }, 2);
    expect(store.task("b")).toMatchObject({ state: "ready", failures: 0 });
    expect(effects).toContainEqual({ type: "demand", classes: [{ requires: null, priority: 0 }] });
    // A lost attempt costs lost_retries, never retries: with none to spare, the task runs again.
    const detached = transition(store, { type: "detach", runner: "r1" }, 3);
    expect(store.task("a")).toMatchObject({ state: "ready", failures: 0, losses: 1 });
    expect(store.attempts.find((x) => x.task === "a")).toMatchObject({ outcome: "lost", failure: { kind: "lost" } });
    expect(detached).toContainEqual({ type: "lost", runner: "r1", attempts: 1 });
  });

  it("tells each attached runner its backlog when it goes from none to some or back, in a frame of no tasks", () => {
    const store = started(
      `tasks: [{ id: a, module: m }, { id: b, module: m }, { id: x, module: m, requires: { labels: [x] } }]`,
    );
    const told = (effects: Effect[], runner: string) =>
      effects
        .filter((e) => e.type === "dispatch" && e.runner === runner)
        .map((e) => e.type === "dispatch" && e.backlog);
    // Attached with no credit, the runner hears the 2 tasks it could take (not the one needing x).
    expect(
      told(transition(store, { type: "attach", runner: "idle", name: "idle", want: 0, holding: [] }, 1), "idle"),
    ).toEqual([2]);
    // Another runner takes both: the first hears its backlog is none, once.
    const taken = transition(store, { type: "attach", runner: "busy", name: "busy", want: 2, holding: [] }, 2);
    expect(dispatched(taken)).toHaveLength(2);
    expect(taken).toContainEqual({ type: "dispatch", runner: "idle", tasks: [], backlog: 0 });
    expect(told(transition(store, { type: "want", runner: "busy", want: 0, received: 2 }, 3), "idle")).toEqual([]);
    // A task handed back is ready again: both hear of it.
    const back = transition(store, { type: "reject", runner: "busy", tasks: [{ task: "b", attempt: 1 }] }, 4);
    expect(told(back, "idle")).toEqual([1]);
    expect(told(back, "busy")).toEqual([1]);
    // Paused, there is nothing to take.
    expect(told(transition(store, { type: "control", action: "pause" }, 5), "idle")).toEqual([0]);
  });

  it("is refused by the in-memory store where SQLite in the object refuses: a value over 2 MB", () => {
    const planned = plan(`tasks: [{ id: t, module: m, map: { items: [1] } }]`);
    const node = planned.nodes[0]!;
    const big = {
      ...planned,
      nodes: [{ ...node, items: Array.from({ length: 30_000 }, (_, i) => "x".repeat(90) + i) }],
    };
    expect(() => transition(new MemoryStore(), { type: "start", plan: big }, 0)).toThrow(/SQLITE_TOOBIG/);
  });

  it("never leaves a runner holding more than 9 × its slots (at most maxHeld), however often it asks", () => {
    const store = started(`tasks: [{ id: w, module: m, map: { range: [0, 100] } }]`);
    const config = { leaseGraceMs: 1000, maxHeld: 36 };
    const hello = { type: "attach" as const, name: "g", want: 100, holding: [] };
    transition(store, { ...hello, runner: "greedy", slots: 2 }, 1, config);
    expect(store.leasedTo("greedy")).toHaveLength(18);
    for (let i = 0; i < 3; i++)
      transition(store, { type: "want", runner: "greedy", want: 100, received: sent(store, "greedy") }, 2 + i, config);
    expect(store.leasedTo("greedy")).toHaveLength(18);
    // However many slots it claims, it holds at most its device's cap; one that says none, as one slot.
    transition(store, { ...hello, runner: "liar", slots: 1000 }, 5, config);
    expect(store.leasedTo("liar")).toHaveLength(36);
    transition(store, { ...hello, runner: "none", slots: 0 }, 6, config);
    expect(store.leasedTo("none")).toHaveLength(9);
  });

  it("lets no runner resume an attempt that was not its own, nor one whose requires it does not meet", () => {
    const store = started(`tasks: [{ id: a, module: m }, { id: g, module: m, requires: { labels: [gpu] } }]`);
    const gpu = { memory: 2 ** 30, cores: 4, labels: ["gpu"], arch: "x64", platform: "linux" };
    transition(store, { type: "attach", runner: "victim", name: "v", want: 2, holding: [], caps: gpu }, 1);
    expect(store.task("g")).toMatchObject({ state: "leased", runner: "victim", attempt: 1 });
    transition(store, { type: "detach", runner: "victim" }, 2);
    const holding = [
      { task: "a", attempt: 1 },
      { task: "g", attempt: 1 },
    ];
    const thief = transition(store, { type: "attach", runner: "thief", name: "t", want: 0, holding }, 3);
    expect(store.task("a")).toMatchObject({ state: "ready", runner: null });
    expect(store.task("g")).toMatchObject({ state: "ready", runner: null });
    expect(thief).toContainEqual({ type: "cancel", runner: "thief", tasks: holding });
    // The victim, back with the label, resumes its own; without the label it could not.
    const plain = { ...gpu, labels: [] };
    transition(store, { type: "attach", runner: "victim", name: "v", want: 0, holding, caps: plain }, 4);
    expect(store.task("g")).toMatchObject({ state: "ready" });
    transition(store, { type: "attach", runner: "victim", name: "v", want: 0, holding, caps: gpu }, 5);
    expect(store.task("g")).toMatchObject({ state: "leased", runner: "victim", attempt: 1, losses: 1 });
    expect(store.task("a")).toMatchObject({ state: "leased", runner: "victim", attempt: 1 });
  });

  it("fails a task once its lost attempts pass its lost_retries, and counts frames about attempts not held", () => {
    const store = started(`tasks: [{ id: a, module: m, lost_retries: 1 }]`);
    for (const [i, runner] of ["r1", "r2"].entries()) {
      transition(store, { type: "attach", runner, name: runner, want: 1, holding: [] }, 10 * i);
      transition(store, { type: "detach", runner }, 10 * i + 1);
    }
    expect(store.task("a")).toMatchObject({ state: "failed", failures: 0, losses: 2 });
    const late = transition(
      store,
      { type: "results", runner: "r3", results: [ok({ task: "a", attempt: 2 }, "x")], want: 0, received: 0 },
      30,
    );
    expect(late).toContainEqual({ type: "stray", runner: "r3", frames: 1 });
  });

  it("sends a cooled-down runner nothing until its cool-down ends, then dispatches at that deadline", () => {
    const store = started(`tasks: [{ id: a, module: m }]`);
    transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [], cooledUntil: 100 }, 1);
    expect(store.task("a")!.state).toBe("ready");
    expect(store.nextDeadline()).toBe(100);
    transition(store, { type: "tick" }, 100);
    expect(store.task("a")).toMatchObject({ state: "leased", runner: "r" });
    const other = started(`tasks: [{ id: a, module: m }, { id: b, module: m }]`);
    transition(other, { type: "attach", runner: "s", name: "s", want: 1, holding: [] }, 1);
    transition(other, { type: "cool", runner: "s", until: 50 }, 2);
    transition(other, { type: "want", runner: "s", want: 2, received: 1 }, 3);
    expect(other.task("b")!.state).toBe("ready");
    transition(other, { type: "tick" }, 50);
    expect(other.task("b")).toMatchObject({ state: "leased", runner: "s" });
  });

  it("discounts tasks still in flight when a runner's want crosses a dispatch", () => {
    const store = started(
      `tasks: [{ id: a, module: m }, { id: b, module: m }, { id: c, module: m }, { id: d, module: m }]`,
    );
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    // The runner grants one more before it has seen `a`: only one new task may go out, not two.
    const more = dispatched(transition(store, { type: "want", runner: "r", want: 1, received: 0 }, 2));
    expect(more).toHaveLength(0);
    const after = dispatched(
      transition(store, { type: "results", runner: "r", results: [ok(a!, "1")], want: 2, received: 1 }, 3),
    );
    expect(after.map((x) => x.task)).toEqual(["b", "c"]);
  });

  it("expires a lease at timeout plus grace from the start the runner said, and hands the task to another runner", () => {
    const store = started(`tasks: [{ id: a, module: m, timeout: 10s }]`);
    transition(store, { type: "attach", runner: "frozen", name: "f", want: 1, holding: [] }, 1);
    expect(store.task("a")).toMatchObject({ runner: "frozen", attempt: 1 });
    // Held and not started, its lease runs from the dispatch.
    expect(store.nextDeadline()).toBe(1 + 10_000 + 15_000);
    transition(store, { type: "started", runner: "frozen", tasks: [{ task: "a", attempt: 1 }] }, 1_000);
    // A second mark of the same start moves nothing.
    transition(
      store,
      { type: "want", runner: "frozen", want: 0, received: 1, started: [{ task: "a", attempt: 1 }] },
      9_000,
    );
    expect(store.deadlines.get("lease:a")?.at).toBe(1_000 + 10_000 + 15_000);
    transition(store, { type: "attach", runner: "other", name: "o", want: 1, holding: [] }, 25_999);
    expect(dispatched(transition(store, { type: "tick" }, 25_999))).toEqual([]);
    const effects = transition(store, { type: "tick" }, 26_000);
    expect(dispatched(effects)).toEqual([expect.objectContaining({ task: "a", attempt: 2 })]);
    expect(store.attempts[0]).toMatchObject({ runner: "frozen", outcome: "lost", failure: { kind: "lost" } });
    // The frozen runner's late result is ignored, and the history says so.
    transition(
      store,
      {
        type: "results",
        runner: "frozen",
        results: [ok({ task: "a", attempt: 1 }, "late")],
        want: 1,
        received: 1,
      },
      27_000,
    );
    expect(store.task("a")).toMatchObject({ state: "leased", attempt: 2, runner: "other" });
    expect(store.attempts[0]!.note).toMatch(/arrived after the attempt had ended; ignored/);
  });

  it("lets a reconnecting runner keep, take back or stop the attempts it holds", () => {
    const store = started(`tasks: [{ id: a, module: m }, { id: b, module: m }, { id: c, module: m }]`);
    transition(store, { type: "attach", runner: "r", name: "r", want: 3, holding: [] }, 0);
    // The coordinator restarted: r's socket is gone, its leases wait for it.
    transition(store, { type: "forget", runner: "r" }, 10);
    expect(store.task("a")).toMatchObject({ state: "leased", runner: "r" });
    // b's attempt was lost meanwhile (its lease ran out): re-queued, not handed out yet.
    store.updateTask("b", { state: "ready", runner: null, failures: 1 });
    const lost = { kind: "lost", message: "presumed lost", retryable: true } as const;
    store.endAttempt("b", 1, { endedAt: 15, outcome: "lost", failure: lost, stderr: "" });
    // r comes back holding a (still its own), b (re-queued), and an old attempt of c.
    const effects = transition(
      store,
      {
        type: "attach",
        runner: "r",
        name: "r",
        want: 0,
        holding: [
          { task: "a", attempt: 1 },
          { task: "b", attempt: 1 },
          { task: "c", attempt: 9 },
        ],
      },
      20,
    );
    expect(store.task("a")).toMatchObject({ state: "leased", runner: "r", attempt: 1 });
    expect(store.task("b")).toMatchObject({ state: "leased", runner: "r", attempt: 1, losses: 0 });
    expect(effects).toContainEqual({ type: "cancel", runner: "r", tasks: [{ task: "c", attempt: 9 }] });
    // c's real attempt 1, which r no longer holds, is lost and re-queued.
    expect(store.task("c")).toMatchObject({ state: "ready", attempt: 1 });
  });

  it("cancels: open tasks end cancelled, running attempts are stopped, the run finishes", () => {
    const store = started(`tasks: [{ id: a, module: m }, { id: b, module: m, depends_on: [a] }, { id: c, module: m }]`);
    transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 0);
    const effects = transition(store, { type: "control", action: "cancel" }, 5);
    expect(effects).toContainEqual({ type: "cancel", runner: "r", tasks: [{ task: "a", attempt: 1 }] });
    expect(effects).toContainEqual({ type: "finished", status: "cancelled" });
    expect(store.counts()).toMatchObject({ cancelled: 3, leased: 0, ready: 0, blocked: 0 });
    expect(store.nextDeadline()).toBeNull();
    expect(() => transition(store, { type: "control", action: "cancel" }, 6)).toThrow(
      /run is cancelled: cannot handle "cancel"/,
    );
  });

  it("pauses: running attempts finish, nothing new goes out until resume", () => {
    const store = started(`tasks: [{ id: a, module: m }, { id: b, module: m }]`);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 0));
    expect(transition(store, { type: "control", action: "pause" }, 1)).toContainEqual({
      type: "status",
      status: "paused",
    });
    const during = transition(store, { type: "results", runner: "r", results: [ok(a!, "1")], want: 1, received: 1 }, 2);
    expect(dispatched(during)).toEqual([]);
    expect(store.task("a")!.state).toBe("succeeded");
    const resumed = transition(store, { type: "control", action: "resume" }, 3);
    expect(dispatched(resumed).map((x) => x.task)).toEqual(["b"]);
    expect(() => transition(store, { type: "control", action: "resume" }, 4)).toThrow(/only a paused run resumes/);
  });

  it("asks the cache before a task is ready: a hit succeeds without dispatch, a miss runs and is filed", () => {
    const store = started(`
tasks:
  - { id: a, module: m }
  - { id: b, module: m, depends_on: [a] }
  - { id: c, module: m, depends_on: [a], cache: false }
`);
    expect(store.task("a")!.state).toBe("lookup");
    const attached = transition(store, { type: "attach", runner: "r", name: "r", want: 2, holding: [] }, 1);
    expect(dispatched(attached)).toEqual([]);
    expect(attached).toContainEqual({ type: "lookup" });
    const material = cacheMaterial(store, store.task("a")!);
    expect(JSON.parse(material)[3]).toContain(`"attempt":0`);
    const hit = transition(
      store,
      { type: "looked_up", hits: [{ task: "a", output: new TextEncoder().encode(`{"v":1}`) }], misses: [] },
      2,
    );
    expect(store.task("a")).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(store.attempts[0]).toMatchObject({ runner: "cache", outcome: "cached" });
    // b waits for the cache, c (cache: false) is dispatched at once with a's cached output.
    expect(dispatched(hit).map((x) => [x.task, JSON.parse(x.stdin).inputs.a])).toEqual([["c", { v: 1 }]]);
    expect(store.task("b")!.state).toBe("lookup");
    const miss = transition(store, { type: "looked_up", hits: [], misses: [{ task: "b", key: "k-b" }] }, 3);
    const [b] = dispatched(miss);
    expect(b!.task).toBe("b");
    const done = transition(
      store,
      { type: "results", runner: "r", results: [ok(b!, "2")], want: 2, received: sent(store, "r") },
      4,
    );
    expect(done).toContainEqual({ type: "cache", entries: [{ key: "k-b", task: "b", runner: "r" }] });
  });

  it("refuses to start twice, naming the status", () => {
    const store = started(`tasks: [{ id: a, module: m }]`);
    expect(() => transition(store, { type: "start", plan: plan(`tasks: [{ id: a, module: m }]`) }, 1)).toThrow(
      IllegalTransition,
    );
    expect(() => transition(store, { type: "want", runner: "ghost", want: 1, received: 0 }, 1)).toThrow(
      /run is queued: cannot handle "want"/,
    );
  });
});

describe("property: random DAGs, runners and failures", () => {
  it("runs every task to one accepted result, each after all it depends on, with its inputs", () => {
    checkMachineProperty({ fresh: () => new MemoryStore(), transaction: (apply) => apply() });
  });
});

describe("prefetch and work stealing", () => {
  const over = (store: MemoryStore) => (event: RunEvent, now: number) => transition(store, event, now);
  it("takes the valid half of a results frame that is half stale, and only that", () => {
    const store = new MemoryStore();
    halfStaleBatch(store, over(store));
  });
  it("hands an idle runner only attempts the holder had not started when a steal races a start", () => {
    const store = new MemoryStore();
    stealRacingStart(store, over(store));
  });
  it("tells the victim of a steal when the work it handed back is ready again (a steal in one event with its backlog)", () => {
    const store = started(`tasks: [{ id: w, module: m, map: { range: [0, 6] } }]`);
    transition(store, { type: "attach", runner: "holder", name: "h", want: 4, holding: [], slots: 1 }, 1);
    // The thief takes the last two and asks for one more: in that one event the holder hears it
    // has no backlog, and is asked to give one back.
    const both = transition(store, { type: "attach", runner: "thief", name: "t", want: 3, holding: [], slots: 2 }, 2);
    expect(both).toContainEqual({ type: "dispatch", runner: "holder", tasks: [], backlog: 0 });
    expect(both).toContainEqual({ type: "steal", runner: "holder", count: 1 });
    // It hands back three: the thief takes one, and the holder must hear that two are ready
    // (its slot allocator keeps no room for a run it was told has none: the run would stall).
    const handed = [1, 2, 3].map((i) => ({ task: `w[${i}]`, attempt: 1 }));
    const back = transition(store, { type: "reject", runner: "holder", tasks: handed }, 3);
    expect(dispatched(back).map((t) => t.task)).toHaveLength(1);
    expect(back).toContainEqual({ type: "dispatch", runner: "holder", tasks: [], backlog: 2 });
  });
});

describe("held attempts", () => {
  it("are lost at timeout plus grace from their dispatch unless started; a started one's lease runs from its start", () => {
    const store = started(`tasks: [{ id: w, module: m, timeout: 10s, map: { range: [0, 3] } }]`);
    transition(store, { type: "attach", runner: "hoarder", name: "h", want: 3, holding: [], slots: 1 }, 1);
    expect(store.leasedTo("hoarder")).toHaveLength(3);
    // One row for all three: the earliest end of their leases.
    expect([...store.deadlines.values()]).toEqual([{ kind: "hold", key: "hoarder", at: 25_001 }]);
    transition(store, { type: "started", runner: "hoarder", tasks: [{ task: "w[0]", attempt: 1 }] }, 5_000);
    // An attempt's start is when its runner said it started it, not when it was sent.
    const startOf = (task: string) => store.attempts.find((a) => a.task === task)!.startedAt;
    expect([startOf("w[0]"), startOf("w[1]")]).toEqual([5_000, 1]);
    transition(store, { type: "tick" }, 25_001);
    expect(store.leasedTo("hoarder").map((r) => r.key)).toEqual(["w[0]"]);
    expect(store.task("w[1]")).toMatchObject({ state: "ready", losses: 1 });
    expect(store.attempts.find((a) => a.task === "w[2]")).toMatchObject({ outcome: "lost" });
    transition(store, { type: "tick" }, 29_999);
    expect(store.task("w[0]")).toMatchObject({ state: "leased", runner: "hoarder" });
    transition(store, { type: "tick" }, 30_000);
    expect(store.task("w[0]")).toMatchObject({ state: "ready", losses: 1 });
  });
});

describe("an attempt's start", () => {
  it("is when its runner said it started it, or when its result says it began when it said nothing", () => {
    const store = started(`tasks: [{ id: w, module: m, map: { range: [0, 3] } }]`);
    transition(store, { type: "attach", runner: "r", name: "r", want: 3, holding: [], slots: 1 }, 1);
    const startOf = (task: string) => store.attempts.find((a) => a.task === task)!.startedAt;
    transition(store, { type: "started", runner: "r", tasks: [{ task: "w[0]", attempt: 1 }] }, 2_000);
    // w[1]'s result comes before any word of its start: it ran 1.5 s of the 7 since it was sent.
    const quick = { ...ok({ task: "w[1]", attempt: 1 }, "1"), durationMs: 1_500 };
    transition(store, { type: "results", runner: "r", results: [quick], want: 0, received: 3 }, 7_000);
    // A result claiming it ran for longer than it was held starts it no earlier than its dispatch.
    const long = { ...ok({ task: "w[2]", attempt: 1 }, "2"), durationMs: 1e9 };
    transition(store, { type: "results", runner: "r", results: [long], want: 0, received: 3 }, 8_000);
    expect([startOf("w[0]"), startOf("w[1]"), startOf("w[2]")]).toEqual([2_000, 5_500, 1]);
  });
});

describe("a run's last tasks", () => {
  it("go out by slots when the runners ask for more, and what one's small credit leaves goes to the others", () => {
    const store = started(
      `tasks: [{ id: a, module: m }, { id: w, module: m, depends_on: [a], map: { range: [0, 10] } }]`,
    );
    transition(store, { type: "attach", runner: "small", name: "s", want: 1, holding: [], slots: 2 }, 1);
    transition(store, { type: "attach", runner: "big", name: "b", want: 18, holding: [], slots: 2 }, 2);
    // small's result makes all ten ready while both ask for more than that.
    const result: RunEvent = {
      type: "results",
      runner: "small",
      results: [ok({ task: "a", attempt: 1 }, "0")],
      want: 1,
      received: 1,
    };
    transition(store, result, 3);
    expect(store.counts().ready).toBe(0);
    expect([store.leasedTo("small").length, store.leasedTo("big").length]).toEqual([1, 9]);
  });
});

describe("a chain's links sent ahead", () => {
  const chain = `tasks:
  - { id: a, module: m, retries: 2, retry_delay: 0 }
  - { id: b, module: m, depends_on: [a], params: { n: 1 } }
  - { id: c, module: m, depends_on: [b] }
  - { id: d, module: m, depends_on: [c] }
`;
  const attach = (store: MemoryStore, want: number) =>
    transition(store, { type: "attach", runner: "r", name: "r", want, holding: [], slots: 1 }, 1);
  /** The runner is told to drop b#1 and c#1, sent ahead of a#1. */
  const dropBoth: Effect = {
    type: "cancel",
    runner: "r",
    tasks: [
      { task: "b", attempt: 1 },
      { task: "c", attempt: 1 },
    ],
  };
  const results = (results: TaskResult[], want = 0): RunEvent => ({
    type: "results",
    runner: "r",
    results,
    want,
    received: 99,
  });

  it("go to the runner holding what they wait for, only beyond its slots, each filled in as the run would", () => {
    const store = started(chain);
    // 1 slot and a want of 3: a runs, b and c wait on the runner for the attempt before them.
    const tasks = dispatched(attach(store, 3));
    expect(tasks.map((t) => [t.task, t.after && `${t.after.task}#${t.after.attempt}`])).toEqual([
      ["a", undefined],
      ["b", "a#1"],
      ["c", "b#1"],
    ]);
    expect(store.task("b")!.state).toBe("leased");
    expect(store.node("b").pendingDeps).toBe(1);
    // With a want no larger than its slots a runner is sent nothing ahead.
    const other = started(chain);
    expect(dispatched(attach(other, 1)).map((t) => t.task)).toEqual(["a"]);
    // a and b succeed in one frame, b run on a's output as the runner fills it in.
    const output = new TextEncoder().encode('{"x": [1, 2.50]}');
    const b = tasks[1]!;
    const filled = fillEnvelope(b.stdin, b.after!.at, output);
    transition(store, results([ok(tasks[0]!, '{"x": [1, 2.50]}'), ok(b, "7")]), 2);
    expect(store.task("a")!.state).toBe("succeeded");
    expect(store.task("b")!.state).toBe("succeeded");
    // What b ran with is what the run gives b once a is accepted.
    expect(filled).toBe(envelopeOf(store, store.task("b")!, 1));
    expect(JSON.parse(filled)).toMatchObject({ task: "b", params: { n: 1 }, inputs: { a: { x: [1, 2.5] } } });
    expect(store.counts()).toMatchObject({ succeeded: 2, leased: 1, blocked: 1 });
  });

  it("are taken back, costing nothing, when what they wait for fails or is lost", () => {
    const store = started(chain);
    const [a, , c] = dispatched(attach(store, 3));
    const effects = transition(store, results([failed(a!)], 0), 2);
    // b and c wait again, their attempts returned, and the runner is told to drop them.
    expect(effects).toContainEqual(dropBoth);
    expect([store.task("b")!.state, store.task("c")!.state]).toEqual(["blocked", "blocked"]);
    expect(store.attempts.filter((x) => x.task !== "a").map((x) => x.outcome)).toEqual(["returned", "returned"]);
    expect([store.task("b")!.failures, store.task("b")!.losses]).toEqual([0, 0]);
    // The retry of a goes out with b sent ahead again, as attempt 2; the runner drops nothing it
    // is told about twice: a reject of c#1 now is no stray.
    const again = dispatched(transition(store, { type: "want", runner: "r", want: 2, received: 99 }, 3));
    expect(again.map((t) => `${t.task}#${t.attempt}`)).toEqual(["a#2", "b#2"]);
    expect(transition(store, { type: "reject", runner: "r", tasks: [c!] }, 4)).not.toContainEqual(
      expect.objectContaining({ type: "stray" }),
    );
    // The runner goes: a is lost (charged to its lost_retries), b only goes back to wait.
    transition(store, { type: "detach", runner: "r" }, 5);
    expect(store.task("a")).toMatchObject({ state: "ready", losses: 1 });
    expect(store.task("b")).toMatchObject({ state: "blocked", losses: 0, failures: 0 });
    expect(store.attempts.find((x) => x.task === "b" && x.attempt === 2)!.outcome).toBe("returned");
  });

  it("ignore a result of one that comes before the result it waited for, and take it back", () => {
    const store = started(chain);
    const [a, b] = dispatched(attach(store, 3));
    const effects = transition(store, results([ok(b!, "1")]), 2);
    expect(effects).toContainEqual({ type: "stray", runner: "r", frames: 1 });
    expect(effects).toContainEqual(dropBoth);
    expect(store.attempts.find((x) => x.task === "b")).toMatchObject({
      outcome: "returned",
      note: expect.stringMatching(/before the attempt it needed the output of had succeeded; ignored/),
    });
    // a's own result still counts, and b then goes out again (ahead of nothing: it is ready).
    const next = dispatched(transition(store, results([ok(a!, "0")], 1), 3));
    expect(next.map((t) => [t.task, t.attempt, t.after])).toEqual([["b", 2, undefined]]);
  });

  it("count in the frame of what they waited for, however that was recorded before them", () => {
    // t is mapped over (so it is taken on its own, not with the plain successes); d and x wait
    // for it; d fails for good in the same frame, which records what came before it.
    const store = started(`tasks:
  - { id: t, module: m }
  - { id: fan, module: m, depends_on: [t], map: { over: t } }
  - { id: d, module: m, depends_on: [t], retries: 0 }
  - { id: x, module: m, depends_on: [t] }
`);
    const tasks = dispatched(attach(store, 4));
    expect(tasks.map((t) => [t.task, t.after?.task])).toEqual([
      ["t", undefined],
      ["d", "t"],
      ["x", "t"],
    ]);
    const [t, d, x] = tasks;
    const effects = transition(store, results([ok(t!, "[1, 2]"), failed(d!, false), ok(x!, "9")]), 2);
    expect(effects).not.toContainEqual(expect.objectContaining({ type: "stray" }));
    expect([store.task("t")!.state, store.task("d")!.state, store.task("x")!.state]).toEqual([
      "succeeded",
      "failed",
      "succeeded",
    ]);
  });

  it("wait behind a long dependency without being taken back at their own timeout", () => {
    const store = started(`tasks:
  - { id: a, module: m, timeout: 10m }
  - { id: b, module: m, depends_on: [a], timeout: 5s }
`);
    const [a, b] = dispatched(attach(store, 2));
    expect(b!.after).toMatchObject({ task: "a" });
    transition(store, { type: "started", runner: "r", tasks: [a!] }, 2);
    // Past b's own timeout plus grace, many times over: b still waits on the runner.
    for (const at of [30_000, 60_000, 300_000]) transition(store, { type: "tick" }, at);
    expect(store.task("b")).toMatchObject({ state: "leased", attempt: 1 });
    // a succeeds at 400 s: b's lease runs from then, and it is lost only 5 s + grace after.
    transition(store, results([ok(a!, "1")], 0), 400_000);
    transition(store, { type: "tick" }, 410_000);
    expect(store.task("b")).toMatchObject({ state: "leased", attempt: 1 });
    transition(store, { type: "tick" }, 421_000);
    expect(store.task("b")).toMatchObject({ state: "ready", losses: 1 });
  });

  it("are never a node with the result cache on, a mapped node, or one waiting for a mapped node", () => {
    const store = started(`tasks:
  - { id: a, module: m, cache: false }
  - { id: cached, module: m, depends_on: [a] }
  - { id: fan, module: m, depends_on: [a], map: { range: [0, 2] }, cache: false }
  - { id: after_fan, module: m, depends_on: [fan], cache: false }
`);
    expect(dispatched(attach(store, 6)).map((t) => t.task)).toEqual(["a"]);
  });
});
