/**
 * The request/response protocol between the runner's main thread (pool.ts) and a task thread
 * (thread.ts). Every request carries an id that its response echoes.
 */

export interface RunRequest {
  id: number;
  module: WebAssembly.Module;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  maxOutputBytes: number;
}

/**
 * `memoryBytes`: the module's memory size when it ended; `growRefused`: whether a `memory.grow`
 * was refused at the cap (core/wasm/grow-watch.ts), undefined for a module it could not watch.
 */
export type RunResponse =
  | ({ id: number; type: "exit"; code: number; stdout: Uint8Array; stderr: string } & MemoryReport)
  | ({
      id: number;
      type: "error";
      kind: "trap" | "output" | "bad_module";
      message: string;
      stderr: string;
    } & MemoryReport);

export interface MemoryReport {
  memoryBytes?: number;
  growRefused?: boolean;
}
