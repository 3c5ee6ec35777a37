// Lose nothing: runners killed, frozen and restarted, the coordinator killed and restarted,
// runs cancelled and paused, tasks that fail and retry. Real processes, real sockets, real WASM.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startCoordinator, type Proc } from "../../dev/local";
import { Cluster } from "./harness";
import type { RunView } from "../../core/api";

const HEARTBEAT_MS = 2000;
const cluster = new Cluster();
/**
 * A short heartbeat, and no cool-downs: these tests lose attempts on purpose, again and again, and
 * are about recovering from it; cooling down the devices that lose them is hostile-devices.test.ts's.
 */
const RECOVERY_VARS = { HEARTBEAT_TIMEOUT_MS: String(HEARTBEAT_MS), COOLDOWN_LOSSES: "1000000" };

beforeAll(async () => {
  await cluster.start({ vars: RECOVERY_VARS });
  await cluster.upload("spin.wasm", "flaky.wasm", "init.wasm");
});
afterAll(() => cluster.stop());
afterEach(async () => {
  // Each test brings its own runners.
  await Promise.all(cluster.runners.splice(0).map((r) => r.stop("SIGKILL")));
});

/** Submits with the result cache off: these tests resubmit the same tasks and must see them run. */
const submit = (yaml: string) => cluster.client.submit(`cache: false\n${yaml}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function spinDag(name: string, count: number, ms: number, extra = ""): string {
  const map = `map: { range: [0, ${count}] }`;
  const spin = `{ id: spin, module: spin.wasm, ${map}, params: { ms: ${ms} }, retries: 10${extra} }`;
  return `name: ${name}\ntasks:\n  - ${spin}\n`;
}

const until = (id: string, check: (run: RunView) => boolean, timeoutMs?: number) => cluster.until(id, check, timeoutMs);

/** Every spin instance succeeded once, with the right output. */
async function expectAllCorrect(id: string, count: number): Promise<RunView> {
  const run = await cluster.client.run(id);
  expect(run.status).toBe("succeeded");
  expect(run.tasks).toHaveLength(count);
  for (const t of run.tasks) {
    expect(
      t.attempts.filter((a) => a.outcome === "succeeded"),
      t.id,
    ).toHaveLength(1);
    const out = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, t.id)));
    expect(out).toEqual({ index: t.index, square: t.index! * t.index! });
  }
  return run;
}

const leasedTo = (run: RunView, name: string) =>
  run.tasks.filter((t) => t.state === "leased" && t.attempts.at(-1)?.runner_name === name);

describe("runners that die", () => {
  it("kill -9 of a runner mid-task: the run succeeds on the other runner, every output correct", async () => {
    const doomed = cluster.runner({ name: "doomed" });
    cluster.runner({ name: "survivor" });
    const { id } = await submit(spinDag("kill-one", 200, 20));
    await until(id, (r) => (r.counts.succeeded ?? 0) >= 30 && leasedTo(r, "doomed").length > 0);
    await doomed.stop("SIGKILL");
    await cluster.client.wait(id);
    const run = await expectAllCorrect(id, 200);
    const lost = run.tasks.flatMap((t) => t.attempts).filter((a) => a.runner_name === "doomed" && a.outcome === "lost");
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(
      run.tasks
        .filter((t) => t.attempts.some((a) => a.runner_name === "doomed" && a.outcome === "lost"))
        .every((t) => t.attempts.at(-1)!.runner_name === "survivor"),
    ).toBe(true);
  });

  it("runners killed and restarted at random during a 500-task DAG: one accepted result per task", async () => {
    const names = ["c0", "c1", "c2"];
    const procs = new Map<string, Proc>(names.map((n) => [n, cluster.runner({ name: n })]));
    const { id } = await submit(spinDag("chaos", 500, 10));
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let kill = 0; kill < 6; kill++) {
      await sleep(300 + random() * 400);
      const name = names[Math.floor(random() * names.length)]!;
      await procs.get(name)!.stop("SIGKILL");
      procs.set(name, cluster.runner({ name }));
    }
    await cluster.client.wait(id);
    const run = await expectAllCorrect(id, 500);
    expect(run.tasks.flatMap((t) => t.attempts).filter((a) => a.outcome === "lost").length).toBeGreaterThanOrEqual(1);
  });

  it("kill -9 of the runner holding a chain's next links sent ahead: they wait again at no cost, the chain ends", async () => {
    const names = ["one", "two"];
    const procs = names.map((name) => cluster.runner({ name }));
    const links = Array.from({ length: 60 }, (_, i) => {
      const deps = i === 0 ? "" : `, depends_on: [t${i - 1}]`;
      return `  - { id: t${i}, module: spin.wasm, params: { ms: 40 }${deps} }`;
    });
    const { id } = await submit(`name: chain\ntasks:\n${links.join("\n")}\n`);
    // Once a runner knows the links short, it holds the next ones sent ahead of the one it runs.
    const holding = await until(id, (r) => names.some((n) => leasedTo(r, n).length >= 2));
    const holder = names.find((n) => leasedTo(holding, n).length >= 2)!;
    await procs[names.indexOf(holder)]!.stop("SIGKILL");
    await cluster.client.wait(id);
    const run = await cluster.client.run(id);
    expect(run.status).toBe("succeeded");
    for (const t of run.tasks)
      expect(
        t.attempts.filter((a) => a.outcome === "succeeded"),
        t.id,
      ).toHaveLength(1);
    const mine = run.tasks.flatMap((t) => t.attempts.filter((a) => a.runner_name === holder).map((a) => ({ t, a })));
    // At most the one it ran was lost; the links it held for later came back without a loss charged.
    expect(mine.filter(({ a }) => a.outcome === "lost").length).toBeLessThanOrEqual(1);
    expect(mine.filter(({ a }) => a.outcome === "returned").length).toBeGreaterThanOrEqual(1);
    for (const { t, a } of mine.filter(({ a }) => a.outcome === "returned"))
      expect(t.attempts.at(-1), `${t.id} after ${a.attempt}`).toMatchObject({ outcome: "succeeded" });
  });

  it("a frozen runner loses its lease; another runner finishes the task; its late result is ignored", async () => {
    const frozen = cluster.runner({ name: "frozen", slots: 1 });
    const { id } = await submit(
      `name: freeze\ntasks:\n  - { id: slow, module: spin.wasm, params: { ms: 2500 }, retries: 3 }\n`,
    );
    await until(id, (r) => leasedTo(r, "frozen").length === 1);
    // Freeze it past the middle of the task, so that it finishes soon after it thaws. The lease is
    // seen late on a loaded machine (CI once saw it after the task had ended, with 1.2 s of work),
    // so at least 1.5 s is left to run.
    await sleep(1000);
    frozen.signal("SIGSTOP");
    const stoppedAt = Date.now();
    cluster.runner({ name: "thawed", slots: 1 });
    const done = await cluster.client.wait(id);
    expect(done.status).toBe("succeeded");
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(HEARTBEAT_MS - 1000);
    frozen.signal("SIGCONT");
    // Thawed, the frozen runner either finishes its attempt and sends the result, which the
    // coordinator ignores and notes, or hears first that the attempt is stale and stops it.
    const { line } = await frozen.waitForLine(/task slow attempt 1: (ok|cancelled)/, 10_000);
    const run = line.includes(": ok")
      ? await until(id, (r) => Boolean(r.tasks[0]!.attempts[0]!.note), 10_000)
      : await cluster.client.run(id);
    const [first, second, ...more] = run.tasks[0]!.attempts;
    expect(first).toMatchObject({ runner_name: "frozen", outcome: "lost", failure_kind: "lost" });
    if (line.includes(": ok"))
      expect(first!.note).toMatch(/successful result arrived after the attempt had ended; ignored/);
    expect(second).toMatchObject({ runner_name: "thawed", outcome: "succeeded" });
    expect(more).toEqual([]);
    expect(JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "slow")))).toEqual({
      index: 0,
      square: 0,
    });
  });
});

describe("a runner that is stopped", () => {
  const twoStep =
    "name: drain\ntasks:\n  - { id: slow, module: spin.wasm, params: { ms: 1500 } }\n" +
    "  - { id: next, module: spin.wasm, depends_on: [slow], params: { ms: 1 } }\n";

  it("SIGTERM drains: the running task finishes within the grace period, nothing new starts, exit 0", async () => {
    const runner = cluster.runner({ name: "drainer", slots: 1, args: ["--grace", "10s"] });
    const { id } = await submit(twoStep);
    await until(id, (r) => leasedTo(r, "drainer").length === 1);
    runner.signal("SIGTERM");
    expect(await runner.exited).toBe(0);
    const run = await cluster.client.run(id);
    const [slow, next] = run.tasks;
    expect(slow!.attempts).toEqual([expect.objectContaining({ runner_name: "drainer", outcome: "succeeded" })]);
    expect(next).toMatchObject({ state: "waiting", waiting: "no runner connected" });
    cluster.runner({ name: "after-drain", slots: 1 });
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
  });

  it("past the grace period the unfinished task is handed back, not charged, and runs elsewhere", async () => {
    const runner = cluster.runner({ name: "impatient", slots: 1, args: ["--grace", "0"] });
    const { id } = await submit(twoStep.replace("name: drain", "name: hand-back"));
    await until(id, (r) => leasedTo(r, "impatient").length === 1);
    runner.signal("SIGTERM");
    expect(await runner.exited).toBe(0);
    expect(runner.lines.some((l) => /handed back 1 unfinished task/.test(l))).toBe(true);
    cluster.runner({ name: "taker", slots: 1 });
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const [slow] = (await cluster.client.run(id)).tasks;
    expect(slow!.attempts.map((a) => [a.runner_name, a.outcome])).toEqual([
      ["impatient", "returned"],
      ["taker", "succeeded"],
    ]);
  });

  it("a second signal exits at once", async () => {
    const runner = cluster.runner({ name: "stubborn", slots: 1, args: ["--grace", "60s"] });
    const { id } = await submit(twoStep.replace("name: drain", "name: second-signal").replace("ms: 1500", "ms: 20000"));
    await until(id, (r) => leasedTo(r, "stubborn").length === 1);
    runner.signal("SIGTERM");
    await runner.waitFor(/draining: waiting up to 60000 ms/);
    const t0 = Date.now();
    runner.signal("SIGTERM");
    expect(await runner.exited).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2000);
    await cluster.client.control(id, "cancel");
  });
});

describe("runner reports", () => {
  it("GET /api/runners shows each runner's device report, slots and busy slots, kept fresh", async () => {
    cluster.runner({ name: "reporter", slots: 1, labels: ["edge"] });
    await cluster.connected("reporter");
    type View = {
      name: string;
      slots: number;
      busy: number;
      cores: number;
      memory: number;
      freeMemory: number;
      load: number | null;
      platform: string;
      arch: string;
      last_seen: number;
      node: string;
      labels: string[];
      history: { at: number; load: number; freeMemory: number }[];
    };
    const read = async () =>
      (await cluster.client.json<{ runners: View[] }>("/api/runners")).runners.find((r) => r.name === "reporter")!;
    const { id } = await submit(`name: report\ntasks:\n  - { id: busy, module: spin.wasm, params: { ms: 3000 } }\n`);
    await until(id, (r) => leasedTo(r, "reporter").length === 1);
    await sleep(HEARTBEAT_MS);
    const first = await read();
    expect(first).toMatchObject({
      slots: 1,
      busy: 1,
      platform: process.platform,
      arch: process.arch,
      node: process.versions.node,
      labels: ["edge"],
    });
    expect(first.cores).toBeGreaterThan(0);
    expect(first.freeMemory).toBeGreaterThan(0);
    expect(first.freeMemory).toBeLessThanOrEqual(first.memory);
    expect(first.load).toEqual(expect.any(Number));
    await sleep(HEARTBEAT_MS);
    const second = await read();
    expect(second.last_seen - first.last_seen).toBeGreaterThanOrEqual(HEARTBEAT_MS / 2 - 100);
    // The reports accumulate as the runner's load history, oldest first.
    expect(second.history.length).toBeGreaterThan(first.history.length);
    expect(second.history.at(-1)).toMatchObject({ load: second.load, freeMemory: second.freeMemory });
    expect(second.history.every((h, i) => i === 0 || h.at > second.history[i - 1]!.at)).toBe(true);
    await cluster.client.wait(id);
    await sleep(HEARTBEAT_MS);
    expect((await read()).busy).toBe(0);
  });
});

describe("a coordinator that dies", () => {
  it("killed and restarted mid-run: the run resumes and succeeds with no task lost", async () => {
    cluster.runner({ name: "r1" });
    cluster.runner({ name: "r2" });
    const { id } = await submit(spinDag("restart", 200, 30));
    const before = await until(id, (r) => (r.counts.succeeded ?? 0) >= 40);
    expect(before.status).toBe("running");
    const { port } = cluster.coordinator;
    await cluster.coordinator.stop("SIGKILL");
    cluster.coordinator = await startCoordinator({
      port,
      persistTo: `${cluster.dir}/state`,
      vars: RECOVERY_VARS,
    });
    await cluster.client.wait(id);
    await expectAllCorrect(id, 200);
  });
});

describe("no run stalls (issue 15)", () => {
  /**
   * Run A holds both slots of the only runner with long tasks, run B waits behind it; then
   * `restart` happens, A is cancelled, and B must finish on the runner A held.
   */
  async function stallCase(name: string, restart: (runner: Proc) => Promise<void>): Promise<void> {
    const runner = cluster.runner({ name });
    await cluster.connected(name);
    const a = await submit(spinDag(`${name}-a`, 4, 120_000));
    await until(a.id, (r) => (r.counts.leased ?? 0) === 2);
    const b = await submit(spinDag(`${name}-b`, 17, 10));
    await sleep(500);
    expect((await cluster.client.summary(b.id)).counts.ready).toBe(17);
    await restart(runner);
    await until(a.id, (r) => (r.counts.leased ?? 0) === 2, 60_000);
    expect(await cluster.client.control(a.id, "cancel")).toEqual({ id: a.id, status: "cancelled" });
    const done = await until(b.id, (r) => r.status === "succeeded", 60_000);
    expect(done.counts.succeeded).toBe(17);
  }

  it("a chain and another run on one slot: the chain's next task runs once the other run ends", async () => {
    // The shrunk counterexample of the liveness property on the allocator before the fix: the
    // freed slot went to the run that ended, with the credit the chain needed.
    cluster.runner({ name: "one-slot", slots: 1 });
    await cluster.connected("one-slot");
    const chain = await submit(
      `name: chain\ntasks:\n  - { id: a, module: spin.wasm, params: { ms: 1500 } }\n` +
        `  - { id: b, module: spin.wasm, params: { ms: 10 }, depends_on: [a] }\n`,
    );
    await until(chain.id, (r) => (r.counts.leased ?? 0) === 1);
    const other = await submit(spinDag("beside", 1, 10));
    await until(other.id, (r) => r.status === "succeeded", 30_000);
    expect((await until(chain.id, (r) => r.status === "succeeded", 30_000)).counts.succeeded).toBe(2);
  });

  async function restartCoordinator(): Promise<void> {
    const { port } = cluster.coordinator;
    await cluster.coordinator.stop("SIGKILL");
    cluster.coordinator = await startCoordinator({ port, persistTo: `${cluster.dir}/state`, vars: RECOVERY_VARS });
  }

  it("the coordinator restarted under a runner running A: cancel A, and B finishes", async () => {
    await stallCase("stall-1", restartCoordinator);
  });

  it("the coordinator and the runner restarted: cancel A, and B finishes", async () => {
    await stallCase("stall-2", async (runner) => {
      await runner.stop("SIGKILL");
      await restartCoordinator();
      cluster.runner({ name: "stall-2" });
      await cluster.connected("stall-2");
    });
  });
});

describe("control", () => {
  /** The CLI with its standard error in `out` too. */
  const distro = async (...args: string[]) => {
    const { code, out, err } = await cluster.distro(...args);
    return { code, out: out + err };
  };

  it("cancel stops every running attempt on the runners within 2 s and the run ends cancelled", async () => {
    const runners = new Map([
      ["k1", cluster.runner({ name: "k1" })],
      ["k2", cluster.runner({ name: "k2" })],
    ]);
    const { id } = await submit(spinDag("cancel-me", 40, 5000));
    const before = await until(id, (r) => (r.counts.leased ?? 0) === 4);
    const running = before.tasks.filter((t) => t.state === "leased");
    const t0 = Date.now();
    expect(await cluster.client.control(id, "cancel")).toEqual({ id, status: "cancelled" });
    for (const t of running) {
      const runner = runners.get(t.attempts.at(-1)!.runner_name)!;
      const { at } = await runner.waitForLine(
        new RegExp(`task ${t.id.replace(/[[\]]/g, "\\$&")} attempt 1: cancelled after`),
        10_000,
      );
      expect(at - t0).toBeLessThan(2000);
    }
    const run = await cluster.client.run(id);
    expect(run.status).toBe("cancelled");
    expect(run.counts.cancelled).toBe(40);
    expect((await distro("cancel", id)).code).toBe(2);
  });

  it("distro cancel ID cancels a run that has not started, and prints its status", async () => {
    const { id } = await submit(spinDag("never-started", 3, 10));
    const { code, out } = await distro("cancel", id);
    expect(code).toBe(0);
    expect(out).toContain(`run ${id} is cancelled`);
    expect((await cluster.client.summary(id)).counts.cancelled).toBe(3);
  });

  it("pause holds a run (running attempts finish, nothing new starts) and resume completes it", async () => {
    cluster.runner({ name: "p1", slots: 2 });
    const { id } = await submit(spinDag("pause-me", 40, 250));
    await until(id, (r) => (r.counts.succeeded ?? 0) >= 4);
    expect((await distro("pause", id)).out).toContain("paused");
    const paused = await until(id, (r) => (r.counts.leased ?? 0) === 0, 5000);
    await sleep(1000);
    const still = await cluster.client.run(id);
    expect(still.status).toBe("paused");
    expect(still.counts.succeeded).toBe(paused.counts.succeeded);
    expect(still.counts.succeeded).toBeLessThan(40);
    expect((await distro("resume", id)).out).toContain("running");
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
  });
});

describe("retries", () => {
  it("a task that fails twice then succeeds ends succeeded with three attempts", async () => {
    cluster.runner({ name: "f1" });
    const { id } = await submit(
      "name: flaky\ntasks:\n" +
        "  - { id: flaky, module: flaky.wasm, params: { fail_times: 2 }, retries: 3, retry_delay: 100ms }\n",
    );
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const [task] = (await cluster.client.run(id)).tasks;
    expect(task!.attempts.map((a) => a.outcome)).toEqual(["failed", "failed", "succeeded"]);
    expect(task!.attempts[0]!.stderr).toContain("failing attempt 1 on purpose");
    expect(JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "flaky")))).toEqual({ attempt: 3 });
  });

  it("a task that always fails ends failed after its retries, and its dependents end skipped", async () => {
    cluster.runner({ name: "f2" });
    const { id } = await submit(`name: doomed
tasks:
  - { id: never, module: flaky.wasm, params: { fail_times: -1 }, retries: 2, retry_delay: 50ms }
  - { id: next, module: init.wasm, depends_on: [never] }
  - { id: last, module: init.wasm, depends_on: [next] }
`);
    expect((await cluster.client.wait(id)).status).toBe("failed");
    const tasks = new Map((await cluster.client.run(id)).tasks.map((t) => [t.id, t]));
    expect(tasks.get("never")!.state).toBe("failed");
    expect(tasks.get("never")!.attempts).toHaveLength(3);
    expect(tasks.get("next")!.state).toBe("skipped");
    expect(tasks.get("last")!.state).toBe("skipped");
  });
});
