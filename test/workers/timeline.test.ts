// What the status page reads beside the run view, in workerd: GET /api/dags/:id/timeline (every
// attempt by device, and the tasks finished per second over the whole run) and GET /api/modules
// (the uploaded modules the page's new-run view lists).
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ModuleListing, TimelineView } from "../../core/api";
import { PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, runnerInfo } from "./socket";

const result = (a: Assignment, ok: boolean) => ({
  task: a.task,
  attempt: a.attempt,
  ok,
  output: ok ? btoa("1") : undefined,
  failure: ok ? undefined : { kind: "exit" as const, message: "exited with code 1", retryable: true },
  stderr: "",
  durationMs: 1,
});

describe("the run's timeline", () => {
  it("lists every attempt with its device and outcome, and counts each task once, when its last attempt ended", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const pool = await RunnerSocket.open("/api/runners/connect", "t1");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("t1", 3, "laptop"), want: 0 });
    await pool.next("welcome");
    const submitted = await SELF.fetch(`${base}/api/dags`, {
      method: "POST",
      headers: API,
      body: `cache: false\ntasks:\n  - { id: w, module: step.wasm, retries: 1, retry_delay: 0, map: { range: [0, 3] } }\n`,
    });
    const { id } = await submitted.json<{ id: string }>();
    expect((await pool.next("join")).run).toBe(id);
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "t1");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("t1", 3, "laptop"), want: 3 });
    await run.next("welcome");
    const first = await run.next("tasks");
    expect(first.tasks).toHaveLength(3);
    // w[1] fails once and is retried: two attempts, one task.
    run.send({
      type: "results",
      results: [result(first.tasks[0]!, true), result(first.tasks[1]!, false), result(first.tasks[2]!, true)],
      want: 1,
      received: 3,
    });
    const again = await run.next("tasks");
    expect(again.tasks.map((t) => [t.task, t.attempt])).toEqual([["w[1]", 2]]);
    run.send({ type: "results", results: [result(again.tasks[0]!, true)], want: 1, received: 4 });
    expect((await run.next("finished")).status).toBe("succeeded");

    const res = await SELF.fetch(`${base}/api/dags/${id}/timeline`, { headers: API });
    expect(res.status).toBe(200);
    const t = await res.json<TimelineView>();
    expect(t.cut).toBe(false);
    expect(t.finished_at).not.toBeNull();
    expect(t.attempts.map((a) => [a.task, a.attempt, a.runner_name, a.outcome]).sort()).toEqual([
      ["w[0]", 1, "laptop", "succeeded"],
      ["w[1]", 1, "laptop", "failed"],
      ["w[1]", 2, "laptop", "succeeded"],
      ["w[2]", 1, "laptop", "succeeded"],
    ]);
    expect(t.attempts.every((a) => a.ended_at !== null && a.ended_at >= a.started_at)).toBe(true);
    // None was said to start (the results came first): each began when its result says, 1 ms
    // before its end (or at its dispatch, were that later), not when it was sent.
    expect(t.attempts.map((a) => a.ended_at! - a.started_at <= 1)).toEqual([true, true, true, true]);
    // Three tasks finished, over buckets of a second that span the run.
    expect(t.bucket_ms).toBe(1000);
    expect(t.finished.reduce((a, b) => a + b, 0)).toBe(3);
    expect(t.finished).toHaveLength(Math.max(1, Math.ceil((t.finished_at! - t.created_at) / 1000)));
    pool.ws.close();

    const unknown = await SELF.fetch(`${base}/api/dags/${"0".repeat(64)}/timeline`, { headers: API });
    expect(unknown.status).toBeGreaterThanOrEqual(400);
    expect(unknown.status).toBeLessThan(500);
    expect((await SELF.fetch(`${base}/api/dags/${id}/timeline`)).status).toBe(401);
  });
});

describe("the module list", () => {
  it("lists the modules uploaded, newest first, to any token; none without one", async () => {
    for (const name of ["first.wasm", "second.wasm"]) {
      const res = await SELF.fetch(`${base}/api/modules/${name}`, { method: "PUT", headers: API, body: wasmModule() });
      expect(res.status).toBe(200);
    }
    const res = await SELF.fetch(`${base}/api/modules`, { headers: API });
    expect(res.status).toBe(200);
    const { modules } = await res.json<ModuleListing>();
    const names = modules.map((m) => m.name);
    expect(names).toContain("first.wasm");
    expect(names.indexOf("second.wasm")).toBeLessThan(names.indexOf("first.wasm") + 1);
    const second = modules.find((m) => m.name === "second.wasm")!;
    expect(second.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(second.size).toBe(wasmModule().length);
    expect(second.uploaded_at).toBeGreaterThan(0);
    expect((await SELF.fetch(`${base}/api/modules`)).status).toBe(401);
  });
});
