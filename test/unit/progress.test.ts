// The CLI's progress display: the bar and counts redrawn in place on a terminal, plain lines
// (one a second at most, and on every status change) elsewhere; rate and ETA from a fake clock.
import { describe, expect, it } from "vitest";
import { bar, Progress, progressText, UploadProgress } from "../../cli/progress";
import { formatDuration } from "../../core/units";

const run = (status: string, counts: Record<string, number>, total = 100) => ({ status, counts, tasks_total: total });

describe("progress", () => {
  it("says how far the run is, what runs, the rate and the time left", () => {
    expect(progressText(run("running", { succeeded: 40, failed: 2, leased: 4, ready: 50, waiting: 4 }), 10)).toBe(
      "running 42% 42/100 done · 4 running · 50 ready · 4 waiting · 2 failed · 10 tasks/s · ETA 6s",
    );
    expect(progressText(run("succeeded", { succeeded: 100 }), 2.5)).toBe("succeeded 100% 100/100 done · 2.5 tasks/s");
    expect(bar(1, 4, 8)).toBe("[##------]");
    expect(formatDuration(125_000)).toBe("2m05s");
    expect(formatDuration(3_700_000)).toBe("1h01m");
  });

  it("redraws one line on a terminal and ends it when the run ends", () => {
    let clock = 0;
    let screen = "";
    const progress = new Progress({ tty: true, columns: 200, write: (t) => (screen += t) }, () => clock);
    progress.update(run("running", { succeeded: 0, ready: 100 }));
    clock = 2000;
    progress.update(run("running", { succeeded: 50, leased: 2, ready: 48 }));
    clock = 4000;
    progress.update(run("succeeded", { succeeded: 100 }));
    const frames = screen.split("\r\x1b[2K").filter(Boolean);
    expect(frames).toHaveLength(3);
    expect(frames[1]).toBe(
      "[##########----------] running 50% 50/100 done · 2 running · 48 ready · 25 tasks/s · ETA 2s",
    );
    expect(frames[2]).toBe("[####################] succeeded 100% 100/100 done · 25 tasks/s\n");
  });

  it("prints plain lines elsewhere: at most one a second, and every change of status", () => {
    let clock = 0;
    const lines: string[] = [];
    const progress = new Progress({ tty: false, write: (t) => lines.push(t) }, () => clock);
    progress.update(run("queued", { ready: 100 }));
    clock = 100;
    progress.update(run("running", { succeeded: 1, leased: 2, ready: 97 }));
    for (clock = 200; clock < 1000; clock += 100)
      progress.update(run("running", { succeeded: clock / 100, ready: 100 - clock / 100 }));
    clock = 1200;
    progress.update(run("running", { succeeded: 30, ready: 70 }));
    clock = 2000;
    progress.update(run("succeeded", { succeeded: 100 }));
    progress.end();
    expect(lines).toEqual([
      "[0s] queued 0% 0/100 done · 100 ready\n",
      "[0s] running 1% 1/100 done · 2 running · 97 ready\n",
      "[1s] running 30% 30/100 done · 70 ready · 25 tasks/s · ETA 3s\n",
      "[2s] succeeded 100% 100/100 done · 50 tasks/s\n",
    ]);
  });
});

describe("upload progress", () => {
  const MiB = 1024 * 1024;
  it("redraws a bar on a terminal, prints a line at most every 2 s elsewhere, and sums up", () => {
    let screen = "";
    const tty = new UploadProgress({ tty: true, quiet: false, write: (t) => (screen += t) }, 2, 4 * MiB);
    tty.sent(MiB);
    tty.done(2 * MiB);
    tty.sent(MiB);
    tty.done(2 * MiB);
    tty.end(3);
    expect(screen.split("\r\x1b[2K").filter(Boolean)).toEqual([
      "[#####---------------] uploading inputs: 1 MiB of 4 MiB (0/2 blobs)",
      "[##########----------] uploading inputs: 2 MiB of 4 MiB (1/2 blobs)",
      "[###############-----] uploading inputs: 3 MiB of 4 MiB (1/2 blobs)",
      "[####################] uploading inputs: 4 MiB of 4 MiB (2/2 blobs)\ninputs: 2 blobs uploaded (4 MiB), 3 already there\n",
    ]);
    let clock = 0;
    const lines: string[] = [];
    const plain = new UploadProgress(
      { tty: false, quiet: false, write: (t) => lines.push(t) },
      1,
      2 * MiB,
      () => clock,
    );
    plain.sent(MiB);
    clock = 1000;
    plain.sent(1.5 * MiB);
    clock = 2500;
    plain.done(2 * MiB);
    plain.end(0);
    expect(lines).toEqual([
      "uploading inputs: 1 MiB of 2 MiB (0/1 blobs)\n",
      "uploading inputs: 2 MiB of 2 MiB (1/1 blobs)\n",
      "inputs: 1 blob uploaded (2 MiB)\n",
    ]);
  });

  it("shows nothing for less than 1 MiB but the sum, and nothing at all when quiet (--json)", () => {
    const lines: string[] = [];
    const small = new UploadProgress({ tty: false, quiet: false, write: (t) => lines.push(t) }, 1, 100);
    small.sent(100);
    small.done(100);
    small.end(0);
    expect(lines).toEqual(["inputs: 1 blob uploaded (100 B)\n"]);
    const quiet = new UploadProgress({ tty: true, quiet: true, write: (t) => lines.push(t) }, 1, 8 * MiB);
    quiet.sent(MiB);
    quiet.end(0);
    expect(lines).toHaveLength(1);
  });
});
