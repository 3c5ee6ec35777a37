/**
 * The runner's slot allocator: which run may send how many tasks (its credit), as a pure module
 * (events in, effects out, like worker/run/machine.ts). Its capacity is the attempts the runner
 * holds at most: its slots and its prefetch (runner/prefetch.ts); which held attempt runs when is
 * the Runner's (never more at once than its slots). The Runner (runner.ts) feeds it what
 * happens on its sockets and thread pool and performs what comes back: attach to a run, tell a
 * run its credit (`want`, absolute), run the first `count` tasks of a frame and hand back the
 * rest, tell the pool the runner's status. test/unit/liveness.test.ts drives it beside the real
 * run state machine and the pool's matchmaking through random sequences.
 */

export type CreditEvent =
  /** The pool points the runner at a run with ready work it qualifies for. */
  | { type: "join"; run: string; priority: number }
  /** The run's socket opened (first time or again): its hello carries the run's credit. */
  | { type: "opened"; run: string }
  /** The run sent `count` tasks and has `backlog` more ready. */
  | { type: "tasks"; run: string; count: number; backlog: number }
  /**
   * An attempt of `run` left its slot; `reported`: its result goes out on the run's socket, and
   * that frame carries the run's credit.
   */
  | { type: "freed"; run: string; reported: boolean }
  /**
   * `count` held attempts of `run` went back unstarted (a steal, a drain): their room goes to runs
   * with more ready than credit, not back to `run`, which has just given work away.
   */
  | { type: "returned"; run: string; count: number }
  /** The run said it finished: it sends no more tasks. */
  | { type: "finished"; run: string }
  /** The run's socket ended for good; its attempts still running will each be `freed`. */
  | { type: "ended"; run: string }
  /** Under `--slots auto` the device now offers `slots`. */
  | { type: "resize"; slots: number }
  /** The runner stops taking tasks. */
  | { type: "drain" };

export type CreditEffect =
  /** Open a socket to the run. */
  | { type: "attach"; run: string; priority: number }
  /** Tell the run its credit now. */
  | { type: "want"; run: string }
  /** Of the tasks frame just received, run the first `count` and hand the rest back. */
  | { type: "take"; run: string; count: number }
  /** Tell the pool the runner's status (idle slots, runs). */
  | { type: "report" };

interface RunCredit {
  /** Tasks the run may still send. */
  credit: number;
  /** When it was last given a slot (a count of grants): the longest waiting first among equals. */
  granted: number;
  /** Ready tasks the run had left when it last told us. */
  backlog: number;
  /** Priority of its most important ready task, as the pool last said. */
  priority: number;
}

export class CreditAllocator {
  private readonly runs = new Map<string, RunCredit>();
  /** Attempts held (running or waiting to start), those of runs already left included. */
  private runningTotal = 0;
  /** Grants made so far: stamps `granted`. */
  private grants = 0;
  private accepting = true;

  constructor(private capacity: number) {}

  /** Attempts the runner holds at most: its slots and its prefetch (runner/prefetch.ts). */
  get slots(): number {
    return this.capacity;
  }

  /** Attempts held now, running or waiting to start. */
  get running(): number {
    return this.runningTotal;
  }

  /** Room for attempts not held. */
  get free(): number {
    return Math.max(0, this.capacity - this.runningTotal);
  }

  /** The credit of `run` (0 for a run the runner is not in). */
  creditOf(run: string): number {
    return this.runs.get(run)?.credit ?? 0;
  }

  /** Runs the runner is in. */
  runIds(): string[] {
    return [...this.runs.keys()];
  }

  /** Slots neither running a task nor promised to a run. */
  private unassigned(): number {
    let credit = 0;
    for (const run of this.runs.values()) credit += run.credit;
    return this.capacity - this.runningTotal - credit;
  }

  apply(event: CreditEvent): CreditEffect[] {
    const out = new Effects();
    switch (event.type) {
      case "join":
        this.join(event.run, event.priority, out);
        break;
      case "opened":
        this.rebalance(out);
        out.report();
        break;
      case "tasks": {
        const run = this.runs.get(event.run);
        const count = run && this.accepting ? Math.min(event.count, run.credit) : 0;
        if (run) {
          run.backlog = event.backlog;
          run.credit -= count;
        }
        this.runningTotal += count;
        out.push({ type: "take", run: event.run, count });
        this.rebalance(out);
        out.report();
        break;
      }
      case "freed":
        this.runningTotal--;
        this.freed(event.run, event.reported, out);
        out.report();
        break;
      case "returned":
        this.runningTotal -= event.count;
        this.rebalance(out);
        out.report();
        break;
      case "finished": {
        const run = this.runs.get(event.run);
        if (run) Object.assign(run, { credit: 0, backlog: 0 });
        this.rebalance(out);
        out.report();
        break;
      }
      case "ended":
        this.runs.delete(event.run);
        this.rebalance(out);
        out.report();
        break;
      case "resize":
        this.resize(event.slots, out);
        break;
      case "drain":
        this.accepting = false;
        for (const [id, run] of this.runs) {
          run.credit = 0;
          out.want(id);
        }
        break;
    }
    return out.list();
  }

  /**
   * The pool says `id` has ready work for us: attach to it (once), take back the credit of runs
   * with nothing to do or a lower priority, and give it what is free. The run hears its credit
   * again even when that did not change: a grant lost on the way costs one join, not the run.
   */
  private join(id: string, priority: number, out: Effects): void {
    if (!this.accepting) return;
    let run = this.runs.get(id);
    if (!run) {
      // How much it has ready is unknown until its first frame: as much as the runner can take.
      // From then on the run says (it tells its runners when that becomes none or some).
      run = { credit: 0, granted: 0, backlog: this.capacity, priority };
      this.runs.set(id, run);
      out.push({ type: "attach", run: id, priority });
    }
    run.priority = priority;
    for (const [otherId, other] of this.runs) {
      if (otherId === id || other.credit === 0 || (other.backlog > 0 && other.priority >= priority)) continue;
      other.credit = 0;
      out.want(otherId);
    }
    this.rebalance(out);
    out.want(id);
  }

  /**
   * A slot came free. It goes where `rebalance` puts it; when no run has more ready than its
   * credit, the run it came from keeps what is free for its next tasks (a chain's next hops,
   * which it may send ahead into the prefetch), told with the result it sends (`reported`) or at
   * once. A run with ready work takes it back from there whenever it needs it (`rebalance`).
   */
  private freed(id: string, reported: boolean, out: Effects): void {
    this.rebalance(out, id, reported);
    const from = this.runs.get(id);
    const free = this.unassigned();
    if (!from || !this.accepting || free <= 0) return;
    from.credit += free;
    if (!reported) out.want(id);
  }

  /**
   * Hands slots to the runs with more ready tasks than credit, highest priority first (then
   * `from`, then the one given a slot longest ago): first the unassigned ones, then credit taken back from
   * runs with nothing ready or a lower priority. Every run whose credit changed is told, but
   * `from` when its result frame will tell it (`reported`).
   */
  private rebalance(out: Effects, from?: string, reported = false): void {
    if (!this.accepting) return;
    const changed = new Set<string>();
    const order = [...this.runs]
      .filter(([, run]) => run.backlog > run.credit)
      .sort(
        ([aId, a], [bId, b]) =>
          b.priority - a.priority || Number(bId === from) - Number(aId === from) || a.granted - b.granted,
      );
    for (const [id, run] of order) {
      let need = run.backlog - run.credit;
      const free = Math.min(need, Math.max(0, this.unassigned()));
      run.credit += free;
      need -= free;
      if (free > 0) changed.add(id);
      const donors = [...this.runs]
        .filter(([otherId, o]) => otherId !== id && o.credit > 0 && (o.backlog === 0 || o.priority < run.priority))
        .sort(([, a], [, b]) => Number(a.backlog > 0) - Number(b.backlog > 0) || a.priority - b.priority);
      for (const [otherId, other] of donors) {
        if (need <= 0) break;
        const taken = Math.min(need, other.credit);
        other.credit -= taken;
        run.credit += taken;
        need -= taken;
        changed.add(otherId).add(id);
      }
      if (changed.has(id)) run.granted = ++this.grants;
    }
    for (const id of changed) if (!(id === from && reported)) out.want(id);
  }

  /** Offers `slots` slots from now on: shrinking takes back credit, lowest priority first; running tasks finish. */
  private resize(slots: number, out: Effects): void {
    if (slots === this.capacity || !this.accepting) return;
    this.capacity = slots;
    const byPriority = [...this.runs].sort(([, a], [, b]) => a.priority - b.priority);
    for (const [id, run] of byPriority) {
      const over = -this.unassigned();
      if (over <= 0) break;
      const taken = Math.min(over, run.credit);
      if (taken <= 0) continue;
      run.credit -= taken;
      out.want(id);
    }
    this.rebalance(out);
    out.report();
  }
}

/** The effects of one event, each `want` and the `report` once. */
class Effects {
  private readonly effects: CreditEffect[] = [];
  private readonly wants = new Set<string>();
  private reported = false;

  push(effect: CreditEffect): void {
    this.effects.push(effect);
  }

  want(run: string): void {
    if (!this.wants.has(run)) this.effects.push({ type: "want", run });
    this.wants.add(run);
  }

  report(): void {
    if (!this.reported) this.effects.push({ type: "report" });
    this.reported = true;
  }

  list(): CreditEffect[] {
    return this.effects;
  }
}
