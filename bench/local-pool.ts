/**
 * The limit the coordinated runs are measured against: the same task modules run on the runner's
 * own ThreadPool (runner/executor/pool.ts: its WASI shim, one worker thread per slot, a fresh
 * instance per task) in the bench process, with no coordinator, no socket and no runner process.
 */
import type { JobOutcome, ThreadPool } from "../runner/executor/pool.js";

/** A job as the runner makes one: the task name first in argv, the envelope on stdin. */
function job(module: WebAssembly.Module, envelope: { task: string } & Record<string, unknown>) {
  return {
    module,
    args: [envelope.task],
    env: {},
    stdin: new TextEncoder().encode(JSON.stringify(envelope)),
    maxOutputBytes: 64 << 20,
    timeoutMs: 600_000,
  };
}

/** Runs `job` on `pool` and returns its stdout; anything but exit code 0 fails the bench. */
async function runOk(pool: ThreadPool, module: WebAssembly.Module, envelope: Parameters<typeof job>[1]) {
  const out: JobOutcome = await pool.run(job(module, envelope));
  if (out.type !== "exit" || out.code !== 0)
    throw new Error(`local ${envelope.task}: ${out.type === "exit" ? `exit ${out.code}` : out.message}`);
  return out.stdout;
}

/**
 * `n` instances of `module` (a mapped task's envelopes: item and index i) on `pool`, kept fed
 * with a few jobs queued per thread → milliseconds for all of them.
 */
export async function bareFanout(pool: ThreadPool, module: WebAssembly.Module, n: number): Promise<number> {
  const window = 8 * pool.size;
  let next = 0;
  const t0 = performance.now();
  const feed = async () => {
    for (let i = next++; i < n; i = next++)
      await runOk(pool, module, { task: `noop[${i}]`, attempt: 1, params: {}, inputs: {}, item: i, index: i });
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, feed));
  return performance.now() - t0;
}

/** The Mandelbrot DAG's tiles, then its assembly, on `pool` → milliseconds. */
export async function localMandelbrot(
  pool: ThreadPool,
  modules: { tile: WebAssembly.Module; png: WebAssembly.Module },
  params: Record<string, unknown>,
  tiles: number,
): Promise<number> {
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from({ length: tiles }, (_, index) =>
      runOk(pool, modules.tile, { task: `tile[${index}]`, attempt: 1, params, inputs: {}, item: index, index }),
    ),
  );
  const tile = outs.map((bytes) => ({ $bytes: Buffer.from(bytes).toString("base64") }));
  await runOk(pool, modules.png, { task: "assemble", attempt: 1, params, inputs: { tile } });
  return performance.now() - t0;
}
