/**
 * What this device offers: cores, memory, platform, and the slot count that follows from them.
 * Measured with `systeminformation` once at start-up.
 */
import { arch, platform } from "node:os";
import si from "systeminformation";
import { DEFAULTS } from "./config.js";

export interface Device {
  cores: number;
  memory: number;
  freeMemory: number;
  platform: string;
  arch: string;
}

/** Measures the device. Android under Termux reports itself as "android". */
export async function measureDevice(): Promise<Device> {
  const [cpu, mem] = await Promise.all([si.cpu(), si.mem()]);
  const termux = process.env.PREFIX?.includes("com.termux") ?? false;
  return {
    cores: cpu.cores || 1,
    memory: mem.total,
    freeMemory: mem.available,
    platform: termux ? "android" : platform(),
    arch: arch(),
  };
}

/** Free memory and CPU load (%) now; the load's first sample takes about half a second. */
export async function deviceNow(): Promise<{ freeMemory: number; load: number }> {
  const [mem, load] = await Promise.all([si.mem(), si.currentLoad()]);
  const percent = Number.isFinite(load.currentLoad) ? Math.round(load.currentLoad * 10) / 10 : 0;
  return { freeMemory: mem.available, load: Math.min(100, Math.max(0, percent)) };
}

/** Slots for `--slots auto`: one per core, as far as free RAM above the reserve allows; at least 1. */
export function autoSlots(device: Device, ramPerSlot = DEFAULTS.ramPerSlotBytes, reserve = DEFAULTS.reserveRamBytes): number {
  const byRam = Math.floor((device.freeMemory - reserve) / ramPerSlot);
  return Math.max(1, Math.min(device.cores, byRam));
}
