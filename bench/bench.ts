/**
 * `npm run bench`: throughput and latency of the whole system, measured against the real local
 * coordinator (wrangler dev) with two real runner processes.
 *
 *   fan-out:  one mapped task of 2,000 no-op WASM instances → tasks/s
 *   chain:    200 no-op tasks, each depending on the one before → ms per hop
 *   recovery: a runner holding a task is killed (closed socket) or frozen (silent runner), KILLS
 *             times each → time until the task runs again on another runner
 *
 * Each is run REPEAT times; the median and the spread are printed. Time is measured by the
 * coordinator (run created → run finished), so polling does not add to it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client, type RunInfo } from "../cli/client.js";
import { DEV_TOKENS, ROOT, startCoordinator, startRunner } from "../cli/local.js";

const { values } = parseArgs({
  options: {
    repeat: { type: "string", default: "3" },
    fanout: { type: "string", default: "2000" },
    chain: { type: "string", default: "200" },
    slots: { type: "string", default: "auto" },
    kills: { type: "string", default: "10" },
    heartbeat: { type: "string", default: "3000" },
    only: { type: "string" },
  },
});
const KILLS = Number(values.kills);
const REPEAT = Number(values.repeat);
const FANOUT = Number(values.fanout);
const CHAIN = Number(values.chain);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeRun(client: Client, yaml: string): Promise<number> {
  const { id } = await client.submit(yaml);
  const final = await client.wait(id, () => {}, 50);
  if (final.status !== "succeeded") throw new Error(`bench run ${id} ended ${final.status}`);
  return final.finished_at! - final.created_at;
}

async function throughput(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({ persistTo: join(dir, "state") });
  const runners = [0, 1].map((i) => startRunner({ coordinator: coordinator.url, slots: values.slots === "auto" ? "auto" : Number(values.slots), name: `bench-${i}`, cacheDir: join(dir, `cache-${i}`) }));
  try {
    await Promise.all(runners.map((r) => r.waitFor(/slot\(s\)/)));
    const slots = runners.map((r) => /(\d+) slot\(s\)/.exec(r.lines.find((l) => /slot\(s\)/.test(l))!)![1]).join("+");
    const client = new Client(coordinator.url, DEV_TOKENS.api);
    await client.uploadModule("noop.wasm", readFileSync(join(ROOT, "wasm_tasks/build/noop.wasm")));

    const fanoutYaml = `name: bench-fanout\ntasks:\n  - { id: noop, module: noop.wasm, map: { range: [0, ${FANOUT}] } }\n`;
    const chainYaml = `name: bench-chain\ntasks:\n${Array.from({ length: CHAIN }, (_, i) => `  - { id: t${i}, module: noop.wasm${i ? `, depends_on: [t${i - 1}]` : ""} }`).join("\n")}\n`;

    console.log(`distro bench: 2 runners (${slots} slots), ${REPEAT} repeats, node ${process.version}`);
    await timeRun(client, fanoutYaml.replace(String(FANOUT), "50")); // warm-up: module caches, first compile
    const fan: number[] = [];
    for (let i = 0; i < REPEAT; i++) fan.push(FANOUT / ((await timeRun(client, fanoutYaml)) / 1000));
    console.log(`fan-out of ${FANOUT} no-op tasks: median ${median(fan).toFixed(0)} tasks/s (runs: ${fan.map((x) => x.toFixed(0)).join(", ")})`);
    const hops: number[] = [];
    for (let i = 0; i < REPEAT; i++) hops.push((await timeRun(client, chainYaml)) / CHAIN);
    console.log(`chain of ${CHAIN} dependent tasks: median ${median(hops).toFixed(2)} ms per hop (runs: ${hops.map((x) => x.toFixed(2)).join(", ")})`);
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one task on a victim runner, kills or freezes it, and times the task's next start elsewhere. */
async function recovery(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({ persistTo: join(dir, "state"), vars: { HEARTBEAT_TIMEOUT_MS: values.heartbeat! } });
  const client = new Client(coordinator.url, DEV_TOKENS.api);
  try {
    await client.uploadModule("spin.wasm", readFileSync(join(ROOT, "wasm_tasks/build/spin.wasm")));
    console.log(`recovery: ${KILLS} kills each, heartbeat limit ${values.heartbeat} ms`);
    for (const how of ["closed socket (SIGKILL)", "silent runner (SIGSTOP)"] as const) {
      const delays: number[] = [];
      for (let i = 0; i < KILLS; i++) {
        const victim = startRunner({ coordinator: coordinator.url, slots: 1, name: "victim", cacheDir: join(dir, "cache") });
        const { id } = await client.submit(`name: recovery\ntasks:\n  - { id: t, module: spin.wasm, params: { ms: 1500 }, retries: 3 }\n`);
        await pollRun(client, id, (r) => r.tasks![0]!.state === "leased");
        const survivor = startRunner({ coordinator: coordinator.url, slots: 1, name: "survivor", cacheDir: join(dir, "cache") });
        await pollRunners(client, (names) => names.includes("survivor"));
        const t0 = Date.now();
        if (how.startsWith("closed")) await victim.stop("SIGKILL");
        else victim.signal("SIGSTOP");
        const run = await pollRun(client, id, (r) => r.tasks![0]!.attempts.length >= 2);
        delays.push(run.tasks![0]!.attempts[1]!.started_at - t0);
        await client.wait(id, () => {}, 50);
        await Promise.all([victim.stop("SIGKILL"), survivor.stop("SIGKILL")]);
      }
      const sorted = [...delays].sort((a, b) => a - b);
      console.log(`  ${how}: median ${median(delays)} ms, max ${sorted.at(-1)} ms to run elsewhere (runs: ${delays.join(", ")})`);
    }
  } finally {
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pollRun(client: Client, id: string, check: (run: RunInfo) => boolean): Promise<RunInfo> {
  for (;;) {
    const run = await client.run(id);
    if (check(run)) return run;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function pollRunners(client: Client, check: (names: string[]) => boolean): Promise<void> {
  for (;;) {
    const { runners } = await client.json<{ runners: { name: string }[] }>("/api/runners");
    if (check(runners.map((r) => r.name))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  if (values.only !== "recovery") await throughput();
  if (values.only !== "throughput") await recovery();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
