/**
 * The live progress display of `distro submit --watch|--wait`: on a terminal one line redrawn in
 * place (a bar, counts by state, rate, ETA), elsewhere plain lines, at most one a second and one
 * for every change of status. Pure apart from the sink it writes to.
 */
import { finished } from "../core/status.js";
import { formatDuration, formatSize } from "../core/units.js";
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

/**
 * The upload of a submission's input files: on a terminal a bar redrawn in place, elsewhere a
 * line at most every two seconds; nothing for less than 1 MiB in all, or when `quiet`.
 */
export class UploadProgress {
  private done_ = 0;
  private files = 0;
  private last = -Infinity;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink & { quiet: boolean },
    private readonly count: number,
    private readonly total: number,
    private readonly now: () => number = Date.now,
  ) {}

  private get shown(): boolean {
    return !this.sink.quiet && this.total >= 1024 * 1024;
  }

  /** `bytes` of the current file have gone. */
  sent(bytes: number): void {
    if (!this.shown) return;
    const at = this.done_ + bytes;
    const text = `uploading inputs: ${formatSize(at)} of ${formatSize(this.total)} (${this.files}/${this.count} blobs)`;
    if (this.sink.tty) {
      this.sink.write(`\r\x1b[2K${bar(at, this.total)} ${text}`);
      this.drawn = true;
    } else if (this.now() - this.last >= 2000) {
      this.sink.write(`${text}\n`);
      this.last = this.now();
    }
  }

  /** A file of `bytes` is uploaded. */
  done(bytes: number): void {
    this.done_ += bytes;
    this.files++;
    this.sent(0);
  }

  /** All are uploaded; `kept` files the coordinator had already. */
  end(kept: number): void {
    if (this.drawn) this.sink.write("\n");
    if (this.sink.quiet) return;
    const had = kept > 0 ? `, ${kept} already there` : "";
    const blobs = (n: number) => `${n} blob${n === 1 ? "" : "s"}`;
    if (this.count > 0 || kept > 0)
      this.sink.write(`inputs: ${blobs(this.count)} uploaded (${formatSize(this.total)})${had}\n`);
  }
}
