/**
 * The runner's configuration, resolved once at start-up from flags and environment:
 * `--coordinator`/DISTRO_COORDINATOR, what to enroll with (DISTRO_ENROLL, or the development
 * secret `--token`/DISTRO_RUNNER_TOKEN), slots and the RAM they take, name, labels, where
 * modules are cached and the credential is kept, logging. Bad values stop the runner with a
 * message naming the flag (exit code 2). Whether the runner has anything to authenticate with
 * is known only once the config dir has been looked at (auth.ts), so that check is not here.
 */
import { hostname, homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LABEL } from "../core/enrollment.js";
import { parseDuration, parseSize } from "../core/units.js";
import { isLocalHost } from "./address.js";

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
  /**
   * DISTRO_ENROLL: an enrollment token (from `distro runners add`), exchanged for the device's
   * credential when there is none saved. Environment only: other users can read a process's argv.
   */
  enrollToken: string | undefined;
  /**
   * `--token`/DISTRO_RUNNER_TOKEN: the coordinator's RUNNER_TOKEN (development), which the
   * coordinator accepts as an enrollment that never runs out, and nothing else.
   */
  devToken: string | undefined;
  /** `--insecure`: plain http:// to a host outside this machine and private LANs is allowed. */
  insecure: boolean;
  slots: number | "auto";
  /** With `--slots auto`: the free RAM each slot needs, and the free RAM left to the device. */
  ramPerSlotBytes: number;
  reserveRamBytes: number;
  name: string;
  labels: string[];
  cacheDir: string;
  /** Where the device's credential (and each runner process's claim on it) is kept. */
  configDir: string;
  verbose: boolean;
  /** Log one JSON object per line instead of text. */
  json: boolean;
  /** On SIGINT/SIGTERM, how long running tasks may take to finish before they are handed back. */
  graceMs: number;
}

export class UsageError extends Error {}

export const RUNNER_HELP = `Usage: distro-runner --coordinator URL [options]

Lends this device to a Distro coordinator: connects out over WebSocket, takes WebAssembly
tasks and runs them in local threads.

The first start enrolls the device: the coordinator exchanges a token for a credential of this
device, kept in the config dir (mode 0600) and used from then on. Get a token with
\`distro runners add\` on the coordinator's side (it prints the whole command) and pass it in the
environment: DISTRO_ENROLL=TOKEN distro-runner --coordinator URL. A development coordinator
(npm start) also takes its RUNNER_TOKEN, with --token.

Options:
  --coordinator URL   coordinator base URL (env DISTRO_COORDINATOR), e.g. https://distro.example;
                      http:// only to this machine or a private LAN (see --insecure)
  --token TOKEN       the development coordinator's RUNNER_TOKEN, to enroll with when there is no
                      DISTRO_ENROLL (env DISTRO_RUNNER_TOKEN)
  --insecure          allow http:// to any host: the traffic and the credential travel unencrypted
  --slots N|auto      tasks run at once (default auto): auto = min(cores, (free RAM - reserve)
                      / RAM per slot), re-evaluated every 2 s while running
  --ram-per-slot SIZE free RAM one slot needs with --slots auto (default 128MiB)
  --reserve-ram SIZE  free RAM left to the device with --slots auto (default 512MiB)
  --name NAME         name shown on the status page (default: host name)
  --labels a,b        labels tasks can require (requires: { labels: [...] }); the enrollment's
                      labels are added
  --cache-dir DIR     where modules are cached (default ~/.cache/distro/modules)
  --config-dir DIR    where the device's credential is kept (env DISTRO_CONFIG_DIR;
                      default ~/.config/distro)
  --grace DURATION    on SIGINT/SIGTERM, time running tasks get to finish before they are
                      handed back (default 30s; a second signal exits at once)
  --verbose           also log each socket connecting and each run's socket ending
  --json              log one JSON object per line (time, level, msg and the event's fields)
  -h, --help          show this help
  --version           print the version

Environment:
  DISTRO_ENROLL       an enrollment token, used once when the device has no saved credential
  DISTRO_RUNNER_TOKEN as --token
  DISTRO_COORDINATOR  as --coordinator
  DISTRO_CONFIG_DIR   as --config-dir
  (DISTRO_TOKEN is the distro CLI's API token; the runner does not read it.)`;

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
        insecure: { type: "boolean" },
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
  const insecure = values.insecure ?? false;
  if (!insecure && plaintextToInternet(url))
    throw new UsageError(
      `--coordinator: ${url.protocol}//${url.host} is not encrypted and ${url.hostname} is not this machine or a ` +
        `private LAN address; use https:// (or wss://), or pass --insecure to send the traffic and the device's ` +
        `credential unencrypted`,
    );
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
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined)
    throw new UsageError(`--labels: "${bad}" is not a label (letters, digits, _ . : -, at most 64)`);
  const name = values.name ?? hostname();
  if (name.length < 1 || name.length > 128)
    throw new UsageError(`--name: expected 1 to 128 characters, got ${name.length}`);
  return {
    coordinator: url,
    enrollToken: env.DISTRO_ENROLL || undefined,
    devToken: values.token || env.DISTRO_RUNNER_TOKEN || undefined,
    insecure,
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

/** Plain http:// or ws:// to a host that is neither this machine nor on a private LAN. */
export function plaintextToInternet(url: URL): boolean {
  return (url.protocol === "http:" || url.protocol === "ws:") && !isLocalHost(url.hostname);
}

function size(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const bytes = parseSize(text);
  if (bytes === undefined) throw new UsageError(`${flag}: expected a size such as "128MiB" or "1GiB", got "${text}"`);
  return bytes;
}
