/**
 * A pool of task threads, one per slot. `run` sends a compiled module to an idle thread and
 * resolves with how it ended; a timeout terminates the thread (the only way to stop a WASM
 * loop) and a crashed thread fails only its own task. Either way a fresh thread takes its place.
 * `resize` follows the runner's slot count: new threads start at once, surplus ones stop when
 * idle (a busy one after its job). A job's stderr reaches its `onStderr` in batches while it runs,
 * all of it before the job ends.
 */
import { Worker } from "node:worker_threads";
import { LOG_LIMITS } from "../../core/protocol/messages.js";
import type { MemoryReport, RunRequest, ThreadMessage } from "./thread-messages.js";

export interface Job {
  module: WebAssembly.Module;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  maxOutputBytes: number;
  timeoutMs: number;
  /** Given the task's stderr while it runs, in batches (the first LOG_LIMITS.attemptBytes of it). */
  onStderr?: (bytes: Uint8Array) => void;
}

/** How a job ended, with what the thread knew of its memory (thread-messages.ts `MemoryReport`). */
export type JobOutcome =
  | ({ type: "exit"; code: number; stdout: Uint8Array; stderr: string } & MemoryReport)
  | ({
      type: "error";
      kind: "trap" | "output" | "bad_module" | "timeout" | "memory" | "crash" | "cancelled";
      message: string;
      stderr: string;
    } & MemoryReport);

interface Slot {
  worker: Worker;
  job?: { id: number; resolve: (o: JobOutcome) => void; timer: NodeJS.Timeout; onStderr?: Job["onStderr"] };
  /** Removed by `resize`: its thread's end is not a crash. */
  retired?: boolean;
}

/** The compiled thread entry beside this module. */
const THREAD_URL = new URL("./thread.js", import.meta.url);

export class ThreadPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { job: Job; resolve: (o: JobOutcome) => void }[] = [];
  private nextId = 1;
  private closed = false;
  private target: number;

  constructor(
    size: number,
    private readonly threadUrl: URL = THREAD_URL,
  ) {
    this.target = size;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /** Threads now (more than the target while surplus ones finish their jobs). */
  get size(): number {
    return this.slots.length;
  }

  /** Threads running a job now. */
  get busy(): number {
    return this.slots.filter((s) => s.job).length;
  }

  /** Grows or shrinks the pool to `size` threads. */
  resize(size: number): void {
    if (this.closed) return;
    this.target = Math.max(1, size);
    while (this.slots.length < this.target) this.slots.push(this.spawn());
    for (const slot of [...this.slots]) this.retire(slot);
    this.pump();
  }

  /**
   * Runs one job; never rejects: every way a task can end is a JobOutcome. Aborting `signal`
   * ends the job as cancelled, terminating its thread if it is running.
   */
  run(job: Job, signal?: AbortSignal): Promise<JobOutcome> {
    const cancelled: JobOutcome = {
      type: "error",
      kind: "cancelled",
      message: "the attempt was cancelled",
      stderr: "",
    };
    if (this.closed)
      return Promise.resolve({ type: "error", kind: "crash", message: "the runner is shutting down", stderr: "" });
    if (signal?.aborted) return Promise.resolve(cancelled);
    return new Promise((resolve) => {
      const entry = { job, resolve };
      this.queue.push(entry);
      signal?.addEventListener("abort", () => {
        const queued = this.queue.indexOf(entry);
        if (queued >= 0) {
          this.queue.splice(queued, 1);
          resolve(cancelled);
          return;
        }
        const slot = this.slots.find((s) => s.job?.resolve === resolve);
        if (slot) this.replace(slot, cancelled);
      });
      this.pump();
    });
  }

  /** Stops every thread; pending jobs end as crashed. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { resolve } of this.queue.splice(0))
      resolve({ type: "error", kind: "crash", message: "the runner is shutting down", stderr: "" });
    await Promise.all(
      this.slots.map(async (slot) => {
        this.finish(slot, { type: "error", kind: "crash", message: "the runner is shutting down", stderr: "" });
        await slot.worker.terminate();
      }),
    );
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.job) continue;
      const { job, resolve } = this.queue.shift()!;
      const id = this.nextId++;
      const timer = setTimeout(() => this.timeout(slot, job.timeoutMs), job.timeoutMs);
      slot.job = { id, resolve, timer, onStderr: job.onStderr };
      const req: RunRequest = {
        id,
        module: job.module,
        args: job.args,
        env: job.env,
        stdin: job.stdin,
        maxOutputBytes: job.maxOutputBytes,
        stderrKeepBytes: LOG_LIMITS.attemptBytes,
      };
      slot.worker.postMessage(req);
    }
  }

  private spawn(): Slot {
    const slot = {} as Slot;
    this.startThread(slot);
    return slot;
  }

  /** Gives `slot` a new thread whose events settle the slot's current job. */
  private startThread(slot: Slot): void {
    const worker = new Worker(this.threadUrl);
    slot.worker = worker;
    worker.on("message", (res: ThreadMessage) => {
      if (slot.worker !== worker || slot.job?.id !== res.id) return;
      if (res.type === "stderr") {
        try {
          slot.job.onStderr?.(res.bytes);
        } catch (e) {
          console.error("stderr of a task", e);
        }
        return;
      }
      const { id: _id, ...outcome } = res;
      this.finish(slot, outcome);
      this.retire(slot);
      this.pump();
    });
    worker.on("error", (err: Error & { code?: string }) => {
      if (slot.worker !== worker || slot.retired) return;
      const memory = err.code === "ERR_WORKER_OUT_OF_MEMORY";
      this.replace(slot, {
        type: "error",
        kind: memory ? "memory" : "crash",
        message: `the task thread died: ${err.message}`,
        stderr: "",
      });
    });
    worker.on("exit", () => {
      if (slot.worker === worker && !this.closed && !slot.retired)
        this.replace(slot, { type: "error", kind: "crash", message: "the task thread exited", stderr: "" });
    });
  }

  private timeout(slot: Slot, timeoutMs: number): void {
    this.replace(slot, {
      type: "error",
      kind: "timeout",
      message: `the task exceeded its timeout of ${timeoutMs} ms; its thread was terminated`,
      stderr: "",
    });
  }

  /** Fails the slot's job, terminates its thread and starts a fresh one in its place. */
  private replace(slot: Slot, outcome: JobOutcome): void {
    this.finish(slot, outcome);
    const old = slot.worker;
    if (this.closed || this.retire(slot)) return;
    this.startThread(slot);
    void old.terminate();
    this.pump();
  }

  /** Stops an idle slot's thread and removes the slot if the pool is above its target size. */
  private retire(slot: Slot): boolean {
    if (slot.job || slot.retired || this.slots.length <= this.target) return false;
    slot.retired = true;
    this.slots.splice(this.slots.indexOf(slot), 1);
    void slot.worker.terminate();
    return true;
  }

  private finish(slot: Slot, outcome: JobOutcome): void {
    const job = slot.job;
    if (!job) return;
    clearTimeout(job.timer);
    slot.job = undefined;
    job.resolve(outcome);
  }
}
