/**
 * `npm run bench -- --only throughput`: what the coordinator does per task, measured against its
 * limits in the same bench run (issue 18, docs/benchmarks.md). One local coordinator, started
 * with PROFILE_RUNS=1 (runs count their messages and statements) and BENCH_ECHO=1 (the echo
 * object), two runner processes, and in each repeat, one after the other:
 *
 *   the bare local pool (the limit), the large fan-out (with the CPU split), the small fan-out
 *   with the result cache off, with watchers, with the cache on, the echo round trips, the chain
 *   with the cache off and on, and four concurrent fan-outs
 *
 * so that the noise of the machine spreads over all of them; medians, runs and ratios at the end.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "../cli/client.js";
import { DEV_TOKENS, ROOT, startCoordinator, startRunner } from "../dev/local.js";
import { ThreadPool } from "../runner/executor/pool.js";
import { finishRun, median, nonce, percentile, runs, timeRun, type RunProfile, type TimedRun } from "./common.js";
import { cpuBetween, formatCpu, sampleCpu, type CpuRoots, type CpuSample } from "./cpu.js";
import { echoRoundTrips } from "./echo.js";
import { bareFanout } from "./local-pool.js";

export interface ThroughputOptions {
  repeat: number;
  /** The large fan-out, and the bare pool's task count. */
  fanout: number;
  fanoutSmall: number;
  /** Tasks of each of the four concurrent runs. */
  concurrent: number;
  chain: number;
  /** Sequential frames per echo measurement. */
  echoes: number;
  slots: number | "auto";
  watchers: number;
}

/** Runs submitted at once in the concurrency measurement. */
const CONCURRENT_RUNS = 4;

/** One measurement over the repeats: its values, and the profile per task of each run behind them. */
class Series {
  readonly values: number[] = [];
  readonly perTask: RunProfile[] = [];

  constructor(
    readonly label: string,
    readonly unit: string,
    readonly digits: number,
  ) {}

  /** Adds a value; `tasks` and the profiles of its runs give the per-task counts (all or none). */
  add(value: number, tasks = 0, profiles: (RunProfile | undefined)[] = []): void {
    this.values.push(value);
    if (tasks === 0 || profiles.length === 0 || profiles.some((p) => p === undefined)) return;
    const sum = (k: keyof RunProfile) => profiles.reduce((s, p) => s + p![k], 0) / tasks;
    this.perTask.push({ messages: sum("messages"), statements: sum("statements") });
  }

  get median(): number {
    return median(this.values);
  }

  print(profiling: boolean): void {
    const { label, unit, digits, values } = this;
    console.log(`${label}: median ${this.median.toFixed(digits)} ${unit} (runs: ${runs(values, digits)})`);
    if (!profiling) return;
    if (this.perTask.length === 0) {
      console.log("  messages and SQL statements per task: n/a (coordinator does not profile)");
      return;
    }
    const m = median(this.perTask.map((p) => p.messages));
    const s = median(this.perTask.map((p) => p.statements));
    console.log(
      `  per task: ${m.toFixed(3)} incoming messages, ${s.toFixed(2)} SQL statements ` +
        `(medians; runs: ${this.perTask.map((p) => `${p.messages.toFixed(3)}/${p.statements.toFixed(2)}`).join(", ")})`,
    );
  }
}

/** The bench's DAGs of no-op tasks; with the cache on, a fresh nonce per run (and per hop) so every lookup misses. */
const dags = {
  fanout(n: number, cache: boolean, name = "bench-fanout"): string {
    const params = cache ? `, params: { nonce: "${nonce()}" }` : "";
    return (
      `name: ${name}${cache ? "-cached" : ""}\n${cache ? "" : "cache: false\n"}tasks:\n` +
      `  - { id: noop, module: noop.wasm${params}, map: { range: [0, ${n}] } }\n`
    );
  },
  chain(n: number, cache: boolean): string {
    const run = nonce();
    const link = (i: number) =>
      `  - { id: t${i}, module: noop.wasm${cache ? `, params: { nonce: "${run}-${i}" }` : ""}` +
      `${i ? `, depends_on: [t${i - 1}]` : ""} }`;
    const tasks = Array.from({ length: n }, (_, i) => link(i)).join("\n");
    return `name: bench-chain${cache ? "-cached" : ""}\n${cache ? "" : "cache: false\n"}tasks:\n${tasks}\n`;
  },
};

/** `runs` submitted at once → their aggregate rate: all tasks / (last finished − first created). */
async function concurrentRuns(client: Client, n: number): Promise<{ rate: number; runs: TimedRun[] }> {
  const submitted = await Promise.all(
    Array.from({ length: CONCURRENT_RUNS }, (_, k) => client.submit(dags.fanout(n, false, `bench-concurrent-${k}`))),
  );
  const done = await Promise.all(submitted.map(({ id }) => finishRun(client, id, 100)));
  const first = Math.min(...done.map((r) => r.summary.created_at));
  const last = Math.max(...done.map((r) => r.summary.finished_at!));
  return { rate: (CONCURRENT_RUNS * n) / ((last - first) / 1000), runs: done };
}

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

export async function throughput(o: ThroughputOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({
    persistTo: join(dir, "state"),
    vars: { PROFILE_RUNS: "1", BENCH_ECHO: "1" },
  });
  const names = ["bench-0", "bench-1"];
  const runners = names.map((name, i) =>
    startRunner({
      coordinator: coordinator.url,
      slots: o.slots,
      name,
      cacheDir: join(dir, `cache-${i}`),
      configDir: join(dir, `config-${i}`),
    }),
  );
  const pool = new ThreadPool(2);
  try {
    await Promise.all(runners.map((r) => r.waitFor(/slot\(s\)/)));
    const slots = runners.map((r) => /(\d+) slot\(s\)/.exec(r.lines.find((l) => /slot\(s\)/.test(l))!)![1]).join("+");
    const client = new Client(coordinator.url, DEV_TOKENS.api);
    const noopBytes = readFileSync(join(ROOT, "wasm_tasks/build/noop.wasm"));
    await client.uploadModule("noop.wasm", noopBytes);
    const noop = await WebAssembly.compile(noopBytes);
    const roots: CpuRoots = {
      coordinator: coordinator.proc.pid,
      runners: Object.fromEntries(names.map((name, i) => [name, runners[i]!.pid])),
      client: process.pid,
    };

    // Warm-up: module caches, first compiles, the echo object, the pool's threads.
    const warm = await timeRun(client, dags.fanout(50, false));
    await timeRun(client, dags.fanout(50, true));
    await timeRun(client, dags.chain(20, true));
    await timeRun(client, dags.chain(20, false)); // (its links sent ahead: that path's first compiles)
    await echoRoundTrips(coordinator.url, DEV_TOKENS.api, 50);
    await bareFanout(pool, noop, 200);
    const profiling = warm.profile !== undefined;
    console.log(
      `distro bench, throughput: 2 runners (${slots} slots), ${o.repeat} repeats, node ${process.version}; ` +
        `the coordinator ${profiling ? "profiles runs" : "does not profile runs (no per-task counts)"}`,
    );

    const { fanout: big, fanoutSmall: small, chain } = o;
    const bare = new Series(`bare local pool, 2 threads, ${big} no-op tasks, no coordinator`, "tasks/s", 0);
    const fanBig = new Series(`fan-out of ${big} no-op tasks, cache off`, "tasks/s", 0);
    const fanSmall = new Series(`fan-out of ${small} no-op tasks, cache off`, "tasks/s", 0);
    const watched = new Series(`  the same with ${o.watchers} watchers`, "tasks/s", 0);
    const fanCached = new Series(`fan-out of ${small} no-op tasks, cache on (every lookup a miss)`, "tasks/s", 0);
    const echo = new Series(`echo round trip, ${o.echoes} sequential frames to a Durable Object`, "ms", 3);
    const echoP90 = new Series(`  p90 of each repeat's round trips`, "ms", 3);
    const hops = new Series(`chain of ${chain} dependent tasks, cache off`, "ms per hop", 2);
    const hopsCached = new Series(`chain of ${chain} dependent tasks, cache on (every lookup a miss)`, "ms per hop", 2);
    const together = new Series(`${CONCURRENT_RUNS} concurrent fan-outs of ${o.concurrent}, aggregate`, "tasks/s", 0);
    const cpu: CpuSample[] = [];

    for (let r = 0; r < o.repeat; r++) {
      bare.add(big / ((await bareFanout(pool, noop, big)) / 1000));
      const before = sampleCpu(roots);
      const run = await timeRun(client, dags.fanout(big, false));
      cpu.push(cpuBetween(before, sampleCpu(roots)));
      fanBig.add(big / (run.ms / 1000), big, [run.profile]);
      for (const [series, cache, watchers] of [
        [fanSmall, false, 0],
        [watched, false, o.watchers],
        [fanCached, true, 0],
      ] as const) {
        const run = await timeRun(client, dags.fanout(small, cache), 50, watchers);
        series.add(small / (run.ms / 1000), small, [run.profile]);
      }
      const trips = await echoRoundTrips(coordinator.url, DEV_TOKENS.api, o.echoes);
      echo.add(median(trips));
      echoP90.add(percentile(trips, 90));
      for (const [series, cache] of [
        [hops, false],
        [hopsCached, true],
      ] as const) {
        const run = await timeRun(client, dags.chain(chain, cache));
        series.add(run.ms / chain, chain, [run.profile]);
      }
      const four = await concurrentRuns(client, o.concurrent);
      together.add(
        four.rate,
        CONCURRENT_RUNS * o.concurrent,
        four.runs.map((run) => run.profile),
      );
      console.log(`  repeat ${r + 1} of ${o.repeat} done`);
    }

    for (const series of [bare, fanBig, fanSmall, watched, fanCached, echo, echoP90, hops, hopsCached, together])
      series.print(profiling && ![bare, echo, echoP90].includes(series));
    const pairs = (a: Series, b: Series) =>
      runs(
        a.values.map((x, i) => x / b.values[i]!),
        2,
      );
    console.log(
      `fan-out of ${big} ÷ bare local pool: ${ratio(fanBig.median, bare.median)} the limit ` +
        `(per repeat: ${pairs(fanBig, bare)}; issue 18 asks for at least 0.5×)`,
    );
    console.log(
      `chain hop ÷ echo round trip: ${ratio(hops.median, echo.median)} cache off (per repeat: ${pairs(hops, echo)}), ` +
        `${ratio(hopsCached.median, echo.median)} cache on (per repeat: ${pairs(hopsCached, echo)}); ` +
        `issue 18 asks for at most 2×`,
    );
    console.log(`watchers: ${ratio(watched.median, fanSmall.median)} the unwatched rate`);

    // The CPU split of the large fan-out whose rate is the median.
    const at = fanBig.values.indexOf(fanBig.median);
    const labels: Record<string, string> = {
      workerd: "workerd (Worker, DagRun, RunnerPool)",
      wrangler: "wrangler's node process (dev proxy)",
      client: "bench process (client, polling)",
      ...Object.fromEntries(names.map((name) => [name, `runner ${name}`])),
    };
    console.log(`where the time goes: CPU during the fan-out of ${big} at the median rate (repeat ${at + 1}):`);
    for (const line of formatCpu(cpu[at]!, labels, availableParallelism())) console.log(line);
  } finally {
    await pool.close();
    await Promise.all(runners.map((r) => r.stop()));
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
