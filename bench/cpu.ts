/**
 * Where the CPU goes during a measurement (docs/benchmarks.md, "Where the time goes"): CPU time of
 * each process tree of the local system from /proc (Linux), split into workerd (the coordinator's
 * runtime), wrangler's own node process and its other descendants (the dev proxy, the bundler),
 * each runner process (with its task threads), and the bench process itself (the client), beside
 * what the whole machine spent. The parsing and the split are pure, for test/unit/bench-cpu.test.ts.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** One line of /proc/<pid>/stat, as far as the split needs it. */
export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime of the process (all its threads). */
  own: number;
  /** cutime + cstime: its children that ended and were waited for. */
  reaped: number;
}

/** Parses /proc/<pid>/stat; null when it is not one (the command name may hold spaces and parentheses). */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  // After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const field = (i: number) => Number(rest[i]);
  const [ppid, utime, stime, cutime, cstime] = [1, 11, 12, 13, 14].map(field);
  const pid = Number(text.slice(0, open).trim());
  if (![pid, ppid, utime, stime, cutime, cstime].every(Number.isFinite)) return null;
  return { pid, ppid: ppid!, comm: text.slice(open + 1, close), own: utime! + stime!, reaped: cutime! + cstime! };
}

/** The processes that make up the local system. */
export interface CpuRoots {
  /** wrangler's node process (`wrangler dev`); workerd runs among its descendants. */
  coordinator: number;
  /** Each runner process, by the name printed for it. */
  runners: Record<string, number>;
  /** The bench process: counted alone, since the coordinator and runners are its children. */
  client: number;
}

/** CPU ticks by group: workerd, wrangler, each runner, client. */
export type CpuTicks = Record<string, number>;

/**
 * Splits `procs` into the groups of `roots`. A tree counts what its processes spent and what their
 * ended children spent; workerd is every process named workerd under the coordinator, with its
 * descendants, and wrangler the rest of the coordinator's tree. The client counts only itself.
 */
export function splitTicks(procs: ProcStat[], roots: CpuRoots): CpuTicks {
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const tree = (pid: number): ProcStat[] => {
    const root = byPid.get(pid);
    if (!root) return [];
    const out: ProcStat[] = [];
    const stack = [root];
    while (stack.length) {
      const p = stack.pop()!;
      out.push(p);
      stack.push(...(children.get(p.pid) ?? []));
    }
    return out;
  };
  const ticks = (ps: ProcStat[]) => ps.reduce((sum, p) => sum + p.own + p.reaped, 0);
  const coordinator = tree(roots.coordinator);
  const workerd = new Set(coordinator.filter((p) => p.comm === "workerd").flatMap((p) => tree(p.pid)));
  const split: CpuTicks = {
    workerd: ticks([...workerd]),
    wrangler: ticks(coordinator.filter((p) => !workerd.has(p))),
  };
  for (const [name, pid] of Object.entries(roots.runners)) split[name] = ticks(tree(pid));
  split.client = byPid.get(roots.client)?.own ?? 0;
  return split;
}

/** Busy ticks of the whole machine from the first line of /proc/stat (all but idle and iowait). */
export function machineBusy(procStat: string): number {
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = procStat
    .split("\n")[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return [user, nice, system, irq, softirq, steal].reduce((a: number, b) => a + (b ?? 0), 0);
}

/** Every process's stat now; those that end while being read are left out. */
function readProcs(): ProcStat[] {
  const procs: ProcStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = parseStat(readFileSync(`/proc/${entry}/stat`, "utf8"));
      if (stat) procs.push(stat);
    } catch {
      // ended meanwhile
    }
  }
  return procs;
}

/** A sample of the split and the machine, in seconds. */
export interface CpuSample {
  groups: Record<string, number>;
  machine: number;
  at: number;
}

let tickHz: number | undefined;
/** USER_HZ, the unit of /proc's times (100 nearly everywhere). */
function hz(): number {
  tickHz ??= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
  return tickHz;
}

/** The CPU seconds each group and the machine have spent so far. */
export function sampleCpu(roots: CpuRoots): CpuSample {
  const perSec = hz();
  const groups = Object.fromEntries(Object.entries(splitTicks(readProcs(), roots)).map(([k, v]) => [k, v / perSec]));
  return { groups, machine: machineBusy(readFileSync("/proc/stat", "utf8")) / perSec, at: performance.now() };
}

/** What was spent between two samples. */
export function cpuBetween(before: CpuSample, after: CpuSample): CpuSample {
  const groups = Object.fromEntries(
    Object.entries(after.groups).map(([k, v]) => [k, Math.max(0, v - (before.groups[k] ?? 0))]),
  );
  return { groups, machine: after.machine - before.machine, at: after.at - before.at };
}

/** Lines that print a split: seconds and % of the processes' total, then the rest of the machine. */
export function formatCpu(spent: CpuSample, labels: Record<string, string>, cores: number): string[] {
  const total = Object.values(spent.groups).reduce((a, b) => a + b, 0);
  const width = Math.max(
    ...Object.keys(spent.groups).map((k) => (labels[k] ?? k).length),
    "rest of the machine".length,
  );
  const line = (label: string, s: number, note: string) =>
    `  ${label.padEnd(width)} ${s.toFixed(2).padStart(7)} s${note}`;
  const pct = (s: number) => `  ${((100 * s) / (total || 1)).toFixed(0).padStart(3)}%`;
  const wall = spent.at / 1000;
  return [
    ...Object.entries(spent.groups).map(([k, s]) => line(labels[k] ?? k, s, pct(s))),
    line(
      "total",
      total,
      `  (${((100 * total) / (wall * cores)).toFixed(0)}% of ${cores} cores × ${wall.toFixed(1)} s)`,
    ),
    line("rest of the machine", Math.max(0, spent.machine - total), ""),
  ];
}
