/**
 * A run's part of `/metrics`: how long attempts ran (as their runners measured), how long tasks
 * waited from becoming ready to their dispatch, and how many tasks the result cache served.
 * Observed by the DagRun inside each event's transaction and kept in meta (`metrics`), so no
 * observation is lost to an eviction; the run index (run-index.ts) carries them to D1, where the
 * `/metrics` route sums them over runs.
 */
import { parseTaskKey } from "../../core/abi.js";
import { emptyMetrics, observe, type RunMetrics } from "../metrics.js";
import type { Effect, RunEvent } from "../run/machine.js";
import type { Meta } from "./meta.js";

const KEY = "metrics";

/** What the histograms need of their run. */
export interface HistogramsHost {
  meta: Meta;
  /** When a node's tasks became ready (its dependencies done), or null. */
  nodeReadyAt(node: string): number | null;
}

export class Histograms {
  /** The kept value, read once. */
  private kept: RunMetrics | undefined;

  constructor(private readonly host: HistogramsHost) {}

  /** The run's histograms and cache hits so far. */
  current(): RunMetrics {
    if (!this.kept) {
      const saved = this.host.meta.meta(KEY);
      this.kept = saved ? (JSON.parse(saved) as RunMetrics) : emptyMetrics();
    }
    return this.kept;
  }

  /** Notes what one event and its effects show: attempt durations, cache hits, dispatch latencies. */
  observe(event: RunEvent, effects: readonly Effect[], now: number): void {
    const next = structuredClone(this.current());
    let seen = false;
    if (event.type === "results") {
      for (const r of event.results) observe(next.duration, r.durationMs / 1000);
      seen = event.results.length > 0;
    }
    if (event.type === "looked_up" && event.hits.length > 0) {
      next.cacheHits += event.hits.length;
      seen = true;
    }
    for (const effect of effects) {
      if (effect.type !== "dispatch") continue;
      for (const task of effect.tasks) {
        // One sent ahead of its last dependency went before it was ready: no wait to measure.
        if (task.after) continue;
        const ready = this.host.nodeReadyAt(parseTaskKey(task.task).node);
        if (ready === null) continue;
        observe(next.latency, Math.max(0, now - ready) / 1000);
        seen = true;
      }
    }
    if (!seen) return;
    this.host.meta.setMeta(KEY, JSON.stringify(next));
    this.kept = next;
  }
}
