/**
 * How many tasks a runner holds beyond its slots (its prefetch, Q): about `horizonMs` of work
 * queued behind the running ones, judged from the median duration of its last `window`
 * attempts, at most `perSlot` × slots, and none while that median is `longMs` or more (a long
 * task gains nothing from waiting here, and another runner could have taken it). Before any
 * attempt has ended it prefetches nothing. A pure module: the Runner notes durations and reads
 * the depth.
 */
export const PREFETCH = { horizonMs: 100, perSlot: 8, longMs: 1000, window: 32 } as const;

export class Prefetch {
  private readonly durations: number[] = [];
  private next = 0;

  /** Notes how long an attempt ran (ms). */
  note(ms: number): void {
    if (this.durations.length < PREFETCH.window) this.durations.push(ms);
    else this.durations[this.next] = ms;
    this.next = (this.next + 1) % PREFETCH.window;
  }

  /** The median duration noted, or null before any. */
  median(): number | null {
    if (this.durations.length === 0) return null;
    const sorted = [...this.durations].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /** Q for a runner of `slots` slots: `slots` tasks run at once, so Q of them last Q × median / slots. */
  depth(slots: number): number {
    const median = this.median();
    if (median === null || median >= PREFETCH.longMs || slots <= 0) return 0;
    const q = Math.ceil((PREFETCH.horizonMs * slots) / Math.max(median, 0.05));
    return Math.min(PREFETCH.perSlot * slots, q);
  }
}
