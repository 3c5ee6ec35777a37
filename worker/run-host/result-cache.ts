/**
 * The result cache as one run uses it: tasks whose node caches results wait in `lookup` until
 * the cache (D1) has answered for them, LOOKUP_BATCH at a time in one loop per object; accepted
 * outputs are filed under the keys their tasks were looked up with. Both are best effort: a
 * cache that cannot answer is a miss, one that cannot file costs a future miss. Used by the
 * DagRun for the machine's `lookup` and `cache` effects, and at start-up when tasks still wait.
 */
import type { BlobRef } from "../../core/protocol/messages.js";
import type { RunEvent } from "../run/machine.js";
import type { TaskRow } from "../run/store.js";

/** Tasks looked up per query. */
export const LOOKUP_BATCH = 100;

type Output = Uint8Array | BlobRef;

/** What the cache needs of its run. */
export interface ResultCacheHost {
  /** Up to `limit` tasks waiting in `lookup`. */
  lookups(limit: number): TaskRow[];
  /** The run has ended: nothing more to look up. */
  ended(): boolean;
  /** The cache keys of `rows` (their cache material, hashed), in order. */
  cacheKeys(rows: TaskRow[]): Promise<string[]>;
  /** The cached outputs of the keys found (D1). */
  find(keys: string[]): Promise<Map<string, Output>>;
  /** Files outputs under their keys (D1), each with the runner that produced it. */
  file(entries: { key: string; output: Output; runner: string }[]): Promise<void>;
  /** A task's accepted output, or null. */
  output(task: string): Output | null;
  /** Runs the cache's answer through the run's state machine. */
  apply(event: Extract<RunEvent, { type: "looked_up" }>): Promise<void>;
}

export class ResultCache {
  /** Whether the lookup loop is running (one at a time). */
  private looking = false;

  constructor(private readonly host: ResultCacheHost) {}

  /** Asks the cache for every task in `lookup` until none is left or the run ends. Never rejects. */
  async lookup(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      for (;;) {
        const rows = this.host.lookups(LOOKUP_BATCH);
        if (rows.length === 0 || this.host.ended()) return;
        const keys = await this.host.cacheKeys(rows);
        let found = new Map<string, Output>();
        try {
          found = await this.host.find(keys);
        } catch (e) {
          console.error("DagRun cache lookup", e); // a cache that cannot answer is a miss
        }
        const hits: { task: string; output: Output; key: string }[] = [];
        const misses: { task: string; key: string }[] = [];
        rows.forEach((row, i) => {
          const key = keys[i]!;
          const output = found.get(key);
          if (output) hits.push({ task: row.key, output, key });
          else misses.push({ task: row.key, key });
        });
        const answer = (taken: typeof hits, missed: typeof misses) => ({
          type: "looked_up" as const,
          hits: taken.map(({ task, output }) => ({ task, output })),
          misses: missed,
        });
        try {
          await this.host.apply(answer(hits, misses));
        } catch (e) {
          // A hit in blob storage is claimed for the run before it is taken (retention.ts); when
          // that cannot be done, those tasks run instead of waiting on the cache.
          const inBlobs = hits.filter((h) => !(h.output instanceof Uint8Array));
          if (inBlobs.length === 0) throw e;
          console.error("DagRun cache lookup: hits in blob storage taken as misses", e);
          const inline = hits.filter((h) => h.output instanceof Uint8Array);
          await this.host.apply(answer(inline, [...misses, ...inBlobs.map(({ task, key }) => ({ task, key }))]));
        }
      }
    } catch (e) {
      console.error("DagRun cache lookup stopped", e);
    } finally {
      this.looking = false;
    }
  }

  /** Files accepted outputs under their cache keys. Never rejects. */
  async file(entries: { key: string; task: string; runner: string }[]): Promise<void> {
    try {
      const outputs = entries.flatMap(({ key, task, runner }) => {
        const output = this.host.output(task);
        return output ? [{ key, output, runner }] : [];
      });
      if (outputs.length > 0) await this.host.file(outputs);
    } catch (e) {
      console.error("DagRun cache file", e);
    }
  }
}
