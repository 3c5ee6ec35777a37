/**
 * The page's formatting of moments and the cooled-down line of a runner or device, and the runs
 * list's filters: pure functions of their arguments (no DOM), so unit tests import them in Node. Durations and sizes are the
 * CLI's (core/units.ts).
 */
import type { RunListing } from "../core/api.js";
import { formatDuration } from "../core/units.js";

/** A moment as the time of day, in the browser's locale ("" for none). */
export const time = (ms: number | null | undefined): string => (ms ? new Date(ms).toLocaleTimeString() : "");

/** A moment as date and time, for what may be days away (a run of last week, an expiry). */
export const dateTime = (ms: number | null | undefined): string => (ms ? new Date(ms).toLocaleString() : "");

/**
 * `cooled down (until 12:03:00, 2m10s left)` while `until` (a device's cooled_until, ms) is ahead
 * of `now`: its attempts were lost again and again, so it gets no new leases until then. Null
 * when it is not cooled down (null, or past).
 */
export function cooledDown(until: number | null | undefined, now: number): string | null {
  if (typeof until !== "number" || !(until > now)) return null;
  return `cooled down (until ${time(until)}, ${formatDuration(until - now)} left)`;
}

/** A run's length so far or in all: from its creation to its end, or to `now` while it runs. */
export const runDuration = (run: { created_at: number; finished_at: number | null }, now: number): string =>
  formatDuration(Math.max(0, (run.finished_at ?? now) - run.created_at));

/** The runs that pass the filters, in the order asked. */
export function filterRuns(runs: RunListing[], query: string, status: string, failedFirst: boolean): RunListing[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const kept = runs.filter(
    (r) =>
      (status === "" || r.status === status) &&
      words.every((w) => r.name.toLowerCase().includes(w) || r.id.startsWith(w)),
  );
  return failedFirst
    ? [...kept.filter((r) => r.status === "failed"), ...kept.filter((r) => r.status !== "failed")]
    : kept;
}
