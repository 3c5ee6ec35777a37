/**
 * One attempt of one task, from assignment to wire result: fetch the module through the cache,
 * resolve the `$ref` inputs, run it in the thread pool, then build the TaskResult with its failure
 * classified here (where the failure happened) and move an output over the inline limit to blob
 * storage. The Runner calls `attempt` for each task it takes and keeps the slots, credit and
 * queues; tests drive the two phases, `runAttempt` and `settleAttempt`, with fake hosts.
 */
import type { Assignment, BlobRef, Failure, TaskResult } from "../core/protocol/messages.js";
import { InputError, resolveInputs } from "./blobs.js";
import type { JobOutcome, ThreadPool } from "./executor/pool.js";
import type { LogFields, Logger } from "./log.js";
import { ModuleError } from "./modules.js";
import type { StderrStream } from "./stderr-stream.js";

/**
 * What an attempt needs from the runner: the module cache, coordinator HTTP, threads and the
 * log. Its modules and blobs are fetched for the attempt's run (the Runner gives each run its
 * own host), so nothing here handles run ids.
 */
export interface AttemptHost {
  modules: { get(sha256: string, memoryBytes: number): Promise<WebAssembly.Module> };
  http: {
    blob(sha256: string): Promise<Uint8Array>;
    upload(bytes: Uint8Array): Promise<BlobRef>;
    envelope(task: Assignment): Promise<string>;
  };
  threads: Pick<ThreadPool, "run">;
  log: Logger;
  /** Where an attempt's stderr goes while it runs (stderr-stream.ts); absent: only the result's tail. */
  stderr?(task: Assignment): Pick<StderrStream, "push" | "end" | "discard">;
}

/** How an attempt ended: as the thread pool saw it, or with the failure that kept it from running. */
export type AttemptOutcome = JobOutcome | { type: "unprepared"; failure: Failure; stderr: "" };

const STDERR_TAIL = 4096;
const MEMORY_SLACK = 1024 * 1024;

/** Where an attempt runs, and the runner's word on it once it has run. */
export interface AttemptSlot {
  run: string;
  /** The slot it runs in, `<runner>-<n>`. */
  slot: string;
  signal: AbortSignal;
  /** The task stopped running (its slot is free): says why the runner dropped it, if it did. */
  ran(): "cancelled" | "handed back" | undefined;
}

/**
 * Runs one attempt to its end: the result to send, or undefined when the runner dropped the
 * attempt meanwhile (cancelled, or handed back on a drain), whose result is not sent. Logs
 * one line either way; never rejects.
 */
export async function attempt(task: Assignment, host: AttemptHost, at: AttemptSlot): Promise<TaskResult | undefined> {
  const started = performance.now();
  const stderr = host.stderr?.(task);
  const outcome = await runAttempt(task, host, at.signal, stderr && ((bytes) => stderr.push(bytes)));
  const dropped = at.ran();
  // The log's last frames go before the result (queued after this), and none of a dropped attempt.
  if (dropped) stderr?.discard();
  else stderr?.end(outcome.type === "unprepared" ? 0 : outcome.stderrDropped);
  const ms = Math.round(performance.now() - started);
  const fields = { event: "task", run: at.run, task: task.task, attempt: task.attempt, slot: at.slot, ms };
  if (!dropped) return settleAttempt(task, outcome, ms, host, fields);
  host.log.info(`task ${task.task} attempt ${task.attempt}: ${dropped} after ${ms} ms`, {
    ...fields,
    outcome: dropped,
  });
  return undefined;
}

/**
 * Prepares the task (module and inputs) and runs it, its stderr given to `onStderr` as it comes;
 * never rejects. A task that cannot be
 * prepared ends `unprepared`: a module that cannot run is the task's fault, an input blob that
 * cannot be fetched is not.
 */
export async function runAttempt(
  task: Assignment,
  host: AttemptHost,
  signal: AbortSignal,
  onStderr?: (bytes: Uint8Array) => void,
): Promise<AttemptOutcome> {
  try {
    const [module, stdin] = await Promise.all([
      host.modules.get(task.module, task.memoryBytes),
      resolveInputs(task, host.http),
    ]);
    return await host.threads.run(
      {
        module,
        args: [task.task, ...task.args],
        env: task.env,
        stdin: new TextEncoder().encode(stdin),
        maxOutputBytes: task.maxOutputBytes,
        timeoutMs: task.timeoutMs,
        onStderr,
      },
      signal,
    );
  } catch (e) {
    // The failure goes on as the cache classified it: a module that arrived corrupted is worth
    // another try, one that does not compile is not.
    const failure: Failure =
      e instanceof ModuleError || e instanceof InputError
        ? e.failure
        : { kind: "lost", message: `could not prepare the task: ${(e as Error).message}`, retryable: true };
    return { type: "unprepared", failure, stderr: "" };
  }
}

/**
 * The result to send for an attempt that ran `ms` milliseconds: classified, its output uploaded
 * when too large to travel inline, and logged with `fields` (run, task, attempt, slot).
 */
export async function settleAttempt(
  task: Assignment,
  outcome: AttemptOutcome,
  ms: number,
  host: AttemptHost,
  fields: LogFields = {},
): Promise<TaskResult> {
  const result = await upload(task, toResult(task, outcome, ms), outcome, host.http);
  const name = `task ${task.task} attempt ${task.attempt}`;
  if (result.ok) {
    const bytes = result.outputRef?.size ?? Buffer.byteLength(result.output ?? "", "base64");
    const uploaded = result.outputRef ? ", uploaded" : "";
    host.log.info(`${name}: ok in ${ms} ms (${bytes} bytes out${uploaded})`, { ...fields, outcome: "ok", bytes });
  } else {
    const { kind, message } = result.failure!;
    host.log.info(`${name}: failed in ${ms} ms (${kind}: ${message})`, {
      ...fields,
      outcome: "failed",
      kind,
      error: message,
    });
  }
  return result;
}

/** Moves an output over the inline limit to blob storage; a failed upload fails the attempt (retryable). */
async function upload(
  task: Assignment,
  result: TaskResult,
  outcome: AttemptOutcome,
  http: AttemptHost["http"],
): Promise<TaskResult> {
  if (!result.ok || outcome.type !== "exit" || outcome.stdout.length <= task.inlineOutputBytes) return result;
  try {
    const { output: _inline, ...rest } = result;
    return { ...rest, outputRef: await http.upload(outcome.stdout) };
  } catch (e) {
    return {
      ...result,
      ok: false,
      output: undefined,
      failure: { kind: "output", message: `could not upload the output: ${(e as Error).message}`, retryable: true },
    };
  }
}

/** The wire result of one attempt, with failures classified where they happened. */
export function toResult(task: Assignment, outcome: AttemptOutcome, durationMs: number): TaskResult {
  const base = { task: task.task, attempt: task.attempt, durationMs, stderr: outcome.stderr.slice(-STDERR_TAIL) };
  if (outcome.type === "unprepared") return { ...base, ok: false, failure: outcome.failure };
  if (outcome.type === "exit" && outcome.code === 0)
    return { ...base, ok: true, output: Buffer.from(outcome.stdout).toString("base64") };
  // A failure after a refused `memory.grow` is the memory limit, whatever the module made of it
  // (a trap, an abort, an exit code). A module the runner could not watch (core/wasm/grow-watch.ts)
  // is judged by its memory ending within 1 MiB of the cap.
  const refused =
    outcome.growRefused ?? (outcome.memoryBytes !== undefined && outcome.memoryBytes + MEMORY_SLACK > task.memoryBytes);
  if (refused) {
    const how = outcome.type === "exit" ? `exited with code ${outcome.code}` : outcome.message;
    const message = `the task reached its memory limit of ${task.memoryBytes} bytes (${how})`;
    return { ...base, ok: false, failure: { kind: "memory", message, retryable: false } };
  }
  if (outcome.type === "exit") {
    return {
      ...base,
      ok: false,
      failure: { kind: "exit", message: `exited with code ${outcome.code}`, retryable: true, exitCode: outcome.code },
    };
  }
  const kind = outcome.kind === "crash" || outcome.kind === "cancelled" ? "lost" : outcome.kind;
  const retryable = kind === "trap" || kind === "timeout" || kind === "lost";
  return { ...base, ok: false, failure: { kind, message: outcome.message, retryable } };
}
