// A run's histograms (worker/run-host/run-metrics.ts) through a fake host: attempt durations from
// results, dispatch latencies from when a node became ready, cache hits, kept in meta as they
// are observed (so a new object reads them back), and no write for an event that shows nothing.
import { describe, expect, it } from "vitest";
import type { Assignment } from "../../core/protocol/messages";
import type { Meta } from "../../worker/run-host/meta";
import { Histograms } from "../../worker/run-host/run-metrics";
import { ok } from "../helpers/run-fixtures";

function metaMap(): Meta & { writes: number } {
  const values = new Map<string, string>();
  const meta = {
    writes: 0,
    meta: (key: string) => values.get(key),
    setMeta: (key: string, value: string) => {
      meta.writes++;
      values.set(key, value);
    },
    deleteMeta: (key: string) => void values.delete(key),
  };
  return meta;
}

const assignment = (task: string) => ({ task, attempt: 1 }) as Assignment;

describe("run histograms", () => {
  it("observes durations, dispatch latencies by node and cache hits, and keeps them in meta", () => {
    const meta = metaMap();
    const ready: Record<string, number> = { a: 1000, b: 1500 };
    const histograms = new Histograms({ meta, nodeReadyAt: (node) => ready[node] ?? null });
    const results = [
      { ...ok({ task: "a", attempt: 1 }, "1"), durationMs: 40 },
      { ...ok({ task: "b[0]", attempt: 1 }, "1"), durationMs: 2000 },
    ];
    histograms.observe({ type: "results", runner: "r", results, want: 0, received: 2 }, [], 2000);
    const tasks = [assignment("b[3]"), assignment("c")];
    histograms.observe({ type: "tick" }, [{ type: "dispatch", runner: "r", tasks, backlog: 0 }], 1600);
    const hits = [{ task: "d", output: new Uint8Array() }];
    histograms.observe({ type: "looked_up", hits, misses: [] }, [], 1700);
    const m = histograms.current();
    expect(m.duration).toMatchObject({ count: 2, sum: 2.04 });
    expect(m.duration.buckets[3]).toBe(1); // 0.04 s: the 0.05 bucket
    expect(m.latency).toMatchObject({ count: 1 }); // b[3], ready 100 ms before; c was never ready
    expect(m.latency.sum).toBeCloseTo(0.1, 9);
    expect(m.cacheHits).toBe(1);
    expect(meta.writes).toBe(3);
    expect(new Histograms({ meta, nodeReadyAt: () => null }).current()).toEqual(m);
  });

  it("writes nothing for an event that observes nothing", () => {
    const meta = metaMap();
    const histograms = new Histograms({ meta, nodeReadyAt: () => null });
    histograms.observe({ type: "tick" }, [{ type: "demand", classes: [] }], 0);
    histograms.observe({ type: "looked_up", hits: [], misses: [{ task: "a", key: "k" }] }, [], 0);
    expect(meta.writes).toBe(0);
    expect(histograms.current()).toMatchObject({ cacheHits: 0, duration: { count: 0 }, latency: { count: 0 } });
  });
});
