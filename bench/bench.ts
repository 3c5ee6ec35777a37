/**
 * `npm run bench`: throughput and latency of the whole system, measured against the real local
 * coordinator (wrangler dev) with two real runner processes, and against the limits of this
 * machine measured in the same bench run (issue 18; docs/benchmarks.md says what each means).
 *
 *   throughput: (throughput.ts) in each repeat, one after the other: the bare local pool (noop.wasm
 *               FANOUT times on the runner's ThreadPool, no coordinator: the limit); a fan-out of
 *               FANOUT no-op tasks with the CPU split of the processes (cpu.ts); a fan-out of
 *               FANOUT_SMALL with the result cache off, with WATCHERS watchers, with the cache on;
 *               ECHOES sequential round trips to a Durable Object that writes one row (echo.ts);
 *               a chain of CHAIN tasks with the cache off and on; four fan-outs of CONCURRENT
 *               submitted at once → tasks/s, ms per hop, messages and SQL statements per task
 *               (when the coordinator profiles runs), and the ratios to the limits
 *   scaling:    (scaling.ts) dags/mandelbrot.yaml (2048×2048, 64 tiles) on 1 runner × 1 slot, on
 *               2 runners × 1 slot, and on a local pool of 2 threads, in alternating rounds
 *   recovery:   (recovery.ts) a runner holding a task is killed (closed socket) or frozen (silent
 *               runner), KILLS times each → time until the task runs again on another runner
 *   flood:      (flood.ts) one hostile client on the pool socket (a valid hello, then FLOOD status
 *               frames as fast as it can), FLOODS times, interleaved with idle rounds → median
 *               latency of GET /api/runners, GET /metrics and POST /api/dags during the flood vs idle
 *
 * Each is run REPEAT times (rounds, for scaling); the median and the runs are printed. A run's time
 * is the coordinator's own (created → finished), so polling does not add to it.
 */
import { parseArgs } from "node:util";
import { flood } from "./flood.js";
import { recovery } from "./recovery.js";
import { scaling } from "./scaling.js";
import { throughput } from "./throughput.js";

const { values } = parseArgs({
  options: {
    repeat: { type: "string", default: "3" },
    fanout: { type: "string", default: "20000" },
    "fanout-small": { type: "string", default: "2000" },
    concurrent: { type: "string", default: "5000" },
    chain: { type: "string", default: "200" },
    echoes: { type: "string", default: "2000" },
    slots: { type: "string", default: "auto" },
    watchers: { type: "string", default: "50" },
    kills: { type: "string", default: "10" },
    heartbeat: { type: "string", default: "3000" },
    flood: { type: "string", default: "20000" },
    floods: { type: "string", default: "5" },
    only: { type: "string" },
  },
});

/** A flag that must be a whole number of at least `min`. */
function whole(name: keyof typeof values, min = 1): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name} takes a whole number of at least ${min}, not ${values[name]}`);
  return n;
}

const SCENARIOS = ["throughput", "scaling", "recovery", "flood"] as const;

async function main(): Promise<void> {
  const only = values.only;
  if (only !== undefined && !(SCENARIOS as readonly string[]).includes(only))
    throw new Error(`--only takes one of ${SCENARIOS.join(", ")}, not ${only}`);
  const repeat = whole("repeat");
  if (!only || only === "throughput")
    await throughput({
      repeat,
      fanout: whole("fanout"),
      fanoutSmall: whole("fanout-small"),
      concurrent: whole("concurrent"),
      chain: whole("chain", 2),
      echoes: whole("echoes"),
      slots: values.slots === "auto" ? "auto" : whole("slots"),
      watchers: whole("watchers", 0),
    });
  if (!only || only === "scaling") await scaling(repeat);
  if (!only || only === "recovery") await recovery(whole("kills"), values.heartbeat);
  if (!only || only === "flood") await flood(whole("flood"), whole("floods"));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
