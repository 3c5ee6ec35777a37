/**
 * What this device offers: cores, memory, platform, and the slot count that follows from them.
 * Measured with `systeminformation` once at start-up; then every few seconds free memory and CPU
 * load (the RAM-driven slot count and the device report): the load from the cores' CPU times
 * (systeminformation's on Linux runs a shell synchronously, which stopped the runner's event
 * loop, and every slot it feeds, for some 20 ms a sample), free memory from /proc/meminfo
 * where there is one (elsewhere systeminformation's).
 */
import { readFile } from "node:fs/promises";
import { arch, cpus, platform } from "node:os";
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
  /** The load is the share of CPU time busy since the sample before (the first: since start-up). */
  async sample() {
    const times = cpuTimes();
    // A core that came or went since the sample before makes the difference meaningless: from now.
    const total = times.cores === lastTimes.cores ? times.total - lastTimes.total : 0;
    const percent = total > 0 ? Math.round((1000 * (times.busy - lastTimes.busy)) / total) / 10 : 0;
    lastTimes = times;
    return { freeMemory: await availableMemory(), load: Math.min(100, Math.max(0, percent)) };
  },
};

/** CPU time of all cores since boot (ms), and how much of it was not idle. */
function cpuTimes(): { busy: number; total: number; cores: number } {
  let busy = 0;
  let total = 0;
  const all = cpus();
  for (const { times } of all) {
    const spent = times.user + times.nice + times.sys + times.idle + times.irq;
    total += spent;
    busy += spent - times.idle;
  }
  return { busy, total, cores: all.length };
}

let lastTimes = cpuTimes();

/** Memory available to new work (bytes): MemAvailable of /proc/meminfo where there is one (Linux, Android). */
async function availableMemory(): Promise<number> {
  const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
  const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo)?.[1];
  return kib !== undefined ? Number(kib) * 1024 : (await si.mem()).available;
}

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
