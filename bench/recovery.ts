/**
 * `npm run bench -- --only recovery`: a runner holding a task is killed (closed socket) or frozen
 * (silent runner), `kills` times each → the time until the task runs again on another runner
 * (docs/reliability.md).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "../cli/client.js";
import type { RunView } from "../core/api.js";
import { DEV_TOKENS, ROOT, startCoordinator, startRunner } from "../dev/local.js";
import { median, pollRunners } from "./common.js";

/** Runs one task on a victim runner, kills or freezes it, and times the task's next start elsewhere. */
export async function recovery(kills: number, heartbeat: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({
    persistTo: join(dir, "state"),
    vars: { HEARTBEAT_TIMEOUT_MS: heartbeat },
  });
  const client = new Client(coordinator.url, DEV_TOKENS.api);
  try {
    await client.uploadModule("spin.wasm", readFileSync(join(ROOT, "wasm_tasks/build/spin.wasm")));
    console.log(`recovery: ${kills} kills each, heartbeat limit ${heartbeat} ms`);
    for (const how of ["closed socket (SIGKILL)", "silent runner (SIGSTOP)"] as const) {
      const delays: number[] = [];
      for (let i = 0; i < kills; i++) {
        const victim = startRunner({
          coordinator: coordinator.url,
          slots: 1,
          name: "victim",
          cacheDir: join(dir, "cache"),
          configDir: join(dir, "config-victim"),
        });
        const { id } = await client.submit(
          `name: recovery\ncache: false\ntasks:\n  - { id: t, module: spin.wasm, params: { ms: 1500 }, retries: 3 }\n`,
        );
        await pollRun(client, id, (r) => r.tasks[0]!.state === "leased");
        const survivor = startRunner({
          coordinator: coordinator.url,
          slots: 1,
          name: "survivor",
          cacheDir: join(dir, "cache"),
          configDir: join(dir, "config-survivor"),
        });
        await pollRunners(client, (names) => names.includes("survivor"));
        const t0 = Date.now();
        if (how.startsWith("closed")) await victim.stop("SIGKILL");
        else victim.signal("SIGSTOP");
        const run = await pollRun(client, id, (r) => r.tasks[0]!.attempts.length >= 2);
        delays.push(run.tasks[0]!.attempts[1]!.started_at - t0);
        await client.wait(id, () => {}, 50);
        await Promise.all([victim.stop("SIGKILL"), survivor.stop("SIGKILL")]);
      }
      const sorted = [...delays].sort((a, b) => a - b);
      console.log(
        `  ${how}: median ${median(delays)} ms, max ${sorted.at(-1)} ms to run elsewhere (runs: ${delays.join(", ")})`,
      );
    }
  } finally {
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pollRun(client: Client, id: string, check: (run: RunView) => boolean): Promise<RunView> {
  for (;;) {
    const run = await client.run(id);
    if (check(run)) return run;
    await new Promise((r) => setTimeout(r, 10));
  }
}
