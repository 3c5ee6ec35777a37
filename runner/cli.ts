/**
 * `distro-runner`: resolves the configuration, measures the device, and runs until SIGINT or
 * SIGTERM. Exit codes: 0 stopped by a signal, 1 refused by the coordinator, 2 bad usage.
 */
import { readFileSync } from "node:fs";
import { PROTOCOL_VERSION } from "../worker/protocol/messages.js";
import { resolveConfig, RUNNER_HELP, UsageError } from "./config.js";
import { autoSlots, deviceNow, measureDevice } from "./device.js";
import { ThreadPool } from "./executor/pool.js";
import { consoleLogger } from "./log.js";
import { CoordinatorHttp } from "./blobs.js";
import { ModuleCache } from "./modules.js";
import { newRunnerId, Runner } from "./runner.js";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

async function main(): Promise<void> {
  let config;
  try {
    config = resolveConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`distro-runner: ${e.message}\nRun distro-runner --help for usage.\n`);
    process.exit(2);
  }
  if (config === "help") return void process.stdout.write(`${RUNNER_HELP}\n`);
  if (config === "version") return void process.stdout.write(`distro-runner ${VERSION} (protocol ${PROTOCOL_VERSION})\n`);

  const device = await measureDevice();
  const slots = config.slots === "auto" ? autoSlots(device) : config.slots;
  const log = consoleLogger(config.verbose);
  const http = new CoordinatorHttp(config.coordinator, config.token);
  const modules = new ModuleCache(config.cacheDir, (sha256) => http.get(`/api/modules/sha256:${sha256}`));
  const runner = new Runner({
    config,
    info: {
      id: newRunnerId(config.name),
      name: config.name,
      platform: device.platform,
      arch: device.arch,
      cores: device.cores,
      memory: device.memory,
      freeMemory: device.freeMemory,
      slots,
      labels: config.labels,
      version: VERSION,
    },
    threads: new ThreadPool(slots),
    modules,
    http,
    log,
    device: deviceNow,
  });
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      log.info(`${signal} again: exiting now`);
      process.exit(130);
    }
    log.info(`${signal}: stopping (a second signal exits at once)`);
    void runner.stop(config.graceMs).then(() => process.exit(0));
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  runner.start();
}

main().catch((e) => {
  process.stderr.write(`distro-runner: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
