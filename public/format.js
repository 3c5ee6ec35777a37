// The page's formatting of times and durations, and the cooled-down line of a runner or device:
// pure functions of their arguments (no DOM), so unit tests import them in Node. Re-exported by
// lib.js for the views; used by lists.js.

/** A moment as the time of day, in the browser's locale ("" for none). */
export const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");

/** `42s`, `2m05s`, `1h01m`: as the CLI's formatDuration (core/units.ts). */
export function duration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
      : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * `cooled down (until 12:03:00, 2m10s left)` while `until` (a device's cooled_until, ms) is ahead
 * of `now`: its attempts were lost again and again, so it gets no new leases until then. Null
 * when it is not cooled down (null, or past).
 */
export function cooledDown(until, now) {
  if (typeof until !== "number" || !(until > now)) return null;
  return `cooled down (until ${time(until)}, ${duration(until - now)} left)`;
}
