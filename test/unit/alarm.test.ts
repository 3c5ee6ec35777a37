// The DagRun's one alarm (worker/run-host/alarm.ts) through a fake storage: set for the earliest
// of its times, never moved later while the one set is still to come, set again once it has
// passed or fired, and deleted when the run ends.
import { describe, expect, it } from "vitest";
import { Alarm, isDue } from "../../worker/run-host/alarm";

function setup() {
  const calls: (number | "delete")[] = [];
  const alarm = new Alarm({
    setAlarm: (at) => {
      calls.push(at);
      return Promise.resolve();
    },
    deleteAlarm: () => {
      calls.push("delete");
      return Promise.resolve();
    },
  });
  return { alarm, calls };
}

describe("alarm", () => {
  it("is set for the earliest time, ignoring the times that are not set", async () => {
    const { alarm, calls } = setup();
    await alarm.arm(0, [null, 500, 250, null]);
    await alarm.arm(0, [null, null]);
    expect(calls).toEqual([250]);
  });

  it("moves only sooner while the alarm set is still to come, and is set again once it passed or fired", async () => {
    const { alarm, calls } = setup();
    await alarm.arm(0, [1000]);
    await alarm.arm(10, [2000]);
    await alarm.arm(20, [400]);
    await alarm.arm(500, [2000]); // 400 has passed without the alarm being seen to fire
    alarm.fired();
    await alarm.arm(600, [3000]);
    expect(calls).toEqual([1000, 400, 2000, 3000]);
  });

  it("is deleted when the run ends, and set afresh after", async () => {
    const { alarm, calls } = setup();
    await alarm.arm(0, [100]);
    await alarm.clear();
    await alarm.arm(0, [100]);
    expect(calls).toEqual([100, "delete", 100]);
  });

  it("says a time is due once it has come", () => {
    expect(isDue(null, 5)).toBe(false);
    expect(isDue(6, 5)).toBe(false);
    expect(isDue(5, 5)).toBe(true);
  });
});
