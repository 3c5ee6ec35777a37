/**
 * The runner: one socket to the RunnerPool, one per run it works on, and a thread pool that
 * runs the tasks. It hands its idle slots to runs as credit (`want`), never taking more tasks
 * than it has slots: a task that arrives beyond the credit goes straight back (`reject`).
 * A freed slot goes to the highest-priority run with a backlog (the run it came from among
 * equals, then the largest backlog). Results wait in a queue until a socket takes them, so a
 * reconnect loses none; on reconnecting the runner says which attempts it still holds.
 *
 * With `--slots auto` the slot count follows free RAM: the device sampler (sampler.ts) resizes
 * the runner, which takes back promised credit when it shrinks (running tasks finish) and hands
 * out the new slots when it grows. Each attempt runs through attempt.ts.
 */
import type { Assignment, CoordinatorMessage, RunnerInfo, TaskResult } from "../core/protocol/messages.js";
import { PROTOCOL_VERSION } from "../core/protocol/messages.js";
import type { RunnerConfig } from "./config.js";
import { formatSize } from "../core/units.js";
import type { DeviceSample } from "./device.js";
import { runAttempt, settleAttempt } from "./attempt.js";
import type { ThreadPool } from "./executor/pool.js";
import { Link } from "./link.js";
import type { Logger } from "./log.js";
import { DeviceSampler } from "./sampler.js";
import type { ModuleCache } from "./modules.js";
import type { CoordinatorHttp } from "./blobs.js";

interface Running {
  task: Assignment;
  /** The slot it runs in, `<runner>-<n>`. */
  slot: string;
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
  /** Priority of its most important ready task, as the pool last said. */
  priority: number;
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
  /** Free memory and CPU load now: for `--slots auto` and the device report. */
  sample: () => Promise<DeviceSample>;
  /** How often to sample the device (default 2 s; at most half the heartbeat period). */
  sampleMs?: number;
}

/** Lifecycle of the runner process. */
export type RunnerState = "connecting" | "ready" | "draining" | "stopped";

const attemptKey = (a: { task: string; attempt: number }) => `${a.task}#${a.attempt}`;

export class Runner {
  private readonly runs = new Map<string, RunState>();
  private running = 0;
  /** Slots offered now (changes with free RAM under `--slots auto`). */
  private capacity: number;
  /** Slot numbers in use by running tasks. */
  private readonly busySlots = new Set<number>();
  private poolLink: Link | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly sampler: DeviceSampler;
  private lastStatus = "";
  private state: RunnerState = "connecting";
  private idle: (() => void) | undefined;
  /** Tasks finished by this process, by run. */
  readonly done = new Map<string, number>();

  constructor(private readonly parts: RunnerParts) {
    this.capacity = parts.info.slots;
    const { config, info } = parts;
    this.sampler = new DeviceSampler(
      {
        sample: parts.sample,
        accepting: () => this.accepting,
        resize: (slots, freeMemory) => this.resize(slots, freeMemory),
        report: (device) => {
          const status = this.status();
          if (!this.poolLink?.send({ ...status, device })) return false;
          this.lastStatus = JSON.stringify(status);
          return true;
        },
      },
      { auto: config.slots === "auto" ? { cores: info.cores, policy: config } : undefined, sampleMs: parts.sampleMs },
    );
  }

  get slots(): number {
    return this.capacity;
  }

  start(): void {
    const { config, info, log } = this.parts;
    const labels = info.labels.length > 0 ? `, labels ${info.labels.join(",")}` : "";
    log.info(
      `runner ${info.name} (${info.id}): ${info.slots} slot(s)${config.slots === "auto" ? " (auto)" : ""}, ${info.cores} core(s), ${info.platform}/${info.arch}${labels}; coordinator ${config.coordinator.origin}`,
      {
        event: "start",
        runner: info.id,
        name: info.name,
        slots: info.slots,
        cores: info.cores,
        platform: info.platform,
        arch: info.arch,
        labels: info.labels.join(","),
      },
    );
    this.poolLink = new Link({
      url: new URL("/api/runners/connect", config.coordinator),
      token: config.token,
      label: "pool",
      log,
      onOpen: () => {
        this.poolLink!.send({
          type: "hello",
          protocol: PROTOCOL_VERSION,
          runner: { ...info, slots: this.capacity },
          want: 0,
          holding: [],
        });
        this.lastStatus = "";
        if (this.state === "connecting") this.setState("ready");
        this.reportStatus();
      },
      onMessage: (m) => {
        if (m.type === "join") this.join(m.run, m.priority);
        else if (m.type === "welcome") this.sampler.start(m.heartbeatMs);
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
    this.sampler.stop();
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
    this.parts.log.info(`runner: ${this.state} -> ${next}`, { event: "state", from: this.state, to: next });
    this.state = next;
  }

  private get accepting(): boolean {
    return this.state === "connecting" || this.state === "ready";
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
    if (!this.accepting) return;
    let run = this.runs.get(id);
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
        if (this.accepting) state.credit += Math.max(0, this.unassigned());
        state.received = 0;
        const holding = [...[...state.running.values()].map((r) => r.task), ...state.results].map((a) => ({
          task: a.task,
          attempt: a.attempt,
        }));
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
    run = {
      id,
      link,
      credit: moved,
      backlog: 1,
      priority,
      running: new Map(),
      results: [],
      flushing: false,
      received: 0,
    };
    this.runs.set(id, run);
    log.info(`${label}: joining (priority ${priority})`, { event: "join", run: id, priority });
    link.start();
  }

  private grant(run: RunState, n: number): void {
    run.credit += n;
    run.link.send({ type: "want", want: run.credit, received: run.received });
  }

  /** Takes back up to `n` of a run's unused credit; returns how much. */
  private revoke(run: RunState, n: number): number {
    const taken = Math.min(n, run.credit);
    if (taken <= 0) return 0;
    run.credit -= taken;
    run.link.send({ type: "want", want: run.credit, received: run.received });
    return taken;
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
    let n = 1;
    while (this.busySlots.has(n)) n++;
    this.busySlots.add(n);
    const entry: Running = { task, slot: `${this.parts.info.id}-${n}`, abort: new AbortController() };
    run.running.set(attemptKey(task), entry);
    const outcome = await runAttempt(task, this.parts, entry.abort.signal);
    run.running.delete(attemptKey(task));
    this.running--;
    this.busySlots.delete(n);
    const ms = Math.round(performance.now() - started);
    const fields = { event: "task", run: run.id, task: task.task, attempt: task.attempt, slot: entry.slot, ms };
    if (entry.dropped) {
      this.parts.log.info(`task ${task.task} attempt ${task.attempt}: ${entry.dropped} after ${ms} ms`, {
        ...fields,
        outcome: entry.dropped,
      });
    } else {
      run.results.push(await settleAttempt(task, outcome, ms, this.parts, fields));
      this.done.set(run.id, (this.done.get(run.id) ?? 0) + 1);
    }
    if (this.running === 0) this.idle?.();
    this.freeSlot(run);
    if (!run.flushing) {
      run.flushing = true;
      setImmediate(() => this.flush(run));
    }
  }

  /**
   * Gives a freed slot (unless the runner shrank meanwhile) to the highest-priority run with a
   * backlog: the run it came from among equals, then the largest backlog. With no backlog
   * anywhere the run it came from keeps it for its next ready task.
   */
  private freeSlot(from: RunState): void {
    if (!this.accepting || this.unassigned() <= 0) return;
    const attached = this.runs.get(from.id) === from;
    const [best] = [...this.runs.values()]
      .filter((run) => run.backlog > 0)
      .sort((a, b) => b.priority - a.priority || Number(b === from) - Number(a === from) || b.backlog - a.backlog);
    // The run it came from gets the slot with its next results frame; any other is told now.
    if (best === from || (!best && attached)) from.credit++;
    else if (best) this.grant(best, 1);
    this.reportStatus();
  }

  /**
   * Offers `slots` slots from now on. Growing hands the new ones to runs with a backlog (or
   * to the pool as free); shrinking takes back unused credit, lowest priority first, and lets
   * running tasks finish.
   */
  private resize(slots: number, freeMemory: number): void {
    if (slots === this.capacity || !this.accepting) return;
    const from = this.capacity;
    this.capacity = slots;
    this.parts.threads.resize(slots);
    this.parts.log.info(`slots ${from} -> ${slots} (free RAM ${formatSize(freeMemory)}, ${this.running} running)`, {
      event: "slots",
      from,
      to: slots,
      freeMemory,
      running: this.running,
    });
    const byPriority = [...this.runs.values()].sort((a, b) => a.priority - b.priority);
    for (const run of byPriority) {
      if (this.unassigned() >= 0) break;
      this.revoke(run, -this.unassigned());
    }
    for (const run of byPriority.reverse()) {
      if (this.unassigned() <= 0) break;
      if (run.backlog > 0) this.grant(run, Math.min(this.unassigned(), run.backlog));
    }
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

  private status() {
    return {
      type: "status" as const,
      free: Math.max(0, this.capacity - this.running),
      slots: this.capacity,
      runs: [...this.runs.keys()],
    };
  }

  /** Tells the pool how many slots are idle and which runs we are in, at most every 100 ms. */
  private reportStatus(): void {
    if (this.statusTimer || !this.accepting) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      const status = this.status();
      const key = JSON.stringify(status);
      if (key === this.lastStatus) return;
      if (this.poolLink?.send(status)) this.lastStatus = key;
    }, 100);
  }
}
