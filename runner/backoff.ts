/**
 * The runner's one back-off schedule, for the sockets (link.ts) and for enrolling (enroll.ts):
 * capped exponential with jitter, so many runners coming back at once spread out.
 */
export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** After a rate-limit close (4429), the least wait before reconnecting. */
  limitedMs: number;
}

/**
 * The wait before the next try after `steps` failures: a ceiling of initialMs·factor^steps (at
 * most maxMs), of which a random half or more, and never less than `floorMs`.
 */
export function retryDelay(steps: number, backoff: Backoff, random: () => number, floorMs = 0): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** steps);
  return Math.max(floorMs, Math.round(ceiling / 2 + (random() * ceiling) / 2));
}

/** A delay as the log lines say it: "1.5s". */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
