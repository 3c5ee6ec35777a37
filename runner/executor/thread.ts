/**
 * A task thread: instantiates one compiled task module at a time with the in-memory WASI shim
 * and runs its `_start`. Started and, on timeout, terminated by pool.ts; a WASM loop can only
 * be stopped by terminating its thread.
 */
import { parentPort } from "node:worker_threads";
import { GROW_REFUSED } from "../../core/wasm/grow-watch.js";
import { StderrBatches } from "./stderr-batches.js";
import type { RunRequest, RunResponse, StderrMessage } from "./thread-messages.js";
import { OutputLimit, Wasi } from "./wasi.js";

if (!parentPort) throw new Error("thread.ts runs as a worker thread");
const port = parentPort;

/** Stderr goes to the runner at most every 200 ms, or in 64 KiB pieces. */
const STDERR_BATCH = { everyMs: 200, maxBytes: 64 * 1024 };

port.on("message", (req: RunRequest) => {
  const stderr = new StderrBatches((bytes) => {
    const message: StderrMessage = { id: req.id, type: "stderr", bytes };
    port.postMessage(message, [bytes.buffer as ArrayBuffer]);
  }, STDERR_BATCH);
  const wasi = new Wasi({
    args: req.args,
    env: req.env,
    stdin: req.stdin,
    maxOutputBytes: req.maxOutputBytes,
    stderrKeepBytes: req.stderrKeepBytes,
    onStderr: (bytes) => stderr.add(bytes),
    onClock: () => stderr.poll(),
  });
  let response: RunResponse;
  let memory: WebAssembly.Memory | undefined;
  let refused: unknown;
  /** The memory's size now, whether a grow was refused (when the module is watched), stderr cut. */
  const report = () => {
    // Every batch of stderr goes before the response, so the runner has it all when the task ends.
    stderr.flush();
    return {
      memoryBytes: memory?.buffer.byteLength,
      growRefused: refused instanceof WebAssembly.Global ? refused.value === 1 : undefined,
      stderrDropped: wasi.stderrDropped || undefined,
    };
  };
  try {
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(req.module, wasi.imports());
    } catch (e) {
      response = {
        id: req.id,
        type: "error",
        kind: "bad_module",
        message: `cannot instantiate: ${(e as Error).message}`,
        stderr: "",
      };
      port.postMessage(response);
      return;
    }
    memory = instance.exports.memory as WebAssembly.Memory | undefined;
    refused = instance.exports[GROW_REFUSED];
    const code = wasi.start(instance);
    const stdout = wasi.output();
    response = {
      id: req.id,
      type: "exit",
      code,
      stdout,
      stderr: wasi.stderrTail(),
      ...report(),
    };
    port.postMessage(response, [stdout.buffer as ArrayBuffer]);
    return;
  } catch (e) {
    const kind = e instanceof OutputLimit ? "output" : "trap";
    const message =
      e instanceof Error ? `${e instanceof WebAssembly.RuntimeError ? "trap: " : ""}${e.message}` : String(e);
    response = {
      id: req.id,
      type: "error",
      kind,
      message,
      stderr: wasi.stderrTail(),
      ...report(),
    };
  }
  port.postMessage(response);
});
