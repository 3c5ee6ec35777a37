// RAM-aware slots: a runner whose free-RAM reading the test controls (an injected device source)
// offers more slots when free RAM rises and fewer when it falls, finishing what runs. The
// coordinator is real (wrangler dev); the runner is the real runner, in this process, with real
// task threads and real WASM.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig, type RunnerConfig } from "../../runner/config";
import type { DeviceSource } from "../../runner/device";
import { consoleLogger } from "../../runner/log";
import { createRunner } from "../../runner/start";
import type { Runner } from "../../runner/runner";
import { DEV_TOKENS } from "../../dev/local";
import { Cluster } from "./harness";

const MiB = 1024 ** 2;
const cluster = new Cluster();
let runner: Runner | undefined;

beforeAll(async () => {
  await cluster.start();
  await cluster.upload("spin.wasm");
});
afterAll(async () => {
  await runner?.stop(0);
  await cluster.stop();
});

interface PoolRunner {
  name: string;
  slots: number;
  busy: number;
}

describe("slots follow free RAM", () => {
  it("rise and fall with the injected free-RAM reading, without losing a running task", async () => {
    const config = resolveConfig(
      [
        "--coordinator",
        cluster.coordinator.url.toString(),
        "--token",
        DEV_TOKENS.runner,
        "--name",
        "elastic",
        "--slots",
        "auto",
        "--ram-per-slot",
        "128MiB",
        "--reserve-ram",
        "512MiB",
        "--cache-dir",
        join(cluster.dir, "cache-elastic"),
        "--config-dir",
        join(cluster.dir, "config-elastic"),
      ],
      {},
    ) as RunnerConfig;
    let free = 512 * MiB + 1 * 128 * MiB; // room for one slot
    const device: DeviceSource = {
      measure: () =>
        Promise.resolve({ cores: 4, memory: 8192 * MiB, freeMemory: free, platform: "linux", arch: "x64" }),
      sample: () => Promise.resolve({ freeMemory: free, load: 10 }),
    };
    const lines: string[] = [];
    const log = consoleLogger({ verbose: false, json: true }, (l) => lines.push(l));
    const created = await createRunner(config, device, {
      log,
      sampleMs: 100,
      threadUrl: new URL("../../dist/runner/executor/thread.js", import.meta.url),
    });
    runner = created.runner;
    runner.start();

    const seen: PoolRunner[] = [];
    const watch = async (check: (r: PoolRunner) => boolean): Promise<PoolRunner> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { runners } = await cluster.client.json<{ runners: PoolRunner[] }>("/api/runners");
        const me = runners.find((r) => r.name === "elastic");
        if (me) seen.push(me);
        if (me && check(me)) return me;
        if (Date.now() > deadline) {
          const path = seen.map((r) => `${r.busy}/${r.slots}`).filter((x, i, all) => x !== all[i - 1]);
          throw new Error(`runner never matched; busy/slots seen: ${path.join(" ")}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await watch((r) => r.slots === 1);

    const { id } = await cluster.client.submit(`cache: false
name: elastic
tasks:
  - { id: spin, module: spin.wasm, map: { range: [0, 16] }, params: { ms: 700 }, retries: 0 }
`);
    await cluster.until(id, (r) => r.counts.leased === 1);

    free = 512 * MiB + 8 * 128 * MiB; // RAM returns: up to the 4 cores
    await watch((r) => r.slots === 4 && r.busy === 4);

    free = 512 * MiB - 3 * 128 * MiB; // RAM falls below the reserve: shed slots, finish what runs
    await watch((r) => r.slots === 1);

    free = 512 * MiB + 2 * 128 * MiB; // and rises again
    await watch((r) => r.slots >= 2);

    const run = await cluster.until(id, (r) => r.status !== "running" && r.status !== "queued", 60_000);
    expect(run.status).toBe("succeeded");
    // Nothing that ran was lost or stopped: every task has exactly one attempt that ran, and it succeeded.
    for (const t of run.tasks) {
      const ran = t.attempts.filter((a) => a.outcome !== "returned");
      expect(
        ran.map((a) => a.outcome),
        t.id,
      ).toEqual(["succeeded"]);
    }
    const slotEvents = lines
      .map((l) => JSON.parse(l) as { event?: string; from?: number; to?: number; running?: number })
      .filter((e) => e.event === "slots");
    expect(slotEvents.some((e) => e.from! < e.to! && e.to === 4)).toBe(true);
    // It shrank to one slot with more tasks than that running, and those tasks finished (above).
    expect(slotEvents.some((e) => e.from! > e.to! && e.to === 1 && e.running! > 1)).toBe(true);
    expect(Math.max(...seen.map((r) => r.busy))).toBe(4);
    const taskEvents = lines
      .map((l) => JSON.parse(l) as { event?: string; outcome?: string; slot?: string })
      .filter((e) => e.event === "task");
    expect(taskEvents.every((e) => e.outcome === "ok")).toBe(true);
    expect(new Set(taskEvents.map((e) => e.slot!.replace(/^.*-(\d+)$/, "$1")))).toEqual(new Set(["1", "2", "3", "4"]));
  });
});
