// The runner's device readings on this machine (runner/device.ts): the periodic sample's free
// memory and CPU load say what the machine did.
import { cpus, totalmem } from "node:os";
import { describe, expect, it } from "vitest";
import { systemDevice } from "../../runner/device";

describe("the device sample", () => {
  it("reads available memory within the machine's total, and CPU load as busy time since the last sample", async () => {
    await systemDevice.sample(); // the next one measures from here
    const until = performance.now() + 300;
    let spins = 0;
    while (performance.now() < until) spins++;
    const busy = await systemDevice.sample();
    expect(spins).toBeGreaterThan(0);
    expect(busy.freeMemory).toBeGreaterThan(0);
    expect(busy.freeMemory).toBeLessThanOrEqual(totalmem());
    // One core spun the whole time: at least half its share, whatever else the machine did.
    expect(busy.load).toBeGreaterThanOrEqual(50 / cpus().length);
    expect(busy.load).toBeLessThanOrEqual(100);
  });

  it("measures the device at start-up: cores, total and available memory", async () => {
    const device = await systemDevice.measure();
    expect(device.cores).toBeGreaterThanOrEqual(1);
    expect(device.memory).toBe(totalmem());
    expect(device.freeMemory).toBeLessThanOrEqual(device.memory);
  });
});
