// End to end: the real local coordinator (wrangler dev, workerd) and two real runner processes
// running real WASM tasks; the `distro` CLI as a process.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "./harness";

const cluster = new Cluster();

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "alpha" });
  cluster.runner({ name: "beta" });
  await cluster.upload("init.wasm", "greet.wasm", "aggregate.wasm", "fail.wasm", "fixtures/trap.wasm", "spin.wasm");
  await cluster.connected("alpha", "beta");
});
afterAll(() => cluster.stop());

const distro = (...args: string[]) => cluster.distro(...args);

describe("a DAG on two runner processes", () => {
  it("fans out 24 instances and aggregates every output in order; both runners take work", async () => {
    const names = Array.from({ length: 24 }, (_, i) => `n${i}`);
    const run = await cluster.client.submit(`
name: wide-fanout
params: { greeting: Hey }
tasks:
  - { id: init, module: init.wasm }
  - id: greet
    module: greet.wasm
    depends_on: [init]
    map: { items: [${names.join(", ")}] }
    args: ["{{item}}"]
  - { id: aggregate, module: aggregate.wasm, depends_on: [greet] }
  - { id: spread, module: spin.wasm, map: { range: [0, 8] }, params: { ms: 300 } }
`);
    // Nine tasks are ready at the start, more than one runner's slots: both runners join. (The
    // greetings alone may all go to one: a runner holds up to 9 × its slots of short tasks.)
    expect(run.tasks_total).toBe(34);
    const final = await cluster.client.wait(run.id);
    expect(final.status).toBe("succeeded");
    const aggregate = JSON.parse(new TextDecoder().decode(await cluster.client.output(run.id, "aggregate")));
    expect(aggregate).toEqual({ count: 24, messages: names.map((n) => `Hey, ${n}!`) });
    const view = await cluster.client.run(run.id);
    const runnerNames = new Set(view.tasks.flatMap((t) => t.attempts.map((a) => a.runner_name)));
    expect(runnerNames).toEqual(new Set(["alpha", "beta"]));
    // Exactly once: one succeeded attempt each (a held task handed back for a steal is `returned`).
    const once = (t: (typeof view.tasks)[number]) => t.attempts.filter((a) => a.outcome === "succeeded").length === 1;
    expect(view.tasks.filter((t) => t.state !== "succeeded" || !once(t))).toEqual([]);
    for (const runner of cluster.runners)
      expect(runner.lines.some((l) => /task (greet|spread)\[\d+\] attempt \d+: ok/.test(l))).toBe(true);
  });

  it("ends a run failed with the reason and stderr tail of a non-zero exit and of a trap", async () => {
    const run = await cluster.client.submit(`
name: failing
tasks:
  - { id: quits, module: fail.wasm, args: ["3"], retries: 1 }
  - { id: traps, module: trap.wasm, retries: 0 }
  - { id: after, module: init.wasm, depends_on: [quits] }
`);
    const final = await cluster.client.wait(run.id);
    expect(final.status).toBe("failed");
    const tasks = new Map((await cluster.client.run(run.id)).tasks.map((t) => [t.id, t]));
    const quits = tasks.get("quits")!;
    expect(quits.state).toBe("failed");
    expect(quits.attempts).toHaveLength(2);
    expect(quits.attempts[1]).toMatchObject({ outcome: "failed", failure_kind: "exit", error: "exited with code 3" });
    expect(quits.attempts[1]!.stderr).toContain("giving up on purpose with exit code 3");
    const traps = tasks.get("traps")!;
    expect(traps.attempts[0]).toMatchObject({ failure_kind: "trap" });
    expect(traps.attempts[0]!.error).toMatch(/unreachable/);
    expect(traps.attempts[0]!.stderr).toContain("about to hit unreachable");
    expect(tasks.get("after")!.state).toBe("skipped");
  });
});

describe("the distro CLI", () => {
  it("submits hello_fanout, waits, prints the aggregate and exits 0", async () => {
    const { code, out } = await distro("submit", "dags/hello_fanout.yaml", "--wait");
    expect(code).toBe(0);
    expect(out).toContain(`aggregate: {"count":3,"messages":["Hello, Alice!","Hello, Bob!","Hello, Carol!"]}`);
    expect(out).toMatch(/status: http:\/\/127\.0\.0\.1:\d+\/#\/runs\/[0-9a-f]{64}/);
  });

  it("exits 2 with file:line:column for an invalid DAG, before uploading anything", async () => {
    const { code, err } = await distro("submit", "test/e2e/fixtures/cycle.yaml");
    expect(code).toBe(2);
    expect(err).toMatch(/cycle\.yaml:6:18: tasks\[0\]\.depends_on\[0\]: dependency cycle: a → b → a/);
  });

  it("exits 1 when the run fails and names the failed task", async () => {
    const { code, err } = await distro(
      "submit",
      "test/e2e/fixtures/fails.yaml",
      "--wait",
      "--modules",
      "wasm_tasks/build",
    );
    expect(code).toBe(1);
    expect(err).toMatch(/task boom failed after 1 attempt\(s\): exit: exited with code 4/);
  });

  it("exits 2 on an unknown flag and 2 on a wrong token", async () => {
    expect((await distro("submit", "dags/hello_fanout.yaml", "--frobnicate")).code).toBe(2);
    expect((await distro("submit", "dags/hello_fanout.yaml", "--token", "wrong")).code).toBe(2);
  });
});
