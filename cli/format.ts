/**
 * What `distro runs`, `status`, `runners`, `runners add` and `runners trust`/`untrust` print, as lines: pure functions of
 * the coordinator's answers, with every field from it made terminal-safe (`terminal.ts`).
 */
import { formatDuration, formatSize } from "../core/units.js";
import type {
  DeviceView,
  EnrollmentCreated,
  RunListing,
  RunnerView,
  RunView,
  TokenCreated,
  TokenView,
  TrustAnswer,
} from "../core/api.js";
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

/** `2026-12-01 09:30:00`: a time in UTC, to the second. */
function utc(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

/** A stretch of time for people: `42s`, `2m05s`, `1h01m` (formatDuration), whole days from 48 hours on: `30d`. */
function span(ms: number): string {
  const days = ms / 86_400_000;
  return days >= 2 ? `${Math.round(days)}d` : formatDuration(Math.max(0, ms));
}

/** `42s ago`, `2m05s ago`, `3d ago`: how long before `now` (a time ahead of it, a skewed clock, counts as now). */
function ago(ms: number, now: number): string {
  return `${span(now - ms)} ago`;
}

export function runLines(runs: RunListing[], now = Date.now()): string[] {
  if (runs.length === 0) return ["no runs yet"];
  const rows = runs.map((r) => [
    safe(r.id.slice(0, 12)),
    safe(r.name),
    safe(r.status),
    `${finished(r.counts)}/${r.tasks}`,
    utc(r.created_at),
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

/**
 * `cooled down for 2m10s`: its device lost attempts again and again, so it gets no new leases
 * until `until`; null when that is past (or it was never cooled down).
 */
export function cooledDown(until: number | null, now: number): string | null {
  return until !== null && until > now ? `cooled down for ${span(until - now)}` : null;
}

export function runnerLines(runners: RunnerView[], now = Date.now()): string[] {
  if (runners.length === 0) return ["no runners connected"];
  const rows = runners.map((r) => [
    safe(r.name),
    `${safe(r.platform)}/${safe(r.arch)}`,
    `${r.busy}/${r.slots}`,
    r.load === null ? "-" : `${Math.round(r.load)}%`,
    `${formatSize(r.freeMemory)} of ${formatSize(r.memory)}`,
    safe(r.labels.join(",")) || "-",
    String(r.runs.length),
    cooledDown(r.cooled_until, now) ?? "ready",
  ]);
  return table(["NAME", "PLATFORM", "BUSY", "CPU", "FREE MEMORY", "LABELS", "RUNS", "STATE"], rows);
}

/**
 * A device's state: revoked (and when) over cooled down (and for how long), over connected, else
 * when it was last seen, or never.
 */
function deviceState(d: DeviceView, now: number): string {
  if (d.revoked_at !== null) return `revoked ${ago(d.revoked_at, now)}`;
  const cooled = cooledDown(d.cooled_until, now);
  if (cooled !== null) return cooled;
  if (d.connected) return "connected";
  return d.last_seen === null ? "never" : `last seen ${ago(d.last_seen, now)}`;
}

export function deviceLines(devices: DeviceView[], now = Date.now()): string[] {
  if (devices.length === 0) return ["no devices enrolled (distro runners add)"];
  const rows = devices.map((d) => [
    safe(d.id),
    safe(d.name),
    deviceState(d, now),
    safe(d.labels.join(",")) || "-",
    d.trusted ? "yes" : "no",
  ]);
  return table(["DEVICE", "NAME", "STATE", "LABELS", "TRUSTED"], rows);
}

/** `distro runners trust` / `untrust`: the device's trust now, and the cache entries purged with it. */
export function trustLine(answer: TrustAnswer, trusted: boolean): string {
  const id = safe(answer.device.id);
  if (trusted) return `trusted device ${id}: the outputs it produces are filed in the result cache`;
  const entries = answer.purged === 1 ? "entry" : "entries";
  return `untrusted device ${id}: ${answer.purged} result cache ${entries} purged`;
}

/** `distro tokens`: each token, its scope and its state (good until, expired, revoked). */
export function tokenLines(tokens: TokenView[], now = Date.now()): string[] {
  if (tokens.length === 0) return ["no tokens (distro tokens create --name NAME --scope read|submit|admin)"];
  const state = (t: TokenView) =>
    t.revoked_at !== null
      ? `revoked ${utc(t.revoked_at)}`
      : t.expires_at === null
        ? "good, no expiry"
        : t.expires_at <= now
          ? `expired ${utc(t.expires_at)}`
          : `good until ${utc(t.expires_at)}`;
  const rows = tokens.map((t) => [safe(t.id), safe(t.name), t.scope, utc(t.created_at), state(t)]);
  return table(["TOKEN", "NAME", "SCOPE", "CREATED (UTC)", "STATE"], rows);
}

/** `distro tokens create`: the token, once, and what it may do. */
export function tokenCreatedLines(t: TokenCreated, now = Date.now()): string[] {
  const until =
    t.expires_at === null
      ? "it does not expire"
      : `good until ${utc(t.expires_at)} UTC (in ${span(t.expires_at - now)})`;
  return [
    `token ${safe(t.id)} (${safe(t.name)}), scope ${t.scope}: ${until}`,
    "",
    `  ${safe(t.token)}`,
    "",
    "It is shown only this once: the coordinator keeps its hash, not the token.",
    "Use it as DISTRO_TOKEN, --token, or on the status page; distro tokens revoke ID ends it.",
  ];
}

/** `distro runners add`: the enrollment, the command that joins a device with it per platform, and that its token is shown once. */
export function enrollmentLines(e: EnrollmentCreated, now = Date.now()): string[] {
  const labels = e.labels.length > 0 ? safe(e.labels.join(",")) : "none";
  const platforms = [
    ["Linux and macOS", e.commands.unix],
    ["Windows (PowerShell)", e.commands.powershell],
    ["Android (Termux)", e.commands.termux],
  ] as const;
  return [
    `enrollment ${safe(e.id)}: ${e.uses} device(s) may join until ${utc(e.expires_at)} UTC (in ${span(e.expires_at - now)})`,
    `labels: ${labels}; trusted: ${e.trusted ? "yes" : "no"}`,
    ...platforms.flatMap(([platform, line]) => ["", `${platform}:`, `  ${safe(line)}`]),
    "",
    "The token in these commands is shown only this once: it is not stored and cannot be listed again.",
    "Run the command on each device; distro runners lists them, distro runners revoke DEVICE removes one.",
  ];
}
