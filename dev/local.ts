/**
 * Starting the local pieces as real processes: the coordinator (`wrangler dev`, workerd) and
 * runners (`distro-runner`, enrolling with the development token unless told otherwise). Used by
 * `npm start`, `npm run bench` and the end-to-end tests.
 * Each process gets its own process group so that stopping it stops its children (workerd).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

/** The repository root (this file is compiled to dist/dev/, or run from dev/ by vitest). */
export const ROOT = fileURLToPath(new URL(import.meta.url.includes("/dist/") ? "../../" : "../", import.meta.url));

/** The committed development tokens (.dev.vars.example). */
export const DEV_TOKENS = { api: "dev-api-token", runner: "dev-runner-token" } as const;

/**
 * The credential of device `device` of a local coordinator, enrolled with the development secret
 * (the id is claimed on first use): for tests and benchmarks that speak the runner protocol
 * themselves, as a hostile device would.
 */
export async function enrollDevice(
  coordinator: URL,
  device: string,
  token: string = DEV_TOKENS.runner,
): Promise<string> {
  const res = await fetch(new URL("/api/runners/enroll", coordinator), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: device, device }),
  });
  if (!res.ok) throw new Error(`enrolling ${device}: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { credential: string }).credential;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A child process whose output is kept, and which can be stopped with its whole group. */
export class Proc {
  readonly lines: string[] = [];
  /** When each line arrived (Date.now()), parallel to `lines`. */
  readonly times: number[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    private readonly echo?: (line: string) => void,
  ) {
    // One partial line per stream: a line split across reads of stdout must not take in stderr's.
    const reader = () => {
      let partial = "";
      return (chunk: Buffer) => {
        const text = partial + chunk.toString();
        const parts = text.split("\n");
        partial = parts.pop()!;
        for (const line of parts) {
          this.lines.push(line);
          this.times.push(Date.now());
          this.echo?.(line);
        }
      };
    };
    child.stdout?.on("data", reader());
    child.stderr?.on("data", reader());
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` to the process group and waits for the process to end (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Resolves with the first line matching `pattern` and when it arrived. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return (await this.waitForLine(pattern, timeoutMs)).line;
  }

  async waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<{ line: string; at: number }> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    while (Date.now() < deadline) {
      for (; seen < this.lines.length; seen++)
        if (pattern.test(this.lines[seen]!)) return { line: this.lines[seen]!, at: this.times[seen]! };
      if (!this.running)
        throw new Error(`process ended before printing ${pattern}:\n${this.lines.slice(-20).join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${pattern}:\n${this.lines.slice(-20).join("\n")}`);
  }
}

export interface CoordinatorOptions {
  port?: number;
  /** Address to listen on (default 127.0.0.1; 0.0.0.0 lets other devices connect). */
  ip?: string;
  /** Where local Durable Object, D1 and R2 state lives (default .wrangler/state). */
  persistTo?: string;
  /** Extra `--var NAME:value` bindings, overriding the dev tokens. */
  vars?: Record<string, string>;
  /** Leave out the dev tokens entirely (a coordinator with no secrets). */
  noSecrets?: boolean;
  echo?: (line: string) => void;
  readyTimeoutMs?: number;
  /** Opens V8's inspector on the workerd isolate at this port (docs/benchmarks.md, profiling). */
  inspectorPort?: number;
}

export interface Coordinator {
  url: URL;
  port: number;
  proc: Proc;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const WRANGLER = fileURLToPath(new URL("node_modules/wrangler/bin/wrangler.js", `file://${ROOT}`));

/** wrangler's environment here: no account, no network, no prompts, no colour. */
const WRANGLER_ENV = {
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  NO_COLOR: "1",
  CI: "1",
};

/**
 * Applies the D1 migrations (migrations/) to the local database in `persistTo` (default
 * .wrangler/state), as `wrangler d1 migrations apply distro --local` does; those applied already
 * are skipped. Throws with wrangler's output when it fails.
 */
async function migrateLocal(persistTo?: string): Promise<void> {
  const args = [WRANGLER, "d1", "migrations", "apply", "distro", "--local"];
  if (persistTo) args.push("--persist-to", persistTo);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...WRANGLER_ENV },
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  if (code !== 0) throw new Error(`wrangler d1 migrations apply failed (exit ${code}):\n${output.trim()}`);
}

/**
 * Applies the D1 migrations to the local state, then starts `wrangler dev` and resolves once the
 * Worker answers HTTP.
 */
export async function startCoordinator(options: CoordinatorOptions = {}): Promise<Coordinator> {
  const port = options.port ?? (await freePort());
  await migrateLocal(options.persistTo);
  const args = [WRANGLER, "dev", "--ip", options.ip ?? "127.0.0.1", "--port", String(port)];
  args.push("--show-interactive-dev-session=false", "--log-level", "warn");
  if (!options.noSecrets) {
    args.push("--env-file", ".dev.vars.example");
    if (existsSync(`${ROOT}/.dev.vars`)) args.push("--env-file", ".dev.vars");
  } else {
    args.push("--env-file", "/dev/null");
  }
  if (options.persistTo) args.push("--persist-to", options.persistTo);
  if (options.inspectorPort !== undefined) args.push("--inspector-port", String(options.inspectorPort));
  for (const [k, v] of Object.entries(options.vars ?? {})) args.push("--var", `${k}:${v}`);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...WRANGLER_ENV },
  });
  const proc = new Proc(child, options.echo);
  const url = new URL(`http://127.0.0.1:${port}`);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    try {
      const res = await fetch(new URL("/api/runners", url));
      await res.body?.cancel();
      if (res.status === 401 || res.status === 503 || res.ok) break;
    } catch {
      // not listening yet
    }
    if (!proc.running) throw new Error(`wrangler dev exited:\n${proc.lines.slice(-30).join("\n")}`);
    if (Date.now() > deadline) {
      await proc.stop("SIGKILL");
      throw new Error(`wrangler dev did not answer on ${url} in time:\n${proc.lines.slice(-30).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, port, proc, stop: (signal = "SIGTERM") => proc.stop(signal) };
}

export interface RunnerOptions {
  coordinator: URL;
  /**
   * The development RUNNER_TOKEN the runner enrolls with (passed as DISTRO_RUNNER_TOKEN, not on
   * argv). Default DEV_TOKENS.runner, unless `enroll` is given; null: none.
   */
  token?: string | null;
  /** An enrollment token, passed as DISTRO_ENROLL. */
  enroll?: string;
  /** More environment for the runner (it inherits ours, but not DISTRO_ENROLL or DISTRO_RUNNER_TOKEN). */
  env?: Record<string, string>;
  slots?: number | "auto";
  name?: string;
  args?: string[];
  cacheDir?: string;
  /** Where the runner keeps its credential (default the user's ~/.config/distro). */
  configDir?: string;
  labels?: string[];
  echo?: (line: string) => void;
  /** Flags for node itself, before the script: `--cpu-prof` profiles the runner (docs/benchmarks.md). */
  nodeArgs?: string[];
}

/** Starts a `distro-runner` process. */
export function startRunner(options: RunnerOptions): Proc {
  const args = [...(options.nodeArgs ?? []), fileURLToPath(new URL("bin/distro-runner.js", `file://${ROOT}`))];
  args.push("--coordinator", options.coordinator.toString());
  if (options.slots !== undefined) args.push("--slots", String(options.slots));
  if (options.name) args.push("--name", options.name);
  if (options.cacheDir) args.push("--cache-dir", options.cacheDir);
  if (options.configDir) args.push("--config-dir", options.configDir);
  if (options.labels) args.push("--labels", options.labels.join(","));
  args.push(...(options.args ?? []));
  const { DISTRO_ENROLL: _enroll, DISTRO_RUNNER_TOKEN: _token, ...inherited } = process.env;
  const env: NodeJS.ProcessEnv = { ...inherited };
  const token = options.token === undefined ? (options.enroll ? null : DEV_TOKENS.runner) : options.token;
  if (token !== null) env.DISTRO_RUNNER_TOKEN = token;
  if (options.enroll !== undefined) env.DISTRO_ENROLL = options.enroll;
  Object.assign(env, options.env);
  const child = spawn(process.execPath, args, { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env });
  return new Proc(child, options.echo);
}
