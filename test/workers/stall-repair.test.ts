// The pool's self-repair, in workerd: a planted fault drops a runner's grant (it tells the run
// want 0 where it meant 1), so the run has a ready task and the runner an idle slot, and neither
// hears of the other. Within 5 s the pool points the runner at the run again, logs it and counts
// it in /metrics; the runner answers the join with its credit, as its allocator does
// (runner/credit.ts), and the run finishes.
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RunView } from "../../core/api";
import { PROTOCOL_VERSION } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, runnerInfo } from "./socket";

async function metric(name: string): Promise<number> {
  const text = await (await SELF.fetch(`${base}/metrics`, { headers: API })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

/** Submits a one-node DAG of `instances` tasks (a plain task when 0); its id. */
async function submit(name: string, instances = 0): Promise<string> {
  await SELF.fetch(`${base}/api/modules/stall.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  const map = instances > 0 ? `, map: { range: [0, ${instances}] }` : "";
  const body = `name: ${name}\ncache: false\ntasks:\n  - { id: t, module: stall.wasm${map} }\n`;
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body });
  return (await res.json<{ id: string }>()).id;
}

/** A scripted runner of `slots` slots on the pool, idle, pointed at `run`; then its socket to the run says `want`. */
async function joined(name: string, slots: number, run: string, want: number) {
  const pool = await RunnerSocket.open("/api/runners/connect", name);
  pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo(name, slots), want: 0 });
  await pool.next("welcome");
  pool.send({ type: "status", free: slots, slots, runs: [] });
  expect(await pool.next("join")).toMatchObject({ run });
  const socket = await RunnerSocket.open(`/api/runners/connect?run=${run}`, name);
  socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo(name, slots), want });
  await socket.next("welcome");
  return { pool, run: socket };
}

/** How long until the pool sends `pool` a join for `run` after the joins it has sent so far; throws past 10 s. */
async function repairedAfter(pool: RunnerSocket, run: string): Promise<number> {
  const stuckAt = Date.now();
  await new Promise((r) => setTimeout(r, 200));
  const joins = () => pool.seen.filter((f) => f.type === "join");
  const before = joins().length; // the joins for the run's first demand
  while (joins().length === before && Date.now() - stuckAt < 10_000) await new Promise((r) => setTimeout(r, 20));
  expect(joins()[before]).toMatchObject({ run });
  return Date.now() - stuckAt;
}

describe("stall repair", () => {
  it("re-points a runner whose grant was lost within 5 s, and counts it", { timeout: 20_000 }, async () => {
    const id = await submit("stall");
    const repairs = await metric("distro_stall_repairs_total");
    // The fault: the runner gave the run its slot, but the run heard want 0.
    const { pool, run } = await joined("stuck", 1, id, 0);
    pool.send({ type: "status", free: 1, slots: 1, runs: [id] });
    expect(await repairedAfter(pool, id)).toBeLessThan(5_000);
    expect(await metric("distro_stall_repairs_total")).toBe(repairs + 1);

    // The runner answers a join for a run it is in with its credit again: the task goes out.
    run.send({ type: "want", want: 1, received: 0 });
    const { tasks } = await run.next("tasks");
    expect(tasks.map((t) => t.task)).toEqual(["t"]);
    run.send({
      type: "results",
      results: [{ task: "t", attempt: 1, ok: true, output: btoa("1"), stderr: "", durationMs: 1 }],
      want: 1,
      received: 1,
    });
    for (;;) {
      const view = await (await SELF.fetch(`${base}/api/dags/${id}`, { headers: API })).json<RunView>();
      if (view.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Busy or gone, the runner is no stall: one repair, counted once.
    expect(await metric("distro_stall_repairs_total")).toBe(repairs + 1);
    for (const s of [pool, run]) s.ws.close(1000, "done");
  });

  it("repairs a lost grant for a second slot while the first runs a long attempt", { timeout: 20_000 }, async () => {
    const id = await submit("half", 2);
    const repairs = await metric("distro_stall_repairs_total");
    // The fault: the runner gave the run both slots; the run heard one.
    const { pool, run } = await joined("half", 2, id, 1);
    const [first] = (await run.next("tasks")).tasks;
    pool.send({ type: "status", free: 1, slots: 2, runs: [id] }); // one slot runs, one waits
    expect(await repairedAfter(pool, id)).toBeLessThan(5_000);
    expect(await metric("distro_stall_repairs_total")).toBe(repairs + 1);
    run.send({ type: "want", want: 1, received: 1 });
    const [second] = (await run.next("tasks")).tasks;
    expect([first!.task, second!.task].sort()).toEqual(["t[0]", "t[1]"]);
    for (const s of [pool, run]) s.ws.close(1000, "done");
  });
});
