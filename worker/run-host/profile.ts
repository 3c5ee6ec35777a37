/**
 * A profiled run's counters (`PROFILE_RUNS=1`, set by `npm run bench`): the incoming runner
 * messages and the SQL statements of its Durable Object, per run (docs/benchmarks.md).
 */
import type { RunProfile } from "../../core/api.js";
import type { Meta } from "./meta.js";

/** Where a profiled run keeps its counts once it ended, for a reader after the object restarted. */
const PROFILE_KEY = "profile";

/**
 * Counts until the run ends (reads of it after that are not its work). The counts at the end are
 * kept in the run's meta: an object that sat idle after its run may be evicted, and one started
 * again counts from nothing.
 */
export class Profile {
  private readonly counts: RunProfile = { messages: 0, statements: 0, frames: {} };
  private stopped: RunProfile | null = null;

  /** `sql` (a Durable Object's SQL storage), each `exec` counted. */
  counting<Sql extends { exec(query: string, ...bindings: never[]): unknown }>(sql: Sql): Sql {
    const counts = this.counts;
    return new Proxy(sql, {
      get(target, name) {
        if (name === "exec")
          return (query: string, ...bindings: unknown[]) => {
            counts.statements++;
            return target.exec(query, ...(bindings as never[]));
          };
        const value: unknown = Reflect.get(target, name);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Counts a runner's message, by its type. */
  message(raw: string | ArrayBuffer): void {
    this.counts.messages++;
    const type = typeof raw === "string" ? (/^\{"type":"(\w+)"/.exec(raw)?.[1] ?? "other") : "binary";
    this.counts.frames[type] = (this.counts.frames[type] ?? 0) + 1;
  }

  /** The run ended: its counts are final, and kept in `meta`. */
  stop(meta: Meta): void {
    if (this.stopped) return;
    this.stopped = this.current(meta);
    meta.setMeta(PROFILE_KEY, JSON.stringify(this.stopped));
  }

  /** The counts: the final ones once the run ended (in this object, or in one before it), else those so far. */
  current(meta: Meta): RunProfile {
    const kept = this.stopped ?? meta.meta(PROFILE_KEY);
    if (kept === undefined) return { ...this.counts, frames: { ...this.counts.frames } };
    return (this.stopped = typeof kept === "string" ? (JSON.parse(kept) as RunProfile) : kept);
  }
}
