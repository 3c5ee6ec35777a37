// The DagRun and RunnerPool Durable Objects in workerd, driven over real WebSockets by a
// scripted runner: matchmaking, dispatch with the task envelope, results, failures, bad frames.
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import { API, base, RunnerSocket, runnerInfo } from "./socket";
import { wasmModule } from "../helpers/wasm-builder";

const info = (id: string, slots: number) => runnerInfo(id, slots, `scripted-${id}`);

const b64 = (text: string) => btoa(text);
const ok = (a: Assignment, output: string) => ({
  task: a.task,
  attempt: a.attempt,
  ok: true,
  output: b64(output),
  stderr: "",
  durationMs: 1,
});

/** Submits a DAG; the result cache is off unless the DAG mentions it (these tests are about scheduling). */
async function submit(yaml: string): Promise<string> {
  const body = yaml.includes("cache:") ? yaml : `cache: false\n${yaml}`;
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

async function view(id: string) {
  return await (
    await SELF.fetch(`${base}/api/dags/${id}`, { headers: API })
  ).json<{
    status: string;
    counts: Record<string, number>;
    tasks: {
      id: string;
      state: string;
      waiting?: string;
      attempts: {
        runner: string;
        outcome: string;
        failure_kind: string | null;
        error: string | null;
        stderr: string;
      }[];
    }[];
  }>();
}

describe("a run driven by a scripted runner", () => {
  it("matches, dispatches in dependency order with the envelope, and accepts each result once", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const pool = await RunnerSocket.open("/api/runners/connect", "r1");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("r1", 2), want: 0 });
    await pool.next("welcome");

    const id = await submit(`
name: scripted
params: { base: 10 }
tasks:
  - id: a
    module: step.wasm
  - id: b
    module: step.wasm
    depends_on: [a]
    map: { items: [x, y, z] }
    args: ["{{item}}", "{{index}}", "{{params.base}}"]
  - id: c
    module: step.wasm
    depends_on: [b]
`);
    expect((await pool.next("join")).run).toBe(id);

    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "r1");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("r1", 2), want: 2 });
    await run.next("welcome");
    const first = await run.next("tasks");
    expect(first.tasks.map((t) => t.task)).toEqual(["a"]);
    expect(JSON.parse(first.tasks[0]!.stdin)).toEqual({ task: "a", attempt: 1, params: { base: 10 }, inputs: {} });

    run.send({ type: "results", results: [ok(first.tasks[0]!, `{"seed":7}`)], want: 2, received: 1 });
    const second = await run.next("tasks");
    expect(second.tasks.map((t) => t.task)).toEqual(["b[0]", "b[1]"]);
    expect(second.backlog).toBe(1);
    expect(second.tasks[1]!.args).toEqual(["y", "1", "10"]);
    expect(JSON.parse(second.tasks[1]!.stdin)).toEqual({
      task: "b[1]",
      attempt: 1,
      params: { base: 10 },
      inputs: { a: { seed: 7 } },
      item: "y",
      index: 1,
    });

    // A duplicate of an accepted result and a result for an unknown task are ignored.
    run.send({
      type: "results",
      results: [ok(first.tasks[0]!, `"dup"`), { ...ok(first.tasks[0]!, "x"), task: "nope" }],
      want: 0,
      received: 3,
    });
    run.send({
      type: "results",
      results: [ok(second.tasks[1]!, `"Y"`), ok(second.tasks[0]!, `"X"`)],
      want: 1,
      received: 3,
    });
    const third = await run.next("tasks");
    expect(third.tasks.map((t) => t.task)).toEqual(["b[2]"]);
    run.send({ type: "results", results: [ok(third.tasks[0]!, "not json")], want: 1, received: 4 });
    const last = await run.next("tasks");
    expect(JSON.parse(last.tasks[0]!.stdin).inputs).toEqual({ b: ["X", "Y", { $bytes: b64("not json") }] });
    run.send({ type: "results", results: [ok(last.tasks[0]!, `{"done":true}`)], want: 2, received: 5 });
    expect((await run.next("finished")).status).toBe("succeeded");

    const v = await view(id);
    expect(v.status).toBe("succeeded");
    expect(v.counts.succeeded).toBe(5);
    expect(v.tasks.every((t) => t.attempts.length === 1 && t.attempts[0]!.runner === "r1")).toBe(true);
    const out = await SELF.fetch(`${base}/api/dags/${id}/tasks/a/output`, { headers: API });
    expect(out.headers.get("Content-Type")).toBe("application/json");
    expect(await out.text()).toBe(`{"seed":7}`);
    const b2 = await SELF.fetch(`${base}/api/dags/${id}/tasks/b%5B2%5D/output`, { headers: API });
    expect(b2.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(b2.headers.get("Content-Disposition")).toBe('attachment; filename="b_2_.bin"');
    expect(b2.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(await b2.text()).toBe("not json");
    pool.ws.close();
  });

  it("fails the run when a task fails for good, skips its dependents and keeps stderr", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit(`
tasks:
  - id: broken
    module: step.wasm
    retries: 1
  - id: after
    module: step.wasm
    depends_on: [broken]
`);
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "r2");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("r2", 1), want: 1 });
    for (let attempt = 1; attempt <= 2; attempt++) {
      const { tasks } = await run.next("tasks");
      expect(tasks[0]).toMatchObject({ task: "broken", attempt });
      run.send({
        type: "results",
        results: [
          {
            task: "broken",
            attempt,
            ok: false,
            stderr: `boom ${attempt}\n`,
            durationMs: 1,
            failure: { kind: "exit", message: "exited with code 3", retryable: true, exitCode: 3 },
          },
        ],
        want: 1,
        received: attempt,
      });
    }
    expect((await run.next("finished")).status).toBe("failed");
    const v = await view(id);
    const broken = v.tasks.find((t) => t.id === "broken")!;
    expect(broken.state).toBe("failed");
    expect(broken.attempts).toHaveLength(2);
    expect(broken.attempts[1]).toMatchObject({
      outcome: "failed",
      failure_kind: "exit",
      error: "exited with code 3",
      stderr: "boom 2\n",
    });
    expect(v.tasks.find((t) => t.id === "after")!.state).toBe("skipped");
  });

  it("takes a frame sent right after the hello, while the hello is still being handled", async () => {
    // Found by fuzzing (fuzz.test.ts): the hello asks the pool of a cool-down, and a want that
    // came meanwhile found no runner attached, was refused, and its credit lost.
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit("tasks:\n  - id: t\n    module: step.wasm\n    map: { items: [1, 2, 3] }\n");
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "quick");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("quick", 2), want: 0 });
    run.send({ type: "want", want: 2, received: 0 });
    await run.next("welcome");
    expect((await run.next("tasks")).tasks.map((t) => t.task)).toEqual(["t[0]", "t[1]"]);
    expect(run.seen.filter((f) => f.type === "error")).toEqual([]);
  });

  it("takes a result the replaced socket sent, arriving while the new socket's hello is handled", async () => {
    // The wait above is the socket's own: a frame of the old socket does not wait for the new one's hello.
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit("tasks:\n  - { id: t, module: step.wasm }\n");
    const old = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "reco");
    old.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("reco", 1), want: 1 });
    const [t] = (await old.next("tasks")).tasks;
    const fresh = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "reco");
    fresh.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("reco", 1), want: 0 });
    old.send({ type: "results", results: [ok(t!, "{}")], want: 0, received: 1 });
    await fresh.next("welcome");
    for (let i = 0; i < 100 && (await view(id)).status !== "succeeded"; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect((await view(id)).status).toBe("succeeded");
  });

  it("answers bad frames with error frames and keeps serving", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit("tasks:\n  - id: only\n    module: step.wasm\n");
    const early = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "anon");
    early.send({ type: "want", want: 1, received: 0 });
    const refused = await early.next("error");
    expect(refused).toMatchObject({ fatal: true });
    expect(refused.message).toMatch(/first frame must be "hello"/);

    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "anon");
    run.send("this is not json");
    expect((await run.next("error")).message).toMatch(/not JSON/);
    run.send(JSON.stringify({ type: "results", results: "nope", want: 1 }));
    expect((await run.next("error")).message).toMatch(/invalid "results" frame at results/);
    run.send({ type: "hello", protocol: 99, runner: info("r3", 1), want: 1 });
    expect((await run.next("error")).message).toMatch(/protocol 99 is not supported/);

    const good = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "r4");
    good.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("r4", 1), want: 1 });
    const { tasks } = await good.next("tasks");
    good.send({ type: "results", results: [ok(tasks[0]!, "1")], want: 1, received: 1 });
    expect((await good.next("finished")).status).toBe("succeeded");
  });

  it("re-queues the attempts of a runner whose socket closes", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit("tasks:\n  - id: only\n    module: step.wasm\n");
    const a = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "gone");
    a.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("gone", 1), want: 1 });
    expect((await a.next("tasks")).tasks[0]).toMatchObject({ task: "only", attempt: 1 });
    a.ws.close(1000, "bye");
    const b = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "stays");
    b.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("stays", 1), want: 1 });
    const { tasks } = await b.next("tasks");
    expect(tasks[0]).toMatchObject({ task: "only", attempt: 2 });
    b.send({ type: "results", results: [ok(tasks[0]!, "2")], want: 1, received: 1 });
    expect((await b.next("finished")).status).toBe("succeeded");
    const v = await view(id);
    expect(v.tasks[0]!.attempts.map((x) => [x.runner, x.outcome])).toEqual([
      ["gone", "lost"],
      ["stays", "succeeded"],
    ]);
  });

  it("takes a 100,000-instance run: rows in SQLite, not memory, and work goes out at once", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit(
      "tasks:\n  - { id: wide, module: step.wasm, map: { range: [0, 99999] } }\n" +
        "  - { id: after, module: step.wasm, depends_on: [wide] }\n",
    );
    const summary = await (
      await SELF.fetch(`${base}/api/dags/${id}?summary`, { headers: API })
    ).json<{
      counts: Record<string, number>;
      tasks_total: number;
    }>();
    expect(summary.tasks_total).toBe(100_000);
    // No runner is connected yet: the ready tasks show as waiting.
    expect(summary.counts).toMatchObject({ waiting: 99_999, ready: 0, blocked: 1 });
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "wide");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("wide", 8), want: 8 });
    const { tasks, backlog } = await run.next("tasks");
    expect(tasks.map((t) => t.task)).toEqual(Array.from({ length: 8 }, (_, i) => `wide[${i}]`));
    expect(backlog).toBe(99_991);
    const page = await (
      await SELF.fetch(`${base}/api/dags/${id}?offset=5&limit=4`, { headers: API })
    ).json<{
      tasks: { id: string; state: string; attempts: unknown[] }[];
    }>();
    expect(page.tasks.map((t) => [t.id, t.state, t.attempts.length])).toEqual([
      ["wide[5]", "leased", 1],
      ["wide[6]", "leased", 1],
      ["wide[7]", "leased", 1],
      ["wide[8]", "ready", 0],
    ]);
    expect((await SELF.fetch(`${base}/api/dags/${id}?limit=-3`, { headers: API })).status).toBe(400);
    // Only the tasks in one state, paged the same way.
    const leased = await (
      await SELF.fetch(`${base}/api/dags/${id}?state=leased&offset=2&limit=10`, { headers: API })
    ).json<{ tasks: { id: string; state: string }[] }>();
    expect(leased.tasks.map((t) => [t.id, t.state])).toEqual(
      Array.from({ length: 6 }, (_, i) => [`wide[${i + 2}]`, "leased"]),
    );
    const bogus = await SELF.fetch(`${base}/api/dags/${id}?state=dancing`, { headers: API });
    expect(bogus.status).toBe(400);
    expect((await bogus.json<{ error: string }>()).error).toMatch(/\?state takes one of blocked, lookup, ready/);
    run.ws.close();
  });

  it("runs 150 nodes that require a label and one that does not, each on a runner that qualifies", async () => {
    await SELF.fetch(`${base}/api/modules/label.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const constrained = Array.from(
      { length: 150 },
      (_, i) => `  - { id: x${i}, module: label.wasm, requires: { labels: [x] } }`,
    );
    const id = await submit(
      `name: labelled\ntasks:\n  - { id: plain, module: label.wasm }\n${constrained.join("\n")}\n`,
    );
    const open = async (runner: string, labels: string[]) => {
      const socket = await RunnerSocket.open(`/api/runners/connect?run=${id}`, runner);
      socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: { ...info(runner, 8), labels }, want: 8 });
      await socket.next("welcome");
      return socket;
    };
    const ran = new Map<string, string>();
    const serve = async (socket: RunnerSocket, runner: string) => {
      let received = 0;
      while (ran.size < 151) {
        const { tasks } = await socket.next("tasks");
        received += tasks.length;
        for (const t of tasks) ran.set(t.task, runner);
        socket.send({ type: "results", results: tasks.map((t) => ok(t, "1")), want: 8, received });
      }
    };
    const plain = await open("unlabelled", []);
    const labelled = await open("with-x", ["x"]);
    void serve(plain, "unlabelled").catch(() => undefined);
    void serve(labelled, "with-x").catch(() => undefined);
    const done = await waitFor(id, "succeeded");
    expect(done.counts.succeeded).toBe(151);
    expect([...ran].filter(([task, runner]) => task.startsWith("x") && runner !== "with-x")).toEqual([]);
    for (const s of [plain, labelled]) s.ws.close(1000, "done");
  });

  it("serves a resubmitted DAG from the result cache, no runner; re-runs what a changed param touches", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const dag = (seed: number) =>
      "cache: true\ntasks:\n  - { id: a, module: step.wasm, params: { fixed: 1 } }\n" +
      `  - { id: b, module: step.wasm, depends_on: [a], params: { seed: ${seed} }, args: ["{{params.seed}}"] }\n`;
    const first = await submit(dag(1));
    const run = await RunnerSocket.open(`/api/runners/connect?run=${first}`, "c1");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("c1", 1), want: 1 });
    const [a] = (await run.next("tasks")).tasks;
    run.send({ type: "results", results: [ok(a!, `"A"`)], want: 1, received: 1 });
    const [b] = (await run.next("tasks")).tasks;
    run.send({ type: "results", results: [ok(b!, `"B1"`)], want: 1, received: 2 });
    expect((await run.next("finished")).status).toBe("succeeded");

    // Unchanged: every task from the cache, with no runner connected at all.
    const again = await submit(dag(1));
    const cached = await waitFor(again, "succeeded");
    expect(cached.tasks.map((t) => t.attempts.map((x) => x.outcome))).toEqual([["cached"], ["cached"]]);
    expect(await (await SELF.fetch(`${base}/api/dags/${again}/tasks/b/output`, { headers: API })).text()).toBe(`"B1"`);

    // A changed param: a still comes from the cache, b must run.
    const changed = await submit(dag(2));
    const partial = await waitFor(changed, "running", (v) => v.counts.waiting === 1);
    expect(partial.counts.succeeded).toBe(1);
    expect(partial.tasks.find((t) => t.id === "a")!.attempts.map((x) => x.outcome)).toEqual(["cached"]);
    expect(partial.tasks.find((t) => t.id === "b")).toMatchObject({ state: "waiting", waiting: "no runner connected" });
  });
});

async function waitFor(
  id: string,
  status: string,
  check: (v: Awaited<ReturnType<typeof view>>) => boolean = () => true,
) {
  for (let i = 0; i < 200; i++) {
    const v = await view(id);
    if (v.status === status && check(v)) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`run ${id} did not reach ${status}`);
}
