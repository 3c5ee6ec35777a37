/**
 * Units used in DAG files: durations ("30s", "1.5m", 250 = ms) and sizes ("64MiB", "1GB",
 * 1048576 = bytes), and sizes written back for people. Pure; used by the coordinator, the
 * runner and the CLI.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/** Milliseconds for "30s", "250ms", "2m", "1h", "2d" or a bare number of milliseconds; undefined if malformed. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value > 0 ? value : undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * DURATION_MS[m[2]!]!;
  return ms > 0 ? Math.round(ms) : undefined;
}

/** Bytes for "64MiB", "1GB", "512" or a bare number of bytes; undefined if malformed. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * SIZE_BYTES[m[2] ?? "B"]!);
  return bytes > 0 ? bytes : undefined;
}

/** "512 B", "1.5 KiB", "22.2 GiB": bytes in the largest binary unit that keeps the number ≥ 1. */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  for (; bytes >= 1024 && i < units.length - 1; i++) bytes /= 1024;
  return `${Number(bytes.toFixed(1))} ${units[i]}`;
}

/** A duration for people: `42s`, `2m05s`, `1h01m`. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
