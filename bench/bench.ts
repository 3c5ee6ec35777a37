/**
 * `npm run bench`: throughput and latency of the whole system, measured against the real local
 * coordinator (wrangler dev) with two real runner processes.
 *
 *   fan-out: one mapped task of 2,000 no-op WASM instances → tasks/s
 *   chain:   200 no-op tasks, each depending on the one before → ms per hop
 *
 * Each is run REPEAT times; the median and the spread are printed. Time is measured by the
 * coordinator (run created → run finished), so polling does not add to it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client } from "../cli/client.js";
import { DEV_TOKENS, ROOT, startCoordinator, startRunner } from "../cli/local.js";

const { values } = parseArgs({
  options: {
    repeat: { type: "string", default: "3" },
    fanout: { type: "string", default: "2000" },
    chain: { type: "string", default: "200" },
    slots: { type: "string", default: "auto" },
  },
});
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

async function main(): Promise<void> {
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

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
