/**
 * The run's line in the D1 run index (`GET /api/dags`, the task gauges of `/metrics`): refreshed
 * at most every INDEX_MS while the run changes, at once when its status changes (the DagRun's
 * `status` effect), and so at its end. Whether the line is behind, and when it is due, are kept
 * in meta (`index_due`, `indexed_at`), so the DagRun's alarm refreshes it even after an eviction.
 * A write that fails is logged and due again RETRY_MS later, also after the run ended (the DagRun's
 * alarm waits for it): the retention sweep finds finished runs by their line.
 */
import type { RunListing, RunSummary } from "../../core/api.js";
import type { RunMetrics } from "../metrics.js";
import { timeOf, type Meta } from "./meta.js";

/** The index follows the run at most this often. */
export const INDEX_MS = 1000;
/** A failed write is tried again this much later. */
export const RETRY_MS = 10_000;
const DUE = "index_due";
const INDEXED = "indexed_at";

/** What the index needs of its run. */
export interface RunIndexHost {
  meta: Meta;
  now(): number;
  /** The run's summary as stored (no `waiting`), or null before it has a plan. */
  summary(): RunSummary | null;
  /** The run's histograms and cache hits, which travel with its line. */
  metrics(): RunMetrics;
  /** Inserts or replaces the run's line (D1). */
  write(line: RunListing, metrics: RunMetrics): Promise<void>;
}

export class RunIndex {
  /** The durable due time, as last read or written (undefined: not read yet). */
  private dueAt: number | null | undefined;

  constructor(private readonly host: RunIndexHost) {}

  /** After an event: the line is behind, and due INDEX_MS after the last refresh (at once if that has passed). */
  changed(): void {
    if (this.due() !== null) return;
    const last = timeOf(this.host.meta, INDEXED) ?? 0;
    this.setDue(Math.max(this.host.now(), last + INDEX_MS));
  }

  /** When the line is due for a refresh, or null when it is current. */
  due(): number | null {
    if (this.dueAt === undefined) this.dueAt = timeOf(this.host.meta, DUE);
    return this.dueAt;
  }

  /** Writes the run's line now. */
  async refresh(): Promise<void> {
    const summary = this.host.summary();
    if (!summary) return;
    this.setDue(null);
    this.host.meta.setMeta(INDEXED, String(this.host.now()));
    const { id, name, status, created_at, updated_at, finished_at } = summary;
    const { waiting: _waiting, ...counts } = summary.counts;
    try {
      const line = { id, name, status, tasks: summary.tasks_total, counts, created_at, updated_at, finished_at };
      await this.host.write(line, this.host.metrics());
    } catch (e) {
      console.error(`DagRun ${id}: the run index refresh failed; trying again in ${RETRY_MS / 1000} s`, e);
      this.setDue(this.host.now() + RETRY_MS);
    }
  }

  private setDue(at: number | null): void {
    if (at === this.dueAt) return;
    if (at === null) this.host.meta.deleteMeta(DUE);
    else this.host.meta.setMeta(DUE, String(at));
    this.dueAt = at;
  }
}
