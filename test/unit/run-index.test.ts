// The run's line in the D1 index (worker/run-host/run-index.ts) through a fake host: due at once
// after a quiet second and at most every INDEX_MS while the run changes, written without the
// waiting count and with the histograms, best effort, and durable across an eviction.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { RunListing, RunSummary } from "../../core/api";
import { emptyMetrics, type RunMetrics } from "../../worker/metrics";
import { INDEX_MS, RETRY_MS, RunIndex } from "../../worker/run-host/run-index";
import { metaMap } from "../helpers/meta-map";

const summary: RunSummary = {
  id: "run",
  name: "test",
  status: "running",
  created_at: 5,
  updated_at: 900,
  finished_at: null,
  counts: {
    blocked: 1,
    lookup: 0,
    ready: 2,
    waiting: 3,
    backoff: 0,
    leased: 0,
    succeeded: 4,
    failed: 0,
    skipped: 0,
    cancelled: 0,
  },
  tasks_total: 10,
  retry_of: null,
  submitted_by: null,
};

function setup(meta = metaMap(), { planned = true } = {}) {
  const clock = { now: 10_000 };
  const written: { line: RunListing; metrics: RunMetrics }[] = [];
  const fail = { next: false };
  const metrics = { ...emptyMetrics(), cacheHits: 7 };
  const index = new RunIndex({
    meta,
    now: () => clock.now,
    summary: () => (planned ? summary : null),
    metrics: () => metrics,
    write: (line, metrics) => {
      if (fail.next) return Promise.reject(new Error("D1 is down"));
      written.push({ line, metrics });
      return Promise.resolve();
    },
  });
  return { index, clock, written, fail, meta };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("run index", () => {
  it("is due at once after a quiet second, then at most every INDEX_MS while the run changes", async () => {
    const { index, clock, written } = setup();
    expect(index.due()).toBeNull();
    index.changed();
    expect(index.due()).toBe(10_000);
    await index.refresh();
    expect(index.due()).toBeNull();
    clock.now += 100;
    index.changed();
    expect(index.due()).toBe(10_000 + INDEX_MS);
    clock.now += 300;
    index.changed();
    expect(index.due()).toBe(10_000 + INDEX_MS);
    expect(written).toHaveLength(1);
  });

  it("writes the line without the waiting count, with the run's histograms and cache hits", async () => {
    const { index, written } = setup();
    await index.refresh();
    const { waiting: _waiting, ...counts } = summary.counts;
    expect(written).toEqual([
      {
        line: {
          id: "run",
          name: "test",
          status: "running",
          tasks: 10,
          counts,
          created_at: 5,
          updated_at: 900,
          finished_at: null,
        },
        metrics: { ...emptyMetrics(), cacheHits: 7 },
      },
    ]);
  });

  it("logs a write that fails and has it due again RETRY_MS later; writes nothing before the run has its plan", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const { index, fail, written, clock } = setup();
    fail.next = true;
    index.changed();
    await expect(index.refresh()).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledWith(
      "DagRun run: the run index refresh failed; trying again in 10 s",
      expect.any(Error),
    );
    expect(index.due()).toBe(clock.now + RETRY_MS);
    fail.next = false;
    clock.now += RETRY_MS;
    await index.refresh();
    expect(index.due()).toBeNull();
    expect(written).toHaveLength(1);
    written.length = 0;
    const empty = setup(metaMap(), { planned: false });
    await empty.index.refresh();
    expect(empty.written).toEqual([]);
    expect(written).toEqual([]);
  });

  it("keeps the due time and the last refresh in meta, so a new object after an eviction still refreshes", async () => {
    const meta = metaMap();
    const first = setup(meta);
    await first.index.refresh();
    first.clock.now += 200;
    first.index.changed();
    const again = setup(meta);
    expect(again.index.due()).toBe(10_000 + INDEX_MS);
    expect(meta.values.get("indexed_at")).toBe("10000");
  });
});
