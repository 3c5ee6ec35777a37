/**
 * `distro`: the command line for a Distro coordinator: submit DAGs and follow them with a live
 * progress display, list runs and runners, read outputs, control runs, push modules. Every
 * read command takes --json. Exit codes: 0 success, 1 the run failed (or the coordinator could
 * not be reached), 2 bad usage or input.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDocument } from "yaml";
import { parseDag } from "../worker/dag/parse.js";
import { formatSize } from "../worker/dag/units.js";
import type { Problem } from "../worker/dag/plan.js";
import { ApiError, Client, type RunInfo, type RunListing, type RunnerListing } from "./client.js";
import { finished, formatDuration, Progress, progressText } from "./progress.js";

const COMMON = `Options (every command):
  --coordinator URL      coordinator base URL (env DISTRO_COORDINATOR, default http://127.0.0.1:8787)
  --token TOKEN          the coordinator's API_TOKEN (env DISTRO_TOKEN)
  --json                 machine-readable output (read commands and submit)
  -h, --help             show help`;

/** Each command: its usage line, what it does, and its own options. */
const COMMANDS: Record<string, { usage: string; summary: string; options?: string }> = {
  submit: {
    usage: "submit FILE [--wait|--watch] [-o DIR] [--param NAME=VALUE]... [--modules DIR]...",
    summary: "upload the modules FILE names and submit the DAG",
    options: `  --watch                follow the run with a live progress display; exit 0 if it succeeds, 1 if not
  --wait                 as --watch, then print the final tasks' outputs
  -o, --out DIR          with --wait: write the final tasks' outputs into DIR (TASK.png, .json, .bin)
  --param NAME=VALUE     set a DAG-level param before submitting (VALUE is JSON, else a string)
  --modules DIR          where to find the .wasm files the DAG names (repeatable; default: the
                         DAG's folder and wasm_tasks/build)`,
  },
  runs: { usage: "runs [--limit N]", summary: "list recent runs, newest first", options: "  --limit N              how many (default 20, at most 500)" },
  status: { usage: "status ID", summary: "a run's status, each task's instances by state, and the first failed tasks with their errors" },
  runners: { usage: "runners", summary: "connected runners: platform, slots, busy slots, CPU and memory" },
  output: { usage: "output ID TASK [-o FILE]", summary: "print a task's output, or write it to FILE", options: "  -o, --out FILE         write the output to FILE instead of standard output" },
  cancel: { usage: "cancel ID", summary: "cancel a run: running attempts are stopped, the rest never runs" },
  pause: { usage: "pause ID", summary: "let running attempts finish, start nothing new" },
  resume: { usage: "resume ID", summary: "resume a paused run" },
  modules: { usage: "modules push FILE...", summary: "upload .wasm modules under their file names (without .wasm)" },
};

const HELP = `Usage: distro <command> [options]

Commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split(" ")[0]!.padEnd(10)} ${c.summary}`)
  .join("\n")}

Run distro <command> --help for a command's options.
Exit codes: 0 success, 1 the run failed (or the coordinator could not be reached), 2 bad usage or input.

${COMMON}`;

function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  return `Usage: distro ${c.usage}\n\n${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.\n${c.options ? `\nOptions:\n${c.options}\n` : ""}\n${COMMON}`;
}

export class UsageError extends Error {}

interface Io {
  out: (line: string) => void;
  /** Raw bytes to standard output (distro output without -o). */
  write: (bytes: Uint8Array) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Standard output is a terminal of this many columns (progress redraws in place); absent: plain lines. */
  tty?: { columns: number };
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        coordinator: { type: "string" },
        token: { type: "string" },
        modules: { type: "string", multiple: true },
        wait: { type: "boolean" },
        watch: { type: "boolean" },
        json: { type: "boolean" },
        out: { type: "string", short: "o" },
        param: { type: "string", multiple: true },
        limit: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    const [command, ...rest] = positionals;
    if (command && !(command in COMMANDS)) throw new UsageError(`unknown command "${command}"`);
    if (values.help || !command) {
      io.out(command ? commandHelp(command) : HELP);
      return values.help ? 0 : 2;
    }
    const coordinator = values.coordinator ?? io.env.DISTRO_COORDINATOR ?? "http://127.0.0.1:8787";
    const token = values.token ?? io.env.DISTRO_TOKEN;
    if (!token) throw new UsageError("--token TOKEN is required (or set DISTRO_TOKEN)");
    let url: URL;
    try {
      url = new URL(coordinator);
    } catch {
      throw new UsageError(`--coordinator: "${coordinator}" is not a URL`);
    }
    const client = new Client(url, token);
    const json = values.json ?? false;
    const args = (n: number, what: string) => {
      if (rest.length !== n) throw new UsageError(`${command} takes ${what}`);
      return rest as string[];
    };
    switch (command) {
      case "submit": {
        const [file] = args(1, "exactly one FILE");
        if (values.wait && values.watch) throw new UsageError("--wait and --watch go alone: --wait is --watch plus the final outputs");
        const out = values.out === undefined ? undefined : resolve(io.cwd, values.out);
        const follow = values.wait ? "wait" : values.watch ? "watch" : null;
        return await submit(client, resolve(io.cwd, file!), { modules: values.modules ?? [], follow, json, out, params: parseParams(values.param ?? []) }, io);
      }
      case "runs": {
        args(0, "no arguments");
        const limit = values.limit === undefined ? 20 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError(`--limit: expected a whole number from 1 to 500, got "${values.limit}"`);
        const { runs } = await client.runs(limit);
        if (json) io.out(JSON.stringify(runs, null, 2));
        else printRuns(runs, io);
        return 0;
      }
      case "status": {
        const [id] = args(1, "exactly one run ID");
        const run = await client.json<RunInfo>(`/api/dags/${encodeURIComponent(id!)}?state=failed&limit=10`);
        if (json) io.out(JSON.stringify(run, null, 2));
        else printStatus(run, io);
        return 0;
      }
      case "runners": {
        args(0, "no arguments");
        const { runners } = await client.runners();
        if (json) io.out(JSON.stringify(runners, null, 2));
        else printRunners(runners, io);
        return 0;
      }
      case "output": {
        const [id, task] = args(2, "a run ID and a TASK (id or id[index])");
        const { bytes, type } = await client.outputWithType(id!, task!);
        if (values.out !== undefined) {
          writeFileSync(resolve(io.cwd, values.out), bytes);
          io.out(`wrote ${bytes.length} bytes (${type}) to ${values.out}`);
        } else {
          io.write(bytes);
        }
        return 0;
      }
      case "cancel":
      case "pause":
      case "resume": {
        const [id] = args(1, "exactly one run ID");
        const run = await client.control(id!, command);
        io.out(json ? JSON.stringify(run) : `run ${run.id} is ${run.status}`);
        return 0;
      }
      case "modules": {
        if (rest[0] !== "push" || rest.length < 2) throw new UsageError("usage: distro modules push FILE...");
        const pushed = [];
        for (const file of rest.slice(1)) {
          const path = resolve(io.cwd, file);
          let bytes: Uint8Array<ArrayBuffer>;
          try {
            bytes = new Uint8Array(readFileSync(path));
          } catch (e) {
            throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
          }
          const info = await client.uploadModule(basename(path).replace(/\.wasm$/, ""), bytes);
          pushed.push(info);
          if (!json) io.out(`${info.name}: ${formatSize(info.size)}, sha256:${info.sha256}`);
        }
        if (json) io.out(JSON.stringify(pushed, null, 2));
        return 0;
      }
    }
    throw new UsageError(`unknown command "${command}"`);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))) {
      io.err(`distro: ${e.message}\nRun distro --help for usage.`);
      return 2;
    }
    if (e instanceof ApiError) {
      io.err(`distro: ${e.message}`);
      printProblems(e.problems, "", io);
      return e.status >= 400 && e.status < 500 ? 2 : 1;
    }
    throw e;
  }
}

interface SubmitOptions {
  modules: string[];
  /** Follow the run: `watch` with progress, `wait` with progress and then the final outputs. */
  follow: "watch" | "wait" | null;
  json: boolean;
  out: string | undefined;
  params: [string, unknown][];
}

/** `--param a=1 --param name=x` → [["a", 1], ["name", "x"]]. */
function parseParams(list: string[]): [string, unknown][] {
  return list.map((p) => {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$/s.exec(p);
    if (!m) throw new UsageError(`--param: expected NAME=VALUE, got "${p}"`);
    try {
      return [m[1]!, JSON.parse(m[2]!)];
    } catch {
      return [m[1]!, m[2]!];
    }
  });
}

async function submit(client: Client, file: string, opts: SubmitOptions, io: Io): Promise<number> {
  let yaml: string;
  try {
    yaml = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (opts.params.length > 0) {
    const doc = parseDocument(yaml);
    for (const [name, value] of opts.params) doc.setIn(["params", name], value);
    yaml = doc.toString();
  }
  const parsed = parseDag(yaml);
  if (!parsed.ok) {
    io.err(`distro: ${file} is not a valid DAG`);
    printProblems(parsed.problems, file, io);
    return 2;
  }
  const dirs = [...opts.modules.map((d) => resolve(io.cwd, d)), dirname(file), join(io.cwd, "wasm_tasks", "build")];
  for (const name of new Set(parsed.plan.nodes.map((n) => n.module))) {
    if (name.startsWith("sha256:")) continue;
    const path = dirs.flatMap((d) => [join(d, name), join(d, `${name}.wasm`)]).find((p) => existsSync(p));
    if (!path) {
      io.err(`distro: no file for module "${name}" in ${dirs.join(", ")}; relying on the coordinator's registry`);
      continue;
    }
    const info = await client.uploadModule(name, readFileSync(path));
    if (!opts.json) io.out(`uploaded ${name} (${(info.size / 1024).toFixed(1)} KiB, sha256 ${info.sha256.slice(0, 12)}…)`);
  }
  const run = await client.submit(yaml);
  if (!opts.json) io.out(`submitted run ${run.id} (${run.tasks_total} tasks)\nstatus: ${run.url}`);
  if (!opts.follow) {
    if (opts.json) io.out(JSON.stringify(run, null, 2));
    return 0;
  }
  const progress = new Progress({ tty: io.tty !== undefined, columns: io.tty?.columns, write: (text) => io.write(new TextEncoder().encode(text)) });
  const final = await client.follow(run.id, (r) => {
    if (!opts.json) progress.update(r);
  });
  progress.end();
  if (opts.json) io.out(JSON.stringify(final, null, 2));
  else if (opts.follow === "wait" || final.status !== "succeeded") await printResult(client, final, opts.follow === "wait", opts.out, io);
  else io.out(`run ${final.id} succeeded`);
  return final.status === "succeeded" ? 0 : 1;
}

function printRuns(runs: RunListing[], io: Io): void {
  if (runs.length === 0) return io.out("no runs yet");
  const rows = runs.map((r) => [
    r.id.slice(0, 12),
    r.name,
    r.status,
    `${finished(r.counts)}/${r.tasks}`,
    new Date(r.created_at).toISOString().replace("T", " ").slice(0, 19),
    formatDuration((r.finished_at ?? Date.now()) - r.created_at),
  ]);
  table(["ID", "NAME", "STATUS", "DONE", "CREATED (UTC)", "DURATION"], rows, io);
}

function printStatus(run: RunInfo, io: Io): void {
  io.out(`${run.name} (${run.id})`);
  io.out(progressText(run, null));
  const rows = (run.nodes ?? []).map((n) => [
    n.id,
    n.instances === null ? "1" : String(n.instances),
    Object.entries(n.counts ?? {})
      .map(([state, count]) => `${count} ${state}`)
      .join(", "),
  ]);
  table(["TASK", "INSTANCES", "STATES"], rows, io);
  printFailed(run, io.out);
}

/** The failed tasks a run view holds (`?state=failed`), each with its last error and stderr tail. */
function printFailed(run: RunInfo, write: (line: string) => void): void {
  const tasks = run.tasks ?? [];
  for (const t of tasks) {
    const last = t.attempts.at(-1);
    write(`task ${t.id} failed after ${t.attempts.length} attempt(s): ${last?.failure_kind ?? "?"}: ${last?.error ?? "no reason recorded"}`);
    if (last?.stderr) write(`  stderr: ${last.stderr.trimEnd().split("\n").slice(-5).join("\n          ")}`);
  }
  const more = (run.counts.failed ?? 0) - tasks.length;
  if (more > 0) write(`… and ${more} more failed task(s)`);
}

function printRunners(runners: RunnerListing[], io: Io): void {
  if (runners.length === 0) return io.out("no runners connected");
  const rows = runners.map((r) => [
    r.name,
    `${r.platform}/${r.arch}`,
    `${r.busy}/${r.slots}`,
    r.load === null ? "-" : `${Math.round(r.load)}%`,
    `${formatSize(r.freeMemory)} of ${formatSize(r.memory)}`,
    r.labels.join(",") || "-",
    String(r.runs.length),
  ]);
  table(["NAME", "PLATFORM", "BUSY", "CPU", "FREE MEMORY", "LABELS", "RUNS"], rows, io);
}

function table(header: string[], rows: string[][], io: Io): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) io.out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "));
}


/** Prints what failed and why; with `outputs`, prints (or writes into `out`) the outputs of the run's final tasks. */
async function printResult(client: Client, run: RunInfo, outputs: boolean, out: string | undefined, io: Io): Promise<void> {
  if (run.status !== "succeeded") {
    printFailed(await client.json<RunInfo>(`/api/dags/${run.id}?state=failed&limit=10`), io.err);
    io.out(`run ${run.id} ${run.status}`);
    return;
  }
  if (!outputs) return;
  const view = await client.run(run.id);
  const used = new Set((view.nodes ?? []).flatMap((n) => n.deps));
  const sinks = new Set((view.nodes ?? []).filter((n) => !used.has(n.id)).map((n) => n.id));
  if (out) mkdirSync(out, { recursive: true });
  const finals = (view.tasks ?? []).filter((t) => sinks.has(t.node));
  for (const t of out ? finals : finals.slice(0, 10)) {
    const { bytes, type } = await client.outputWithType(run.id, t.id);
    if (out) {
      const file = join(out, `${t.id.replace(/[^A-Za-z0-9_.-]/g, "_")}${type === "image/png" ? ".png" : type === "application/json" ? ".json" : ".bin"}`);
      writeFileSync(file, bytes);
      io.out(`${t.id}: wrote ${bytes.length} bytes (${type}) to ${file}`);
    } else if (type === "application/json" || (type.startsWith("text/") && bytes.length < 4096)) {
      const text = new TextDecoder().decode(bytes);
      io.out(`${t.id}: ${text.length > 2000 ? `${text.slice(0, 2000)}… (${bytes.length} bytes)` : text}`);
    } else {
      io.out(`${t.id}: ${bytes.length} bytes of ${type} (save it: distro output ${run.id} ${t.id} -o FILE)`);
    }
  }
  io.out(`run ${run.id} succeeded`);
}

function printProblems(problems: Problem[], file: string, io: Io): void {
  for (const p of problems) io.err(`  ${file ? `${file}:` : ""}${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`);
}

/** The `distro` bin: runs `main` on the process's arguments and streams, and sets the exit code. */
export function runCli(): void {
  main(process.argv.slice(2), {
    out: (l) => process.stdout.write(`${l}\n`),
    write: (b) => process.stdout.write(b),
    err: (l) => process.stderr.write(`${l}\n`),
    env: process.env,
    cwd: process.cwd(),
    tty: process.stdout.isTTY ? { columns: process.stdout.columns } : undefined,
  }).then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`distro: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
