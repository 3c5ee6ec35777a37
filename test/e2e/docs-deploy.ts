/**
 * The docs check of deploy/ (used by test/e2e/docs.test.ts): the runner's Dockerfile and systemd
 * unit, read with a parser for the part of each format they use, and their commands run as
 * written outside Docker and systemd (neither runs here). The paths they name are moved under a
 * temporary root (`/usr/local` → `<root>/usr/local`, `%S` → `<root>/var/lib`, the home of the
 * image's user → `<root>/home/node`), npm's registry is unreachable, and everything else is the
 * file's own: its RUN line, ENV, ENTRYPOINT and CMD; its Environment=, ExecStartPre= and
 * ExecStart=. Anything in them these parsers do not know fails loudly rather than being skipped.
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { Proc } from "../../dev/local";

/** A line of a file with its 1-based line number (continuations joined onto the first). */
interface Line {
  line: number;
  text: string;
}

/** Joins lines ending in `\` and drops blank lines and those `isComment` says are comments. */
function logicalLines(text: string, isComment: (trimmed: string) => boolean): Line[] {
  const out: Line[] = [];
  let current: Line | undefined;
  text.split("\n").forEach((raw, i) => {
    const trimmed = raw.trim();
    if (!current && (trimmed === "" || isComment(trimmed))) return;
    const body = trimmed.endsWith("\\") ? trimmed.slice(0, -1).trimEnd() : trimmed;
    if (current) current.text += ` ${body}`;
    else out.push((current = { line: i + 1, text: body }));
    if (!trimmed.endsWith("\\")) current = undefined;
  });
  return out;
}

/** `$NAME` and `${NAME}` replaced from `vars` (unknown ones become empty, as in Docker and sh). */
function expand(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_m, a: string | undefined, b: string | undefined) => vars[a ?? b!] ?? "",
  );
}

export interface Dockerfile {
  from: string;
  /** ARG names with their defaults (undefined: none). */
  args: Record<string, string | undefined>;
  /** ENV as it stands at the end, expanded with the build args given. */
  env: Record<string, string>;
  /** RUN commands (shell form) with the env each one sees. */
  run: { line: number; command: string; env: Record<string, string> }[];
  user: string;
  volumes: string[];
  entrypoint: string[];
  cmd: string[];
}

/** Exec form `["a", "b"]`, or shell form as `/bin/sh -c` runs it. */
function execForm(args: string): string[] {
  return args.startsWith("[") ? (JSON.parse(args) as string[]) : ["/bin/sh", "-c", args];
}

/** ENV's `K=V K2="v 2"` (or the old `K V`), each value expanded with what is known so far. */
function envPairs(args: string, vars: Record<string, string | undefined>): [string, string][] {
  if (!/^\w+=/.test(args)) {
    const [key, ...rest] = args.split(/\s+/);
    return [[key!, expand(rest.join(" "), vars)]];
  }
  return [...args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map(([, key, value]) => [
    key!,
    expand(value!.startsWith('"') ? (JSON.parse(value!) as string) : value!, vars),
  ]);
}

/** Reads a Dockerfile with `buildArgs` (as `docker build --build-arg` gives them). */
export function parseDockerfile(text: string, buildArgs: Record<string, string>): Dockerfile {
  const df: Dockerfile = { from: "", args: {}, env: {}, run: [], user: "root", volumes: [], entrypoint: [], cmd: [] };
  const argValues: Record<string, string | undefined> = {};
  for (const { line, text: instruction } of logicalLines(text, (t) => t.startsWith("#"))) {
    const [, keyword, args = ""] = /^(\w+)\s*(.*)$/.exec(instruction) ?? [];
    const vars = { ...argValues, ...df.env };
    switch (keyword?.toUpperCase()) {
      case "FROM":
        df.from = args;
        break;
      case "ARG": {
        const [name, value] = args.split("=", 2) as [string, string | undefined];
        df.args[name] = value;
        argValues[name] = buildArgs[name] ?? value;
        break;
      }
      case "ENV":
        for (const [key, value] of envPairs(args, vars)) df.env[key] = value;
        break;
      case "RUN":
        if (args.startsWith("[")) throw new Error(`line ${line}: RUN in exec form is not supported by this check`);
        // A RUN sees the build args and ENV as environment variables; its shell expands them.
        df.run.push({
          line,
          command: args,
          env: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v ?? ""])),
        });
        break;
      case "USER":
        df.user = args;
        break;
      case "VOLUME":
        df.volumes.push(...(args.startsWith("[") ? (JSON.parse(args) as string[]) : args.split(/\s+/)));
        break;
      case "ENTRYPOINT":
        df.entrypoint = execForm(args);
        break;
      case "CMD":
        df.cmd = execForm(args);
        break;
      default:
        throw new Error(`line ${line}: ${keyword} is not an instruction this check knows how to run`);
    }
  }
  return df;
}

/** The homes of the users of the node images. */
export const IMAGE_HOMES: Record<string, string> = { root: "/root", node: "/home/node" };

/** What a command did: exit code and output. */
export interface Ran {
  code: number | null;
  output: string;
}

/** Runs `argv` (no shell) to its end, or kills it after `timeoutMs`. */
export function runToEnd(argv: string[], env: Record<string, string>, cwd: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 1000} s)`;
      process.kill(-child.pid!, "SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve({ code: null, output: `${output}${e.message}` });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Starts `argv` (no shell) in its own process group, its output kept. */
export function start(argv: string[], env: Record<string, string>, cwd: string): Proc {
  return new Proc(spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] }));
}

/** The environment npm gets in these runs: no registry to reach, no retries, no notices. */
export const NO_REGISTRY = {
  npm_config_registry: "http://127.0.0.1:9",
  npm_config_fetch_retries: "0",
  npm_config_update_notifier: "false",
};

/** The directory of the node running this test, for PATHs that must find a node. */
export const NODE_DIR = dirname(process.execPath);

/**
 * A Dockerfile's build outside Docker: each RUN line through `/bin/sh -c`, as Docker runs the
 * shell form, with npm's global prefix (`/usr/local` in the node images) at `<root>/usr/local`.
 */
export async function buildOutsideDocker(df: Dockerfile, root: string): Promise<Ran[]> {
  const prefix = join(root, "usr", "local");
  const home = join(root, "root");
  mkdirSync(home, { recursive: true });
  const results: Ran[] = [];
  for (const run of df.run) {
    const env = {
      ...run.env,
      ...NO_REGISTRY,
      PATH: `${prefix}/bin:${NODE_DIR}:/usr/local/bin:/usr/bin:/bin`,
      HOME: home,
      npm_config_prefix: prefix,
      npm_config_cache: join(home, ".npm"),
    };
    const result = await runToEnd(["/bin/sh", "-c", run.command], env, root, 120_000);
    results.push(result);
    if (result.code !== 0) break;
  }
  return results;
}

/**
 * `docker run -e …` of the image outside Docker: ENTRYPOINT and CMD with the image's ENV and
 * `runEnv`, as its USER, whose home is at `<root><home>` (the volume).
 */
export function runOutsideDocker(df: Dockerfile, root: string, runEnv: Record<string, string>): Proc {
  const home = join(root, IMAGE_HOMES[df.user] ?? `/home/${df.user}`);
  mkdirSync(home, { recursive: true });
  const env = {
    PATH: `${join(root, "usr", "local", "bin")}:${NODE_DIR}:/usr/local/bin:/usr/bin:/bin`,
    ...df.env,
    ...runEnv,
    HOME: home,
  };
  return start([...df.entrypoint, ...df.cmd], env, home);
}

export interface Unit {
  /** Each section's settings in order: a key may appear more than once. */
  sections: Map<string, { key: string; value: string; line: number }[]>;
}

/** Reads a systemd unit file. */
export function parseUnit(text: string): Unit {
  const sections = new Map<string, { key: string; value: string; line: number }[]>();
  let section: { key: string; value: string; line: number }[] | undefined;
  for (const { line, text: setting } of logicalLines(text, (t) => t.startsWith("#") || t.startsWith(";"))) {
    const header = /^\[(.+)\]$/.exec(setting);
    if (header) {
      sections.set(header[1]!, (section = sections.get(header[1]!) ?? []));
      continue;
    }
    const m = /^([A-Za-z]\w*)\s*=\s*(.*)$/.exec(setting);
    if (!m || !section) throw new Error(`line ${line}: not a setting of a section: ${setting}`);
    section.push({ key: m[1]!, value: m[2]!, line });
  }
  return { sections };
}

/** The values of `key` in `section`, in order. */
export function settings(unit: Unit, section: string, key: string): string[] {
  return (unit.sections.get(section) ?? []).filter((s) => s.key === key).map((s) => s.value);
}

/** Words of a systemd value: split at whitespace, "double" and 'single' quotes kept together. */
function words(value: string): string[] {
  return [...value.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)].map(([, d, s, w]) => d ?? s ?? w!);
}

/** Where a system unit's directories are, moved under `root`. */
export function unitDirs(root: string) {
  return { "%S": join(root, "var", "lib"), "%C": join(root, "var", "cache") };
}

/** The unit's `%` specifiers replaced; one this check does not map fails. */
function specifiers(value: string, root: string): string {
  const dirs: Record<string, string> = { ...unitDirs(root), "%%": "%" };
  return value.replace(/%./g, (s) => {
    if (dirs[s] === undefined) throw new Error(`the specifier ${s} is not mapped by this check`);
    return dirs[s];
  });
}

/** The environment of the unit's commands: its Environment= settings, then the EnvironmentFile's. */
export function unitEnv(unit: Unit, root: string, fromFile: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const value of settings(unit, "Service", "Environment"))
    for (const assignment of words(specifiers(value, root))) {
      const eq = assignment.indexOf("=");
      if (eq <= 0) throw new Error(`Environment=: "${assignment}" is not NAME=value`);
      env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
    }
  return { ...env, ...fromFile };
}

/**
 * A command line of the unit as systemd makes it: prefixes (`-`, `@`, `+`, `!`, `:`) must not be
 * there (this check does not model them), specifiers are replaced, `${NAME}` inside a word and
 * `$NAME` as a word take the environment's values (the latter split at whitespace).
 */
export function unitCommand(value: string, root: string, env: Record<string, string>): string[] {
  if (/^[-@+!:]/.test(value)) throw new Error(`a command prefix this check does not model: ${value}`);
  return words(specifiers(value, root)).flatMap((word) => {
    const whole = /^\$(\w+)$/.exec(word);
    if (whole) return (env[whole[1]!] ?? "").split(/\s+/).filter(Boolean);
    return [word.replace(/\$\{(\w+)\}/g, (_m, name: string) => env[name] ?? "")];
  });
}

/** The state and cache directories of the unit, made as systemd makes them before it starts. */
export function makeUnitDirs(unit: Unit, root: string): void {
  const dirs = unitDirs(root);
  for (const [key, base] of [
    ["StateDirectory", dirs["%S"]],
    ["CacheDirectory", dirs["%C"]],
  ] as const) {
    const mode = Number.parseInt(settings(unit, "Service", `${key}Mode`)[0] ?? "0755", 8);
    for (const name of settings(unit, "Service", key).flatMap(words))
      mkdirSync(join(base, name), { recursive: true, mode });
  }
}
