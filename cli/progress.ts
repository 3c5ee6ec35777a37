/**
 * The live progress display of `distro submit --watch|--wait`: on a terminal one line redrawn in
 * place (a bar, counts by state, rate, ETA), elsewhere plain lines, at most one a second and one
 * for every change of status. Pure apart from the sink it writes to.
 */
import { finished } from "../core/status.js";
import { formatDuration } from "../core/units.js";
import { safe } from "./terminal.js";

/** What the display needs of a run (a summary, a watch update's `run`, a run listing). */
export interface RunLike {
  status: string;
  counts: Partial<Record<string, number>>;
  tasks_total: number;
}

export interface ProgressSink {
  /** A terminal: redraw one line in place. Else print lines. */
  tty: boolean;
  columns?: number;
  write(text: string): void;
}

const SHOWN = ["leased", "ready", "waiting", "lookup", "backoff", "blocked", "failed", "skipped", "cancelled"] as const;
const LABEL: Partial<Record<string, string>> = { leased: "running" };

/**
 * "42% 420/1000 done · 4 running · 570 ready · 1 failed · 12.5 tasks/s · ETA 46s" (the bar is
 * added on a terminal).
 */
export function progressText(run: RunLike, perSecond: number | null): string {
  const done = finished(run.counts);
  const total = run.tasks_total;
  const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
  const parts = [`${safe(run.status)} ${percent}% ${done}/${total} done`];
  for (const state of SHOWN)
    if ((run.counts[state] ?? 0) > 0) parts.push(`${run.counts[state]} ${LABEL[state] ?? state}`);
  if (perSecond !== null && perSecond > 0) {
    parts.push(`${perSecond >= 10 ? Math.round(perSecond) : perSecond.toFixed(1)} tasks/s`);
    if (done < total) parts.push(`ETA ${formatDuration(((total - done) / perSecond) * 1000)}`);
  }
  return parts.join(" · ");
}

export function bar(done: number, total: number, width = 20): string {
  const full = total === 0 ? width : Math.round((done / total) * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}]`;
}

export class Progress {
  private first: { at: number; done: number } | undefined;
  private lastLine = { at: 0, status: "", text: "" };
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly now: () => number = Date.now,
  ) {}

  /** Shows the run as it is now. */
  update(run: RunLike): void {
    const now = this.now();
    const done = finished(run.counts);
    this.first ??= { at: now, done };
    const elapsed = (now - this.first.at) / 1000;
    const rate = elapsed >= 0.5 ? (done - this.first.done) / elapsed : null;
    const text = progressText(run, rate);
    const final = done === run.tasks_total && run.status !== "running" && run.status !== "queued";
    if (this.sink.tty) {
      const line = `${bar(done, run.tasks_total)} ${text}`.slice(0, Math.max(20, (this.sink.columns ?? 100) - 1));
      this.sink.write(`\r\x1b[2K${line}${final ? "\n" : ""}`);
      this.drawn = !final;
      return;
    }
    const changed = run.status !== this.lastLine.status;
    if (text === this.lastLine.text || (!changed && !final && now - this.lastLine.at < 1000)) return;
    this.sink.write(`[${formatDuration(now - this.first.at)}] ${text}\n`);
    this.lastLine = { at: now, status: run.status, text };
  }

  /** Ends the display (a terminal line is closed with a newline). */
  end(): void {
    if (this.drawn) this.sink.write("\n");
    this.drawn = false;
  }
}
