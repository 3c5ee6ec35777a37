/**
 * A whole Distro in one process, for the liveness property (test/unit/liveness.test.ts): the
 * real run state machine (worker/run/machine.ts over the in-memory store), the real runner slot
 * allocator (runner/credit.ts) and the pool's real matchmaking (worker/durable/matchmaking.ts),
 * joined by in-order channels that a step delivers one frame of at a time. What the shells do
 * around them is modelled here, as they do it: a runner's sockets (hello with its credit and the
 * attempts it holds, results that carry the credit and the starts, the status it reports when it
 * changed), its queue (it holds up to its prefetch beyond its slots and starts the oldest as a
 * slot frees; a steal hands back the latest not started, or answers with a want), the
 * run host (frames to its runner's sockets, the demand told to the pool when it changed, the
 * `finished` frame and close), the pool (its rows, demands and joins), and the faults: a socket
 * that drops, a coordinator restart (every socket and frame in flight gone, the runs forget their
 * runners, the pool its rows, the demands kept), a lease that expires, a runner that resizes.
 */
import type { DemandClass } from "../../core/match";
import type { Assignment, RunnerInfo, TaskResult } from "../../core/protocol/messages";
import { CreditAllocator, type CreditEffect, type CreditEvent } from "../../runner/credit";
import { joinsOnDemand, matchFor, type PoolDemand, type PoolRunner } from "../../worker/durable/matchmaking";
import { IllegalTransition, transition, type Effect, type RunEvent } from "../../worker/run/machine";
import { MemoryStore } from "../unit/memory-store";
import { ok, plan } from "./run-fixtures";

interface RunShape {
  /** `fan`: independent tasks; `chain`: each depends on the one before. */
  kind: "fan" | "chain";
  tasks: number;
  priority: number;
  /** Its tasks require label `x`. */
  labelled: boolean;
}

export interface FleetShape {
  /** Each runner's slots, its prefetch (held beyond its slots, at most 8 × slots), and whether it has label `x`. */
  runners: { slots: number; prefetch?: number; x: boolean }[];
  runs: RunShape[];
}

type Ref = { task: string; attempt: number };

type ToRun =
  | { type: "hello"; want: number; holding: Ref[] }
  | { type: "want"; want: number; received: number; started: Ref[] }
  | { type: "results"; results: TaskResult[]; want: number; received: number; started: Ref[] }
  | { type: "started"; tasks: Ref[] }
  | { type: "reject"; tasks: Ref[] };

type ToRunner =
  | { type: "tasks"; tasks: Assignment[]; backlog: number }
  | { type: "cancel"; tasks: { task: string; attempt: number }[] }
  | { type: "steal"; count: number }
  | { type: "finished" }
  | { type: "close" };

type ToPool = { type: "hello"; slots: number } | { type: "status"; free: number; slots: number; runs: string[] };

interface RunLinkModel {
  run: string;
  open: boolean;
  toRun: ToRun[];
  toRunner: ToRunner[];
  received: number;
  /** Results not yet sent (the socket was down). */
  queued: TaskResult[];
  /** Attempts started and not yet said to have. */
  marks: Ref[];
}

interface AttemptModel {
  run: string;
  task: string;
  attempt: number;
  dropped: boolean;
  /** Running in a slot (else held, waiting for one). */
  started: boolean;
  /** Sent ahead: it may start only once this attempt succeeded here (then it is cleared). */
  after?: Ref;
}

interface RunnerModel {
  id: string;
  info: RunnerInfo;
  alloc: CreditAllocator;
  poolOpen: boolean;
  toPool: ToPool[];
  fromPool: { run: string; priority: number }[];
  links: Map<string, RunLinkModel>;
  attempts: AttemptModel[];
  reportDue: boolean;
  lastReport: string;
  /** The most slots it has offered: running tasks finish when it shrinks. */
  maxSlots: number;
  /** Slots it runs attempts in now; the allocator's capacity adds the prefetch. */
  slots: number;
  prefetch: number;
  /** How attempts that ended here ended (`run task#attempt`), for what is sent ahead of them after. */
  ended: Map<string, "ok" | "failed">;
}

interface RunModel {
  id: string;
  shape: RunShape;
  store: MemoryStore;
  started: boolean;
  /** The demand the pool confirmed (JSON). */
  told: string;
  /** The demand call on its way to the pool, then the newest asked meanwhile (one at a time). */
  telling: DemandClass[][];
  /** A demand call was lost: the run's alarm is armed to tell it again. */
  retryDue: boolean;
}

/** One step the fleet can take now, with a line for the trace. */
interface Action {
  name: string;
  external: boolean;
  run(): void;
}

export class Fleet {
  readonly runners: RunnerModel[];
  readonly runs: RunModel[];
  private readonly pool = { rows: new Map<string, PoolRunner>(), demands: [] as PoolDemand[] };
  private now = 0;
  private seed = 1;
  readonly trace: string[] = [];
  /** What each attempt sent ahead ran with: the attempt of its dependency whose output it took. */
  private readonly inputs = new Map<string, Ref>();

  constructor(shape: FleetShape) {
    this.runners = shape.runners.map(({ slots, prefetch = 0, x }, i) => {
      const id = `r${i}`;
      const info: RunnerInfo = {
        id,
        name: id,
        platform: "linux",
        arch: "x64",
        cores: slots,
        memory: 1 << 30,
        freeMemory: 1 << 30,
        slots,
        labels: x ? ["x"] : [],
        version: "0",
      };
      return {
        id,
        info,
        alloc: new CreditAllocator(slots + prefetch),
        poolOpen: false,
        toPool: [],
        fromPool: [],
        links: new Map(),
        attempts: [],
        reportDue: false,
        lastReport: "",
        maxSlots: slots,
        slots,
        prefetch,
        ended: new Map(),
      };
    });
    this.runs = shape.runs.map((s, i) => ({
      id: `run${i}`,
      shape: s,
      store: new MemoryStore(),
      started: false,
      told: "[]",
      telling: [],
      retryDue: false,
    }));
  }

  /** Steps that can happen now: frames to deliver and sockets to open (internal), and faults and finishes (external). */
  actions(): Action[] {
    const out: Action[] = [];
    const internal = (name: string, run: () => void) => out.push({ name, external: false, run });
    const external = (name: string, run: () => void) => out.push({ name, external: true, run });
    for (const r of this.runners) {
      if (!r.poolOpen) internal(`${r.id}: pool socket opens`, () => this.openPool(r));
      if (r.poolOpen && r.reportDue) internal(`${r.id}: reports its status`, () => this.report(r));
      if (r.toPool.length > 0) internal(`pool: gets ${r.id}'s ${r.toPool[0]!.type}`, () => this.poolFrame(r));
      if (r.fromPool.length > 0) {
        const join = r.fromPool[0]!;
        internal(`${r.id}: gets join ${join.run} (priority ${join.priority})`, () => {
          r.fromPool.shift();
          this.allot(r, { type: "join", ...join });
        });
      }
      for (const link of r.links.values()) {
        if (!link.open) internal(`${r.id}: socket to ${link.run} opens`, () => this.openLink(r, link));
        if (link.open && link.marks.length > 0)
          internal(`${r.id}: tells ${link.run} what started`, () => {
            link.toRun.push({ type: "started", tasks: link.marks.splice(0) });
          });
        if (link.toRun.length > 0)
          internal(`${link.run}: gets ${r.id}'s ${describe(link.toRun[0]!)}`, () => this.runFrame(r, link));
        if (link.toRunner.length > 0)
          internal(`${r.id}: gets ${link.run}'s ${describe(link.toRunner[0]!)}`, () => this.runnerFrame(r, link));
      }
      for (const a of r.attempts) {
        if (!a.started) continue;
        if (a.dropped) internal(`${r.id}: stopped attempt ${a.task}#${a.attempt} ends`, () => this.end(r, a));
        else external(`${r.id}: attempt ${a.task}#${a.attempt} of ${a.run} succeeds`, () => this.end(r, a));
      }
      external(`${r.id}: its sockets drop`, () => this.blip(r));
      external(`${r.id}: resizes to 1 slot`, () => this.resize(r, 1));
      external(`${r.id}: resizes to ${r.maxSlots} slot(s)`, () => this.resize(r, r.maxSlots));
    }
    for (const run of this.runs) {
      if (run.telling.length > 0) internal(`pool: gets ${run.id}'s demand`, () => this.poolDemand(run));
      if (run.retryDue) internal(`${run.id}: alarm tells the demand again`, () => this.apply(run, { type: "tick" }));
      if (!run.started) external(`${run.id}: submitted`, () => this.start(run));
      else if (run.store.status() !== "succeeded" && run.store.status() !== "cancelled") {
        external(`${run.id}: cancelled`, () => this.control(run, "cancel"));
        external(`${run.id}: paused`, () => this.control(run, "pause"));
        external(`${run.id}: resumed`, () => this.control(run, "resume"));
      }
    }
    external("the coordinator restarts", () => this.restart());
    external("an hour passes (leases expire)", () => {
      this.now += 3_600_000;
      for (const run of this.runs) if (run.started) this.apply(run, { type: "tick" });
    });
    return out;
  }

  /** Takes the action that `die` picks among those possible (internal ones only when `internalOnly`). */
  step(die: number, internalOnly = false): boolean {
    const possible = this.actions().filter((a) => !internalOnly || !a.external);
    if (possible.length === 0) return false;
    const action = possible[die % possible.length]!;
    this.trace.push(action.name);
    action.run();
    this.checkSafety();
    return true;
  }

  /**
   * Delivers every frame in flight and opens every socket, in an order drawn from a fixed seed
   * (so every channel gets its turn); false if that does not end within `limit` steps.
   */
  settle(limit = 20_000): boolean {
    for (let i = 0; i < limit; i++) {
      this.seed = (this.seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      if (!this.step(this.seed >> 8, true)) return true;
    }
    return false;
  }

  /** Runs with ready work beside a runner with an idle slot, once nothing is in flight: a stall. */
  stalls(): string[] {
    const out: string[] = [];
    for (const run of this.runs) {
      const status = run.store.status();
      if (!run.started || (status !== "queued" && status !== "running")) continue;
      const ready = run.store.counts().ready;
      for (const r of this.runners)
        if (ready > 0 && r.alloc.free > 0 && (!run.shape.labelled || r.info.labels.includes("x")))
          out.push(
            `${run.id} has ${ready} ready task(s) and ${r.id} has ${r.alloc.free} idle slot(s) of ${r.alloc.slots}`,
          );
      // Work stealing: no runner the run counts as asking for work, holding none of it waiting
      // to start, beside another that holds two or more of it waiting beyond its slots (what
      // the run can know waits: a runner's slots may be busy with another run's tasks).
      const waitingAt = (r: RunnerModel) => {
        const held = r.attempts.filter((a) => a.run === run.id);
        const startable = held.filter((a) => !a.started && a.after === undefined).length;
        return Math.min(startable, Math.max(0, held.length - r.maxSlots));
      };
      for (const thief of this.runners) {
        if ((run.store.runner(thief.id)?.credit ?? 0) === 0 || waitingAt(thief) > 0) continue;
        if (run.shape.labelled && !thief.info.labels.includes("x")) continue;
        // One that holds nothing of the run takes even a last one.
        const least = thief.attempts.some((a) => a.run === run.id) ? 2 : 1;
        for (const victim of this.runners)
          if (victim !== thief && waitingAt(victim) >= least)
            out.push(
              `${thief.id} asks ${run.id} for work while ${victim.id} holds ${waitingAt(victim)} of it not started`,
            );
      }
    }
    return out;
  }

  /** Attempts running (started, not stopped) on some runner. */
  running(): { runner: RunnerModel; attempt: AttemptModel }[] {
    return this.runners.flatMap((runner) =>
      runner.attempts.filter((a) => a.started && !a.dropped).map((attempt) => ({ runner, attempt })),
    );
  }

  /** Finishes a running attempt (it succeeds). */
  finish({ runner, attempt }: { runner: RunnerModel; attempt: AttemptModel }): void {
    this.trace.push(`${runner.id}: attempt ${attempt.task}#${attempt.attempt} of ${attempt.run} succeeds`);
    this.end(runner, attempt);
    this.checkSafety();
  }

  /** Submits the runs not yet submitted and resumes the paused ones; false when there were none. */
  wake(): boolean {
    let woke = false;
    for (const run of this.runs) {
      if (!run.started) {
        this.trace.push(`${run.id}: submitted`);
        this.start(run);
        woke = true;
      } else if (run.store.status() === "paused") {
        this.trace.push(`${run.id}: resumed`);
        this.control(run, "resume");
        woke = true;
      }
    }
    return woke;
  }

  /**
   * The invariants: a runner's credit never negative, never more promised than it may hold,
   * never more running than its slots, never more held than slots + Q (its allocator's count
   * of them right), never more held than the run allows (9 × slots); and no task accepted twice.
   */
  private checkSafety(): void {
    for (const r of this.runners) {
      const { alloc } = r;
      const runs = alloc.runIds();
      const credit = runs.reduce((sum, id) => sum + alloc.creditOf(id), 0);
      for (const id of runs)
        if (alloc.creditOf(id) < 0) throw new Error(`${r.id} has credit ${alloc.creditOf(id)} for ${id}`);
      if (credit > 0 && alloc.running + credit > alloc.slots)
        throw new Error(`${r.id} promised ${credit} with ${alloc.running} held, to hold ${alloc.slots}`);
      if (alloc.running !== r.attempts.length)
        throw new Error(`${r.id} counts ${alloc.running} held, holds ${r.attempts.length}`);
      const running = r.attempts.filter((a) => a.started).length;
      if (running > r.maxSlots) throw new Error(`${r.id} runs ${running} on at most ${r.maxSlots} slot(s)`);
      if (r.attempts.length > r.maxSlots + r.prefetch)
        throw new Error(`${r.id} holds ${r.attempts.length}, more than ${r.maxSlots} slot(s) + ${r.prefetch}`);
      for (const run of this.runs)
        if (run.store.leasedTo(r.id).length > 9 * r.maxSlots)
          throw new Error(`${run.id} leases ${run.store.leasedTo(r.id).length} to ${r.id} of ${r.maxSlots} slot(s)`);
    }
    for (const run of this.runs) {
      const accepted = new Map<string, number>();
      for (const a of run.store.attempts)
        if (a.outcome === "succeeded") {
          if (accepted.has(a.task)) throw new Error(`${run.id} accepted ${a.task} twice`);
          accepted.set(a.task, a.attempt);
        }
      // A chain's link is accepted only after the one before it, and one sent ahead only with the
      // output of the attempt of it that was accepted.
      for (const [task, attempt] of accepted) {
        const i = Number(task.slice(1));
        if (run.shape.kind !== "chain" || i === 0) continue;
        const before = accepted.get(`t${i - 1}`);
        if (before === undefined) throw new Error(`${run.id} accepted ${task} before t${i - 1}`);
        const input = this.inputs.get(`${run.id} ${task}#${attempt}`);
        if (input && input.attempt !== before)
          throw new Error(`${run.id} accepted ${task}#${attempt}, run on t${i - 1}#${input.attempt}, not #${before}`);
      }
    }
  }

  // --- the runner's shell ---

  private allot(r: RunnerModel, event: CreditEvent, tasks: Assignment[] = []): void {
    for (const effect of r.alloc.apply(event)) this.performRunner(r, effect, tasks);
  }

  /** The runner runs `slots` at once from now on and holds as many more as its prefetch. */
  private resize(r: RunnerModel, slots: number): void {
    r.slots = slots;
    r.maxSlots = Math.max(r.maxSlots, slots);
    this.allot(r, { type: "resize", slots: slots + r.prefetch });
    this.startWaiting(r);
  }

  /**
   * Drops, unrun, the held attempts sent ahead of any of `gone` (and those sent ahead of them):
   * the run takes them back on its own. Answers how many.
   */
  private dropAfter(r: RunnerModel, gone: readonly AttemptModel[]): number {
    let count = 0;
    const pending = [...gone];
    while (pending.length > 0) {
      const g = pending.pop()!;
      for (let i = r.attempts.length - 1; i >= 0; i--) {
        const x = r.attempts[i]!;
        if (x.run !== g.run || x.after?.task !== g.task || x.after.attempt !== g.attempt) continue;
        r.attempts.splice(i, 1);
        pending.push(x);
        count++;
      }
    }
    return count;
  }

  /** Starts held attempts while slots are free, the oldest first: each start is marked for its run. */
  private startWaiting(r: RunnerModel): void {
    for (const a of r.attempts) {
      if (r.attempts.filter((x) => x.started).length >= r.slots) return;
      if (a.started || a.after) continue;
      a.started = true;
      const link = r.links.get(a.run);
      if (link?.open) link.marks.push({ task: a.task, attempt: a.attempt });
    }
  }

  /** Removes held attempts not started: of `run` that `pick` names (all when absent), the latest first, at most `count`. */
  private unqueue(r: RunnerModel, run: string, count = Infinity, pick: (a: AttemptModel) => boolean = () => true) {
    const taken: AttemptModel[] = [];
    for (let i = r.attempts.length - 1; i >= 0 && taken.length < count; i--) {
      const a = r.attempts[i]!;
      if (a.run !== run || a.started || !pick(a)) continue;
      r.attempts.splice(i, 1);
      taken.unshift(a);
    }
    return taken;
  }

  private performRunner(r: RunnerModel, effect: CreditEffect, tasks: Assignment[]): void {
    switch (effect.type) {
      case "attach":
        r.links.set(effect.run, {
          run: effect.run,
          open: false,
          toRun: [],
          toRunner: [],
          received: 0,
          queued: [],
          marks: [],
        });
        break;
      case "want": {
        const link = r.links.get(effect.run);
        if (link?.open) this.sendWant(r, link);
        break;
      }
      case "take": {
        const link = r.links.get(effect.run)!;
        const back = tasks.slice(effect.count).map(({ task, attempt }) => ({ task, attempt }));
        let returned = 0;
        for (const t of tasks.slice(0, effect.count)) {
          let after = t.after && { task: t.after.task, attempt: t.after.attempt };
          // Sent ahead of an attempt that ended here already: it takes its output, is dropped (that
          // one failed), or goes back (it is not known here), as the runner does.
          const key = after && `${link.run} ${after.task}#${after.attempt}`;
          const here = (a: AttemptModel) => a.run === link.run && a.task === after?.task && a.attempt === after.attempt;
          if (key && !r.attempts.some(here)) {
            const ended = r.ended.get(key);
            if (ended === "ok") {
              this.inputs.set(`${link.run} ${t.task}#${t.attempt}`, after!);
              after = undefined;
            } else {
              if (ended === undefined) back.push({ task: t.task, attempt: t.attempt });
              returned++;
              continue;
            }
          }
          r.attempts.push({ run: link.run, task: t.task, attempt: t.attempt, dropped: false, started: false, after });
        }
        if (returned > 0) this.allot(r, { type: "returned", run: link.run, count: returned });
        if (back.length > 0 && link.open) link.toRun.push({ type: "reject", tasks: back });
        this.startWaiting(r);
        break;
      }
      case "report":
        r.reportDue = true;
        break;
    }
  }

  private openPool(r: RunnerModel): void {
    r.poolOpen = true;
    r.toPool.push({ type: "hello", slots: r.alloc.slots });
    r.lastReport = "";
    r.reportDue = true;
  }

  private report(r: RunnerModel): void {
    r.reportDue = false;
    const status = { type: "status" as const, free: r.alloc.free, slots: r.alloc.slots, runs: r.alloc.runIds() };
    const key = JSON.stringify(status);
    if (key === r.lastReport) return;
    r.lastReport = key;
    r.toPool.push(status);
  }

  private sendWant(r: RunnerModel, link: RunLinkModel): void {
    const started = link.marks.splice(0);
    link.toRun.push({ type: "want", want: r.alloc.creditOf(link.run), received: link.received, started });
  }

  private openLink(r: RunnerModel, link: RunLinkModel): void {
    this.allot(r, { type: "opened", run: link.run });
    link.open = true;
    link.received = 0;
    link.marks = [];
    const holding = [...r.attempts.filter((a) => a.run === link.run && !a.dropped), ...link.queued].map(
      ({ task, attempt }) => ({ task, attempt }),
    );
    link.toRun.push({ type: "hello", want: r.alloc.creditOf(link.run), holding });
    if (link.queued.length > 0) {
      const results = link.queued.splice(0);
      link.toRun.push({
        type: "results",
        results,
        want: r.alloc.creditOf(link.run),
        received: link.received,
        started: [],
      });
    }
  }

  private runnerFrame(r: RunnerModel, link: RunLinkModel): void {
    const m = link.toRunner.shift()!;
    switch (m.type) {
      case "tasks":
        link.received += m.tasks.length;
        this.allot(r, { type: "tasks", run: link.run, count: m.tasks.length, backlog: m.backlog }, m.tasks);
        break;
      case "cancel": {
        const named = (a: AttemptModel) => m.tasks.some((t) => t.task === a.task && t.attempt === a.attempt);
        for (const a of r.attempts) if (a.run === link.run && named(a)) a.dropped = true;
        const back = this.unqueue(r, link.run, Infinity, named);
        const count = back.length + this.dropAfter(r, back);
        if (count > 0) this.allot(r, { type: "returned", run: link.run, count });
        break;
      }
      case "steal": {
        // What waits for another attempt here cannot go elsewhere: only what may start is handed back.
        const back = this.unqueue(r, link.run, m.count, (a) => a.after === undefined);
        if (back.length > 0) {
          link.toRun.push({ type: "reject", tasks: back.map(({ task, attempt }) => ({ task, attempt })) });
          this.allot(r, { type: "returned", run: link.run, count: back.length + this.dropAfter(r, back) });
        } else this.sendWant(r, link);
        break;
      }
      case "finished": {
        for (const a of r.attempts) if (a.run === link.run) a.dropped = true;
        const back = this.unqueue(r, link.run);
        if (back.length > 0) this.allot(r, { type: "returned", run: link.run, count: back.length });
        this.allot(r, { type: "finished", run: link.run });
        break;
      }
      case "close": {
        for (const a of r.attempts) if (a.run === link.run) a.dropped = true;
        const back = this.unqueue(r, link.run);
        r.links.delete(link.run);
        this.allot(r, { type: "ended", run: link.run });
        if (back.length > 0) this.allot(r, { type: "returned", run: link.run, count: back.length });
        break;
      }
    }
  }

  /** An attempt ends: a success is reported (now, or at the next hello), a stopped one is not. */
  private end(r: RunnerModel, a: AttemptModel): void {
    r.attempts.splice(r.attempts.indexOf(a), 1);
    const link = r.links.get(a.run);
    const reported = !a.dropped && link !== undefined;
    r.ended.set(`${a.run} ${a.task}#${a.attempt}`, reported ? "ok" : "failed");
    // What was sent ahead of it may start now; if it was stopped, that is dropped unrun.
    if (reported) {
      for (const x of r.attempts)
        if (x.run === a.run && x.after?.task === a.task && x.after.attempt === a.attempt) {
          this.inputs.set(`${x.run} ${x.task}#${x.attempt}`, x.after);
          delete x.after;
        }
    } else {
      const count = this.dropAfter(r, [a]);
      if (count > 0) this.allot(r, { type: "returned", run: a.run, count });
    }
    this.allot(r, { type: "freed", run: a.run, reported });
    this.startWaiting(r);
    if (!reported) return;
    const result = ok(a, a.task);
    if (!link.open) link.queued.push(result);
    else {
      const done = (m: Ref) => m.task === a.task && m.attempt === a.attempt;
      const started = link.marks.filter((m) => !done(m));
      link.marks = [];
      const want = r.alloc.creditOf(a.run);
      link.toRun.push({ type: "results", results: [result], want, received: link.received, started });
    }
  }

  /** A network blip: the runner's sockets close and reconnect; what was in flight on them is gone. */
  private blip(r: RunnerModel): void {
    this.closePool(r);
    for (const link of r.links.values()) {
      if (!link.open) continue;
      this.closeLink(link);
      const run = this.runs.find((x) => x.id === link.run)!;
      if (run.store.runner(r.id)) this.apply(run, { type: "detach", runner: r.id });
    }
  }

  private closePool(r: RunnerModel): void {
    r.poolOpen = false;
    r.toPool = [];
    r.fromPool = [];
    this.pool.rows.delete(r.id);
  }

  private closeLink(link: RunLinkModel): void {
    link.open = false;
    link.toRun = [];
    link.toRunner = [];
  }

  // --- the pool ---

  private poolFrame(r: RunnerModel): void {
    const m = r.toPool.shift()!;
    if (m.type === "hello") this.pool.rows.set(r.id, { id: r.id, info: r.info, free: m.slots, runs: [] });
    else this.pool.rows.set(r.id, { id: r.id, info: { ...r.info, slots: m.slots }, free: m.free, runs: m.runs });
    const row = this.pool.rows.get(r.id)!;
    const join = matchFor(row, this.pool.demands, new Set());
    if (join) r.fromPool.push({ run: join.run, priority: join.priority });
  }

  private poolDemand(run: RunModel): void {
    const classes = run.telling.shift()!;
    const { demands } = this.pool;
    const at = demands.findIndex((d) => d.run === run.id);
    const before = demands[at]?.classes;
    if (classes.length === 0) {
      if (at >= 0) demands.splice(at, 1);
    } else if (at >= 0) demands[at] = { run: run.id, classes };
    else demands.push({ run: run.id, classes });
    for (const join of joinsOnDemand(run.id, classes, [...this.pool.rows.values()], demands, new Set(), before))
      this.runners.find((r) => r.id === join.runner)!.fromPool.push({ run: join.run, priority: join.priority });
    run.told = JSON.stringify(classes);
  }

  // --- the run host ---

  private start(run: RunModel): void {
    run.started = true;
    const { kind, tasks, priority, labelled } = run.shape;
    const requires = labelled ? ", requires: { labels: [x] }" : "";
    const lines = Array.from({ length: tasks }, (_, i) => {
      const deps = kind === "chain" && i > 0 ? `t${i - 1}` : "";
      return `  - { id: t${i}, module: m, priority: ${priority}, lost_retries: 100, depends_on: [${deps}]${requires} }`;
    });
    this.apply(run, { type: "start", plan: plan(`tasks:\n${lines.join("\n")}\n`) });
  }

  private control(run: RunModel, action: "cancel" | "pause" | "resume"): void {
    try {
      this.apply(run, { type: "control", action });
    } catch (e) {
      if (!(e instanceof IllegalTransition)) throw e;
    }
  }

  private runFrame(r: RunnerModel, link: RunLinkModel): void {
    const run = this.runs.find((x) => x.id === link.run)!;
    const m = link.toRun.shift()!;
    const status = run.store.status();
    if (status === "succeeded" || status === "cancelled" || status === "failed") {
      // A finished run answers a hello with `finished` and closes the socket, and withdraws
      // its demand again: the runner came because the pool still had it.
      if (m.type === "hello") {
        link.toRunner.push({ type: "finished" }, { type: "close" });
        this.tellDemand(run, [], true);
      }
      return;
    }
    if (m.type === "hello") {
      const { memory, cores, labels, arch, platform } = r.info;
      const caps = { memory, cores, labels, arch, platform };
      const { want, holding } = m;
      return this.apply(run, { type: "attach", runner: r.id, name: r.id, want, holding, caps, slots: r.maxSlots });
    }
    if (!run.store.runner(r.id)) return;
    this.apply(run, { runner: r.id, ...m });
  }

  private apply(run: RunModel, event: RunEvent): void {
    const effects = transition(run.store, event, this.now);
    for (const effect of effects) this.performRun(run, effect);
  }

  private performRun(run: RunModel, effect: Effect): void {
    const socket = (runner: string) => {
      const link = this.runners.find((r) => r.id === runner)?.links.get(run.id);
      return link?.open ? link : undefined;
    };
    switch (effect.type) {
      case "dispatch":
        socket(effect.runner)?.toRunner.push({ type: "tasks", tasks: effect.tasks, backlog: effect.backlog });
        break;
      case "cancel":
        socket(effect.runner)?.toRunner.push({ type: "cancel", tasks: effect.tasks });
        break;
      case "steal":
        socket(effect.runner)?.toRunner.push({ type: "steal", count: effect.count });
        break;
      case "demand":
        this.tellDemand(run, effect.classes);
        break;
      case "finished":
        for (const r of this.runners) socket(r.id)?.toRunner.push({ type: "finished" }, { type: "close" });
        this.tellDemand(run, [], true);
        break;
      default:
        break;
    }
  }

  /** As run-host/effects.ts does: the demand goes to the pool when it differs from what the pool has. */
  private tellDemand(run: RunModel, classes: DemandClass[], always = false): void {
    run.retryDue = false;
    const wanted = JSON.stringify(classes);
    const last = run.telling.at(-1);
    if (!always && (last ? JSON.stringify(last) : run.told) === wanted) return;
    if (run.telling.length >= 2) run.telling[1] = classes;
    else run.telling.push(classes);
  }

  /** Every socket and frame in flight is gone; the runs forget their runners, the pool its rows. */
  private restart(): void {
    for (const r of this.runners) {
      this.closePool(r);
      for (const link of r.links.values()) this.closeLink(link);
    }
    for (const run of this.runs) {
      const lost = run.telling.length > 0;
      run.telling = [];
      if (!run.started) continue;
      const status = run.store.status();
      if (status === "succeeded" || status === "cancelled" || status === "failed") continue;
      // The demand call's failure (or the restart) leaves the run's alarm armed to tell it again.
      run.retryDue ||= lost;
      for (const { id } of run.store.runners()) this.apply(run, { type: "forget", runner: id });
    }
  }
}

function describe(m: ToRun | ToRunner): string {
  if (m.type === "tasks")
    return `tasks [${m.tasks.map((t) => `${t.task}#${t.attempt}`).join(", ")}] backlog ${m.backlog}`;
  if (m.type === "want" || m.type === "hello") return `${m.type} ${m.want}`;
  if (m.type === "results")
    return `results [${m.results.map((t) => `${t.task}#${t.attempt}`).join(", ")}] want ${m.want}`;
  return m.type;
}
