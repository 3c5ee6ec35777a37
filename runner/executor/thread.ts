/**
 * A task thread: instantiates one compiled task module at a time with the in-memory WASI shim
 * and runs its `_start`. Started and, on timeout, terminated by pool.ts; a WASM loop can only
 * be stopped by terminating its thread.
 */
import { parentPort } from "node:worker_threads";
import type { RunRequest, RunResponse } from "./thread-messages.js";
import { OutputLimit, Wasi } from "./wasi.js";

if (!parentPort) throw new Error("thread.ts runs as a worker thread");
const port = parentPort;

port.on("message", (req: RunRequest) => {
  const wasi = new Wasi({ args: req.args, env: req.env, stdin: req.stdin, maxOutputBytes: req.maxOutputBytes });
  let response: RunResponse;
  let memory: WebAssembly.Memory | undefined;
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
    const code = wasi.start(instance);
    const stdout = wasi.output();
    response = {
      id: req.id,
      type: "exit",
      code,
      stdout,
      stderr: wasi.stderrTail(),
      memoryBytes: memory?.buffer.byteLength,
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
      memoryBytes: memory?.buffer.byteLength,
    };
  }
  port.postMessage(response);
});
