/**
 * The runner: one socket to the RunnerPool (pool-link.ts), one per run it works on (run-link.ts),
 * and a thread pool that runs the tasks (attempt.ts). Which run may send how many tasks is the
 * slot allocator's (credit.ts, a pure module): this class feeds it what happens and performs what
 * it answers. It holds up to its slots plus its prefetch (prefetch.ts) and starts held attempts,
 * oldest first, as slots free; a steal takes back the latest not started. Under `--slots auto`
 * the device sampler (sampler.ts) resizes the runner. The lifecycle (lifecycle.ts)
 * ends `stopped` after stop(), or `failed` when the coordinator refuses the runner for good (a
 * revoked device, a credential it does not know and that could not be renewed, the protocol).
 * Each run gets its own attempt host, whose module and blob fetches name that run.
 */
import { fillEnvelope, fromBase64 } from "../core/abi.js";
import type { Assignment, CoordinatorMessage, RunnerInfo, TaskResult } from "../core/protocol/messages.js";
import { formatSize } from "../core/units.js";
import { attempt, type AttemptHost } from "./attempt.js";
import { CreditAllocator, type CreditEvent } from "./credit.js";
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
import { LogBudget, StderrStream } from "./stderr-stream.js";
import { Prefetch } from "./prefetch.js";

interface Running {
  task: Assignment;
  abort: AbortController;
  /** Set when the attempt is stopped on purpose: its result is not sent. */
  dropped?: "cancelled" | "handed back";
}

/** How an attempt ended, for what was sent ahead of it: its inline output, or why there is none to give. */
type Ended = { output: string } | "uploaded" | "failed";
/** What `ended` keeps of a run: its latest attempts, their outputs within a few MiB. */
const ENDED_KEPT = 256;
const ENDED_CHARS = 8 << 20;

interface RunState {
  id: string;
  link: RunLink;
  running: Map<string, Running>;
  /** Attempts held and not yet started (prefetched), in the order they came. */
  queued: Assignment[];
  /** Of those, the ones sent ahead, by the attempt (`task#attempt`) whose output they wait for. */
  ahead: Map<string, Assignment[]>;
  /**
   * How the latest attempts that ended here ended (`task#attempt`: an inline output, base64, or
   * why it has none to give): a task sent ahead may arrive after the attempt it waits for ended.
   */
  ended: Map<string, Ended>;
  /** The characters of the outputs in `ended`. */
  endedChars: number;
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
  http: Pick<CoordinatorHttp, "blob" | "upload" | "envelope">;
  log: Logger;
  threads: AttemptHost["threads"] & Pick<ThreadPool, "resize" | "close">;
  /** Free memory and CPU load now: for `--slots auto` and the device report. */
  sample: () => Promise<DeviceSample>;
  /** How often to sample the device (default 2 s; at most half the heartbeat period). */
  sampleMs?: number;
  /** The longest a result waits for others to share its frame (default 20 ms; tests lengthen it). */
  resultWaitMs?: number;
}

const attemptKey = (a: AttemptRef) => `${a.task}#${a.attempt}`;

/** A task sent ahead gets the output (base64) of the attempt it waited for, and may start. */
function fill(task: Assignment, output: string): void {
  task.stdin = fillEnvelope(task.stdin, task.after!.at, fromBase64(output));
  delete task.after;
}

export class Runner {
  private readonly runs = new Map<string, RunState>();
  private readonly credit: CreditAllocator;
  /** Slot numbers in use by running tasks. */
  private readonly busySlots = new Set<number>();
  private readonly pool: PoolLink;
  private readonly sampler: DeviceSampler;
  private readonly life: Lifecycle;
  /** Resolves once the runner has stopped or failed and closed its sockets and threads. */
  readonly finished: Promise<RunnerEnd>;
  private idle: (() => void) | undefined;
  /** The most slots the coordinator counts for this runner (its welcome says). */
  private maxSlots = Infinity;
  /** The slots the runner would offer without that cap (`--slots`, or the sampler's last count). */
  private wanted: number;
  /** Tasks finished by this process, by run. */
  private readonly done = new Map<string, number>();
  /** The slots it runs tasks in (the allocator's capacity adds the prefetch). */
  private slots: number;
  /** Attempts running in the thread pool now. */
  private executing = 0;
  /** Held attempts waiting for a slot, of every run, in the order they came. */
  private readonly waiting: { run: RunState; task: Assignment }[] = [];
  private readonly prefetch = new Prefetch();

  constructor(private readonly parts: RunnerParts) {
    const { config, info, identity, log } = parts;
    this.credit = new CreditAllocator(info.slots);
    this.wanted = info.slots;
    this.slots = info.slots;
    this.life = new Lifecycle(log);
    this.finished = this.life.finished;
    this.pool = new PoolLink(
      { coordinator: config.coordinator, identity, info, log },
      {
        status: () => ({
          free: this.life.accepting ? Math.max(0, this.slots - this.executing) : 0,
          slots: this.slots,
          runs: this.credit.runIds(),
        }),
        accepting: () => this.life.accepting,
        opened: () => {
          if (this.state === "connecting") this.life.set("ready");
        },
        join: (run, priority) => this.allot({ type: "join", run, priority }),
        welcome: (heartbeatMs, maxSlots) => {
          // More slots than the coordinator counts would be credit no run ever uses.
          this.maxSlots = maxSlots ?? Infinity;
          this.resize(this.wanted, this.parts.info.freeMemory);
          this.sampler.start(heartbeatMs);
        },
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
    this.allot({ type: "drain" });
    // What waits for a slot goes back at once: it has not started.
    for (const run of this.runs.values()) this.handBack(run, run.queued.length);
    const { running } = this.credit;
    if (running > 0) {
      this.parts.log.info(`draining: waiting up to ${graceMs} ms for ${running} running task(s)`);
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

  /** Tells the allocator what happened and does what it answers. */
  private allot(event: CreditEvent, tasks: Assignment[] = []): void {
    for (const effect of this.credit.apply(event)) {
      switch (effect.type) {
        case "attach":
          this.attach(effect.run, effect.priority);
          break;
        case "want":
          this.runs.get(effect.run)?.link.want();
          break;
        case "take": {
          const run = this.runs.get(effect.run);
          const back = tasks.slice(effect.count);
          let dropped = 0;
          for (const task of tasks.slice(0, effect.count)) {
            const kept = run ? this.hold(run, task) : "kept";
            if (kept === "back") back.push(task);
            if (kept !== "kept") dropped++;
          }
          run?.link.reject(back);
          if (run && dropped > 0) this.allot({ type: "returned", run: run.id, count: dropped });
          this.startWaiting();
          break;
        }
        case "report":
          this.pool.report();
          break;
      }
    }
  }

  /** Opens a socket to run `id`, whose attempts fetch with its name. */
  private attach(id: string, priority: number): void {
    const { config, info, identity, log, modules, http, threads } = this.parts;
    /** What the run's log frames may take of its socket. */
    const budget = new LogBudget();
    const state: RunState = {
      id,
      running: new Map(),
      queued: [],
      ahead: new Map(),
      ended: new Map(),
      endedChars: 0,
      host: {
        modules: { get: (sha256, memoryBytes) => modules.get(sha256, memoryBytes, id) },
        http: {
          blob: (sha256) => http.blob(sha256, id),
          upload: (bytes) => http.upload(bytes, id),
          envelope: (task) => http.envelope(task, id),
        },
        threads,
        log,
        stderr: (task) => new StderrStream(task, (frame) => state.link.log(frame), budget),
      },
      link: new RunLink(
        { coordinator: config.coordinator, identity, run: id, info, log, resultWaitMs: this.parts.resultWaitMs },
        {
          opened: () => this.allot({ type: "opened", run: id }),
          credit: () => this.credit.creditOf(id),
          running: () => [...[...state.running.values()].map((r) => r.task), ...state.queued],
          message: (m) => this.onRunMessage(state, m),
          ended: () => {
            for (const r of state.running.values()) this.drop(r, "cancelled");
            const queued = this.unqueue(state, state.queued.length).taken;
            if (this.runs.get(id) === state) {
              this.runs.delete(id);
              this.allot({ type: "ended", run: id });
            }
            if (queued.length > 0) this.allot({ type: "returned", run: id, count: queued.length });
          },
          refused: (reason) => this.fail(reason),
        },
      ),
    };
    this.runs.set(id, state);
    log.info(`run ${id.slice(0, 8)}: joining (priority ${priority})`, { event: "join", run: id, priority });
    state.link.start();
  }

  private drop(r: Running, why: "cancelled" | "handed back"): void {
    r.dropped = why;
    r.abort.abort();
  }

  /** Tasks, cancels and the run's end; the run socket has logged the coordinator's errors. */
  private onRunMessage(run: RunState, m: CoordinatorMessage): void {
    switch (m.type) {
      case "tasks":
        this.allot({ type: "tasks", run: run.id, count: m.tasks.length, backlog: m.backlog }, m.tasks);
        break;
      case "cancel": {
        const stop = new Set(m.tasks.map(attemptKey));
        for (const ref of m.tasks) {
          const r = run.running.get(attemptKey(ref));
          if (r) this.drop(r, "cancelled");
        }
        const before = run.queued.length;
        const cancelled = run.queued.filter((t) => stop.has(attemptKey(t)));
        run.queued = run.queued.filter((t) => !stop.has(attemptKey(t)));
        this.dropAhead(run, cancelled);
        this.forgetWaiting(run);
        if (run.queued.length < before)
          this.allot({ type: "returned", run: run.id, count: before - run.queued.length });
        break;
      }
      case "steal":
        // Answered always: with what it hands back, or else a want that says what it started.
        if (!this.handBack(run, m.count, true)) run.link.want(true);
        break;
      case "finished":
        for (const r of run.running.values()) this.drop(r, "cancelled");
        {
          const queued = this.unqueue(run, run.queued.length).taken;
          if (queued.length > 0) this.allot({ type: "returned", run: run.id, count: queued.length });
        }
        this.allot({ type: "finished", run: run.id });
        this.parts.log.info(`run ${run.id.slice(0, 8)}: ${m.status} (${this.done.get(run.id) ?? 0} task(s) ran here)`);
        break;
    }
  }

  /**
   * Holds a task the allocator took: it starts when a slot is free, or, sent ahead, once the
   * attempt it waits for has succeeded here. Answers `kept`, or what became of one sent ahead of
   * an attempt that already ended: `dropped` (that attempt failed, the run takes it back on its
   * own), `back` to hand back (no output here to give it: too large to keep, or unknown).
   */
  private hold(run: RunState, task: Assignment): "kept" | "dropped" | "back" {
    const after = task.after && attemptKey(task.after);
    const ended = after === undefined ? undefined : run.ended.get(after);
    if (after !== undefined && ended === undefined) {
      const here = run.running.has(after) || run.queued.some((t) => attemptKey(t) === after);
      if (!here) return "back";
      run.queued.push(task);
      run.ahead.set(after, [...(run.ahead.get(after) ?? []), task]);
      return "kept";
    }
    if (ended !== undefined && typeof ended === "string") return ended === "failed" ? "dropped" : "back";
    if (ended !== undefined) fill(task, ended.output);
    run.queued.push(task);
    this.waiting.push({ run, task });
    return "kept";
  }

  /**
   * The attempt `done` ended here with `result` (none: stopped). What was sent ahead of it gets
   * its output and may start; if it failed or was stopped, that is dropped unrun (the run takes
   * it back on its own); if its output went to blob storage, that is handed back.
   */
  private release(run: RunState, done: Assignment, result: TaskResult | undefined): void {
    const key = attemptKey(done);
    const ended: Ended = !result?.ok ? "failed" : result.output === undefined ? "uploaded" : { output: result.output };
    run.ended.set(key, ended);
    run.endedChars += typeof ended === "string" ? 0 : ended.output.length;
    for (const [old, gone] of run.ended) {
      if (run.ended.size <= ENDED_KEPT && run.endedChars <= ENDED_CHARS) break;
      run.ended.delete(old);
      run.endedChars -= typeof gone === "string" ? 0 : gone.output.length;
    }
    const next = this.takeAhead(run, key);
    if (next.length === 0) return;
    if (typeof ended !== "string") {
      for (const task of next) {
        fill(task, ended.output);
        this.waiting.push({ run, task });
      }
      return;
    }
    run.queued = run.queued.filter((t) => !next.includes(t));
    const dropped = next.length + this.dropAhead(run, next);
    if (ended === "uploaded") run.link.reject(next);
    this.allot({ type: "returned", run: run.id, count: dropped });
  }

  /** What is held here sent ahead of attempt `key`, no longer kept as waiting for it. */
  private takeAhead(run: RunState, key: string): Assignment[] {
    const next = (run.ahead.get(key) ?? []).filter((t) => run.queued.includes(t));
    run.ahead.delete(key);
    return next;
  }

  /** Drops, unrun, what was sent ahead of any of `gone` (and ahead of those); answers how many. */
  private dropAhead(run: RunState, gone: readonly Assignment[]): number {
    let count = 0;
    const pending = [...gone];
    while (pending.length > 0) {
      const next = this.takeAhead(run, attemptKey(pending.pop()!));
      run.queued = run.queued.filter((t) => !next.includes(t));
      count += next.length;
      pending.push(...next);
    }
    return count;
  }

  /** Starts held attempts while slots are free, in the order they came. */
  private startWaiting(): void {
    while (this.executing < this.slots && this.waiting.length > 0) {
      const { run, task } = this.waiting.shift()!;
      const at = run.queued.indexOf(task);
      if (at < 0) continue;
      run.queued.splice(at, 1);
      void this.execute(run, task);
    }
  }

  /**
   * Removes up to `count` of the run's held attempts not started, the latest first (`startable`:
   * only those that may start, not those sent ahead), and what was sent ahead of them; answers
   * them, and how many went in all.
   */
  private unqueue(run: RunState, count: number, startable = false): { taken: Assignment[]; dropped: number } {
    const taken: Assignment[] = [];
    for (let i = run.queued.length - 1; i >= 0 && taken.length < count; i--) {
      const task = run.queued[i]!;
      if (startable && task.after) continue;
      run.queued.splice(i, 1);
      taken.unshift(task);
    }
    const dropped = taken.length + this.dropAhead(run, taken);
    this.forgetWaiting(run);
    return { taken, dropped };
  }

  /** Drops from the waiting line what is no longer among the run's queued attempts. */
  private forgetWaiting(run: RunState): void {
    const keep = new Set(run.queued);
    for (let i = this.waiting.length - 1; i >= 0; i--)
      if (this.waiting[i]!.run === run && !keep.has(this.waiting[i]!.task)) this.waiting.splice(i, 1);
  }

  /**
   * Hands back up to `count` held attempts of the run that have not started (a drain; a steal,
   * `startable`: only those that may start); false when none.
   */
  private handBack(run: RunState, count: number, startable = false): boolean {
    const { taken, dropped } = this.unqueue(run, count, startable);
    if (taken.length === 0) return false;
    run.link.reject(taken);
    this.parts.log.debug(`run ${run.id.slice(0, 8)}: handed back ${taken.length} held task(s) not started`);
    this.allot({ type: "returned", run: run.id, count: dropped });
    return true;
  }

  private async execute(run: RunState, task: Assignment): Promise<void> {
    let n = 1;
    while (this.busySlots.has(n)) n++;
    this.busySlots.add(n);
    this.executing++;
    run.link.started(task);
    const began = performance.now();
    const entry: Running = { task, abort: new AbortController() };
    run.running.set(attemptKey(task), entry);
    const result = await attempt(task, run.host, {
      run: run.id,
      slot: `${this.parts.identity.runnerId()}-${n}`,
      signal: entry.abort.signal,
      ran: () => {
        run.running.delete(attemptKey(task));
        this.busySlots.delete(n);
        return entry.dropped;
      },
    });
    this.executing--;
    this.prefetch.note(performance.now() - began);
    this.release(run, task, result);
    if (result) {
      // Results wait for the tasks last asked for, and while the run still has enough held here
      // to keep the slots busy: one frame then carries many (and the credit they free), not one
      // each. With nothing ready at the run for this runner, the credit brings nothing: they wait
      // only while more of this run waits to start here (a chain's links sent ahead, one frame
      // for several), else go at once (its dependents may wait on them, whatever else runs).
      const low = run.queued.length <= Math.floor((this.depth() * 3) / 8);
      const more = this.waiting.some((w) => w.run === run);
      run.link.queue(result, !run.link.refilling && (run.link.backlog > 0 ? low : !more));
      this.done.set(run.id, (this.done.get(run.id) ?? 0) + 1);
    }
    this.allot({ type: "freed", run: run.id, reported: result !== undefined });
    this.refit();
    this.startWaiting();
    if (this.credit.running === 0) this.idle?.();
  }

  /** The prefetch for the slots now. */
  private depth(): number {
    return this.prefetch.depth(this.slots);
  }

  /**
   * Holds slots + prefetch from now on, if that changed (a new mean, a resize). For a new mean
   * the prefetch shrinks only by a quarter or more at a time: credit taken back while tasks are
   * on their way sends them back, and a mean that wobbles should not. A resize refits at once.
   */
  private refit(resized = false): void {
    const depth = this.depth();
    const current = this.credit.slots - this.slots;
    if (!resized && depth < current && depth > (current * 3) / 4) return;
    const capacity = this.slots + depth;
    if (capacity !== this.credit.slots && this.life.accepting) this.allot({ type: "resize", slots: capacity });
  }

  /** Offers `wanted` slots (`--slots auto`), at most the coordinator's cap, from now on: running tasks finish whatever it shrinks to. */
  private resize(wanted: number, freeMemory: number): void {
    this.wanted = wanted;
    const slots = Math.min(wanted, this.maxSlots);
    const from = this.slots;
    if (slots === from || !this.life.accepting) return;
    this.parts.threads.resize(slots);
    this.slots = slots;
    const running = this.executing;
    const fields = { event: "slots", from, to: slots, freeMemory, running };
    this.parts.log.info(`slots ${from} -> ${slots} (free RAM ${formatSize(freeMemory)}, ${running} running)`, fields);
    this.refit(true);
    this.startWaiting();
  }
}
