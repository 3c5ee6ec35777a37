/**
 * `npm run bench`: throughput and latency of the whole system, measured against the real local
 * coordinator (wrangler dev) with two real runner processes.
 *
 *   fan-out:  one mapped task of 2,000 no-op WASM instances → tasks/s; again with 50 watchers
 *             on the run's watch socket (each must get the final state), runs interleaved
 *   chain:    200 no-op tasks, each depending on the one before → ms per hop
 *   scaling:  dags/mandelbrot.yaml (2048×2048, 64 tiles) on 1 runner × 1 slot, on 2 runners × 1
 *             slot, and on a plain local pool of 2 worker threads with no coordinator (the limit)
 *   recovery: a runner holding a task is killed (closed socket) or frozen (silent runner), KILLS
 *             times each → time until the task runs again on another runner
 *   flood:    (flood.ts) one hostile client on the pool socket (a valid hello, then FLOOD status
 *             frames as fast as it can), FLOODS times, interleaved with idle rounds → median
 *             latency of GET /api/runners, GET /metrics and POST /api/dags during the flood vs idle
 *
 * Each is run REPEAT times; the median and the spread are printed. Time is measured by the
 * coordinator (run created → run finished), so polling does not add to it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client } from "../cli/client.js";
import { DEV_TOKENS, ROOT, startCoordinator, startRunner } from "../dev/local.js";
import { ThreadPool } from "../runner/executor/pool.js";
import { parseDag } from "../core/dag/parse.js";
import type { DagPlan } from "../core/dag/plan.js";
import type { RunView } from "../core/api.js";
import { median, pollRunners, runs } from "./common.js";
import { flood } from "./flood.js";

const { values } = parseArgs({
  options: {
    repeat: { type: "string", default: "3" },
    fanout: { type: "string", default: "2000" },
    chain: { type: "string", default: "200" },
    slots: { type: "string", default: "auto" },
    watchers: { type: "string", default: "50" },
    kills: { type: "string", default: "10" },
    heartbeat: { type: "string", default: "3000" },
    flood: { type: "string", default: "20000" },
    floods: { type: "string", default: "5" },
    only: { type: "string" },
  },
});
const KILLS = Number(values.kills);
const REPEAT = Number(values.repeat);
const FANOUT = Number(values.fanout);
const CHAIN = Number(values.chain);

/**
 * Runs a DAG and returns the coordinator's own measure of it; polls every `pollMs` (polling
 * costs CPU the run shares). With `watchers`, that many watch sockets follow the run, and each
 * must see it end.
 */
async function timeRun(client: Client, yaml: string, pollMs = 50, watchers = 0): Promise<number> {
  const { id } = await client.submit(yaml);
  const watching = Array.from({ length: watchers }, () => client.watch(id, () => {}));
  const final = await client.wait(id, () => {}, pollMs);
  if (final.status !== "succeeded") throw new Error(`bench run ${id} ended ${final.status}`);
  const seen = await Promise.all(watching);
  if (seen.some((run) => run.status !== "succeeded")) throw new Error(`a watcher of ${id} missed the end`);
  return final.finished_at! - final.created_at;
}

async function throughput(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({ persistTo: join(dir, "state") });
  const runners = [0, 1].map((i) =>
    startRunner({
      coordinator: coordinator.url,
      slots: values.slots === "auto" ? "auto" : Number(values.slots),
      name: `bench-${i}`,
      cacheDir: join(dir, `cache-${i}`),
      configDir: join(dir, `config-${i}`),
    }),
  );
  try {
    await Promise.all(runners.map((r) => r.waitFor(/slot\(s\)/)));
    const slots = runners.map((r) => /(\d+) slot\(s\)/.exec(r.lines.find((l) => /slot\(s\)/.test(l))!)![1]).join("+");
    const client = new Client(coordinator.url, DEV_TOKENS.api);
    await client.uploadModule("noop.wasm", readFileSync(join(ROOT, "wasm_tasks/build/noop.wasm")));

    const fanoutYaml =
      "name: bench-fanout\ncache: false\ntasks:\n" +
      `  - { id: noop, module: noop.wasm, map: { range: [0, ${FANOUT}] } }`;
    const link = (i: number) => `  - { id: t${i}, module: noop.wasm${i ? `, depends_on: [t${i - 1}]` : ""} }`;
    const chain = Array.from({ length: CHAIN }, (_, i) => link(i)).join("\n");
    const chainYaml = `name: bench-chain\ncache: false\ntasks:\n${chain}`;

    console.log(`distro bench: 2 runners (${slots} slots), ${REPEAT} repeats, node ${process.version}`);
    await timeRun(client, fanoutYaml.replace(String(FANOUT), "50")); // warm-up: module caches, first compile
    const fan: number[] = [];
    const watched: number[] = [];
    const WATCHERS = Number(values.watchers);
    for (let i = 0; i < REPEAT; i++) {
      fan.push(FANOUT / ((await timeRun(client, fanoutYaml)) / 1000));
      watched.push(FANOUT / ((await timeRun(client, fanoutYaml, 50, WATCHERS)) / 1000));
    }
    console.log(`fan-out of ${FANOUT} no-op tasks: median ${median(fan).toFixed(0)} tasks/s (runs: ${runs(fan, 0)})`);
    console.log(
      `  with ${WATCHERS} watchers: median ${median(watched).toFixed(0)} tasks/s (runs: ${runs(watched, 0)}); ` +
        `${(median(watched) / median(fan)).toFixed(2)}x the unwatched rate`,
    );
    const hops: number[] = [];
    for (let i = 0; i < REPEAT; i++) hops.push((await timeRun(client, chainYaml)) / CHAIN);
    console.log(
      `chain of ${CHAIN} dependent tasks: median ${median(hops).toFixed(2)} ms per hop (runs: ${runs(hops, 2)})`,
    );
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one task on a victim runner, kills or freezes it, and times the task's next start elsewhere. */
async function recovery(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({
    persistTo: join(dir, "state"),
    vars: { HEARTBEAT_TIMEOUT_MS: values.heartbeat },
  });
  const client = new Client(coordinator.url, DEV_TOKENS.api);
  try {
    await client.uploadModule("spin.wasm", readFileSync(join(ROOT, "wasm_tasks/build/spin.wasm")));
    console.log(`recovery: ${KILLS} kills each, heartbeat limit ${values.heartbeat} ms`);
    for (const how of ["closed socket (SIGKILL)", "silent runner (SIGSTOP)"] as const) {
      const delays: number[] = [];
      for (let i = 0; i < KILLS; i++) {
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

/** The Mandelbrot DAG through the coordinator with 1 and 2 single-slot runners, and on a local pool. */
async function scaling(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({ persistTo: join(dir, "state") });
  const client = new Client(coordinator.url, DEV_TOKENS.api);
  const yaml = `cache: false\n${readFileSync(join(ROOT, "dags/mandelbrot.yaml"), "utf8")}`;
  const tiles = (parseDag(yaml) as { ok: true; plan: DagPlan }).plan.nodes.find((n) => n.id === "tile")!;
  try {
    for (const m of ["mandelbrot_tile", "mandelbrot_png"])
      await client.uploadModule(`${m}.wasm`, readFileSync(join(ROOT, `wasm_tasks/build/${m}.wasm`)));
    const times: Record<string, number[]> = { one: [], two: [], local: [] };
    for (const [key, count] of [
      ["one", 1],
      ["two", 2],
    ] as const) {
      const runners = Array.from({ length: count }, (_, i) =>
        startRunner({
          coordinator: coordinator.url,
          slots: 1,
          name: `scale-${i}`,
          cacheDir: join(dir, `cache-${i}`),
          configDir: join(dir, `config-${i}`),
        }),
      );
      await pollRunners(client, (names) => names.length === count);
      // Warm-up: fetch and compile the modules.
      await timeRun(client, yaml.replace("width: 2048", "width: 256").replace("height: 2048", "height: 256"));
      for (let i = 0; i < REPEAT; i++) times[key]!.push(await timeRun(client, yaml, 1000));
      await Promise.all(runners.map((r) => r.stop()));
    }
    const pool = new ThreadPool(2);
    const [tile, png] = await Promise.all(
      ["mandelbrot_tile", "mandelbrot_png"].map((m) =>
        WebAssembly.compile(readFileSync(join(ROOT, `wasm_tasks/build/${m}.wasm`))),
      ),
    );
    const job = (module: WebAssembly.Module, envelope: object) => ({
      module,
      args: ["t"],
      env: {},
      stdin: new TextEncoder().encode(JSON.stringify(envelope)),
      maxOutputBytes: 64 << 20,
      timeoutMs: 600_000,
    });
    for (let i = 0; i < REPEAT; i++) {
      const t0 = performance.now();
      const outs = await Promise.all(
        Array.from({ length: tiles.instances! }, (_, index) =>
          pool.run(
            job(tile!, { task: `tile[${index}]`, attempt: 1, params: tiles.params, inputs: {}, item: index, index }),
          ),
        ),
      );
      const bytes = outs.map((o) => (o.type === "exit" ? Buffer.from(o.stdout).toString("base64") : ""));
      const out = await pool.run(
        job(png!, {
          task: "assemble",
          attempt: 1,
          params: tiles.params,
          inputs: { tile: bytes.map(($bytes) => ({ $bytes })) },
        }),
      );
      if (out.type !== "exit" || out.code !== 0) throw new Error("local mandelbrot failed");
      times.local!.push(performance.now() - t0);
    }
    await pool.close();
    const [one, two, local] = [median(times.one!), median(times.two!), median(times.local!)];
    console.log(
      `scaling: mandelbrot ${String(tiles.params.width)}×${String(tiles.params.height)}, ${tiles.instances} tiles, ` +
        `${String(tiles.params.iterations)} iterations`,
    );
    console.log(`  1 runner × 1 slot: median ${one.toFixed(0)} ms (runs: ${runs(times.one!, 0)})`);
    console.log(`  2 runners × 1 slot: median ${two.toFixed(0)} ms (runs: ${runs(times.two!, 0)})`);
    console.log(
      `  local pool, 2 threads, no coordinator: median ${local.toFixed(0)} ms (runs: ${runs(times.local!, 0)})`,
    );
    console.log(
      `  speedup 2 runners vs 1: ${(one / two).toFixed(2)}x; ` +
        `2 runners vs local pool: ${(two / local).toFixed(2)}x the time`,
    );
  } finally {
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const only = values.only;
  if (!only || only === "throughput") await throughput();
  if (!only || only === "scaling") await scaling();
  if (!only || only === "recovery") await recovery();
  if (!only || only === "flood") await flood(Number(values.flood), Number(values.floods));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
