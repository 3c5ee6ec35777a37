/**
 * The runner: one socket to the RunnerPool (pool-link.ts), one per run it works on (run-link.ts),
 * and a thread pool that runs the tasks (attempt.ts). Here are the glue and the slot allocator:
 * idle slots go to runs as credit (`want`), never more tasks than slots, and a task beyond the
 * credit goes straight back (`reject`). A freed slot goes to the highest-priority run with a
 * backlog (the run it came from among equals, then the largest backlog). Under `--slots auto` the
 * device sampler (sampler.ts) resizes the runner, which takes back promised credit when it shrinks
 * (running tasks finish) and hands out the new slots when it grows. The lifecycle (lifecycle.ts)
 * ends `stopped` after stop(), or `failed` when the coordinator refuses the runner for good (a
 * revoked device, a credential it does not know and that could not be renewed, the protocol).
 * Each run gets its own attempt host, whose module and blob fetches name that run.
 */
import type { Assignment, CoordinatorMessage, RunnerInfo } from "../core/protocol/messages.js";
import { formatSize } from "../core/units.js";
import { attempt, type AttemptHost } from "./attempt.js";
import type { RunnerConfig } from "./config.js";
import type { DeviceSample } from "./device.js";
import type { CoordinatorHttp } from "./blobs.js";
import type { ThreadPool } from "./executor/pool.js";
import type { RunnerIdentity } from "./identity.js";
import { Lifecycle, type RunnerEnd, type RunnerState } from "./lifecycle.js";
import type { Logger } from "./log.js";
import type { ModuleCache } from "./modules.js";
import { PoolLink } from "./pool-link.js";
import { RunLink, type AttemptRef } from "./run-link.js";
import { DeviceSampler } from "./sampler.js";

interface Running {
  task: Assignment;
  abort: AbortController;
  /** Set when the attempt is stopped on purpose: its result is not sent. */
  dropped?: "cancelled" | "handed back";
}

interface RunState {
  id: string;
  link: RunLink;
  /** Tasks this run may still send us. */
  credit: number;
  /** Ready tasks the run had left when it last sent us work. */
  backlog: number;
  /** Priority of its most important ready task, as the pool last said. */
  priority: number;
  running: Map<string, Running>;
  /** What its attempts use: fetches that name this run. */
  host: AttemptHost;
}

/** What the runner is made of (start.ts puts the real ones together; tests pass fakes). */
export interface RunnerParts {
  config: RunnerConfig;
  /** What the runner says of itself in hello; its `id` is the identity's runner id at each hello. */
  info: RunnerInfo;
  /** The device's credential and this process's runner id (auth.ts, identity.ts). */
  identity: RunnerIdentity;
  modules: Pick<ModuleCache, "get">;
  http: Pick<CoordinatorHttp, "blob" | "upload">;
  log: Logger;
  threads: AttemptHost["threads"] & Pick<ThreadPool, "resize" | "close">;
  /** Free memory and CPU load now: for `--slots auto` and the device report. */
  sample: () => Promise<DeviceSample>;
  /** How often to sample the device (default 2 s; at most half the heartbeat period). */
  sampleMs?: number;
}

const attemptKey = (a: AttemptRef) => `${a.task}#${a.attempt}`;

export class Runner {
  private readonly runs = new Map<string, RunState>();
  private running = 0;
  /** Slots offered now (changes with free RAM under `--slots auto`). */
  private capacity: number;
  /** Slot numbers in use by running tasks. */
  private readonly busySlots = new Set<number>();
  private readonly pool: PoolLink;
  private readonly sampler: DeviceSampler;
  private readonly life: Lifecycle;
  /** Resolves once the runner has stopped or failed and closed its sockets and threads. */
  readonly finished: Promise<RunnerEnd>;
  private idle: (() => void) | undefined;
  /** Tasks finished by this process, by run. */
  private readonly done = new Map<string, number>();

  constructor(private readonly parts: RunnerParts) {
    const { config, info, identity, log } = parts;
    this.capacity = info.slots;
    this.life = new Lifecycle(log);
    this.finished = this.life.finished;
    this.pool = new PoolLink(
      { coordinator: config.coordinator, identity, info, log },
      {
        status: () => ({
          free: Math.max(0, this.capacity - this.running),
          slots: this.capacity,
          runs: [...this.runs.keys()],
        }),
        accepting: () => this.life.accepting,
        opened: () => {
          if (this.state === "connecting") this.life.set("ready");
        },
        join: (run, priority) => this.join(run, priority),
        welcome: (heartbeatMs) => this.sampler.start(heartbeatMs),
        refused: (reason) => this.fail(reason),
      },
    );
    this.sampler = new DeviceSampler(
      {
        sample: parts.sample,
        accepting: () => this.life.accepting,
        resize: (slots, freeMemory) => this.resize(slots, freeMemory),
        report: (device) => this.pool.reportDevice(device),
      },
      { auto: config.slots === "auto" ? { cores: info.cores, policy: config } : undefined, sampleMs: parts.sampleMs },
    );
  }

  get state(): RunnerState {
    return this.life.state;
  }

  start(): void {
    const { config, info, identity, log } = this.parts;
    const { name, slots, cores, platform, arch } = info;
    const id = identity.runnerId();
    const labels = info.labels.join(",");
    const offered = `${slots} slot(s)${config.slots === "auto" ? " (auto)" : ""}`;
    const where = `${platform}/${arch}${labels ? `, labels ${labels}` : ""}; coordinator ${config.coordinator.origin}`;
    const fields = { event: "start", runner: id, name, slots, cores, platform, arch, labels };
    log.info(`runner ${name} (${id}): ${offered}, ${cores} core(s), ${where}`, fields);
    this.pool.start();
  }

  /**
   * Stops taking tasks, lets running ones finish for up to `graceMs`, hands back the rest
   * (the coordinator re-queues them without counting a failure), then closes everything.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.life.accepting) return;
    this.life.set("draining");
    await this.drain(graceMs);
    // A refusal that arrived meanwhile has made the runner `failed`: that is how it ends.
    if (this.state === "draining") this.life.set("stopped");
    await this.close();
  }

  /** The coordinator refused this runner for good: it fails, hands back what runs, and closes. */
  private fail(reason: string): void {
    if (this.state === "stopped" || this.state === "failed") return;
    const draining = this.state === "draining"; // that drain closes everything when it is done
    this.life.set("failed", reason);
    if (!draining) void this.drain(0).then(() => this.close());
  }

  private async drain(graceMs: number): Promise<void> {
    this.pool.quiet();
    this.sampler.stop();
    for (const run of this.runs.values()) {
      run.credit = 0;
      run.link.want();
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
        run.link.reject(back.map((r) => r.task));
        this.parts.log.info(`run ${run.id.slice(0, 8)}: handed back ${back.length} unfinished task(s)`);
      }
      run.link.flush();
    }
  }

  private async close(): Promise<void> {
    for (const run of this.runs.values()) run.link.close("runner stopping");
    this.pool.close("runner stopping");
    await this.parts.threads.close();
    this.life.settle();
  }

  /** Slots neither running a task nor promised to a run. */
  private unassigned(): number {
    let credit = 0;
    for (const run of this.runs.values()) credit += run.credit;
    return this.capacity - this.running - credit;
  }

  /**
   * A run needs slots: attach to it (once) and move promised but unused credit to it from runs
   * with nothing to do or a lower priority.
   */
  private join(id: string, priority: number): void {
    if (!this.life.accepting) return;
    const run = this.runs.get(id);
    let moved = 0;
    for (const other of this.runs.values()) {
      if (other.id === id || (other.backlog > 0 && other.priority >= priority) || other.credit === 0) continue;
      moved += this.revoke(other, other.credit);
    }
    if (run) {
      run.backlog = Math.max(run.backlog, 1);
      run.priority = priority;
      if (moved > 0) this.grant(run, moved);
      return;
    }
    const { config, info, identity, log, modules, http, threads } = this.parts;
    const state: RunState = {
      id,
      credit: moved,
      backlog: 1,
      priority,
      running: new Map(),
      host: {
        modules: { get: (sha256, memoryBytes) => modules.get(sha256, memoryBytes, id) },
        http: { blob: (sha256) => http.blob(sha256, id), upload: (bytes) => http.upload(bytes, id) },
        threads,
        log,
      },
      link: new RunLink(
        { coordinator: config.coordinator, identity, run: id, info, log },
        {
          opened: () => {
            if (this.life.accepting) state.credit += Math.max(0, this.unassigned());
            this.pool.report();
          },
          credit: () => state.credit,
          running: () => [...state.running.values()].map((r) => r.task),
          message: (m) => this.onRunMessage(state, m),
          ended: () => {
            for (const r of state.running.values()) this.drop(r, "cancelled");
            if (this.runs.get(id) === state) this.runs.delete(id);
            this.pool.report();
          },
          refused: (reason) => this.fail(reason),
        },
      ),
    };
    this.runs.set(id, state);
    log.info(`run ${id.slice(0, 8)}: joining (priority ${priority})`, { event: "join", run: id, priority });
    state.link.start();
  }

  private grant(run: RunState, n: number): void {
    run.credit += n;
    run.link.want();
  }

  /** Takes back up to `n` of a run's unused credit; returns how much. */
  private revoke(run: RunState, n: number): number {
    const taken = Math.min(n, run.credit);
    if (taken <= 0) return 0;
    run.credit -= taken;
    run.link.want();
    return taken;
  }

  private drop(r: Running, why: "cancelled" | "handed back"): void {
    r.dropped = why;
    r.abort.abort();
  }

  /** Tasks, cancels and the run's end; the run socket has logged the coordinator's errors. */
  private onRunMessage(run: RunState, m: CoordinatorMessage): void {
    switch (m.type) {
      case "tasks": {
        run.backlog = m.backlog;
        const rejected: AttemptRef[] = [];
        for (const task of m.tasks) {
          if (run.credit <= 0 || !this.life.accepting) rejected.push(task);
          else {
            run.credit--;
            this.running++;
            void this.execute(run, task);
          }
        }
        run.link.reject(rejected);
        this.pool.report();
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
        this.parts.log.info(`run ${run.id.slice(0, 8)}: ${m.status} (${this.done.get(run.id) ?? 0} task(s) ran here)`);
        break;
    }
  }

  private async execute(run: RunState, task: Assignment): Promise<void> {
    let n = 1;
    while (this.busySlots.has(n)) n++;
    this.busySlots.add(n);
    const entry: Running = { task, abort: new AbortController() };
    run.running.set(attemptKey(task), entry);
    const result = await attempt(task, run.host, {
      run: run.id,
      slot: `${this.parts.identity.runnerId()}-${n}`,
      signal: entry.abort.signal,
      ran: () => {
        run.running.delete(attemptKey(task));
        this.running--;
        this.busySlots.delete(n);
        return entry.dropped;
      },
    });
    if (result) {
      run.link.queue(result);
      this.done.set(run.id, (this.done.get(run.id) ?? 0) + 1);
    }
    if (this.running === 0) this.idle?.();
    this.freeSlot(run);
  }

  /**
   * Gives a freed slot (unless the runner shrank meanwhile) to the highest-priority run with a
   * backlog: the run it came from among equals, then the largest backlog. With no backlog
   * anywhere the run it came from keeps it for its next ready task.
   */
  private freeSlot(from: RunState): void {
    if (!this.life.accepting || this.unassigned() <= 0) return;
    const attached = this.runs.get(from.id) === from;
    const [best] = [...this.runs.values()]
      .filter((run) => run.backlog > 0)
      .sort((a, b) => b.priority - a.priority || Number(b === from) - Number(a === from) || b.backlog - a.backlog);
    // The run it came from gets the slot with its next results frame; any other is told now.
    if (best === from || (!best && attached)) from.credit++;
    else if (best) this.grant(best, 1);
    this.pool.report();
  }

  /**
   * Offers `slots` slots from now on. Growing hands the new ones to runs with a backlog (or
   * to the pool as free); shrinking takes back unused credit, lowest priority first, and lets
   * running tasks finish.
   */
  private resize(slots: number, freeMemory: number): void {
    if (slots === this.capacity || !this.life.accepting) return;
    const from = this.capacity;
    this.capacity = slots;
    this.parts.threads.resize(slots);
    const { running } = this;
    const fields = { event: "slots", from, to: slots, freeMemory, running };
    this.parts.log.info(`slots ${from} -> ${slots} (free RAM ${formatSize(freeMemory)}, ${running} running)`, fields);
    const byPriority = [...this.runs.values()].sort((a, b) => a.priority - b.priority);
    for (const run of byPriority) {
      if (this.unassigned() >= 0) break;
      this.revoke(run, -this.unassigned());
    }
    for (const run of byPriority.reverse()) {
      if (this.unassigned() <= 0) break;
      if (run.backlog > 0) this.grant(run, Math.min(this.unassigned(), run.backlog));
    }
    this.pool.report();
  }
}
