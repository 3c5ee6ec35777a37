/**
 * What this device offers: cores, memory, platform, and the slot count that follows from them.
 * Measured with `systeminformation`: once at start-up, then every few seconds for free memory
 * and CPU load (the RAM-driven slot count and the device report).
 */
import { arch, platform } from "node:os";
import si from "systeminformation";
import { DEFAULTS } from "./config.js";

interface Device {
  cores: number;
  memory: number;
  freeMemory: number;
  platform: string;
  arch: string;
}

/** Free memory (bytes) and CPU load (0–100 %) now. */
export interface DeviceSample {
  freeMemory: number;
  load: number;
}

/** Where the runner reads its device from; tests inject their own. */
export interface DeviceSource {
  measure(): Promise<Device>;
  sample(): Promise<DeviceSample>;
}

/** Android under Termux reports itself as "android". */
export const systemDevice: DeviceSource = {
  async measure() {
    const [cpu, mem] = await Promise.all([si.cpu(), si.mem()]);
    const termux = process.env.PREFIX?.includes("com.termux") ?? false;
    return {
      cores: cpu.cores || 1,
      memory: mem.total,
      freeMemory: mem.available,
      platform: termux ? "android" : platform(),
      arch: arch(),
    };
  },
  /** The load's first sample takes about half a second. */
  async sample() {
    const [mem, load] = await Promise.all([si.mem(), si.currentLoad()]);
    const percent = Number.isFinite(load.currentLoad) ? Math.round(load.currentLoad * 10) / 10 : 0;
    return { freeMemory: mem.available, load: Math.min(100, Math.max(0, percent)) };
  },
};

export interface SlotPolicy {
  ramPerSlotBytes: number;
  reserveRamBytes: number;
}

/**
 * Slots for `--slots auto`: min(cores, (free RAM − reserve) / RAM per slot), at least 1.
 * Re-evaluated while running, it counts the memory running tasks hold as used: when they take
 * the free RAM, the runner takes fewer new tasks until they finish and give it back.
 */
export function autoSlots(cores: number, freeMemory: number, policy: SlotPolicy = DEFAULTS): number {
  const byRam = Math.floor((freeMemory - policy.reserveRamBytes) / policy.ramPerSlotBytes);
  return Math.max(1, Math.min(cores, byRam));
}
