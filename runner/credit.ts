/**
 * The runner's slot allocator: which run may send how many tasks (its credit), as a pure module
 * (events in, effects out, like worker/run/machine.ts). The Runner (runner.ts) feeds it what
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
  /** Ready tasks the run had left when it last told us. */
  backlog: number;
  /** Priority of its most important ready task, as the pool last said. */
  priority: number;
}

export class CreditAllocator {
  private readonly runs = new Map<string, RunCredit>();
  /** Attempts holding a slot, those of runs already left included. */
  private runningTotal = 0;
  private accepting = true;

  constructor(private capacity: number) {}

  /** Slots offered now. */
  get slots(): number {
    return this.capacity;
  }

  /** Attempts running now. */
  get running(): number {
    return this.runningTotal;
  }

  /** Slots not running a task (what the pool hears as free). */
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
  unassigned(): number {
    let credit = 0;
    for (const run of this.runs.values()) credit += run.credit;
    return this.capacity - this.runningTotal - credit;
  }

  apply(event: CreditEvent): CreditEffect[] {
    const out: CreditEffect[] = [];
    switch (event.type) {
      case "join":
        this.join(event.run, event.priority, out);
        break;
      case "opened": {
        const run = this.runs.get(event.run);
        if (run && this.accepting) run.credit += Math.max(0, this.unassigned());
        out.push({ type: "report" });
        break;
      }
      case "tasks": {
        const run = this.runs.get(event.run);
        const count = run && this.accepting ? Math.min(event.count, run.credit) : 0;
        if (run) {
          run.backlog = event.backlog;
          run.credit -= count;
        }
        this.runningTotal += count;
        out.push({ type: "take", run: event.run, count }, { type: "report" });
        break;
      }
      case "freed": {
        const run = this.runs.get(event.run);
        this.runningTotal--;
        this.freeSlot(run, out);
        break;
      }
      case "finished":
        break;
      case "ended":
        this.runs.delete(event.run);
        out.push({ type: "report" });
        break;
      case "resize":
        this.resize(event.slots, out);
        break;
      case "drain":
        this.accepting = false;
        for (const [id, run] of this.runs) {
          run.credit = 0;
          out.push({ type: "want", run: id });
        }
        break;
    }
    return out;
  }

  /**
   * A run needs slots: attach to it (once) and move promised but unused credit to it from runs
   * with nothing to do or a lower priority.
   */
  private join(id: string, priority: number, out: CreditEffect[]): void {
    if (!this.accepting) return;
    let moved = 0;
    for (const [otherId, other] of this.runs) {
      if (otherId === id || (other.backlog > 0 && other.priority >= priority) || other.credit === 0) continue;
      moved += other.credit;
      other.credit = 0;
      out.push({ type: "want", run: otherId });
    }
    const run = this.runs.get(id);
    if (run) {
      run.backlog = Math.max(run.backlog, 1);
      run.priority = priority;
      if (moved > 0) {
        run.credit += moved;
        out.push({ type: "want", run: id });
      }
      return;
    }
    this.runs.set(id, { credit: moved, backlog: 1, priority });
    out.push({ type: "attach", run: id, priority });
  }

  /**
   * Gives a freed slot (unless the runner shrank meanwhile) to the highest-priority run with a
   * backlog: the run it came from among equals, then the largest backlog. With no backlog
   * anywhere the run it came from keeps it for its next ready task.
   */
  private freeSlot(from: RunCredit | undefined, out: CreditEffect[]): void {
    if (!this.accepting || this.unassigned() <= 0) return;
    const [best] = [...this.runs]
      .filter(([, run]) => run.backlog > 0)
      .sort(([, a], [, b]) => b.priority - a.priority || Number(b === from) - Number(a === from) || b.backlog - a.backlog);
    if (best?.[1] === from || (!best && from)) {
      // The run it came from gets the slot with its next results frame.
      from!.credit++;
    } else if (best) {
      best[1].credit++;
      out.push({ type: "want", run: best[0] });
    }
    out.push({ type: "report" });
  }

  /**
   * Offers `slots` slots from now on. Growing hands the new ones to runs with a backlog (or
   * to the pool as free); shrinking takes back unused credit, lowest priority first, and lets
   * running tasks finish.
   */
  private resize(slots: number, out: CreditEffect[]): void {
    if (slots === this.capacity || !this.accepting) return;
    this.capacity = slots;
    const byPriority = [...this.runs].sort(([, a], [, b]) => a.priority - b.priority);
    for (const [id, run] of byPriority) {
      const over = -this.unassigned();
      if (over <= 0) break;
      const taken = Math.min(over, run.credit);
      if (taken <= 0) continue;
      run.credit -= taken;
      out.push({ type: "want", run: id });
    }
    for (const [id, run] of byPriority.reverse()) {
      const left = this.unassigned();
      if (left <= 0) break;
      if (run.backlog > 0) {
        run.credit += Math.min(left, run.backlog);
        out.push({ type: "want", run: id });
      }
    }
    out.push({ type: "report" });
  }
}
