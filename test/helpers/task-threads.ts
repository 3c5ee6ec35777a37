/**
 * The example tasks of wasm_tasks/build compiled once each and run in real task threads (the
 * runner's own pool on dist/runner/executor/thread.js), for the tests of the workloads' tasks.
 */
import { readFileSync } from "node:fs";
import { ThreadPool } from "../../runner/executor/pool";

export function taskThreads(threads: number): {
  pool: ThreadPool;
  compile: (name: string) => Promise<WebAssembly.Module>;
} {
  const pool = new ThreadPool(threads, new URL("../../dist/runner/executor/thread.js", import.meta.url));
  const compiled = new Map<string, Promise<WebAssembly.Module>>();
  const compile = (name: string) => {
    if (!compiled.has(name))
      compiled.set(
        name,
        WebAssembly.compile(readFileSync(new URL(`../../wasm_tasks/build/${name}.wasm`, import.meta.url))),
      );
    return compiled.get(name)!;
  };
  return { pool, compile };
}
