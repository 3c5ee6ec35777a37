/**
 * A hand-checked path for the hottest frame, a runner's `results` of tasks that succeeded inline:
 * a run's object decodes one every few tasks, and the schema's generic walk was a tenth of its
 * time in a fan-out (docs/benchmarks.md, fifth sitting). It never rejects: it vouches for a frame
 * only when every field is one the schema accepts, and builds the message the schema would (the
 * same fields, defaults and key order); anything else (a failure, an uploaded output, a field
 * it does not know, a bound it cannot judge by `length`) is left to the schema, which says what
 * is wrong. test/unit/fast-results.test.ts checks it against the schema on generated frames.
 */
import { FRAME_LIMITS, type RunnerMessage, type TaskResult } from "./messages.js";

type Results = Extract<RunnerMessage, { type: "results" }>;
type Ref = { task: string; attempt: number };

const FRAME_KEYS = new Set(["type", "results", "want", "received", "started"]);
const RESULT_KEYS = new Set(["task", "attempt", "ok", "output", "stderr", "durationMs"]);
const REF_KEYS = new Set(["task", "attempt"]);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const only = (o: Record<string, unknown>, keys: ReadonlySet<string>) => Object.keys(o).every((k) => keys.has(k));
const int = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
// The schema's bounds on a string count no more than its UTF-16 length: within them by `length`
// is within them for the schema.
const text = (v: unknown, min: number, max: number): v is string =>
  typeof v === "string" && v.length >= min && v.length <= max;
const taskKey = (v: unknown): v is string => text(v, 1, FRAME_LIMITS.taskKeyChars);

function ref(v: unknown): Ref | undefined {
  if (!isRecord(v) || !only(v, REF_KEYS) || !taskKey(v.task) || !int(v.attempt, 1)) return undefined;
  return { task: v.task, attempt: v.attempt };
}

function result(v: unknown): TaskResult | undefined {
  if (!isRecord(v) || !only(v, RESULT_KEYS)) return undefined;
  const { task, attempt, ok, output, stderr, durationMs } = v;
  if (!taskKey(task) || !int(attempt, 1) || typeof ok !== "boolean") return undefined;
  if (output !== undefined && typeof output !== "string") return undefined;
  if (stderr !== undefined && !text(stderr, 0, FRAME_LIMITS.stderrChars)) return undefined;
  if (typeof durationMs !== "number" || !Number.isFinite(durationMs) || durationMs < 0) return undefined;
  // The schema's key order: an absent output is no key at all.
  if (output === undefined) return { task, attempt, ok, stderr: stderr ?? "", durationMs };
  return { task, attempt, ok, output, stderr: stderr ?? "", durationMs };
}

/** The `results` message `value` (parsed JSON) is, if this path can vouch for it; else undefined. */
export function fastResults(value: unknown): Results | undefined {
  if (!isRecord(value) || value.type !== "results" || !only(value, FRAME_KEYS)) return undefined;
  const { results: raw, want, received, started: marks } = value;
  if (!Array.isArray(raw) || raw.length < 1 || raw.length > FRAME_LIMITS.resultsPerFrame) return undefined;
  if (!int(want, 0, FRAME_LIMITS.want) || !int(received, 0)) return undefined;
  if (marks !== undefined && (!Array.isArray(marks) || marks.length > FRAME_LIMITS.attemptRefs)) return undefined;
  const results: TaskResult[] = [];
  for (const r of raw) {
    const checked = result(r);
    if (!checked) return undefined;
    results.push(checked);
  }
  const started: Ref[] = [];
  for (const m of (marks as unknown[] | undefined) ?? []) {
    const checked = ref(m);
    if (!checked) return undefined;
    started.push(checked);
  }
  return { type: "results", results, want, received, started };
}
