// The sandbox holds: a runaway loop, a memory bomb, a trap, a 100 MiB stdout and proc_exit(3)
// each fail their task with the right kind, and the same runner process goes on working.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Proc } from "../../dev/local";
import { Cluster } from "./harness";

const cluster = new Cluster();
let runner: Proc;

beforeAll(async () => {
  await cluster.start();
  runner = cluster.runner({ name: "sandbox", slots: 1 });
  await cluster.upload(
    "fixtures/infinite-loop.wasm",
    "fixtures/memory-bomb.wasm",
    "fixtures/trap.wasm",
    "fixtures/exit-3.wasm",
    "blob.wasm",
    "noop.wasm",
  );
  await cluster.connected("sandbox");
});
afterAll(() => cluster.stop());

it("fails each misbehaving task with the right kind and message, and the runner lives on", async () => {
  const { id } = await cluster.client.submit(`name: sandbox
cache: false
defaults: { retries: 0 }
tasks:
  - { id: loop, module: infinite-loop.wasm, timeout: 1s }
  - { id: bomb, module: memory-bomb.wasm, memory: 16MiB }
  - { id: trap, module: trap.wasm }
  - { id: flood, module: blob.wasm, params: { size: 104857600 } }
  - { id: quits, module: exit-3.wasm }
`);
  expect((await cluster.client.wait(id)).status).toBe("failed");
  const failures = Object.fromEntries(
    (await cluster.client.run(id)).tasks.map((t) => [t.id, t.attempts.map((a) => [a.failure_kind, a.error])]),
  );
  expect(failures).toEqual({
    loop: [["timeout", "the task exceeded its timeout of 1000 ms; its thread was terminated"]],
    bomb: [
      ["memory", expect.stringMatching(/^the task reached its memory limit of 16777216 bytes \(trap: unreachable/)],
    ],
    trap: [["trap", expect.stringMatching(/unreachable/)]],
    flood: [["output", "output exceeds the limit of 16777216 bytes"]],
    quits: [["exit", "exited with code 3"]],
  });

  const pid = runner.pid;
  const after = await cluster.client.submit("name: after\ncache: false\ntasks:\n  - { id: fine, module: noop.wasm }\n");
  expect((await cluster.client.wait(after.id)).status).toBe("succeeded");
  expect(runner.running).toBe(true);
  expect(runner.pid).toBe(pid);
  expect(runner.lines.some((l) => /task fine attempt 1: ok/.test(l))).toBe(true);
});

it("refuses a module with a forbidden import at upload, naming the import", async () => {
  await expect(cluster.upload("fixtures/forbidden-import.wasm")).rejects.toThrow(/not a valid task/);
  const res = await fetch(new URL("/api/modules/forbidden.wasm", cluster.coordinator.url), {
    method: "PUT",
    headers: { Authorization: "Bearer dev-api-token" },
    body: new Uint8Array(
      await import("node:fs").then((fs) =>
        fs.readFileSync(new URL("../../wasm_tasks/build/fixtures/forbidden-import.wasm", import.meta.url)),
      ),
    ),
  });
  expect(res.status).toBe(400);
  expect(JSON.stringify(await res.json())).toContain(`import \\"env\\".\\"open_socket\\" is outside WASI preview1`);
});
