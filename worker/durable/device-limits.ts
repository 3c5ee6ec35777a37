/**
 * What one device is held to (docs/security.md): the slots it counts for, and when a device that
 * loses attempts is cooled down, and for how long: a pure rule the RunnerPool keeps one state of
 * per device. `losses` lost attempts within `windowMs` start a cool-down of
 * `firstMs`, twice as long at each next one (at most `maxMs`); a device that went `maxMs` without
 * one starts again from `firstMs`. While cooled, more losses (of leases it held before) neither
 * count nor lengthen it.
 */

/** What one device is held to: its slots, and when and how long it is cooled down for losing attempts. */
export interface DeviceLimits {
  maxSlots: number;
  cooldown: { losses: number; windowMs: number; firstMs: number; maxMs: number };
}

export const DEFAULT_DEVICE_LIMITS: DeviceLimits = {
  maxSlots: 256,
  cooldown: { losses: 3, windowMs: 300_000, firstMs: 60_000, maxMs: 3_600_000 },
};

export interface CoolState {
  /** When its recent lost attempts were lost, oldest first (those within the window). */
  losses: number[];
  /** Cool-downs in a row so far. */
  level: number;
  /** Until when it is cooled down (null: never yet). */
  until: number | null;
}

export const FRESH: CoolState = { losses: [], level: 0, until: null };

/** The state after `count` more lost attempts at `now`, and whether they started a cool-down. */
export function recordLosses(
  state: CoolState,
  count: number,
  now: number,
  { losses, windowMs, firstMs, maxMs }: DeviceLimits["cooldown"],
): { state: CoolState; cooled: boolean } {
  if (state.until !== null && state.until > now) return { state, cooled: false };
  const level = state.until !== null && now - state.until > maxMs ? 0 : state.level;
  const recent = [...state.losses.filter((at) => at > now - windowMs), ...Array<number>(count).fill(now)];
  if (recent.length < losses) return { state: { losses: recent, level, until: state.until }, cooled: false };
  const next = level + 1;
  return { state: { losses: [], level: next, until: now + Math.min(maxMs, firstMs * 2 ** (next - 1)) }, cooled: true };
}
