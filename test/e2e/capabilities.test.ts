// Which runner takes what: a task that requires a label waits, with the reason, until a runner
// with that label joins; a higher-priority run goes first on a runner with a single slot.
// Real coordinator (wrangler dev), real runner processes, real WASM.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "./harness";
import type { RunView } from "../../core/api";

const cluster = new Cluster();

beforeAll(async () => {
  await cluster.start();
  await cluster.upload("spin.wasm", "noop.wasm");
});
afterAll(() => cluster.stop());
afterEach(async () => {
  await Promise.all(cluster.runners.splice(0).map((r) => r.stop("SIGKILL")));
});

const submit = (yaml: string) => cluster.client.submit(`cache: false\n${yaml}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("capability matching", () => {
  it("a task requiring label gpu waits, saying why, among unlabelled runners; runs when a gpu one joins", async () => {
    cluster.runner({ name: "plain-1" });
    cluster.runner({ name: "plain-2" });
    await cluster.connected("plain-1", "plain-2");
    const { id } = await submit(`name: gpu-wait
tasks:
  - { id: prep, module: noop.wasm }
  - { id: render, module: spin.wasm, depends_on: [prep], params: { ms: 10 }, requires: { labels: [gpu] } }
  - { id: tidy, module: noop.wasm, depends_on: [prep] }
`);
    const waiting = await cluster.until(
      id,
      (r) => r.tasks.some((t) => t.id === "render" && t.state === "waiting") && r.counts.succeeded === 2,
    );
    const render = () => waiting.tasks.find((t) => t.id === "render")!;
    expect(render()).toMatchObject({ state: "waiting", waiting: "no runner with label gpu", attempts: [] });
    expect(waiting.counts).toMatchObject({ waiting: 1, ready: 0, succeeded: 2 });
    // It stays so: the unlabelled runners have free slots but never take it.
    await sleep(1500);
    const still = await cluster.client.run(id);
    expect(still.status).toBe("running");
    expect(still.tasks.find((t) => t.id === "render")).toMatchObject({ state: "waiting", attempts: [] });

    cluster.runner({ name: "gpu-box", labels: ["gpu"] });
    const done = await cluster.until(id, (r) => r.status !== "running", 30_000);
    expect(done.status).toBe("succeeded");
    expect(done.tasks.find((t) => t.id === "render")!.attempts.map((a) => [a.runner_name, a.outcome])).toEqual([
      ["gpu-box", "succeeded"],
    ]);
  });
});

describe("identity", () => {
  it("a runner restarted on the same device, even after kill -9, is the same runner to the coordinator", async () => {
    const ids = async () =>
      (await cluster.client.json<{ runners: { id: string; name: string }[] }>("/api/runners")).runners
        .filter((r) => r.name === "same")
        .map((r) => r.id);
    // Its own config dir, named for the test (the harness makes one a name, too).
    const configDir = join(cluster.dir, "config-same");
    const first = cluster.runner({ name: "same", configDir });
    await cluster.connected("same");
    const [id] = await ids();
    expect(id).toMatch(/^same-[0-9a-f]{8}$/);
    await first.stop("SIGKILL");
    cluster.runner({ name: "same", configDir });
    const deadline = Date.now() + 20_000;
    let now = await ids();
    while (!(now.length === 1 && now[0] === id) && Date.now() < deadline) {
      await sleep(100);
      now = await ids();
    }
    expect(now).toEqual([id]);
  });
});

describe("priority across runs", () => {
  const dag = (name: string, priority: number, count: number) =>
    `name: ${name}\ndefaults: { priority: ${priority} }\ntasks:\n` +
    `  - { id: work, module: spin.wasm, map: { range: [0, ${count}] }, params: { ms: 100 } }\n`;
  const starts = (run: RunView | undefined) => run!.tasks.flatMap((t) => t.attempts.map((a) => a.started_at));

  it("two runs submitted together to one single slot: every higher-priority task starts before any lower", async () => {
    const [low, high] = await Promise.all([submit(dag("low", 0, 6)), submit(dag("high", 10, 6))]);
    cluster.runner({ name: "single", slots: 1 });
    const [lowRun, highRun] = await Promise.all(
      [low, high].map(({ id }) => cluster.until(id, (r) => r.status === "succeeded", 60_000)),
    );
    expect(starts(highRun)).toHaveLength(6);
    expect(starts(lowRun)).toHaveLength(6);
    expect(Math.max(...starts(highRun))).toBeLessThanOrEqual(Math.min(...starts(lowRun)));
  });

  it("a higher-priority run submitted while one slot works on a lower one takes it when its task ends", async () => {
    cluster.runner({ name: "busy", slots: 1 });
    await cluster.connected("busy");
    const low = await submit(dag("low-first", 0, 8));
    await cluster.until(low.id, (r) => r.counts.leased === 1);
    const high = await submit(dag("high-later", 10, 4));
    const [lowRun, highRun] = await Promise.all(
      [low, high].map(({ id }) => cluster.until(id, (r) => r.status === "succeeded", 60_000)),
    );
    // Low tasks that started after the high run's first: none until every high task had started.
    const firstHigh = Math.min(...starts(highRun));
    const lastHigh = Math.max(...starts(highRun));
    const lowBetween = starts(lowRun).filter((t) => t > firstHigh && t < lastHigh);
    expect(lowBetween).toEqual([]);
    // And the high run did not wait for the low one to finish.
    expect(lastHigh).toBeLessThan(Math.max(...starts(lowRun)));
  });
});
