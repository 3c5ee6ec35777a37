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
  /** Stderr the thread hands on (`stderr` messages) at most; the rest is counted (`stderrDropped`). */
  stderrKeepBytes: number;
}

/** Stderr the task wrote, sent while it runs (batched: stderr-batches.ts), before its RunResponse. */
export interface StderrMessage {
  id: number;
  type: "stderr";
  bytes: Uint8Array;
}

/**
 * `memoryBytes`: the module's memory size when it ended; `growRefused`: whether a `memory.grow`
 * was refused at the cap (core/wasm/grow-watch.ts), undefined for a module it could not watch.
 * `stderr` is the tail of the task's stderr.
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
  /** Bytes of stderr past `stderrKeepBytes`, not sent (absent: none, or the thread did not say). */
  stderrDropped?: number;
}

/** What a task thread posts. */
export type ThreadMessage = RunResponse | StderrMessage;
