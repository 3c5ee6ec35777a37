/**
 * The watchers of a run (`GET /api/dags/:id/watch`, core/protocol/watch.ts): a snapshot for each
 * new watcher, then coalesced updates, at most one every WATCH_MS for any number of events, the
 * last with the final status, after which the sockets close. Used by the DagRun, whose store
 * tells every change of a task's state to `Watchers` (a `ChangeLog`), whose `status` effect tells
 * a change of the run's status, and whose alarm sends the update when it is due.
 *
 * The time the pending update is due is durable (meta `watch_due`), so it is sent even if the
 * object is evicted first; the changes themselves are kept in memory only while someone watches,
 * so an update due across an eviction carries every node's counts and no task list.
 */
import type { RunSummary, RunView } from "../../core/api.js";
import { CLOSE } from "../../core/protocol/messages.js";
import { MAX_TASK_CHANGES, type WatchMessage } from "../../core/protocol/watch.js";
import { isFinal, type TaskState } from "../../core/status.js";
import { timeOf, type Meta } from "./meta.js";

/** Watchers hear of changes at most this often. */
export const WATCH_MS = 250;
const DUE = "watch_due";

/** What a store tells of the changes it makes to tasks' states. */
export interface ChangeLog {
  /** One task of `node` moved to `state`. */
  task(node: string, key: string, state: TaskState): void;
  /** Some tasks of `node` moved together. */
  moved(node: string): void;
  /** Tasks of any node moved together. */
  movedAll(): void;
}

/** What changed since watchers were last told: nodes whose counts moved, and tasks by key. */
class Changes implements ChangeLog {
  readonly nodes = new Set<string>();
  readonly tasks = new Map<string, TaskState>();
  /** Some change was not listed task by task (a whole node or state moved). */
  bulk = false;
  /** Every node may have changed. */
  all = false;
  /** The run's status changed. */
  status = false;

  task(node: string, key: string, state: TaskState): void {
    this.nodes.add(node);
    this.tasks.set(key, state);
  }

  moved(node: string): void {
    this.nodes.add(node);
    this.bulk = true;
  }

  movedAll(): void {
    this.all = this.bulk = true;
  }

  get empty(): boolean {
    return this.nodes.size === 0 && !this.bulk && !this.status;
  }
}

/** A watcher's socket, as far as watchers need it. */
export interface WatcherSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
}

/** What the watchers need of their run. */
export interface WatchersHost {
  /** The sockets of the run's watchers. */
  sockets(): WatcherSocket[];
  meta: Meta;
  now(): number;
  /** The run's summary as readers see it (waiting tasks counted). */
  summary(): Promise<RunSummary>;
  /** The run as readers see it, without tasks: the snapshot. */
  view(): Promise<RunView>;
  /** Instances by state of each of `nodes` (every node when omitted). */
  nodeCounts(nodes?: string[]): Map<string, Partial<Record<TaskState, number>>>;
}

export class Watchers implements ChangeLog {
  /** Changes since the last update; null while nobody watches. */
  private changes: Changes | null = null;
  /** The durable due time, as last read or written (undefined: not read yet). */
  private dueAt: number | null | undefined;

  constructor(private readonly host: WatchersHost) {}

  /**
   * After the object started again with watchers connected: changes are logged again, and an
   * update that was due reports every node, since what changed before is not known.
   */
  restore(): void {
    if (this.host.sockets().length === 0) return;
    this.changes = new Changes();
    if (this.due() !== null) this.changes.movedAll();
  }

  /** Sends a new watcher the snapshot, and closes its socket at once when the run has ended. */
  async join(ws: WatcherSocket): Promise<void> {
    this.changes ??= new Changes();
    const { nodes, tasks: _tasks, ...run } = await this.host.view();
    const snapshot: WatchMessage = { type: "snapshot", run, nodes: nodes.map(({ sha256: _sha, ...node }) => node) };
    ws.send(JSON.stringify(snapshot));
    if (isFinal(run.status)) ws.close(CLOSE.finished, `run ${run.status}`);
  }

  task(node: string, key: string, state: TaskState): void {
    this.changes?.task(node, key, state);
  }

  moved(node: string): void {
    this.changes?.moved(node);
  }

  movedAll(): void {
    this.changes?.movedAll();
  }

  /** The run's status changed (a pause moves no task, yet watchers must hear of it). */
  statusChanged(): void {
    if (!this.changes) return;
    this.changes.status = true;
    this.changed();
  }

  /** After an event: when it changed something someone watches, an update is due within WATCH_MS. */
  changed(): void {
    if (!this.changes || this.changes.empty || this.due() !== null) return;
    this.setDue(this.host.now() + WATCH_MS);
  }

  /** When the pending update is due, or null when none is. */
  due(): number | null {
    if (this.dueAt === undefined) this.dueAt = timeOf(this.host.meta, DUE);
    return this.dueAt;
  }

  /**
   * Sends every watcher what changed since the last update (one update for any number of events).
   * When the run has ended (`final`) the update goes out even with nothing new, and is the last:
   * the sockets close.
   */
  async flush(final: boolean): Promise<void> {
    this.setDue(null);
    const sockets = this.host.sockets();
    const changes = this.changes;
    if (sockets.length === 0) this.changes = null;
    if (sockets.length === 0 || !changes || (changes.empty && !final)) return;
    this.changes = new Changes();
    const run = await this.host.summary();
    const counts = this.host.nodeCounts(changes.all ? undefined : [...changes.nodes]);
    const nodes = [...counts].map(([id, counts]) => ({ id, counts }));
    const listed = !changes.bulk && changes.tasks.size <= MAX_TASK_CHANGES;
    const tasks = listed ? [...changes.tasks].map(([id, state]) => ({ id, state })) : null;
    const text = JSON.stringify({ type: "update", run, nodes, tasks } satisfies WatchMessage);
    for (const ws of sockets) {
      try {
        ws.send(text);
        if (final) ws.close(CLOSE.finished, `run ${run.status}`);
      } catch {
        // gone: its close handler has nothing to do
      }
    }
  }

  private setDue(at: number | null): void {
    if (at === this.dueAt) return;
    if (at === null) this.host.meta.deleteMeta(DUE);
    else this.host.meta.setMeta(DUE, String(at));
    this.dueAt = at;
  }
}
