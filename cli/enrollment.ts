/**
 * `distro runners add`'s flags made into the EnrollmentRequest it posts, checked here so a typo
 * is a usage error naming the flag before any request (the coordinator checks them again).
 */
import type { EnrollmentRequest } from "../core/api.js";
import { ENROLLMENT_LIMITS, LABEL, ttlMs } from "../core/enrollment.js";
import { UsageError } from "./command.js";

const { labels: MAX_LABELS, uses: MAX_USES } = ENROLLMENT_LIMITS;

interface EnrollmentFlags {
  labels?: string;
  uses?: string;
  ttl?: string;
  trusted?: boolean;
}

/**
 * The request for `--labels a,b --uses N --ttl 1h --trusted`; what is not given is left to the
 * coordinator's defaults (one use, one hour). A bad value is a UsageError saying what was expected.
 */
export function enrollmentRequest(flags: EnrollmentFlags): EnrollmentRequest {
  const request: EnrollmentRequest = {};
  if (flags.labels !== undefined) {
    const labels = flags.labels.split(",").map((l) => l.trim());
    const bad = labels.find((l) => !LABEL.test(l));
    if (bad !== undefined)
      throw new UsageError(`--labels: "${bad}" is not a label (1 to 64 of letters, digits, _ . : -)`);
    if (labels.length > MAX_LABELS)
      throw new UsageError(`--labels: at most ${MAX_LABELS} labels, got ${labels.length}`);
    request.labels = [...new Set(labels)];
  }
  if (flags.uses !== undefined) {
    const uses = /^\d+$/.test(flags.uses) ? Number(flags.uses) : NaN;
    if (!(uses >= 1 && uses <= MAX_USES))
      throw new UsageError(`--uses: expected a whole number from 1 to ${MAX_USES}, got "${flags.uses}"`);
    request.uses = uses;
  }
  if (flags.ttl !== undefined) {
    // A bare number is seconds, as the API takes it; else a duration ("90s", "30m", "1h", "2d").
    if (ttlMs(flags.ttl) === undefined)
      throw new UsageError(
        `--ttl: expected a duration from 1s to 30d such as "1h" or "2d" (or seconds), got "${flags.ttl}"`,
      );
    request.ttl = /^\d+$/.test(flags.ttl) ? Number(flags.ttl) : flags.ttl;
  }
  if (flags.trusted) request.trusted = true;
  return request;
}
