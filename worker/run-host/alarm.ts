/**
 * The DagRun's one alarm (architecture practice 6: no `setTimeout` in a Durable Object). It
 * serves every time the run waits for: the machine's deadlines (leases and retry back-offs, rows
 * of the store's deadlines table), the sweep for silent runners while any is attached, and the
 * coalesced flushes to the watchers and to the run index (times kept in meta). The alarm is set
 * to the earliest of them, and moved only when that comes sooner than the one already set; the
 * alarm handler works out which of them are due.
 */

/** What the alarm needs of the object's storage. */
export interface AlarmHost {
  setAlarm(at: number): Promise<void>;
  deleteAlarm(): Promise<void>;
}

/** Whether a time (null: none) has come. */
export function isDue(at: number | null, now: number): at is number {
  return at !== null && at <= now;
}

export class Alarm {
  /** The alarm time this object last set (null: none pending, or not known since it started). */
  private at: number | null = null;

  constructor(private readonly host: AlarmHost) {}

  /** The alarm fired: none is pending. */
  fired(): void {
    this.at = null;
  }

  /** Sets the alarm for the earliest of `times`, unless one already set comes sooner and is still to come. */
  async arm(now: number, times: readonly (number | null)[]): Promise<void> {
    const next = times.reduce<number | null>((a, t) => (t === null ? a : a === null ? t : Math.min(a, t)), null);
    if (next === null || (this.at !== null && this.at <= next && this.at > now)) return;
    this.at = next;
    await this.host.setAlarm(next);
  }

  /** No alarm any more: the run has ended. */
  async clear(): Promise<void> {
    this.at = null;
    await this.host.deleteAlarm();
  }
}
