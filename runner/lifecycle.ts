/**
 * The runner's lifecycle as an explicit union with one setter: every change is logged (with the
 * reason, when there is one) and a change the table does not allow throws an error naming both
 * states, so a bug shows at the transition rather than as a runner in a state nobody planned.
 * `stopped` and `failed` are final: the Runner resolves `finished` with one of them, and the bin
 * (runner/cli.ts) turns it into the exit code.
 */
import type { Logger } from "./log.js";

/**
 * `connecting` until the pool socket first opens, `ready` while it takes work, `draining` after
 * stop() while running tasks finish, `stopped` once drained and closed, `failed` when the
 * coordinator refuses the runner for good (its token, its protocol, the endpoint).
 */
export type RunnerState = "connecting" | "ready" | "draining" | "stopped" | "failed";

/** How a runner ended. */
export type RunnerEnd = Extract<RunnerState, "stopped" | "failed">;

/** The changes each state allows; a refusal can arrive at any time before the end, a drain included. */
const NEXT: Record<RunnerState, readonly RunnerState[]> = {
  connecting: ["ready", "draining", "failed"],
  ready: ["draining", "failed"],
  draining: ["stopped", "failed"],
  stopped: [],
  failed: [],
};

export class Lifecycle {
  private current: RunnerState = "connecting";
  private resolve!: (end: RunnerEnd) => void;
  /** Resolves with the final state once the runner has settled in it (see `settle`). */
  readonly finished = new Promise<RunnerEnd>((resolve) => (this.resolve = resolve));

  constructor(private readonly log: Logger) {}

  get state(): RunnerState {
    return this.current;
  }

  /** Still taking work: connecting or ready. */
  get accepting(): boolean {
    return this.current === "connecting" || this.current === "ready";
  }

  /** Moves to `next`, logging the change; throws, naming both states, when `next` is not allowed. */
  set(next: RunnerState, reason?: string): void {
    const from = this.current;
    if (!NEXT[from].includes(next)) throw new Error(`runner: cannot go from ${from} to ${next}`);
    this.current = next;
    const fields = { event: "state", from, to: next, reason };
    this.log.info(`runner: ${from} -> ${next}${reason ? ` (${reason})` : ""}`, fields);
  }

  /** The runner has closed everything in its final state: `finished` resolves with it. */
  settle(): void {
    const end = this.current;
    if (end !== "stopped" && end !== "failed") throw new Error(`runner: cannot settle while ${end}`);
    this.resolve(end);
  }
}
