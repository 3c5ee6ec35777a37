// The waiting view (worker/run-host/waiting.ts) over the in-memory store: ready tasks no
// connected runner can take count as waiting with the pool's reason by node; the pool is not
// asked about work an attached runner can take, nor while the run is paused or has nothing ready.
import { describe, expect, it } from "vitest";
import type { RunSummary, TaskView } from "../../core/api";
import type { DemandClass } from "../../core/match";
import { transition } from "../../worker/run/machine";
import { markWaiting, withWaiting, type WaitingHost } from "../../worker/run-host/waiting";
import { plan } from "../helpers/run-fixtures";
import { MemoryStore } from "./memory-store";

const DAG = `
tasks:
  - { id: plain, module: m, map: { range: [0, 3] } }
  - { id: gpu, module: m, requires: { labels: [gpu] } }
`;

function setup(reasons: (c: DemandClass) => string | null = () => "no runner connected") {
  const store = new MemoryStore();
  transition(store, { type: "start", plan: plan(DAG) }, 0);
  const asked: DemandClass[][] = [];
  const host: WaitingHost = {
    store,
    nodeIds: () => [...store.nodes.keys()],
    whyWaiting: (classes) => {
      asked.push(classes);
      return Promise.resolve(classes.map(reasons));
    },
  };
  const counts = { ...store.counts(), waiting: 0 };
  const summary: RunSummary = {
    id: "run",
    name: "test",
    status: store.status(),
    created_at: 0,
    updated_at: 0,
    finished_at: null,
    counts,
    tasks_total: 4,
    retry_of: null,
    submitted_by: null,
  };
  return { store, host, summary, asked };
}

const caps = (labels: string[]) => ({ memory: 2 ** 30, cores: 2, labels, arch: "x64", platform: "linux" });

describe("waiting", () => {
  it("counts the ready tasks no connected runner can take as waiting, with the pool's reason by node", async () => {
    const { host, summary, asked } = setup((c) => (c.requires ? "no runner with label gpu" : "no runner connected"));
    const { summary: shown, waiting } = await withWaiting(host, summary);
    expect(asked).toEqual([
      [
        { requires: null, priority: 0 },
        { requires: { labels: ["gpu"] }, priority: 0 },
      ],
    ]);
    expect(shown.counts).toMatchObject({ ready: 0, waiting: 4 });
    expect(Object.fromEntries(waiting)).toEqual({ plain: "no runner connected", gpu: "no runner with label gpu" });
  });

  it("asks the pool only about work no attached runner can take", async () => {
    const { host, store, summary, asked } = setup((c) => (c.requires ? "no runner with label gpu" : null));
    transition(store, { type: "attach", runner: "r", name: "r", want: 0, holding: [], caps: caps([]) }, 0);
    const { summary: shown, waiting } = await withWaiting(host, summary);
    expect(asked).toEqual([[{ requires: { labels: ["gpu"] }, priority: 0 }]]);
    expect(shown.counts).toMatchObject({ ready: 3, waiting: 1 });
    expect([...waiting.keys()]).toEqual(["gpu"]);
    transition(store, { type: "attach", runner: "g", name: "g", want: 0, holding: [], caps: caps(["gpu"]) }, 0);
    expect((await withWaiting(host, summary)).waiting.size).toBe(0);
    expect(asked).toHaveLength(1);
  });

  it("asks nothing while the run is paused or has nothing ready", async () => {
    const { host, summary, asked } = setup();
    await withWaiting(host, { ...summary, status: "paused" });
    await withWaiting(host, { ...summary, counts: { ...summary.counts, ready: 0 } });
    expect(asked).toEqual([]);
  });

  it("shows the ready tasks of a waiting node as waiting, with the reason", () => {
    const task = (id: string, node: string, state: TaskView["state"]): TaskView => ({
      id,
      node,
      index: null,
      state,
      output_bytes: null,
      cached: false,
      started_at: null,
      ended_at: null,
      attempts: [],
    });
    const tasks = [task("gpu", "gpu", "ready"), task("p", "plain", "ready"), task("g2", "gpu", "succeeded")];
    const shown = markWaiting(tasks, new Map([["gpu", "no runner with label gpu"]]));
    expect(shown.map((t) => [t.id, t.state, t.waiting])).toEqual([
      ["gpu", "waiting", "no runner with label gpu"],
      ["p", "ready", undefined],
      ["g2", "succeeded", undefined],
    ]);
  });
});
