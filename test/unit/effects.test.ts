// Performing a transition's effects (worker/run-host/effects.ts) through a fake host: frames to
// the runners named, the demand told to the pool only when it changed and withdrawn at the end,
// the index and the watchers on a status change, the cache's loops started without waiting for them; an effect
// that fails is logged and skips none of the others, and a demand the pool did not confirm is told
// again, by the next event or by the alarm it arms.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { DemandClass } from "../../core/match";
import type { Assignment, CoordinatorMessage } from "../../core/protocol/messages";
import type { RunStatus } from "../../core/status";
import type { Effect } from "../../worker/run/machine";
import type { Meta } from "../../worker/run-host/meta";
import { demandRetryAt, frames, perform, retryDemand, type EffectsHost } from "../../worker/run-host/effects";

function setup(failing: string[] = []) {
  const values = new Map<string, string>();
  const fails = (what: string) => (failing.includes(what) ? Promise.reject(new Error(`${what} failed`)) : null);
  const meta: Meta = {
    meta: (key) => values.get(key),
    setMeta: (key, value) => void values.set(key, value),
    deleteMeta: (key) => void values.delete(key),
  };
  const calls: unknown[][] = [];
  const alarms: number[] = [];
  const host: EffectsHost = {
    runId: "run",
    meta,
    retryAt: (at) => (alarms.push(at), Promise.resolve()),
    send: (runner: string, message: CoordinatorMessage) => void calls.push(["send", runner, message.type]),
    demand: (classes: DemandClass[]) => {
      calls.push(["demand", classes]);
      return fails("demand") ?? Promise.resolve();
    },
    status: (status: RunStatus) => {
      calls.push(["status", status]);
      return fails("status") ?? Promise.resolve();
    },
    lookup: () => {
      calls.push(["lookup"]);
      return new Promise<void>(() => {}); // the loop outlives the event
    },
    file: (entries) => {
      calls.push(["file", entries.length]);
      return new Promise<void>(() => {});
    },
    lost: (runner: string, attempts: number) => {
      calls.push(["lost", runner, attempts]);
      return fails("lost") ?? Promise.resolve();
    },
    stray: (runner: string, frames: number) => {
      calls.push(["stray", runner, frames]);
      return fails("stray") ?? Promise.resolve();
    },
    finish: (status: RunStatus) => {
      calls.push(["finish", status]);
      return fails("finish") ?? Promise.resolve();
    },
  };
  return { host, calls, values, alarms };
}

const gpu: DemandClass = { requires: { labels: ["gpu"] }, priority: 1 };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("effects", () => {
  it("performs each effect in order, without waiting for the cache's loops", async () => {
    const { host, calls } = setup();
    const effects: Effect[] = [
      { type: "cache", entries: [{ key: "k", task: "a", runner: "r1" }] },
      { type: "dispatch", runner: "r1", tasks: [{ task: "b", stdin: "{}" } as Assignment], backlog: 0 },
      { type: "cancel", runner: "r2", tasks: [{ task: "c", attempt: 1 }] },
      { type: "lookup" },
      { type: "status", status: "running" },
    ];
    await perform(host, effects);
    expect(calls).toEqual([
      ["file", 1],
      ["send", "r1", "tasks"],
      ["send", "r2", "cancel"],
      ["lookup"],
      ["status", "running"],
    ]);
  });

  it("tells the pool the demand only when it changed, and withdraws it when the run ends", async () => {
    const { host, calls, values } = setup();
    await perform(host, [{ type: "demand", classes: [] }]);
    await perform(host, [{ type: "demand", classes: [gpu] }]);
    await perform(host, [{ type: "demand", classes: [gpu] }]);
    await perform(host, [{ type: "finished", status: "succeeded" }]);
    expect(calls).toEqual([
      ["demand", [gpu]],
      ["finish", "succeeded"],
      ["demand", []],
    ]);
    expect(values.get("demand")).toBe("[]");
  });

  it("logs an effect that fails with the run's id, and performs the others", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const { host, calls } = setup(["status", "finish"]);
    await perform(host, [
      { type: "status", status: "succeeded" },
      { type: "finished", status: "succeeded" },
      { type: "cancel", runner: "r", tasks: [] },
    ]);
    expect(calls).toEqual([
      ["status", "succeeded"],
      ["finish", "succeeded"],
      ["demand", []],
      ["send", "r", "cancel"],
    ]);
    expect(error.mock.calls.map((c) => c[0])).toEqual([
      'DagRun run: the "status" effect failed',
      'DagRun run: the "finished" effect failed',
    ]);
  });

  it("tells a demand again after the pool missed it, and compares a demand with the newest one told", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const failing = ["demand"];
    const missed = setup(failing);
    await perform(missed.host, [{ type: "demand", classes: [gpu] }]);
    failing.pop();
    await perform(missed.host, [{ type: "demand", classes: [gpu] }]);
    await perform(missed.host, [{ type: "demand", classes: [gpu] }]);
    expect(missed.calls).toEqual([
      ["demand", [gpu]],
      ["demand", [gpu]],
    ]);
    // An event that runs while the pool hears of a demand sees that demand as told.
    const { host, calls } = setup();
    let heard!: () => void;
    host.demand = (classes) => {
      calls.push(["demand", classes]);
      return calls.length === 1 ? new Promise<void>((r) => (heard = r)) : Promise.resolve();
    };
    const first = perform(host, [{ type: "demand", classes: [gpu] }]);
    await perform(host, [{ type: "demand", classes: [] }]);
    heard();
    await first;
    expect(calls).toEqual([
      ["demand", [gpu]],
      ["demand", []],
    ]);
  });

  it("arms the alarm before each telling; the memo is written only once the pool confirmed the newest", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const failing = ["demand"];
    const { host, calls, values, alarms } = setup(failing);
    await perform(host, [{ type: "demand", classes: [gpu] }]);
    // The call failed: nothing is confirmed, and the alarm is armed for the retry.
    expect(values.get("demand")).toBeUndefined();
    expect(alarms).toHaveLength(1);
    expect(demandRetryAt(host.meta)).toBe(alarms[0]);
    await retryDemand(host, [gpu]); // the alarm: the pool is still down
    expect(demandRetryAt(host.meta)).not.toBeNull();
    failing.pop();
    await retryDemand(host, [gpu]);
    expect(values.get("demand")).toBe(JSON.stringify([gpu]));
    expect(demandRetryAt(host.meta)).toBeNull();
    // With the newest telling confirmed, an alarm tells nothing.
    await retryDemand(host, [gpu]);
    expect(calls.filter((c) => c[0] === "demand")).toHaveLength(3);
  });

  it("tells one demand at a time: those asked meanwhile wait, and only the newest of them goes", async () => {
    const { host, calls, values } = setup();
    const answers: (() => void)[] = [];
    host.demand = (classes) => {
      calls.push(["demand", classes]);
      return new Promise<void>((r) => answers.push(r));
    };
    const first = perform(host, [{ type: "demand", classes: [gpu] }]);
    await perform(host, [{ type: "demand", classes: [] }]);
    await perform(host, [{ type: "demand", classes: [{ ...gpu, priority: 2 }] }]);
    await Promise.resolve();
    expect(calls).toEqual([["demand", [gpu]]]);
    answers[0]!();
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual([
      ["demand", [gpu]],
      ["demand", [{ ...gpu, priority: 2 }]],
    ]);
    expect(demandRetryAt(host.meta)).not.toBeNull(); // the newest is not confirmed yet
    // An alarm while a call is out adds nothing to it.
    await retryDemand(host, [{ ...gpu, priority: 2 }]);
    expect(calls).toHaveLength(2);
    answers[1]!();
    await first;
    await new Promise((r) => setTimeout(r, 0));
    expect(values.get("demand")).toBe(JSON.stringify([{ ...gpu, priority: 2 }]));
    expect(demandRetryAt(host.meta)).toBeNull();
  });

  it("an ended run whose withdrawal waited behind a call that failed has its alarm armed to withdraw it", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { host, calls, alarms } = setup();
    let fail!: (e: Error) => void;
    host.demand = (classes) => {
      calls.push(["demand", classes]);
      return calls.filter((c) => c[0] === "demand").length === 1
        ? new Promise<void>((_, r) => (fail = r))
        : Promise.resolve();
    };
    const first = perform(host, [{ type: "demand", classes: [gpu] }]);
    const before = alarms.length;
    // The host clears an ended run's alarm, then the withdrawal waits behind the call out: it arms one.
    await perform(host, [{ type: "finished", status: "succeeded" }]);
    expect(alarms.length).toBe(before + 1);
    fail(new Error("pool down"));
    await first;
    expect(demandRetryAt(host.meta)).toBe(alarms.at(-1));
    await retryDemand(host, []); // the alarm
    expect(calls.filter((c) => c[0] === "demand").at(-1)).toEqual(["demand", []]);
    expect(demandRetryAt(host.meta)).toBeNull();
  });
});

describe("tasks frames", () => {
  it("keep a dispatch in one frame unless its envelopes would pass 16 MiB, and never send a task twice", () => {
    const task = (name: string, chars: number) => ({ task: name, stdin: "x".repeat(chars) }) as Assignment;
    expect(frames([]).map((f) => f.length)).toEqual([0]);
    expect(frames([task("a", 10), task("b", 10)]).map((f) => f.map((t) => t.task))).toEqual([["a", "b"]]);
    // Each 7 MiB envelope is counted at most at the inline limit (8 MiB): two to a frame.
    const big = Array.from({ length: 5 }, (_, i) => task(`t${i}`, 7 * 1024 * 1024));
    expect(frames(big).map((f) => f.map((t) => t.task))).toEqual([["t0", "t1"], ["t2", "t3"], ["t4"]]);
  });
});
