/**
 * The runner: one socket to the RunnerPool, one per run it works on, and a thread pool that
 * runs the tasks. It hands its idle slots to runs as credit (`want`), never taking more tasks
 * than it has slots: a task that arrives beyond the credit goes straight back (`reject`).
 * A freed slot goes back to the run it came from while that run has a backlog, otherwise to
 * the run with the largest backlog. Results wait in a queue until a socket takes them, so a
 * reconnect loses none; on reconnecting the runner says which attempts it still holds.
 */
import { randomBytes } from "node:crypto";
import type { Assignment, CoordinatorMessage, RunnerInfo, TaskResult } from "../worker/protocol/messages.js";
import { PROTOCOL_VERSION } from "../worker/protocol/messages.js";
import type { RunnerConfig } from "./config.js";
import type { JobOutcome, ThreadPool } from "./executor/pool.js";
import { Link } from "./link.js";
import type { Logger } from "./log.js";
import { ModuleError, type ModuleCache } from "./modules.js";
import { resolveInputs, type CoordinatorHttp } from "./blobs.js";

interface Running {
  task: Assignment;
  abort: AbortController;
  /** Set when the attempt is stopped on purpose: its result is not sent. */
  dropped?: "cancelled" | "handed back";
}

interface RunState {
  id: string;
  link: Link;
  /** Tasks this run may still send us. */
  credit: number;
  /** Ready tasks the run had left when it last sent us work. */
  backlog: number;
  running: Map<string, Running>;
  results: TaskResult[];
  flushing: boolean;
  /** Tasks received on the current socket (reset when it reconnects). */
  received: number;
}

export interface RunnerParts {
  config: RunnerConfig;
  info: RunnerInfo;
  threads: ThreadPool;
  modules: ModuleCache;
  http: CoordinatorHttp;
  log: Logger;
  /** Free memory and CPU load now, for the device report sent every heartbeat period. */
  device: () => Promise<{ freeMemory: number; load: number }>;
}

/** Lifecycle of the runner process. */
export type RunnerState = "connecting" | "ready" | "draining" | "stopped";

const STDERR_TAIL = 4096;
const MEMORY_SLACK = 1024 * 1024;
const attemptKey = (a: { task: string; attempt: number }) => `${a.task}#${a.attempt}`;

export class Runner {
  private readonly runs = new Map<string, RunState>();
  private running = 0;
  private poolLink: Link | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private deviceTimer: NodeJS.Timeout | undefined;
  private lastStatus = "";
  private state: RunnerState = "connecting";
  private idle: (() => void) | undefined;
  /** Tasks finished by this process, by run. */
  readonly done = new Map<string, number>();

  constructor(private readonly parts: RunnerParts) {}

  get slots(): number {
    return this.parts.info.slots;
  }

  start(): void {
    const { config, info, log } = this.parts;
    log.info(`runner ${info.name} (${info.id}): ${info.slots} slot(s), ${info.cores} core(s), ${info.platform}/${info.arch}; coordinator ${config.coordinator.origin}`);
    this.poolLink = new Link({
      url: new URL("/api/runners/connect", config.coordinator),
      token: config.token,
      label: "pool",
      log,
      onOpen: () => {
        this.poolLink!.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info, want: 0, holding: [] });
        this.lastStatus = "";
        if (this.state === "connecting") this.setState("ready");
        this.reportStatus();
      },
      onMessage: (m) => {
        if (m.type === "join") this.join(m.run);
        else if (m.type === "welcome") this.reportDevice(m.heartbeatMs);
        else if (m.type === "error") log.info(`pool: coordinator says: ${m.message}`);
      },
      onEnd: (reason, fatal) => {
        log.info(`pool: ${reason}`);
        if (fatal) void this.stop(0).then(() => process.exit(1));
      },
    });
    this.poolLink.start();
  }

  /**
   * Stops taking tasks, lets running ones finish for up to `graceMs`, hands back the rest
   * (the coordinator re-queues them without counting a failure), then closes everything.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.state === "stopped" || this.state === "draining") return;
    this.setState("draining");
    clearTimeout(this.statusTimer);
    clearInterval(this.deviceTimer);
    for (const run of this.runs.values()) {
      run.credit = 0;
      run.link.send({ type: "want", want: 0, received: run.received });
    }
    if (this.running > 0) {
      this.parts.log.info(`draining: waiting up to ${graceMs} ms for ${this.running} running task(s)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const run of this.runs.values()) {
      const back = [...run.running.values()];
      for (const r of back) this.drop(r, "handed back");
      if (back.length > 0) {
        run.link.send({ type: "reject", tasks: back.map((r) => ({ task: r.task.task, attempt: r.task.attempt })) });
        this.parts.log.info(`run ${run.id.slice(0, 8)}: handed back ${back.length} unfinished task(s)`);
      }
      this.flush(run);
    }
    this.setState("stopped");
    for (const run of this.runs.values()) run.link.close("runner stopping");
    this.poolLink?.close("runner stopping");
    await this.parts.threads.close();
  }

  private setState(next: RunnerState): void {
    if (next === this.state) return;
    this.parts.log.debug(`runner: ${this.state} -> ${next}`);
    this.state = next;
  }

  private get accepting(): boolean {
    return this.state === "connecting" || this.state === "ready";
  }

  /** Slots neither running a task nor promised to a run. */
  private unassigned(): number {
    let credit = 0;
    for (const run of this.runs.values()) credit += run.credit;
    return this.slots - this.running - credit;
  }

  /** A run needs slots: attach to it (once) and move idle credit to it from runs with nothing to do. */
  private join(id: string): void {
    if (!this.accepting) return;
    let run = this.runs.get(id);
    let moved = 0;
    for (const other of this.runs.values()) {
      if (other.id === id || other.backlog > 0 || other.credit === 0) continue;
      moved += other.credit;
      other.credit = 0;
      other.link.send({ type: "want", want: 0, received: other.received });
    }
    if (run) {
      run.backlog = Math.max(run.backlog, 1);
      if (moved > 0) this.grant(run, moved);
      return;
    }
    const { config, info, log } = this.parts;
    const url = new URL("/api/runners/connect", config.coordinator);
    url.searchParams.set("run", id);
    const label = `run ${id.slice(0, 8)}`;
    const link: Link = new Link({
      url,
      token: config.token,
      label,
      log,
      onOpen: () => {
        const state = this.runs.get(id);
        if (!state) return;
        if (this.accepting) state.credit += this.unassigned();
        state.received = 0;
        const holding = [...[...state.running.values()].map((r) => r.task), ...state.results].map((a) => ({ task: a.task, attempt: a.attempt }));
        link.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info, want: state.credit, holding });
        this.flush(state);
        this.reportStatus();
      },
      onMessage: (m) => this.onRunMessage(id, m),
      onEnd: (reason) => {
        log.debug(`${label}: ended (${reason})`);
        const state = this.runs.get(id);
        if (state) for (const r of state.running.values()) this.drop(r, "cancelled");
        this.runs.delete(id);
        this.reportStatus();
      },
    });
    run = { id, link, credit: moved, backlog: 1, running: new Map(), results: [], flushing: false, received: 0 };
    this.runs.set(id, run);
    log.info(`${label}: joining`);
    link.start();
  }

  private grant(run: RunState, n: number): void {
    run.credit += n;
    run.link.send({ type: "want", want: run.credit, received: run.received });
  }

  private drop(r: Running, why: "cancelled" | "handed back"): void {
    r.dropped = why;
    r.abort.abort();
  }

  private onRunMessage(id: string, m: CoordinatorMessage): void {
    const run = this.runs.get(id);
    if (!run) return;
    switch (m.type) {
      case "tasks": {
        run.backlog = m.backlog;
        run.received += m.tasks.length;
        const rejected: { task: string; attempt: number }[] = [];
        for (const task of m.tasks) {
          if (run.credit <= 0 || !this.accepting) {
            rejected.push({ task: task.task, attempt: task.attempt });
            continue;
          }
          run.credit--;
          this.running++;
          void this.execute(run, task);
        }
        if (rejected.length > 0) run.link.send({ type: "reject", tasks: rejected });
        this.reportStatus();
        break;
      }
      case "cancel":
        for (const ref of m.tasks) {
          const r = run.running.get(attemptKey(ref));
          if (r) this.drop(r, "cancelled");
        }
        break;
      case "finished":
        for (const r of run.running.values()) this.drop(r, "cancelled");
        this.parts.log.info(`run ${id.slice(0, 8)}: ${m.status} (${this.done.get(id) ?? 0} task(s) ran here)`);
        break;
      case "error":
        this.parts.log.info(`run ${id.slice(0, 8)}: coordinator says: ${m.message}`);
        break;
      case "welcome":
      case "join":
        break;
    }
  }

  private async execute(run: RunState, task: Assignment): Promise<void> {
    const started = performance.now();
    const entry: Running = { task, abort: new AbortController() };
    run.running.set(attemptKey(task), entry);
    let outcome: JobOutcome;
    try {
      const [module, stdin] = await Promise.all([this.parts.modules.get(task.module, task.memoryBytes), resolveInputs(task, this.parts.http)]);
      outcome = await this.parts.threads.run(
        {
          module,
          args: [task.task, ...task.args],
          env: task.env,
          stdin: new TextEncoder().encode(stdin),
          maxOutputBytes: task.maxOutputBytes,
          timeoutMs: task.timeoutMs,
        },
        entry.abort.signal,
      );
    } catch (e) {
      // A module that cannot run is the task's fault; an input blob that cannot be fetched is not.
      const failure = e instanceof ModuleError ? e.failure : { kind: "lost" as const, message: `could not prepare the task: ${(e as Error).message}`, retryable: true };
      outcome = { type: "error", kind: failure.kind === "lost" ? "crash" : failure.kind === "memory" ? "memory" : "bad_module", message: failure.message, stderr: "" };
    }
    run.running.delete(attemptKey(task));
    this.running--;
    const ms = Math.round(performance.now() - started);
    if (entry.dropped) {
      this.parts.log.info(`task ${task.task} attempt ${task.attempt}: ${entry.dropped} after ${ms} ms`);
    } else {
      const result = await this.upload(task, toResult(task, outcome, ms), outcome);
      this.done.set(run.id, (this.done.get(run.id) ?? 0) + 1);
      this.parts.log.info(
        result.ok
          ? `task ${task.task} attempt ${task.attempt}: ok in ${ms} ms (${result.outputRef ? `${result.outputRef.size} bytes out, uploaded` : `${Buffer.byteLength(result.output ?? "", "base64")} bytes out`})`
          : `task ${task.task} attempt ${task.attempt}: failed in ${ms} ms (${result.failure!.kind}: ${result.failure!.message})`,
      );
      run.results.push(result);
    }
    if (this.running === 0) this.idle?.();
    this.freeSlot(run);
    if (!run.flushing) {
      run.flushing = true;
      setImmediate(() => this.flush(run));
    }
  }

  /** Moves an output over the inline limit to blob storage; a failed upload fails the attempt (retryable). */
  private async upload(task: Assignment, result: TaskResult, outcome: JobOutcome): Promise<TaskResult> {
    if (!result.ok || outcome.type !== "exit" || outcome.stdout.length <= task.inlineOutputBytes) return result;
    try {
      const { output: _inline, ...rest } = result;
      return { ...rest, outputRef: await this.parts.http.upload(outcome.stdout) };
    } catch (e) {
      return { ...result, ok: false, output: undefined, failure: { kind: "output", message: `could not upload the output: ${(e as Error).message}`, retryable: true } };
    }
  }

  /** Gives a freed slot to the run it came from while that run has work, else to the busiest run. */
  private freeSlot(from: RunState): void {
    if (!this.accepting) return;
    const attached = this.runs.get(from.id) === from;
    if (attached && from.backlog > 0) {
      from.credit++;
      return;
    }
    let best: RunState | undefined;
    for (const run of this.runs.values()) if (run.backlog > 0 && (!best || run.backlog > best.backlog)) best = run;
    if (best) this.grant(best, 1);
    else if (attached) from.credit++;
    this.reportStatus();
  }

  /** Sends queued results; those the socket cannot take now wait for the reconnect. */
  private flush(run: RunState): void {
    run.flushing = false;
    while (run.results.length > 0 && run.link.open) {
      const results = run.results.slice(0, 1024);
      if (!run.link.send({ type: "results", results, want: run.credit, received: run.received })) break;
      run.results.splice(0, results.length);
    }
  }

  /** Sends the pool a full status with the device report twice per heartbeat period. */
  private reportDevice(heartbeatMs: number): void {
    clearInterval(this.deviceTimer);
    const send = async () => {
      if (!this.accepting) return;
      const device = await this.parts.device().catch(() => undefined);
      const status = { type: "status" as const, free: Math.max(0, this.slots - this.running), runs: [...this.runs.keys()] };
      if (this.poolLink?.send({ ...status, device })) this.lastStatus = JSON.stringify(status);
    };
    void send();
    this.deviceTimer = setInterval(() => void send(), Math.max(200, Math.floor(heartbeatMs / 2)));
    this.deviceTimer.unref();
  }

  /** Tells the pool how many slots are idle and which runs we are in, at most every 100 ms. */
  private reportStatus(): void {
    if (this.statusTimer || !this.accepting) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      const status = { type: "status" as const, free: Math.max(0, this.slots - this.running), runs: [...this.runs.keys()] };
      const key = JSON.stringify(status);
      if (key === this.lastStatus) return;
      if (this.poolLink?.send(status)) this.lastStatus = key;
    }, 100);
  }
}

/** The wire result of one attempt, with failures classified where they happened. */
export function toResult(task: Assignment, outcome: JobOutcome, durationMs: number): TaskResult {
  const base = { task: task.task, attempt: task.attempt, durationMs, stderr: outcome.stderr.slice(-STDERR_TAIL) };
  if (outcome.type === "exit" && outcome.code === 0) return { ...base, ok: true, output: Buffer.from(outcome.stdout).toString("base64") };
  // A failure with the memory within 1 MiB of its cap is the memory limit, whatever the module
  // made of its failed `memory.grow` (a trap, an abort, an exit code).
  if (outcome.memoryBytes !== undefined && outcome.memoryBytes + MEMORY_SLACK > task.memoryBytes) {
    const message = `the task reached its memory limit of ${task.memoryBytes} bytes (${outcome.type === "exit" ? `exited with code ${outcome.code}` : outcome.message})`;
    return { ...base, ok: false, failure: { kind: "memory", message, retryable: false } };
  }
  if (outcome.type === "exit") {
    return { ...base, ok: false, failure: { kind: "exit", message: `exited with code ${outcome.code}`, retryable: true, exitCode: outcome.code } };
  }
  const kind = outcome.kind === "crash" || outcome.kind === "cancelled" ? "lost" : outcome.kind;
  const retryable = kind === "trap" || kind === "timeout" || kind === "lost";
  return { ...base, ok: false, failure: { kind, message: outcome.message, retryable } };
}

/** A runner id unique to this process: the host name and random bits. */
export function newRunnerId(name: string): string {
  return `${name.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48)}-${randomBytes(4).toString("hex")}`;
}
