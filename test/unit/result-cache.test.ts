// The result cache as a run uses it (worker/run-host/result-cache.ts) through a fake host: tasks
// in `lookup` asked for LOOKUP_BATCH at a time until none is left, hits and misses by key, one
// loop at a time, a cache that cannot answer taken as a miss, a hit in blob storage that cannot
// be claimed taken as a miss, a loop that never rejects, and
// filing only what has an output.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BlobRef } from "../../core/protocol/messages";
import type { RunEvent } from "../../worker/run/machine";
import type { TaskRow } from "../../worker/run/store";
import { LOOKUP_BATCH, ResultCache } from "../../worker/run-host/result-cache";

type LookedUp = Extract<RunEvent, { type: "looked_up" }>;
const row = (key: string): TaskRow => ({
  key,
  node: key,
  index: null,
  state: "lookup",
  attempt: 0,
  failures: 0,
  losses: 0,
  runner: null,
});

/** A run whose tasks wait in lookup; `cached` maps a task's key ("key:<task>") to its output. */
function setup(tasks: string[], cached: Record<string, Uint8Array | BlobRef> = {}) {
  const waiting = [...tasks];
  const applied: LookedUp[] = [];
  const filed: { key: string; output: Uint8Array | BlobRef }[][] = [];
  const state = { ended: false, findFails: false, applyFails: false, applyFailsWithBlobs: false, queries: 0 };
  const outputs: Record<string, Uint8Array | BlobRef> = {};
  const cache = new ResultCache({
    lookups: (limit) => waiting.slice(0, limit).map(row),
    ended: () => state.ended,
    cacheKeys: (rows) => Promise.resolve(rows.map((r) => `key:${r.key}`)),
    find: (keys) => {
      state.queries++;
      if (state.findFails) return Promise.reject(new Error("D1 is down"));
      return Promise.resolve(new Map(keys.flatMap((k) => (cached[k] ? [[k, cached[k]] as const] : []))));
    },
    file: (entries) => {
      filed.push(entries);
      return Promise.resolve();
    },
    output: (task) => outputs[task] ?? null,
    apply: (event) => {
      if (state.applyFails) return Promise.reject(new Error("the machine refused"));
      if (state.applyFailsWithBlobs && event.hits.some((h) => !(h.output instanceof Uint8Array)))
        return Promise.reject(new Error("D1 is down: the claim was not written"));
      applied.push(event);
      for (const { task } of [...event.hits, ...event.misses]) waiting.splice(waiting.indexOf(task), 1);
      return Promise.resolve();
    },
  });
  return { cache, applied, filed, state, outputs, waiting };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("result cache", () => {
  it("asks for LOOKUP_BATCH tasks at a time until none waits: hits with their outputs, misses with keys", async () => {
    const tasks = Array.from({ length: LOOKUP_BATCH + 5 }, (_, i) => `t${i}`);
    const output = new Uint8Array([1]);
    const blob = { sha256: "b".repeat(64), size: 9 };
    const { cache, applied, state } = setup(tasks, { "key:t1": output, "key:t100": blob });
    await cache.lookup();
    expect(state.queries).toBe(2);
    expect(applied.map((e) => [e.hits.length, e.misses.length])).toEqual([
      [1, LOOKUP_BATCH - 1],
      [1, 4],
    ]);
    expect(applied[0]!.hits).toEqual([{ task: "t1", output }]);
    expect(applied[0]!.misses[0]).toEqual({ task: "t0", key: "key:t0" });
    expect(applied[1]!.hits).toEqual([{ task: "t100", output: blob }]);
  });

  it("runs one loop at a time, and none once the run has ended", async () => {
    const { cache, state } = setup(["a"]);
    await Promise.all([cache.lookup(), cache.lookup()]);
    expect(state.queries).toBe(1);
    const ended = setup(["a"]);
    ended.state.ended = true;
    await ended.cache.lookup();
    expect(ended.state.queries).toBe(0);
  });

  it("takes a cache that cannot answer as all misses; never rejects when an answer cannot be applied", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const { cache, applied, state } = setup(["a", "b"], { "key:a": new Uint8Array() });
    state.findFails = true;
    await cache.lookup();
    expect(applied).toEqual([
      {
        type: "looked_up",
        hits: [],
        misses: [
          { task: "a", key: "key:a" },
          { task: "b", key: "key:b" },
        ],
      },
    ]);
    const stuck = setup(["a"]);
    stuck.state.applyFails = true;
    await expect(stuck.cache.lookup()).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledWith("DagRun cache lookup stopped", expect.any(Error));
    // The loop is free again: a later lookup effect starts it anew.
    stuck.state.applyFails = false;
    await stuck.cache.lookup();
    expect(stuck.waiting).toEqual([]);
  });

  it("takes hits in blob storage as misses when the answer with them cannot be applied", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const inline = new Uint8Array([1]);
    const blob = { sha256: "c".repeat(64), size: 3 };
    const { cache, applied, state, waiting } = setup(["a", "b"], { "key:a": inline, "key:b": blob });
    // Only the answer that carries a blob fails (its claim cannot be written).
    state.applyFailsWithBlobs = true;
    await cache.lookup();
    expect(applied).toEqual([
      { type: "looked_up", hits: [{ task: "a", output: inline }], misses: [{ task: "b", key: "key:b" }] },
    ]);
    expect(waiting).toEqual([]);
    expect(error).toHaveBeenCalledWith("DagRun cache lookup: hits in blob storage taken as misses", expect.any(Error));
  });

  it("files only the tasks that have an output, and logs a filing that fails", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const { cache, filed, outputs } = setup([]);
    outputs.a = new Uint8Array([7]);
    await cache.file([
      { key: "ka", task: "a", runner: "r1" },
      { key: "kb", task: "b", runner: "r1" },
    ]);
    await cache.file([{ key: "kb", task: "b", runner: "r2" }]);
    expect(filed).toEqual([[{ key: "ka", output: new Uint8Array([7]), runner: "r1" }]]);
    const broken = new ResultCache({
      lookups: () => [],
      ended: () => false,
      cacheKeys: () => Promise.resolve([]),
      find: () => Promise.resolve(new Map()),
      file: () => Promise.reject(new Error("D1 is down")),
      output: () => new Uint8Array(),
      apply: () => Promise.resolve(),
    });
    await expect(broken.file([{ key: "k", task: "t", runner: "r1" }])).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledWith("DagRun cache file", expect.any(Error));
  });
});
