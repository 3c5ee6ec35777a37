/**
 * The runner's configuration, resolved once at start-up from flags and environment:
 * `--coordinator`/DISTRO_COORDINATOR, `--token`/DISTRO_TOKEN, `--slots`, `--name`, `--labels`,
 * `--cache-dir`. Bad values stop the runner with a message naming the flag (exit code 2).
 */
import { hostname, homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "../worker/dag/units.js";

export const DEFAULTS = {
  slots: "auto" as const,
  graceMs: 30_000,
  ramPerSlotBytes: 128 * 1024 ** 2,
  reserveRamBytes: 512 * 1024 ** 2,
  reconnect: { initialMs: 500, maxMs: 30_000, factor: 2 },
};

export interface RunnerConfig {
  coordinator: URL;
  token: string;
  slots: number | "auto";
  name: string;
  labels: string[];
  cacheDir: string;
  verbose: boolean;
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
  --slots N|auto      tasks run at once; auto = min(cores, (free RAM - 512 MiB) / 128 MiB) (default auto)
  --name NAME         name shown on the status page (default: host name)
  --labels a,b        labels tasks can require (requires: { labels: [...] })
  --cache-dir DIR     where modules are cached (default ~/.cache/distro/modules)
  --grace DURATION    on SIGINT/SIGTERM, time running tasks get to finish before they are
                      handed back (default 30s; a second signal exits at once)
  --verbose           log connections and frames as well as tasks
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
        "cache-dir": { type: "string" },
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
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw new UsageError(`--coordinator: use an http(s) or ws(s) URL, not ${url.protocol}`);
  const token = values.token ?? env.DISTRO_TOKEN;
  if (!token) throw new UsageError("--token TOKEN is required (or set DISTRO_TOKEN)");
  const slotsText = values.slots ?? DEFAULTS.slots;
  let slots: number | "auto" = "auto";
  if (slotsText !== "auto") {
    slots = Number(slotsText);
    if (!Number.isInteger(slots) || slots < 1 || slots > 1024) throw new UsageError(`--slots: expected a whole number from 1 to 1024 or "auto", got "${slotsText}"`);
  }
  let graceMs = DEFAULTS.graceMs;
  if (values.grace !== undefined) {
    const parsed = values.grace === "0" ? 0 : parseDuration(values.grace);
    if (parsed === undefined) throw new UsageError(`--grace: expected a duration such as "30s" or "0", got "${values.grace}"`);
    graceMs = parsed;
  }
  const labels = (values.labels ?? "").split(",").map((l) => l.trim()).filter(Boolean);
  return {
    coordinator: url,
    token,
    slots,
    name: values.name ?? hostname(),
    labels,
    cacheDir: values["cache-dir"] ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "distro", "modules"),
    verbose: values.verbose ?? false,
    graceMs,
  };
}
