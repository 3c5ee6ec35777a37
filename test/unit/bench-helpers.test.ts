// The bench's pure helpers: the CPU split of the local system from /proc (bench/cpu.ts), the
// percentiles and the run profile it prints (bench/common.ts).
import { describe, expect, it } from "vitest";
import { cpuBetween, formatCpu, machineBusy, parseStat, splitTicks, type ProcStat } from "../../bench/cpu";
import { exactly, median, percentile, profileOf } from "../../bench/common";
import type { RunSummary } from "../../core/api";

/** A /proc/<pid>/stat line with these times (the fields the split does not read are zeros). */
const statLine = (pid: number, comm: string, ppid: number, [u, s, cu, cs]: number[]) =>
  `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194304 101 0 0 0 ${u} ${s} ${cu} ${cs} 20 0 1 0 3377524 3133440 357`;

const proc = (pid: number, ppid: number, comm: string, own: number, reaped = 0): ProcStat => ({
  pid,
  ppid,
  comm,
  own,
  reaped,
});

describe("the bench's CPU split", () => {
  it("reads a stat line, a command name with spaces and parentheses too", () => {
    expect(parseStat(statLine(2074, "cat", 2071, [3, 4, 5, 6]))).toEqual({
      pid: 2074,
      ppid: 2071,
      comm: "cat",
      own: 7,
      reaped: 11,
    });
    expect(parseStat(statLine(9, "a (b) c", 1, [1, 1, 0, 0]))?.comm).toBe("a (b) c");
    expect(parseStat("not a stat line")).toBeNull();
  });

  it("splits the coordinator's tree into workerd and the rest, each runner's tree, and the client alone", () => {
    const procs = [
      proc(10, 1, "bench", 5, 1000), // the client: its reaped children (earlier runners) are not its own work
      proc(20, 10, "node", 30, 2), // wrangler
      proc(21, 20, "esbuild", 4),
      proc(22, 20, "workerd", 100, 3),
      proc(23, 22, "workerd-child", 7),
      proc(30, 10, "node", 50), // runner a
      proc(31, 30, "helper", 1),
      proc(40, 10, "node", 60), // runner b
      proc(50, 1, "other", 999), // not ours
    ];
    const split = splitTicks(procs, { coordinator: 20, runners: { a: 30, b: 40 }, client: 10 });
    expect(split).toEqual({ workerd: 110, wrangler: 36, a: 51, b: 60, client: 5 });
  });

  it("counts a process that is gone as nothing, and busy time of the machine without idle and iowait", () => {
    expect(splitTicks([], { coordinator: 1, runners: { a: 2 }, client: 3 })).toEqual({
      workerd: 0,
      wrangler: 0,
      a: 0,
      client: 0,
    });
    expect(machineBusy("cpu  10 1 5 1000 50 2 3 4 0 0\ncpu0 1 2 3\n")).toBe(25);
  });

  it("prints seconds and shares of the processes' total, and the rest of the machine", () => {
    const before = { groups: { workerd: 1, client: 0 }, machine: 10, at: 0 };
    const after = { groups: { workerd: 4, client: 1 }, machine: 16, at: 2000 };
    const spent = cpuBetween(before, after);
    expect(spent).toEqual({ groups: { workerd: 3, client: 1 }, machine: 6, at: 2000 });
    const lines = formatCpu(spent, { workerd: "workerd" }, 2);
    expect(lines[0]).toMatch(/^ {2}workerd +3\.00 s +75%$/);
    expect(lines[1]).toMatch(/^ {2}client +1\.00 s +25%$/);
    expect(lines[2]).toMatch(/total +4\.00 s +\(100% of 2 cores × 2\.0 s\)/);
    expect(lines[3]).toMatch(/rest of the machine +2\.00 s$/);
  });
});

describe("the bench's figures", () => {
  it("takes medians and nearest-rank percentiles", () => {
    const xs = [5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
    expect(median([3, 1, 2])).toBe(2);
    expect(percentile(xs, 90)).toBe(9);
    expect(percentile(xs, 100)).toBe(10);
    expect(percentile(xs, 0)).toBe(1);
  });

  it("reads a run's profile only when the coordinator put a whole one in its summary", () => {
    const summary = (profile?: unknown): RunSummary => Object.assign({} as RunSummary, { profile });
    expect(profileOf(summary())).toBeUndefined();
    expect(profileOf(summary({ messages: 3 }))).toBeUndefined();
    expect(profileOf(summary({ messages: 3, statements: 40 }))).toEqual({
      messages: 3,
      statements: 40,
    });
  });

  it("waits for exactly the runners it names", () => {
    expect(exactly(["a"])(["a"])).toBe(true);
    expect(exactly(["a"])(["a", "b"])).toBe(false);
    expect(exactly(["a", "b"])(["b", "a"])).toBe(true);
  });
});
