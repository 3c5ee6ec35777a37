/**
 * `npm run bench -- --only flood`: the API's latency while one socket floods the RunnerPool with
 * status frames, against the same calls made idle (docs/limits.md says why the socket is cut off).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as yieldToIo } from "node:timers/promises";
import WebSocket from "ws";
import { Client } from "../cli/client.js";
import { encode } from "../core/protocol/codec.js";
import { PROTOCOL_VERSION } from "../core/protocol/messages.js";
import { DEV_TOKENS, enrollDevice, ROOT, startCoordinator, startRunner } from "../dev/local.js";
import { median, pollRunners } from "./common.js";

/** The API calls timed in each round, made at once. */
const PROBES = ["GET /api/runners", "GET /metrics", "POST /api/dags"] as const;
/** A probe that has not answered in this long counts as failed: the benchmark stays bounded. */
const PROBE_TIMEOUT_MS = 120_000;

/** Times the three probes, made together; a failure is NaN with its status or error noted. */
async function probe(client: Client, failures: string[]): Promise<number[]> {
  const dag = "name: bench-probe\ncache: false\ntasks:\n  - { id: n, module: noop.wasm }\n";
  const post = { method: "POST", body: dag };
  const calls: [string, RequestInit][] = [
    ["/api/runners", {}],
    ["/metrics", {}],
    ["/api/dags", post],
  ];
  return Promise.all(
    calls.map(async ([path, init], i) => {
      const t0 = performance.now();
      try {
        const headers = { Authorization: `Bearer ${DEV_TOKENS.api}`, "Content-Type": "application/yaml" };
        const signal = AbortSignal.timeout(PROBE_TIMEOUT_MS);
        const res = await fetch(new URL(path, client.coordinator), { ...init, headers, signal });
        await res.arrayBuffer();
        if (res.ok) return performance.now() - t0;
        failures.push(`${PROBES[i]}: HTTP ${res.status}`);
      } catch (e) {
        failures.push(`${PROBES[i]}: ${(e as Error).message}`);
      }
      return Number.NaN;
    }),
  );
}

/**
 * One hostile client on the pool socket: a valid hello, then `frames` status frames (with a device
 * report each) as fast as it can, the probes made once the first thousand are out. The socket is
 * closed by the coordinator for its rate (4429) or, once the probes have answered, by us.
 */
async function floodOnce(client: Client, n: number, frames: number, failures: string[]) {
  const url = new URL("/api/runners/connect", client.coordinator);
  url.protocol = "ws:";
  const headers = { Authorization: `Bearer ${await enrollDevice(client.coordinator, `bench-flood-${n}`)}` };
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  const closed = new Promise<string>((resolve) => ws.on("close", (code, why) => resolve(`${code} ${why.toString()}`)));
  const welcome = new Promise<void>((resolve) => {
    ws.on("message", (data) => {
      if ((data as Buffer).toString().includes('"welcome"')) resolve();
    });
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const runner = { id: `bench-flood-${n}`, name: "flood", platform: "linux", arch: "x64", cores: 8, memory: 2 ** 33 };
  const info = { ...runner, freeMemory: 2 ** 32, slots: 8, labels: [], version: "0" };
  ws.send(encode({ type: "hello", protocol: PROTOCOL_VERSION, runner: info, want: 0, holding: [] }));
  await welcome;
  const status = encode({ type: "status", free: 8, runs: [], device: { freeMemory: 2 ** 32, load: 50 } });
  let sent = 0;
  const send = async () => {
    while (sent < frames && ws.readyState === WebSocket.OPEN) {
      for (let i = 0; i < Math.min(1000, frames - sent); i++) ws.send(status);
      sent += Math.min(1000, frames - sent);
      await yieldToIo();
    }
  };
  const [, times] = await Promise.all([send(), yieldToIo().then(() => probe(client, failures))]);
  if (ws.readyState === WebSocket.OPEN) ws.close(1000, "bench done");
  return { times, sent, close: await closed };
}

/** Latency of the API while one socket floods the pool, against the same calls idle. */
export async function flood(frames: number, floods: number): Promise<void> {
  const FRAMES = Math.min(frames, 100_000);
  const FLOODS = Math.min(floods, 20);
  const dir = mkdtempSync(join(tmpdir(), "distro-bench-"));
  const coordinator = await startCoordinator({ persistTo: join(dir, "state") });
  const client = new Client(coordinator.url, DEV_TOKENS.api);
  const cacheDir = join(dir, "cache");
  const runner = startRunner({
    coordinator: coordinator.url,
    slots: 1,
    name: "bystander",
    cacheDir,
    configDir: join(dir, "config"),
  });
  try {
    await client.uploadModule("noop.wasm", readFileSync(join(ROOT, "wasm_tasks/build/noop.wasm")));
    await pollRunners(client, (names) => names.includes("bystander"));
    const idle: number[][] = [];
    const flooded: number[][] = [];
    const failures = { idle: [] as string[], flood: [] as string[] };
    const closes: string[] = [];
    const sent: number[] = [];
    await probe(client, []); // warm-up
    for (let i = 0; i < FLOODS; i++) {
      idle.push(await probe(client, failures.idle));
      const round = await floodOnce(client, i, FRAMES, failures.flood);
      flooded.push(round.times);
      closes.push(round.close);
      sent.push(round.sent);
      await new Promise((r) => setTimeout(r, 500)); // let the pool settle between rounds
    }
    const col = (rows: number[][], i: number) => rows.map((r) => r[i]!).filter((x) => !Number.isNaN(x));
    const ms = (xs: number[]) => (xs.length ? `${median(xs).toFixed(0)} ms` : "none answered");
    console.log(`flood: ${FLOODS} floods of ${FRAMES} status frames on one pool socket, interleaved with idle rounds`);
    PROBES.forEach((name, i) => {
      const runs = col(flooded, i)
        .map((x) => x.toFixed(0))
        .join(", ");
      console.log(`  ${name}: idle median ${ms(col(idle, i))}; flooded median ${ms(col(flooded, i))} (runs: ${runs})`);
    });
    for (const [when, list] of Object.entries(failures)) {
      if (list.length) console.log(`  failed (${when}): ${list.join("; ")}`);
    }
    const reasons = closes.map((c) => `"${c}"`).join(", ");
    console.log(`  the flooding socket sent ${sent.join(", ")} frames; it closed ${reasons}`);
  } finally {
    await runner.stop();
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
