// The faults phones and networks make, through a fault proxy (fault-proxy.ts) between a runner
// and the real local coordinator: a link blackholed mid-run (no FIN, no RST) is found dead within
// two heartbeats by both ends (the coordinator re-queues its tasks, which finish elsewhere; the
// runner drops the silent sockets and reconnects once the link is back); a link cut for 5 s and restored keeps its
// runner's attempts, whose results are accepted without a re-run. Real processes, real WASM.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../core/api";
import { startFaultProxy, type FaultProxy } from "./fault-proxy";
import { Cluster } from "./harness";

const HEARTBEAT_MS = 2000;
const cluster = new Cluster();
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  // No cool-downs: these tests lose attempts on purpose (reliability.test.ts does the same).
  await cluster.start({ vars: { HEARTBEAT_TIMEOUT_MS: String(HEARTBEAT_MS), COOLDOWN_LOSSES: "1000000" } });
  await cluster.upload("spin.wasm");
});
afterAll(() => cluster.stop());
afterEach(async () => {
  await Promise.all(cluster.runners.splice(0).map((r) => r.stop("SIGKILL")));
  await proxy?.close();
  proxy = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spinDag = (name: string, count: number, ms: number) =>
  `cache: false\nname: ${name}\ntasks:\n  - { id: spin, module: spin.wasm, map: { range: [0, ${count}] }, params: { ms: ${ms} }, retries: 5 }\n`;
const running = (run: RunView, name: string) =>
  run.tasks.filter((t) => t.state === "leased" && t.attempts.at(-1)?.runner_name === name);

/** Every instance succeeded exactly once, with the right output. */
async function expectAllCorrect(id: string, count: number): Promise<RunView> {
  const run = await cluster.client.run(id);
  expect(run.status).toBe("succeeded");
  expect(run.tasks).toHaveLength(count);
  for (const t of run.tasks) {
    expect(t.attempts.filter((a) => a.outcome === "succeeded").length, t.id).toBe(1);
    const out = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, t.id)));
    expect(out).toEqual({ index: t.index, square: t.index! * t.index! });
  }
  return run;
}

describe("a link that fails", () => {
  it("blackholed mid-run: found dead within two heartbeats, its tasks finish on another runner", async () => {
    proxy = await startFaultProxy(cluster.coordinator.url);
    const asleep = cluster.runner({ name: "asleep", coordinator: proxy.url });
    cluster.runner({ name: "awake" });
    await cluster.connected("asleep", "awake");
    const { id } = await cluster.client.submit(spinDag("blackholed", 8, 3000));
    const held = await cluster.until(id, (run) => running(run, "asleep").length > 0);
    const victims = running(held, "asleep").map((t) => t.id);
    proxy.blackhole();
    const from = Date.now();
    await cluster.until(id, (run) => run.status === "succeeded", 60_000);
    const run = await expectAllCorrect(id, 8);
    for (const t of run.tasks.filter((t) => victims.includes(t.id))) {
      const lost = t.attempts.find((a) => a.runner_name === "asleep" && a.outcome === "lost");
      expect(lost, `${t.id}: ${JSON.stringify(t.attempts)}`).toBeDefined();
      // The coordinator's clock: found within two heartbeats of the blackhole (and its alarm's tick).
      expect(lost!.ended_at! - from, t.id).toBeLessThanOrEqual(2 * HEARTBEAT_MS + 1000);
      expect(t.attempts.find((a) => a.outcome === "succeeded")!.runner_name).toBe("awake");
    }
    // The runner's side: its sockets heard no pong for two heartbeats, and it said so and dropped them.
    const { at } = await asleep.waitForLine(/heard nothing for \d+\.\d s \(two heartbeats\): reconnecting/, 10_000);
    expect(at - from).toBeLessThanOrEqual(2 * HEARTBEAT_MS + 1000);
    // Woken up: it connects again and is listed.
    const before = proxy.accepted;
    proxy.restore();
    await cluster.connected("asleep");
    expect(proxy.accepted).toBeGreaterThan(before);
  });

  it("cut for 5 s and restored: the runner keeps its attempts, and their results are accepted without a re-run", async () => {
    proxy = await startFaultProxy(cluster.coordinator.url);
    const phone = cluster.runner({ name: "phone", coordinator: proxy.url });
    await cluster.connected("phone");
    const { id } = await cluster.client.submit(spinDag("cut", 2, 4000));
    await cluster.until(id, (run) => running(run, "phone").length === 2 && run.tasks.every((t) => t.started_at));
    proxy.cut();
    const cutAt = Date.now();
    await sleep(5000);
    proxy.restore();
    await cluster.until(id, (run) => run.status === "succeeded", 60_000);
    const run = await expectAllCorrect(id, 2);
    for (const t of run.tasks) {
      const won = t.attempts.find((a) => a.outcome === "succeeded")!;
      // The attempt that ran through the cut is the one accepted: started before it, on the phone.
      expect(won.runner_name).toBe("phone");
      expect(won.started_at, t.id).toBeLessThan(cutAt);
    }
    // Each task ran once on the phone: one "ok" line per task in its log.
    for (const t of run.tasks) {
      const ran = phone.lines.filter((l) => l.includes(`task ${t.id} attempt`) && /: ok in /.test(l));
      expect(ran, t.id).toHaveLength(1);
    }
  });
});
