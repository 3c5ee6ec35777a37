/**
 * `distro-runner`: resolves the configuration, measures the device, gets its credential (saved,
 * or enrolled now), and runs until SIGINT or SIGTERM, or until the coordinator refuses it for
 * good. Only this bin exits the process: the exit code follows how the Runner ended. Exit codes:
 * 0 stopped by a signal, 1 refused by the coordinator (an enrollment refused, a revoked device:
 * the runner `failed`), 2 bad usage (nothing to enroll with included), 130 a second signal.
 */
import { PROTOCOL_VERSION } from "../core/protocol/messages.js";
import { resolveConfig, RUNNER_HELP, UsageError } from "./config.js";
import { systemDevice } from "./device.js";
import type { RunnerEnd } from "./lifecycle.js";
import type { Logger } from "./log.js";
import type { Runner } from "./runner.js";
import { createRunner, VERSION } from "./start.js";

/** How the runner ended, as the process's exit code. */
const EXIT_CODES: Record<RunnerEnd, number> = { stopped: 0, failed: 1 };

/** Runs `step`; a UsageError it throws ends the process with exit code 2 and the message. */
async function usage<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`distro-runner: ${e.message}\nRun distro-runner --help for usage.\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const config = await usage(() => resolveConfig(process.argv.slice(2), process.env));
  if (config === "help") return void process.stdout.write(`${RUNNER_HELP}\n`);
  if (config === "version")
    return void process.stdout.write(`distro-runner ${VERSION} (protocol ${PROTOCOL_VERSION})\n`);

  // A signal while the runner is still getting its credential (a coordinator not up yet) ends the
  // process at once, through process.exit, so that the enroll lock is let go on the way out.
  let started: { runner: Runner; log: Logger } | undefined = undefined;
  let signals = 0;
  const onSignal = (signal: string) => {
    if (!started) {
      process.stdout.write(`${signal} before the runner started: exiting\n`);
      process.exit(0);
    }
    const { runner, log } = started;
    if (++signals > 1) {
      log.info(`${signal} again: exiting now`, { event: "signal", signal });
      process.exit(130);
    }
    log.info(`${signal}: stopping (a second signal exits at once)`, { event: "signal", signal });
    void runner.stop(config.graceMs);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  started = await usage(() => createRunner(config, systemDevice));
  started.runner.start();
  process.exit(EXIT_CODES[await started.runner.finished]);
}

main().catch((e) => {
  process.stderr.write(
    `distro-runner: ${process.env.DISTRO_DEBUG ? ((e as Error).stack ?? e) : ((e as Error).message ?? e)}\n`,
  );
  process.exit(1);
});
