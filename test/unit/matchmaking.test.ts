// The pool's matchmaking (worker/durable/matchmaking.ts): who hears of a run's demand, where a
// withdrawn demand sends the idle runners, and which idle runners are stalls to repair.
import { describe, expect, it } from "vitest";
import { joinsOnDemand, nextStallCheck, stalls, type PoolRunner } from "../../worker/durable/matchmaking";

const runner = (id: string, free: number, runs: string[] = [], labels: string[] = []): PoolRunner => ({
  id,
  info: {
    id,
    name: id,
    platform: "linux",
    arch: "x64",
    cores: 2,
    memory: 2 ** 30,
    freeMemory: 2 ** 29,
    slots: 2,
    labels,
    version: "test",
  },
  free,
  runs,
});
const any = (priority: number) => [{ requires: null, priority }];
const gpu = (priority: number) => [{ requires: { labels: ["gpu"] }, priority }];
const none = new Set<string>();

describe("matchmaking", () => {
  it("tells idle runners that qualify, runners in the run its priority now, and a busy one only when it outranks", () => {
    const runners = [runner("idle", 1), runner("in", 0, ["A"]), runner("busy", 0, ["B"]), runner("cpu", 2)];
    const demands = [
      { run: "B", classes: any(3) },
      { run: "A", classes: gpu(1) },
    ];
    runners[1]!.info.labels = ["gpu"];
    runners[0]!.info.labels = ["gpu"];
    expect(joinsOnDemand("A", gpu(1), runners, demands, none)).toEqual([
      { runner: "idle", run: "A", priority: 1 },
      { runner: "in", run: "A", priority: 1 },
    ]);
    // A runner in the run that heard this priority already is not told again.
    expect(joinsOnDemand("A", gpu(1), runners, demands, none, gpu(1))).toEqual([
      { runner: "idle", run: "A", priority: 1 },
    ]);
    // Cooled devices hear of nothing.
    expect(joinsOnDemand("A", gpu(1), runners, demands, new Set(["idle", "in"]))).toEqual([]);
    // B at 3 outranks nothing busy B works on; a new run at 5 outranks B on the busy runner.
    expect(joinsOnDemand("C", any(5), runners, [...demands, { run: "C", classes: any(5) }], none)).toContainEqual({
      runner: "busy",
      run: "C",
      priority: 5,
    });
  });

  it("points the idle runners elsewhere when a run withdraws its demand", () => {
    const runners = [runner("r1", 1, ["gone"]), runner("r2", 0)];
    expect(joinsOnDemand("gone", [], runners, [{ run: "other", classes: any(0) }], none)).toEqual([
      { runner: "r1", run: "other", priority: 0 },
    ]);
  });

  it("finds the runners idle for the stall time beside demand as old, in the run or not", () => {
    const now = 10_000;
    const runners = [
      { ...runner("stuck", 1, ["A"]), since: 7_000 },
      { ...runner("fresh", 1), since: 9_500 },
      { ...runner("busy", 0), since: 0 },
      { ...runner("cooled", 1), since: 0 },
    ];
    const demands = [
      { run: "A", classes: any(0), since: 5_000 },
      { run: "new", classes: any(9), since: 9_900 },
    ];
    expect(stalls(runners, demands, new Set(["cooled"]), now, 2_000)).toEqual([
      { runner: "stuck", run: "A", priority: 0 },
    ]);
  });

  it("looks again when the first idle runner will have waited the stall time beside demand it qualifies for", () => {
    const demands = [{ run: "A", classes: gpu(0), since: 1_000 }];
    const idle = (id: string, since: number, labels: string[]) => ({ ...runner(id, 1, [], labels), since });
    // Idle since 3,000 beside demand since 1,000: due at 5,000.
    expect(nextStallCheck([idle("g", 3_000, ["gpu"])], demands, none, 4_000, 2_000)).toBe(5_000);
    // Already due and not a stall: a period from now.
    expect(nextStallCheck([idle("g", 1_500, ["gpu"])], demands, none, 4_000, 2_000)).toBe(6_000);
    // No idle runner qualifies: nothing to look for.
    expect(nextStallCheck([idle("cpu", 0, [])], demands, none, 4_000, 2_000)).toBeNull();
  });
});
