/**
 * The runner's configuration, resolved once at start-up from flags and environment:
 * `--coordinator`/DISTRO_COORDINATOR, `--token`/DISTRO_TOKEN, slots and the RAM they take,
 * name, labels, where modules are cached and the device id is kept, logging. Bad values stop
 * the runner with a message naming the flag (exit code 2).
 */
import { hostname, homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration, parseSize } from "../core/units.js";

export const DEFAULTS = {
  slots: "auto" as const,
  graceMs: 30_000,
  ramPerSlotBytes: 128 * 1024 ** 2,
  reserveRamBytes: 512 * 1024 ** 2,
  /** `limitedMs`: after a rate-limit close (4429), the least wait before reconnecting. */
  reconnect: { initialMs: 500, maxMs: 30_000, factor: 2, limitedMs: 3000 },
};

export interface RunnerConfig {
  coordinator: URL;
  token: string;
  slots: number | "auto";
  /** With `--slots auto`: the free RAM each slot needs, and the free RAM left to the device. */
  ramPerSlotBytes: number;
  reserveRamBytes: number;
  name: string;
  labels: string[];
  cacheDir: string;
  /** Where the device id (and each runner process's claim on it) is kept. */
  configDir: string;
  verbose: boolean;
  /** Log one JSON object per line instead of text. */
  json: boolean;
  /** On SIGINT/SIGTERM, how long running tasks may take to finish before they are handed back. */
  graceMs: number;
}

export class UsageError extends Error {}

export const RUNNER_HELP = `Usage: distro-runner --coordinator URL --token TOKEN [options]

Lends this device to a Distro coordinator: connects out over WebSocket, takes WebAssembly
tasks and runs them in local threads.

Options:
  --coordinator URL   coordinator base URL (env DISTRO_COORDINATOR), e.g. http://127.0.0.1:8787
  --token TOKEN       the coordinator's RUNNER_TOKEN (env DISTRO_TOKEN)
  --slots N|auto      tasks run at once (default auto): auto = min(cores, (free RAM - reserve)
                      / RAM per slot), re-evaluated every 2 s while running
  --ram-per-slot SIZE free RAM one slot needs with --slots auto (default 128MiB)
  --reserve-ram SIZE  free RAM left to the device with --slots auto (default 512MiB)
  --name NAME         name shown on the status page (default: host name)
  --labels a,b        labels tasks can require (requires: { labels: [...] })
  --cache-dir DIR     where modules are cached (default ~/.cache/distro/modules)
  --config-dir DIR    where the device id is kept (env DISTRO_CONFIG_DIR;
                      default ~/.config/distro)
  --grace DURATION    on SIGINT/SIGTERM, time running tasks get to finish before they are
                      handed back (default 30s; a second signal exits at once)
  --verbose           also log each socket connecting and each run's socket ending
  --json              log one JSON object per line (time, level, msg and the event's fields)
  -h, --help          show this help
  --version           print the version`;

/** Resolves flags and environment; throws UsageError with a message for the user. */
export function resolveConfig(argv: string[], env: NodeJS.ProcessEnv): RunnerConfig | "help" | "version" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        coordinator: { type: "string" },
        token: { type: "string" },
        slots: { type: "string" },
        name: { type: "string" },
        labels: { type: "string" },
        "ram-per-slot": { type: "string" },
        "reserve-ram": { type: "string" },
        "cache-dir": { type: "string" },
        "config-dir": { type: "string" },
        json: { type: "boolean" },
        grace: { type: "string" },
        verbose: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const coordinator = values.coordinator ?? env.DISTRO_COORDINATOR;
  if (!coordinator) throw new UsageError("--coordinator URL is required (or set DISTRO_COORDINATOR)");
  let url: URL;
  try {
    url = new URL(coordinator);
  } catch {
    throw new UsageError(`--coordinator: "${coordinator}" is not a URL`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol))
    throw new UsageError(`--coordinator: use an http(s) or ws(s) URL, not ${url.protocol}`);
  const token = values.token ?? env.DISTRO_TOKEN;
  if (!token) throw new UsageError("--token TOKEN is required (or set DISTRO_TOKEN)");
  const slotsText = values.slots ?? DEFAULTS.slots;
  let slots: number | "auto" = "auto";
  if (slotsText !== "auto") {
    slots = Number(slotsText);
    if (!Number.isInteger(slots) || slots < 1 || slots > 1024)
      throw new UsageError(`--slots: expected a whole number from 1 to 1024 or "auto", got "${slotsText}"`);
  }
  let graceMs = DEFAULTS.graceMs;
  if (values.grace !== undefined) {
    const parsed = values.grace === "0" ? 0 : parseDuration(values.grace);
    if (parsed === undefined)
      throw new UsageError(`--grace: expected a duration such as "30s" or "0", got "${values.grace}"`);
    graceMs = parsed;
  }
  const labels = (values.labels ?? "")
    .split(",")
    .map((l) => l.trim())
    .filter(Boolean);
  const bad = labels.find((l) => !/^[A-Za-z0-9_.:-]{1,64}$/.test(l));
  if (bad !== undefined)
    throw new UsageError(`--labels: "${bad}" is not a label (letters, digits, _ . : -, at most 64)`);
  const name = values.name ?? hostname();
  if (name.length < 1 || name.length > 128)
    throw new UsageError(`--name: expected 1 to 128 characters, got ${name.length}`);
  return {
    coordinator: url,
    token,
    slots,
    ramPerSlotBytes: size("--ram-per-slot", values["ram-per-slot"], DEFAULTS.ramPerSlotBytes),
    reserveRamBytes:
      values["reserve-ram"] === "0" ? 0 : size("--reserve-ram", values["reserve-ram"], DEFAULTS.reserveRamBytes),
    name,
    labels,
    cacheDir: values["cache-dir"] ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "distro", "modules"),
    configDir:
      values["config-dir"] ??
      env.DISTRO_CONFIG_DIR ??
      join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "distro"),
    verbose: values.verbose ?? false,
    json: values.json ?? false,
    graceMs,
  };
}

function size(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const bytes = parseSize(text);
  if (bytes === undefined) throw new UsageError(`${flag}: expected a size such as "128MiB" or "1GiB", got "${text}"`);
  return bytes;
}
