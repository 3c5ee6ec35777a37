/**
 * What an enrollment may be, for the coordinator that mints it and the CLI that asks for it (and
 * the runner that takes its labels): labels, how many devices it admits and how long it lasts.
 */
import { parseDuration } from "./units.js";

/** A label tasks can require: what `--labels` and an enrollment's labels take. */
export const LABEL = /^[A-Za-z0-9_.:-]{1,64}$/;

export const ENROLLMENT_LIMITS = { labels: 64, uses: 1000, ttlMs: 30 * 86_400_000 };

/**
 * A lifetime in ms from a `ttl`: seconds (a number, or a string of digits) or a duration ("90s",
 * "30m", "1h", "2d"); undefined unless it is from 1 s to `maxMs` (an enrollment's 30 days by default).
 */
export function ttlMs(ttl: string | number, maxMs = ENROLLMENT_LIMITS.ttlMs): number | undefined {
  const ms = typeof ttl === "number" || /^\d+$/.test(ttl) ? Number(ttl) * 1000 : parseDuration(ttl);
  return ms !== undefined && ms >= 1000 && ms <= maxMs ? ms : undefined;
}
