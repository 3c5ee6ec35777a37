/**
 * What `distro runs`, `status` and `runners` print, as lines: pure functions of the
 * coordinator's answers, with every field from it made terminal-safe (`terminal.ts`).
 */
import { formatDuration, formatSize } from "../core/units.js";
import type { RunListing, RunnerView, RunView } from "../core/api.js";
import { finished } from "../core/status.js";
import { progressText } from "./progress.js";
import { safe, safeText } from "./terminal.js";

/** Columns padded to the widest cell; the last column is not padded. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "),
  );
}

export function runLines(runs: RunListing[], now = Date.now()): string[] {
  if (runs.length === 0) return ["no runs yet"];
  const rows = runs.map((r) => [
    safe(r.id.slice(0, 12)),
    safe(r.name),
    safe(r.status),
    `${finished(r.counts)}/${r.tasks}`,
    new Date(r.created_at).toISOString().replace("T", " ").slice(0, 19),
    formatDuration((r.finished_at ?? now) - r.created_at),
  ]);
  return table(["ID", "NAME", "STATUS", "DONE", "CREATED (UTC)", "DURATION"], rows);
}

export function statusLines(run: RunView): string[] {
  const rows = run.nodes.map((n) => [
    safe(n.id),
    n.instances === null ? "1" : String(n.instances),
    Object.entries(n.counts ?? {})
      .map(([state, count]) => `${count} ${safe(state)}`)
      .join(", "),
  ]);
  return [
    `${safe(run.name)} (${safe(run.id)})`,
    progressText(run, null),
    ...table(["TASK", "INSTANCES", "STATES"], rows),
    ...failedLines(run),
  ];
}

/** The failed tasks a run view holds (`?state=failed`), each with its last error and stderr tail. */
export function failedLines(run: RunView): string[] {
  const tasks = run.tasks;
  const lines: string[] = [];
  for (const t of tasks) {
    const last = t.attempts.at(-1);
    const why = `${safe(last?.failure_kind ?? "?")}: ${safe(last?.error ?? "no reason recorded")}`;
    lines.push(`task ${safe(t.id)} failed after ${t.attempts.length} attempt(s): ${why}`);
    if (last?.stderr)
      lines.push(`  stderr: ${safeText(last.stderr.trimEnd()).split("\n").slice(-5).join("\n          ")}`);
  }
  const more = (run.counts.failed ?? 0) - tasks.length;
  if (more > 0) lines.push(`… and ${more} more failed task(s)`);
  return lines;
}

export function runnerLines(runners: RunnerView[]): string[] {
  if (runners.length === 0) return ["no runners connected"];
  const rows = runners.map((r) => [
    safe(r.name),
    `${safe(r.platform)}/${safe(r.arch)}`,
    `${r.busy}/${r.slots}`,
    r.load === null ? "-" : `${Math.round(r.load)}%`,
    `${formatSize(r.freeMemory)} of ${formatSize(r.memory)}`,
    safe(r.labels.join(",")) || "-",
    String(r.runs.length),
  ]);
  return table(["NAME", "PLATFORM", "BUSY", "CPU", "FREE MEMORY", "LABELS", "RUNS"], rows);
}
