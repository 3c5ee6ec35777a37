// The status page's pure formatting (page/format.ts): the cooled-down line of a runner or device,
// shown only while its cooled_until is ahead of now, and a run's length as the CLI writes it.
import { describe, expect, it } from "vitest";
import { cooledDown, filterRuns, runDuration } from "../../page/format";
import type { RunListing } from "../../core/api";

const now = Date.UTC(2026, 11, 1, 12);

describe("status page formatting", () => {
  it("says until when and how long a device is cooled down, while that is ahead of now", () => {
    const until = now + 130_000;
    expect(cooledDown(until, now)).toBe(`cooled down (until ${new Date(until).toLocaleTimeString()}, 2m10s left)`);
    expect(cooledDown(now + 3_600_000, now)).toMatch(/^cooled down \(until .+, 1h00m left\)$/);
    expect(cooledDown(now, now)).toBeNull();
    expect(cooledDown(now - 1, now)).toBeNull();
    expect(cooledDown(null, now)).toBeNull();
    expect(cooledDown(undefined, now)).toBeNull(); // a coordinator from before cool-downs
  });

  it("gives a run's length to its end, or to now while it runs", () => {
    expect(runDuration({ created_at: now - 125_000, finished_at: null }, now)).toBe("2m05s");
    expect(runDuration({ created_at: now - 125_000, finished_at: now - 120_000 }, now)).toBe("5s");
  });
});

describe("the runs list's filters", () => {
  const run = (id: string, name: string, status: RunListing["status"]): RunListing => ({
    id,
    name,
    status,
    tasks: 1,
    counts: {},
    created_at: now,
    updated_at: now,
    finished_at: null,
  });
  const runs = [
    run("aa11", "mandelbrot", "succeeded"),
    run("bb22", "wordcount big", "failed"),
    run("cc33", "matmul", "running"),
  ];
  const ids = (list: RunListing[]) => list.map((r) => r.id);

  it("finds runs by words of their name or the start of their id, and by status", () => {
    expect(ids(filterRuns(runs, "", "", false))).toEqual(["aa11", "bb22", "cc33"]);
    expect(ids(filterRuns(runs, "BIG word", "", false))).toEqual(["bb22"]);
    expect(ids(filterRuns(runs, "cc", "", false))).toEqual(["cc33"]);
    expect(ids(filterRuns(runs, "", "succeeded", false))).toEqual(["aa11"]);
    expect(ids(filterRuns(runs, "mat", "failed", false))).toEqual([]);
  });

  it("puts failed runs first when asked, keeping the order otherwise", () => {
    expect(ids(filterRuns(runs, "", "", true))).toEqual(["bb22", "aa11", "cc33"]);
  });
});
