/**
 * The runner's socket to one run. It says hello with the credit the Runner gives it and, after a
 * reconnect, the attempts of that run the runner still holds (running, or finished and not yet
 * sent), so work in progress is not redone. It counts the tasks received on the current socket
 * (the `received` of every `want`), and queues results until the socket takes them, so a
 * reconnect loses none. What the credit is, and what to do with tasks, is the Runner's. A run
 * socket closed because the device was revoked (4403) makes the Runner fail; any other refusal
 * ends only this run's socket.
 */
import {
  FRAME_LIMITS,
  PROTOCOL_VERSION,
  type CoordinatorMessage,
  type RunnerInfo,
  type TaskResult,
} from "../core/protocol/messages.js";
import type { RunnerIdentity } from "./identity.js";
import { Link } from "./link.js";
import type { Logger } from "./log.js";
import type { LogFrame } from "./stderr-stream.js";

export interface AttemptRef {
  task: string;
  attempt: number;
}

/** What a run socket needs from the Runner. */
export interface RunHost {
  /** The socket opened (first time or again); called before the hello, which carries `credit()`. */
  opened(): void;
  /** Tasks this run may still send. */
  credit(): number;
  /** The attempts of this run running now. */
  running(): AttemptRef[];
  message(message: CoordinatorMessage): void;
  /** The socket ended for good (run finished, replaced, closed by the runner). */
  ended(reason: string): void;
  /** The device was revoked: the runner is done; `reason` is the line to end with. */
  refused(reason: string): void;
}

export interface RunLinkOptions {
  coordinator: URL;
  identity: RunnerIdentity;
  run: string;
  info: RunnerInfo;
  log: Logger;
  /** The longest a result waits for others to share its frame (default RESULT_WAIT_MS). */
  resultWaitMs?: number;
}

/** The longest a result waits for others to share its frame, by default. */
const RESULT_WAIT_MS = 20;

export class RunLink {
  private readonly link: Link;
  /** Tasks received on the current socket (reset when it reconnects). */
  private received = 0;
  private readonly results: TaskResult[] = [];
  private flushing = false;
  /** A flush is set for later (results waiting for company). */
  private later: ReturnType<typeof setTimeout> | undefined;
  /** Attempts started (and when) and not yet said to have (the next results or want frame carries them). */
  private marks: (AttemptRef & { at: number })[] = [];
  /** When a `started` frame of their own may go (at most one a half heartbeat), and its timer. */
  private startedFrameAt = 0;
  private startedTimer: ReturnType<typeof setTimeout> | undefined;
  /** Half the heartbeat period the run's welcome announced. */
  private halfHeartbeatMs = 7_500;
  /** The run's latest word on the ready tasks it has for this runner (`tasks.backlog`). */
  backlog = 0;
  /**
   * A frame asked for tasks the run has (its backlog) and no tasks frame came since: results
   * that come meanwhile wait for it (or RESULT_WAIT_MS), and go out together with the credit
   * they free. A want the run has nothing for gets no answer, so it sets nothing.
   */
  refilling = false;
  private readonly resultWaitMs: number;

  constructor(
    options: RunLinkOptions,
    private readonly host: RunHost,
  ) {
    const { coordinator, identity, run, info, log } = options;
    this.resultWaitMs = options.resultWaitMs ?? RESULT_WAIT_MS;
    const url = new URL("/api/runners/connect", coordinator);
    url.searchParams.set("run", run);
    const label = `run ${run.slice(0, 8)}`;
    this.link = new Link({
      url,
      auth: identity,
      label,
      log,
      onOpen: () => {
        host.opened();
        this.received = 0;
        // A reconnect's hello lists what is held; the run resumes those as started.
        this.marks = [];
        const holding = [...host.running(), ...this.results].map(({ task, attempt }) => ({ task, attempt }));
        const runner = { ...info, id: identity.runnerId() };
        this.link.send({ type: "hello", protocol: PROTOCOL_VERSION, runner, want: host.credit(), holding });
        this.flush();
      },
      onMessage: (m) => {
        if (m.type === "tasks") {
          this.received += m.tasks.length;
          this.backlog = m.backlog;
          this.refilling = false;
        }
        if (m.type === "welcome") this.halfHeartbeatMs = m.heartbeatMs / 2;
        if (m.type === "error") log.info(`${label}: coordinator says: ${m.message}`);
        else host.message(m);
      },
      onEnd: (reason, end) => {
        log.debug(`${label}: ended (${reason})`);
        host.ended(reason);
        if (end === "revoked") host.refused(identity.revoked(reason));
      },
    });
  }

  start(): void {
    this.link.start();
  }

  close(reason: string): void {
    clearTimeout(this.later);
    clearTimeout(this.startedTimer);
    this.link.close(reason);
  }

  /**
   * Tells the run how many more tasks it may send (absolute, so a frame in flight never
   * over-grants); `allStarted`: with every start not yet said, however recent (a steal's answer
   * when nothing waits to start).
   */
  want(allStarted = false): void {
    const started = this.takeStarted(allStarted);
    const want = this.host.credit();
    if (!this.link.send({ type: "want", want, received: this.received, started }))
      this.marks.unshift(...started.map((m) => ({ ...m, at: 0 })));
    else if (want > 0 && this.backlog > 0) this.refilling = true;
  }

  /**
   * An attempt it holds started: the run hears it with the next results or want frame once it
   * has run RESULT_WAIT_MS (most tasks end before, and their result says all), or, when no such
   * frame goes within a half heartbeat, in a `started` frame of its own. Meanwhile its lease
   * runs from its dispatch.
   */
  started(task: AttemptRef): void {
    this.marks.push({ task: task.task, attempt: task.attempt, at: Date.now() });
    this.armStarted();
  }

  /** Sets the timer of a `started` frame while marks wait (one at a time, at most one frame a half heartbeat). */
  private armStarted(): void {
    if (this.startedTimer || this.marks.length === 0) return;
    const wait = Math.max(RESULT_WAIT_MS, this.startedFrameAt - Date.now());
    this.startedTimer = setTimeout(() => {
      this.startedTimer = undefined;
      const tasks = this.takeStarted();
      if (tasks.length > 0) {
        if (this.link.send({ type: "started", tasks })) this.startedFrameAt = Date.now() + this.halfHeartbeatMs;
        else this.marks.unshift(...tasks.map((m) => ({ ...m, at: 0 })));
      }
      this.armStarted();
    }, wait);
    this.startedTimer.unref?.();
  }

  /**
   * The started marks to send now: of attempts that have run RESULT_WAIT_MS (`all`: every one),
   * at most a frame's worth. Those of attempts with a result queued go: the result says more.
   */
  private takeStarted(all = false): AttemptRef[] {
    if (this.marks.length === 0) return [];
    const done = new Set(this.results.map((r) => `${r.task}#${r.attempt}`));
    const old = Date.now() - RESULT_WAIT_MS;
    const due: AttemptRef[] = [];
    const kept: (AttemptRef & { at: number })[] = [];
    for (const m of this.marks) {
      if (done.has(`${m.task}#${m.attempt}`)) continue;
      if ((all || m.at <= old) && due.length < FRAME_LIMITS.attemptRefs) due.push({ task: m.task, attempt: m.attempt });
      else kept.push(m);
    }
    this.marks = kept;
    return due;
  }

  /** Hands tasks back unrun: the coordinator re-queues them without counting a failure. */
  reject(tasks: AttemptRef[]): void {
    if (tasks.length > 0)
      this.link.send({ type: "reject", tasks: tasks.map(({ task, attempt }) => ({ task, attempt })) });
  }

  /** Sends a log frame now (stderr-stream.ts); false when the socket cannot take it. */
  log(frame: LogFrame): boolean {
    return this.link.send(frame);
  }

  /**
   * Queues a result. `now`: it goes out with the others queued in this turn of the event loop;
   * otherwise it waits for company, at most RESULT_WAIT_MS (or until a result that may not wait).
   */
  queue(result: TaskResult, now = true): void {
    this.results.push(result);
    if (this.flushing) return;
    if (!now) {
      this.later ??= setTimeout(() => this.flush(), this.resultWaitMs);
      return;
    }
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  /** Sends queued results; those the socket cannot take now wait for the reconnect. */
  flush(): void {
    this.flushing = false;
    clearTimeout(this.later);
    this.later = undefined;
    while (this.results.length > 0 && this.link.open) {
      const results = this.results.slice(0, FRAME_LIMITS.resultsPerFrame);
      const started = this.takeStarted();
      const frame = { type: "results" as const, results, want: this.host.credit(), received: this.received, started };
      if (!this.link.send(frame)) {
        this.marks.unshift(...started.map((m) => ({ ...m, at: 0 })));
        break;
      }
      if (frame.want > 0 && this.backlog > 0) this.refilling = true;
      this.results.splice(0, results.length);
    }
  }
}
