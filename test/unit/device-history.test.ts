// The pool's device history (worker/durable/device-history.ts): one sample per half heartbeat
// (a little early is fine), ten minutes at most, a fixed maximum length however fast reports come.
import { describe, expect, it } from "vitest";
import { appendSample, HISTORY_MS, historyCap, keepsSample, recentSamples } from "../../worker/durable/device-history";
import type { DeviceSample } from "../../core/api";

const HEARTBEAT = 15_000;
const sample = (at: number): DeviceSample => ({ at, load: 10, freeMemory: 1 });

describe("device history", () => {
  it("keeps a report a half heartbeat after the last kept one, or a tenth of that early, and drops sooner ones", () => {
    expect(keepsSample(null, 0, HEARTBEAT)).toBe(true);
    expect(keepsSample(0, 7_500, HEARTBEAT)).toBe(true);
    expect(keepsSample(0, 6_750, HEARTBEAT)).toBe(true);
    expect(keepsSample(0, 6_749, HEARTBEAT)).toBe(false);
    expect(keepsSample(0, 10, HEARTBEAT)).toBe(false);
  });

  it("is ten minutes of one sample per half heartbeat at most, oldest first", () => {
    expect(historyCap(HEARTBEAT)).toBe(80);
    let history: DeviceSample[] = [];
    for (let at = 0; at <= 30 * 60_000; at += 6_750) history = appendSample(history, sample(at), HEARTBEAT);
    expect(history.length).toBe(80);
    expect(history.at(-1)!.at - history[0]!.at).toBeLessThan(HISTORY_MS);
    expect(history.every((s, i) => i === 0 || s.at > history[i - 1]!.at)).toBe(true);
  });

  it("drops samples older than ten minutes when one is appended, and when read", () => {
    const old = [sample(0), sample(60_000), sample(120_000)];
    expect(appendSample(old, sample(HISTORY_MS + 60_000), HEARTBEAT).map((s) => s.at)).toEqual([
      120_000,
      HISTORY_MS + 60_000,
    ]);
    expect(recentSamples(old, HISTORY_MS + 60_000).map((s) => s.at)).toEqual([120_000]);
    expect(recentSamples(old, HISTORY_MS * 3)).toEqual([]);
  });
});
