/**
 * The small durable values a DagRun concern keeps in its run's `meta` table: the times its
 * pending flushes are due, the histograms, the demand last told to the pool. The SqlStore
 * implements it in production, a Map in the unit tests.
 */
export interface Meta {
  meta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  deleteMeta(key: string): void;
}

/** A time kept under `key`, or null when there is none. */
export function timeOf(meta: Meta, key: string): number | null {
  const value = meta.meta(key);
  return value === undefined ? null : Number(value);
}
