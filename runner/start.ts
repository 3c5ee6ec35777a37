/**
 * Puts a runner together from its configuration and a device source: the device's credential
 * (saved, or enrolled now: auth.ts), this process's runner id on the device (identity.ts), slots,
 * threads, module cache, coordinator HTTP, log. The CLI uses the real device; tests inject one
 * whose free RAM they control.
 */
import { existsSync, readFileSync } from "node:fs";
import { DeviceAuth } from "./auth.js";
import { CoordinatorHttp } from "./blobs.js";
import { plaintextToInternet, UsageError, type RunnerConfig } from "./config.js";
import { autoSlots, type DeviceSource } from "./device.js";
import { ThreadPool } from "./executor/pool.js";
import { claimRunnerId, runnerIdOf, type RunnerIdentity } from "./identity.js";
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

/** Labels a runner may carry in its hello (the wire's limit). */
const MAX_LABELS = 64;

export interface CreateOptions {
  log?: Logger;
  /** Device sampling period (default 2 s). */
  sampleMs?: number;
  /** Where the task threads' entry is (default: beside the compiled executor). */
  threadUrl?: URL;
}

/**
 * Resolves the device's credential (enrolling when there is none: this waits for a coordinator
 * that is not up yet) and builds the runner. Rejects with UsageError when the runner has nothing
 * to authenticate with, and with an EnrollError when the coordinator refuses the enrollment.
 */
export async function createRunner(
  config: RunnerConfig,
  source: DeviceSource,
  options: CreateOptions = {},
): Promise<{ runner: Runner; log: Logger; release(): void }> {
  const device = await source.measure();
  const slots = config.slots === "auto" ? autoSlots(device.cores, device.freeMemory, config) : config.slots;
  const log = options.log ?? consoleLogger(config);
  if (config.insecure && plaintextToInternet(config.coordinator))
    log.info(
      `warning: --insecure: ${config.coordinator.origin} is not encrypted; the traffic and this device's ` +
        "credential travel in the clear",
      { event: "insecure" },
    );
  const auth = new DeviceAuth({
    coordinator: config.coordinator,
    configDir: config.configDir,
    name: config.name,
    enrollToken: config.enrollToken,
    devToken: config.devToken,
    log,
  });
  const saved = await auth.obtain();
  const labels = [...new Set([...config.labels, ...saved.labels])];
  if (labels.length > MAX_LABELS)
    throw new UsageError(
      `--labels: ${labels.length} labels with the enrollment's (${saved.labels.join(",")}); at most ${MAX_LABELS}`,
    );
  let claim: { k: number; release: () => void };
  try {
    claim = claimRunnerId(config.configDir, saved.device);
  } catch (e) {
    const why = (e as Error).message;
    throw new Error(
      `cannot claim a runner id in ${config.configDir} (${why}); choose another folder with --config-dir DIR`,
    );
  }
  const identity: RunnerIdentity = {
    credential: () => auth.credential(),
    renew: (stale) => auth.renew(stale),
    revoked: (detail) => auth.revoked(detail),
    runnerId: () => runnerIdOf(auth.device, claim.k),
  };
  const http = new CoordinatorHttp(config.coordinator, auth);
  const modules = new ModuleCache(config.cacheDir, (sha256, run) => http.module(sha256, run));
  const runner = new Runner({
    config,
    info: {
      id: identity.runnerId(),
      name: config.name,
      platform: device.platform,
      arch: device.arch,
      cores: device.cores,
      memory: device.memory,
      freeMemory: device.freeMemory,
      slots,
      labels,
      version: VERSION,
      node: process.versions.node,
    },
    identity,
    threads: new ThreadPool(slots, options.threadUrl),
    modules,
    http,
    log,
    sample: () => source.sample(),
    sampleMs: options.sampleMs,
  });
  return { runner, log, release: claim.release };
}
