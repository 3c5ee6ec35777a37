/**
 * What the benchmark scenarios share: medians and percentiles, the printed list of runs, running
 * a DAG to its end as the coordinator times it, and waiting for runners.
 */
import type { Client } from "../cli/client.js";
import type { RunSummary } from "../core/api.js";
import { isFinal } from "../core/status.js";

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** The `p`-th percentile of `xs` (nearest rank; p from 0 to 100). */
export const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
};
/** The runs of a measurement, as printed: "460, 579, 681". */
export const runs = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(", ");

/**
 * What a profiled coordinator (var PROFILE_RUNS=1) adds to a finished run's summary: the incoming
 * runner messages and the SQL statements of the run's Durable Object. Absent on a coordinator
 * that does not profile.
 */
export interface RunProfile {
  messages: number;
  statements: number;
}

/** A run as the coordinator measured it: created → finished, its summary, and its profile if any. */
export interface TimedRun {
  ms: number;
  summary: RunSummary;
  profile?: RunProfile;
}

/** The profile of a summary, when the coordinator put a well-formed one there. */
export function profileOf(summary: RunSummary): RunProfile | undefined {
  const profile = (summary as { profile?: Partial<RunProfile> }).profile;
  if (typeof profile?.messages !== "number" || typeof profile.statements !== "number") return undefined;
  return { messages: profile.messages, statements: profile.statements };
}

/** A run that has not ended in this long fails the bench, so that it stays bounded. */
const RUN_DEADLINE_MS = 10 * 60_000;

/**
 * Polls run `id` every `pollMs` until it ends (polling costs CPU the run shares); it must succeed.
 * Its time is the coordinator's own, so the polling does not add to it.
 */
export async function finishRun(client: Client, id: string, pollMs = 50): Promise<TimedRun> {
  const deadline = Date.now() + RUN_DEADLINE_MS;
  for (;;) {
    const summary = await client.summary(id);
    if (isFinal(summary.status)) {
      if (summary.status !== "succeeded") throw new Error(`bench run ${id} ended ${summary.status}`);
      return { ms: summary.finished_at! - summary.created_at, summary, profile: profileOf(summary) };
    }
    if (Date.now() > deadline)
      throw new Error(`bench run ${id} did not end in ${RUN_DEADLINE_MS / 1000} s: ${JSON.stringify(summary.counts)}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Runs a DAG and returns the coordinator's measure of it. With `watchers`, that many watch
 * sockets follow the run, and each must see it end.
 */
export async function timeRun(client: Client, yaml: string, pollMs = 50, watchers = 0): Promise<TimedRun> {
  const { id } = await client.submit(yaml);
  const watching = Array.from({ length: watchers }, () => client.watch(id, () => {}));
  const run = await finishRun(client, id, pollMs);
  const seen = await Promise.all(watching);
  if (seen.some((r) => r.status !== "succeeded")) throw new Error(`a watcher of ${id} missed the end`);
  return run;
}

/** Resolves once the connected runners' names satisfy `check`; fails after `timeoutMs`. */
export async function pollRunners(
  client: Client,
  check: (names: string[]) => boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { runners } = await client.json<{ runners: { name: string }[] }>("/api/runners");
    const names = runners.map((r) => r.name);
    if (check(names)) return;
    if (Date.now() > deadline)
      throw new Error(`the pool lists runners [${names.join(", ")}], not what the bench waits for`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether `names` are exactly `expected`, in any order. */
export const exactly = (expected: string[]) => (names: string[]) =>
  names.length === expected.length && expected.every((n) => names.includes(n));

/** A fresh nonce for a task's params, so that a run with the result cache on misses it for real. */
export const nonce = () => Math.random().toString(36).slice(2, 12);
