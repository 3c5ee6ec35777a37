// A runner started before its coordinator keeps retrying with back-off, says so once per
// attempt, and connects and works once the coordinator comes up.
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { freePort, startRunner, type Proc } from "../../dev/local";
import { Cluster } from "./harness";

const cluster = new Cluster();
let runner: Proc | undefined;
afterAll(async () => {
  await runner?.stop("SIGKILL");
  await cluster.stop();
});

it("retries with back-off until the coordinator is up, then takes work", async () => {
  const port = await freePort();
  runner = startRunner({
    coordinator: new URL(`http://127.0.0.1:${port}`),
    slots: 1,
    name: "early",
    configDir: join(cluster.dir, "config-early"),
  });
  await runner.waitFor(/retry 3 in/, 20_000);
  const attempts = runner.lines.filter((l) =>
    /enroll: coordinator http:\/\/127\.0\.0\.1:\d+ not reachable \(.*\); retry \d+ in [\d.]+s/.test(l),
  );
  const delays = attempts.map((l) => Number(/in ([\d.]+)s/.exec(l)![1]));
  expect(attempts.length).toBeGreaterThanOrEqual(3);
  expect(attempts.map((l) => Number(/retry (\d+)/.exec(l)![1]))).toEqual(attempts.map((_, i) => i + 1));
  // Capped exponential back-off with jitter: each delay lies in [ceiling/2, ceiling] for ceiling 0.5s·2^n.
  delays.forEach((d, i) => {
    const ceiling = Math.min(30, 0.5 * 2 ** i);
    expect(d).toBeGreaterThanOrEqual(ceiling / 2 - 0.05);
    expect(d).toBeLessThanOrEqual(ceiling + 0.05);
  });

  await cluster.start({ port });
  // The first thing a new device does is enroll: that is what waits for the coordinator.
  await runner.waitFor(/enroll: reached http:\/\/127\.0\.0\.1:\d+ after \d+ failed attempt/, 40_000);
  await cluster.upload("noop.wasm");
  const run = await cluster.client.submit(
    "name: after-reconnect\ntasks:\n  - { id: n, module: noop.wasm, map: { range: [0, 5] } }\n",
  );
  expect((await cluster.client.wait(run.id)).status).toBe("succeeded");
  expect(runner.lines.filter((l) => /task n\[\d\] attempt 1: ok/.test(l))).toHaveLength(5);
});
