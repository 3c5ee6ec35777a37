// The cool-down rule of a device that loses attempts (worker/durable/device-limits.ts), a pure module.
import { describe, expect, it } from "vitest";
import { DEFAULT_DEVICE_LIMITS, FRESH, recordLosses, type CoolState } from "../../worker/durable/device-limits";

const limits = DEFAULT_DEVICE_LIMITS.cooldown; // 3 within 5 min; 1 min, doubling, at most 1 h
const MIN = 60_000;

function lose(state: CoolState, at: number, count = 1) {
  return recordLosses(state, count, at, limits);
}

describe("cool-downs", () => {
  it("start at the third loss within five minutes, for a minute", () => {
    let s = lose(FRESH, 0).state;
    s = lose(s, MIN).state;
    const third = lose(s, 2 * MIN);
    expect(third.cooled).toBe(true);
    expect(third.state.until).toBe(3 * MIN);
  });

  it("do not start for losses spread wider than the window", () => {
    let s = FRESH;
    for (let i = 0; i < 10; i++) {
      const r = lose(s, i * 3 * MIN);
      expect(r.cooled).toBe(false);
      s = r.state;
    }
  });

  it("count a frame's several losses at once", () => {
    expect(lose(FRESH, 0, 3).cooled).toBe(true);
    expect(lose(FRESH, 0, 2).cooled).toBe(false);
  });

  it("double each time up to an hour, ignore losses while cooled, and start over after an hour without one", () => {
    let s = FRESH;
    let at = 0;
    const lengths: number[] = [];
    for (let i = 0; i < 9; i++) {
      const r = lose(s, at, 3);
      expect(r.cooled).toBe(true);
      lengths.push((r.state.until! - at) / MIN);
      // Losses while cooled change nothing.
      expect(lose(r.state, at + 1, 5)).toEqual({ state: r.state, cooled: false });
      s = r.state;
      at = s.until!;
    }
    expect(lengths).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
    const later = lose(s, s.until! + 61 * MIN, 3);
    expect(later.state.until! - (s.until! + 61 * MIN)).toBe(MIN);
  });
});
