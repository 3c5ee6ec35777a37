// The runner's slot allocator (runner/credit.ts) case by case; test/unit/liveness.test.ts checks
// it over random sequences beside the run state machine and the pool.
import { describe, expect, it } from "vitest";
import { CreditAllocator, type CreditEffect } from "../../runner/credit";

const wants = (effects: CreditEffect[]) =>
  effects.filter((e) => e.type === "want").map((e) => e.type === "want" && e.run);
const credits = (a: CreditAllocator) => Object.fromEntries(a.runIds().map((id) => [id, a.creditOf(id)]));

describe("slot allocator", () => {
  it("attaches once to a run it joins and gives it every free slot until the run says its backlog", () => {
    const a = new CreditAllocator(3);
    expect(a.apply({ type: "join", run: "A", priority: 0 })).toContainEqual({ type: "attach", run: "A", priority: 0 });
    expect(credits(a)).toEqual({ A: 3 });
    expect(a.apply({ type: "tasks", run: "A", count: 1, backlog: 0 })).toContainEqual({
      type: "take",
      run: "A",
      count: 1,
    });
    // A join for a run it is in attaches nothing and tells the run its credit again.
    const again = a.apply({ type: "join", run: "A", priority: 0 });
    expect(again.some((e) => e.type === "attach")).toBe(false);
    expect(wants(again)).toEqual(["A"]);
  });

  it("runs no more tasks than the credit: the rest go back", () => {
    const a = new CreditAllocator(2);
    a.apply({ type: "join", run: "A", priority: 0 });
    expect(a.apply({ type: "tasks", run: "A", count: 5, backlog: 3 })).toContainEqual({
      type: "take",
      run: "A",
      count: 2,
    });
    expect(a.running).toBe(2);
    expect(a.free).toBe(0);
  });

  it("gives the slot of a run that ended to the run with ready work, not to the one that left", () => {
    const a = new CreditAllocator(1);
    a.apply({ type: "join", run: "A", priority: 0 });
    a.apply({ type: "tasks", run: "A", count: 1, backlog: 0 });
    a.apply({ type: "join", run: "B", priority: 0 });
    a.apply({ type: "tasks", run: "B", count: 0, backlog: 1 });
    // A's task ends with B waiting: B gets the slot.
    expect(wants(a.apply({ type: "freed", run: "A", reported: true }))).toEqual(["B"]);
    expect(credits(a)).toEqual({ A: 0, B: 1 });
    a.apply({ type: "tasks", run: "B", count: 1, backlog: 0 });
    // B's task ends with no backlog anywhere: B keeps the slot for a next ready task...
    a.apply({ type: "freed", run: "B", reported: true });
    expect(credits(a)).toEqual({ A: 0, B: 1 });
    // ...and when A's work comes back and B ends, the slot goes to A.
    a.apply({ type: "tasks", run: "A", count: 0, backlog: 1 });
    expect(credits(a)).toEqual({ A: 1, B: 0 });
    a.apply({ type: "ended", run: "B" });
    expect(credits(a)).toEqual({ A: 1 });
  });

  it("puts a higher priority first, and takes back credit from runs with nothing ready", () => {
    const a = new CreditAllocator(2);
    a.apply({ type: "join", run: "low", priority: 0 });
    a.apply({ type: "tasks", run: "low", count: 0, backlog: 5 });
    expect(credits(a)).toEqual({ low: 2 });
    const joined = a.apply({ type: "join", run: "high", priority: 1 });
    expect(credits(a)).toEqual({ low: 0, high: 2 });
    expect(wants(joined).sort()).toEqual(["high", "low"]);
    a.apply({ type: "tasks", run: "high", count: 1, backlog: 0 });
    // high has nothing more ready: its unused slot goes back to low.
    expect(credits(a)).toEqual({ low: 1, high: 0 });
  });

  it("shrinking takes back credit, lowest priority first; running tasks finish; draining gives up all credit", () => {
    const a = new CreditAllocator(4);
    a.apply({ type: "join", run: "low", priority: 0 });
    a.apply({ type: "tasks", run: "low", count: 1, backlog: 9 });
    a.apply({ type: "join", run: "high", priority: 2 });
    a.apply({ type: "tasks", run: "high", count: 1, backlog: 9 });
    expect(credits(a)).toEqual({ low: 0, high: 2 });
    a.apply({ type: "resize", slots: 1 });
    expect(credits(a)).toEqual({ low: 0, high: 0 });
    expect(a.running).toBe(2);
    a.apply({ type: "freed", run: "low", reported: true });
    a.apply({ type: "freed", run: "high", reported: true });
    expect(credits(a)).toEqual({ low: 0, high: 1 });
    expect(wants(a.apply({ type: "drain" })).sort()).toEqual(["high", "low"]);
    expect(credits(a)).toEqual({ low: 0, high: 0 });
    expect(a.apply({ type: "join", run: "other", priority: 9 })).toEqual([]);
  });

  it("tells a run its credit with the result it sends, or at once when its attempt was stopped", () => {
    const a = new CreditAllocator(1);
    a.apply({ type: "join", run: "A", priority: 0 });
    a.apply({ type: "tasks", run: "A", count: 1, backlog: 0 });
    expect(wants(a.apply({ type: "freed", run: "A", reported: true }))).toEqual([]);
    a.apply({ type: "tasks", run: "A", count: 1, backlog: 0 });
    expect(wants(a.apply({ type: "freed", run: "A", reported: false }))).toEqual(["A"]);
  });
});
