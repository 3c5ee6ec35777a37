// Watching a run: a snapshot then coalesced updates over hibernatable sockets, the D1 index kept
// current while the run goes, and many watchers on one run. In workerd, with a scripted runner.
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import type { WatchMessage } from "../../core/protocol/watch";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, WatchSocket, runnerInfo } from "./socket";

const info = (id: string, slots: number) => runnerInfo(id, slots);
const ok = (a: Assignment) => ({
  task: a.task,
  attempt: a.attempt,
  ok: true,
  output: btoa("1"),
  stderr: "",
  durationMs: 1,
});

async function submit(yaml: string): Promise<string> {
  await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: `cache: false\n${yaml}` });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

/** Runs every task the run hands out, `want` at a time, until it finishes. */
async function work(run: string, want: number): Promise<void> {
  const socket = await RunnerSocket.open(`/api/runners/connect?run=${run}`, "worker");
  socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("worker", want), want });
  let received = 0;
  for (;;) {
    const frame = await socket.next("tasks", "finished");
    if (frame.type === "finished") return;
    received += frame.tasks.length;
    socket.send({ type: "results", results: frame.tasks.map(ok), want: frame.tasks.length, received });
  }
}

describe("GET /api/dags/:id/watch", () => {
  it("sends a snapshot, then updates with node counts and changed tasks, the last with the final status", async () => {
    const id = await submit(
      "tasks:\n  - { id: a, module: step.wasm }\n" +
        "  - { id: b, module: step.wasm, depends_on: [a], map: { range: [0, 3] } }\n",
    );
    const watcher = await WatchSocket.open(id);
    const snapshot = await watcher.next("snapshot");
    expect(snapshot.run).toMatchObject({ id, status: "queued", tasks_total: 4 });
    expect(snapshot.nodes.map((n) => [n.id, n.deps, n.instances, n.counts])).toEqual([
      ["a", [], null, { ready: 1 }],
      ["b", ["a"], 3, { blocked: 3 }],
    ]);
    const runner = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "stepper");
    runner.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("stepper", 2), want: 2 });
    const [a] = (await runner.next("tasks")).tasks;
    const leased = await watcher.next("update");
    expect(leased.tasks).toEqual([{ id: "a", state: "leased" }]);
    expect(leased.nodes).toEqual([{ id: "a", counts: { leased: 1 } }]);
    expect(leased.run).toMatchObject({ status: "running" });
    runner.send({ type: "results", results: [ok(a!)], want: 2, received: 1 });
    const { tasks } = await runner.next("tasks");
    runner.send({ type: "results", results: tasks.map(ok), want: 2, received: 3 });
    const [last1] = (await runner.next("tasks")).tasks;
    runner.send({ type: "results", results: [ok(last1!)], want: 2, received: 4 });
    expect(await watcher.ended()).toMatchObject({ code: 4000 });
    const updates = watcher.seen.filter((m): m is Extract<WatchMessage, { type: "update" }> => m.type === "update");
    const last = updates.at(-1)!;
    expect(last.run).toMatchObject({ status: "succeeded", counts: expect.objectContaining({ succeeded: 4 }) });
    // Node counts in the updates end where the run ended.
    const nodes = new Map(snapshot.nodes.map((n) => [n.id, n.counts]));
    for (const u of updates) for (const n of u.nodes) nodes.set(n.id, n.counts);
    expect(Object.fromEntries(nodes)).toEqual({ a: { succeeded: 1 }, b: { succeeded: 3 } });
  });

  it("refuses a plain GET, an unknown run and a missing token", async () => {
    expect((await SELF.fetch(`${base}/api/dags/${"a".repeat(64)}/watch`, { headers: API })).status).toBe(426);
    const unknown = await SELF.fetch(`${base}/api/dags/${"0".repeat(64)}/watch?token=test-api-token`, {
      headers: { Upgrade: "websocket" },
    });
    expect(unknown.status).toBe(404);
    const id = await submit("tasks: [{ id: a, module: step.wasm }]");
    const anonymous = await SELF.fetch(`${base}/api/dags/${id}/watch`, { headers: { Upgrade: "websocket" } });
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json<{ error: string }>()).error).toMatch(/\?token=/);
    const wrong = await SELF.fetch(`${base}/api/dags/${id}/watch?token=nope`, { headers: { Upgrade: "websocket" } });
    expect(wrong.status).toBe(401);
  });

  it("50 watchers on a run of 1,000 tasks all receive the final state", async () => {
    const id = await submit("tasks:\n  - { id: many, module: step.wasm, map: { range: [0, 1000] } }\n");
    const watchers = await Promise.all(Array.from({ length: 50 }, () => WatchSocket.open(id)));
    await work(id, 50);
    const ends = await Promise.all(watchers.map((w) => w.ended()));
    expect(ends.every((e) => e.code === 4000)).toBe(true);
    for (const w of watchers) {
      expect(w.seen[0]!.type).toBe("snapshot");
      const last = w.seen.at(-1)!;
      expect(last.run).toMatchObject({ status: "succeeded", counts: expect.objectContaining({ succeeded: 1000 }) });
    }
    // Coalesced: 1,000 tasks and 20 result frames, far fewer updates per watcher.
    const updates = watchers[0]!.seen.length - 1;
    expect(updates).toBeGreaterThan(0);
    expect(updates).toBeLessThan(100);
    // A watcher arriving after the end gets the final snapshot and the socket closes.
    const late = await WatchSocket.open(id);
    expect((await late.next("snapshot")).run.status).toBe("succeeded");
    expect((await late.ended()).code).toBe(4000);
  });

  it("tells watchers of a pause, which moves no task", async () => {
    const id = await submit("tasks: [{ id: a, module: step.wasm }]");
    const watcher = await WatchSocket.open(id);
    await watcher.next("snapshot");
    expect((await SELF.fetch(`${base}/api/dags/${id}/pause`, { method: "POST", headers: API })).status).toBe(200);
    expect((await watcher.next("update")).run.status).toBe("paused");
    watcher.ws.close();
  });

  it("keeps the run list current while a run goes, with counts by state", async () => {
    const id = await submit("tasks:\n  - { id: many, module: step.wasm, map: { range: [0, 4] } }\n");
    const runner = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "half");
    runner.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("half", 2), want: 2 });
    const { tasks } = await runner.next("tasks");
    runner.send({ type: "results", results: tasks.map(ok), want: 0, received: 2 });
    const listed = async () => {
      const { runs } = await (
        await SELF.fetch(`${base}/api/dags`, { headers: API })
      ).json<{
        runs: { id: string; status: string; counts: Record<string, number> }[];
      }>();
      return runs.find((r) => r.id === id)!;
    };
    const deadline = Date.now() + 5000;
    while ((await listed()).counts.succeeded !== 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(await listed()).toMatchObject({
      status: "running",
      counts: expect.objectContaining({ succeeded: 2, ready: 2 }),
    });
    runner.ws.close();
  });
});
