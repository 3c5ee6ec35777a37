/**
 * Puts a runner together from its configuration and a device source: identity (the device id
 * kept in the config dir), slots, threads, module cache, coordinator HTTP, log. The CLI uses
 * the real device; tests inject one whose free RAM they control.
 */
import { existsSync, readFileSync } from "node:fs";
import { CoordinatorHttp } from "./blobs.js";
import type { RunnerConfig } from "./config.js";
import { autoSlots, type DeviceSource } from "./device.js";
import { ThreadPool } from "./executor/pool.js";
import { claimRunnerId, deviceId } from "./identity.js";
import { consoleLogger, type Logger } from "./log.js";
import { ModuleCache } from "./modules.js";
import { Runner } from "./runner.js";

/** The version in the nearest package.json above this file (it runs from dist/runner/ or, in tests, runner/). */
export const VERSION = ((): string => {
  for (let dir = new URL(".", import.meta.url); ; dir = new URL("..", dir)) {
    const file = new URL("package.json", dir);
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
    if (dir.pathname === "/") return "0.0.0";
  }
})();

export interface CreateOptions {
  log?: Logger;
  /** Device sampling period (default 2 s). */
  sampleMs?: number;
  /** Where the task threads' entry is (default: beside the compiled executor). */
  threadUrl?: URL;
}

export async function createRunner(
  config: RunnerConfig,
  source: DeviceSource,
  options: CreateOptions = {},
): Promise<{ runner: Runner; log: Logger; release(): void }> {
  const device = await source.measure();
  const slots = config.slots === "auto" ? autoSlots(device.cores, device.freeMemory, config) : config.slots;
  const log = options.log ?? consoleLogger(config);
  let claim: { id: string; release: () => void };
  try {
    claim = claimRunnerId(config.configDir, deviceId(config.configDir, config.name));
  } catch (e) {
    const why = (e as Error).message;
    throw new Error(
      `cannot keep the device id in ${config.configDir} (${why}); choose another folder with --config-dir DIR`,
    );
  }
  const http = new CoordinatorHttp(config.coordinator, config.token);
  const modules = new ModuleCache(config.cacheDir, (sha256) => http.get(`/api/modules/sha256:${sha256}`));
  const runner = new Runner({
    config,
    info: {
      id: claim.id,
      name: config.name,
      platform: device.platform,
      arch: device.arch,
      cores: device.cores,
      memory: device.memory,
      freeMemory: device.freeMemory,
      slots,
      labels: config.labels,
      version: VERSION,
      node: process.versions.node,
    },
    threads: new ThreadPool(slots, options.threadUrl),
    modules,
    http,
    log,
    sample: () => source.sample(),
    sampleMs: options.sampleMs,
  });
  return { runner, log, release: claim.release };
}
