/**
 * How many tasks a runner holds beyond its slots (its prefetch, Q): about `horizonMs` of work
 * queued behind the running ones, judged from the mean duration of its last `window` attempts,
 * at most `perSlot` × slots, and none while that mean is `longMs` or more (a long task gains
 * nothing from waiting here, and another runner could have taken it). The mean, not the median:
 * held work is the sum of what is held, and tasks of one run can differ a hundredfold (the
 * median of a Mandelbrot's tiles is a light one, and a runner holding four heavy ones behind it
 * holds a second of work, not 100 ms). Before any attempt has ended it prefetches nothing. A
 * pure module: the Runner notes durations and reads the depth.
 */
export const PREFETCH = { horizonMs: 100, perSlot: 8, longMs: 1000, window: 16 } as const;

export class Prefetch {
  private readonly durations: number[] = [];
  private next = 0;

  /** Notes how long an attempt ran (ms). */
  note(ms: number): void {
    if (this.durations.length < PREFETCH.window) this.durations.push(ms);
    else this.durations[this.next] = ms;
    this.next = (this.next + 1) % PREFETCH.window;
  }

  /** The mean duration noted, or null before any. */
  mean(): number | null {
    if (this.durations.length === 0) return null;
    return this.durations.reduce((a, b) => a + b, 0) / this.durations.length;
  }

  /** Q for a runner of `slots` slots: `slots` tasks run at once, so Q of them last Q × mean / slots. */
  depth(slots: number): number {
    const mean = this.mean();
    if (mean === null || mean >= PREFETCH.longMs || slots <= 0) return 0;
    const q = Math.round((PREFETCH.horizonMs * slots) / Math.max(mean, 0.05));
    return Math.min(PREFETCH.perSlot * slots, q);
  }
}
