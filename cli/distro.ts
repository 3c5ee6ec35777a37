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
import { parseDag } from "../core/dag/parse.js";
import { formatSize } from "../core/units.js";
import { type Problem } from "../core/dag/plan.js";
import type { RunSummary, RunView } from "../core/api.js";
import { ApiError, Client } from "./client.js";
import { failedLines, runLines, runnerLines, statusLines } from "./format.js";
import { Progress } from "./progress.js";
import { safe, safeText } from "./terminal.js";
import { OUTPUT_EXTENSIONS } from "../core/abi.js";

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
  runs: {
    usage: "runs [--limit N]",
    summary: "list recent runs, newest first",
    options: "  --limit N              how many (default 20, at most 500)",
  },
  status: {
    usage: "status ID",
    summary: "a run's status, each task's instances by state, and the first failed tasks with their errors",
  },
  runners: { usage: "runners", summary: "connected runners: platform, slots, busy slots, CPU and memory" },
  output: {
    usage: "output ID TASK [-o FILE]",
    summary: "print a task's output, or write it to FILE",
    options: "  -o, --out FILE         write the output to FILE instead of standard output",
  },
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
      return rest;
    };
    switch (command) {
      case "submit": {
        const [file] = args(1, "exactly one FILE");
        if (values.wait && values.watch)
          throw new UsageError("--wait and --watch go alone: --wait is --watch plus the final outputs");
        const out = values.out === undefined ? undefined : resolve(io.cwd, values.out);
        const follow = values.wait ? "wait" : values.watch ? "watch" : null;
        return await submit(
          client,
          resolve(io.cwd, file!),
          { modules: values.modules ?? [], follow, json, out, params: parseParams(values.param ?? []) },
          io,
        );
      }
      case "runs": {
        args(0, "no arguments");
        const limit = values.limit === undefined ? 20 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500)
          throw new UsageError(`--limit: expected a whole number from 1 to 500, got "${values.limit}"`);
        const { runs } = await client.runs(limit);
        if (json) io.out(JSON.stringify(runs, null, 2));
        else runLines(runs).forEach((line) => io.out(line));
        return 0;
      }
      case "status": {
        const [id] = args(1, "exactly one run ID");
        const run = await client.json<RunView>(`/api/dags/${encodeURIComponent(id!)}?state=failed&limit=10`);
        if (json) io.out(JSON.stringify(run, null, 2));
        else statusLines(run).forEach((line) => io.out(line));
        return 0;
      }
      case "runners": {
        args(0, "no arguments");
        const { runners } = await client.runners();
        if (json) io.out(JSON.stringify(runners, null, 2));
        else runnerLines(runners).forEach((line) => io.out(line));
        return 0;
      }
      case "output": {
        const [id, task] = args(2, "a run ID and a TASK (id or id[index])");
        const { bytes, type } = await client.outputWithType(id!, task!);
        if (values.out !== undefined) {
          writeFileSync(resolve(io.cwd, values.out), bytes);
          io.out(`wrote ${bytes.length} bytes (${safe(type)}) to ${values.out}`);
        } else if (io.tty) {
          // On a terminal the bytes are shown, never obeyed; a pipe or a file gets them unchanged.
          io.out(safeText(new TextDecoder().decode(bytes)));
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
        io.out(json ? JSON.stringify(run) : `run ${safe(run.id)} is ${safe(run.status)}`);
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
          if (!json) io.out(`${safe(info.name)}: ${formatSize(info.size)}, sha256:${safe(info.sha256)}`);
        }
        if (json) io.out(JSON.stringify(pushed, null, 2));
        return 0;
      }
    }
    throw new UsageError(`unknown command "${command}"`);
  } catch (e) {
    if (
      e instanceof UsageError ||
      (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      io.err(`distro: ${e.message}\nRun distro --help for usage.`);
      return 2;
    }
    if (e instanceof ApiError) {
      io.err(`distro: ${safe(e.message)}`);
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
    if (!opts.json) io.out(`uploaded ${name} (${formatSize(info.size)}, sha256 ${safe(info.sha256.slice(0, 12))}…)`);
  }
  const run = await client.submit(yaml);
  if (!opts.json) io.out(`submitted run ${safe(run.id)} (${run.tasks_total} tasks)\nstatus: ${safe(run.url)}`);
  if (!opts.follow) {
    if (opts.json) io.out(JSON.stringify(run, null, 2));
    return 0;
  }
  const progress = new Progress({
    tty: io.tty !== undefined,
    columns: io.tty?.columns,
    write: (text) => io.write(new TextEncoder().encode(text)),
  });
  const final = await client.follow(run.id, (r) => {
    if (!opts.json) progress.update(r);
  });
  progress.end();
  if (opts.json) io.out(JSON.stringify(final, null, 2));
  else if (opts.follow === "wait" || final.status !== "succeeded")
    await printResult(client, final, opts.follow === "wait", opts.out, io);
  else io.out(`run ${safe(final.id)} succeeded`);
  return final.status === "succeeded" ? 0 : 1;
}

/** Prints what failed and why; with `outputs`, prints (or writes into `out`) the outputs of the run's final tasks. */
async function printResult(
  client: Client,
  run: RunSummary,
  outputs: boolean,
  out: string | undefined,
  io: Io,
): Promise<void> {
  if (run.status !== "succeeded") {
    failedLines(await client.json<RunView>(`/api/dags/${run.id}?state=failed&limit=10`)).forEach((line) =>
      io.err(line),
    );
    io.out(`run ${safe(run.id)} ${safe(run.status)}`);
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
      const extension = OUTPUT_EXTENSIONS[type as keyof typeof OUTPUT_EXTENSIONS] ?? ".bin";
      const file = join(out, `${t.id.replace(/[^A-Za-z0-9_.-]/g, "_")}${extension}`);
      writeFileSync(file, bytes);
      io.out(`${safe(t.id)}: wrote ${bytes.length} bytes (${safe(type)}) to ${safe(file)}`);
    } else if (type === "application/json") {
      const text = new TextDecoder().decode(bytes);
      io.out(
        `${safe(t.id)}: ${safeText(text.length > 2000 ? `${text.slice(0, 2000)}… (${bytes.length} bytes)` : text)}`,
      );
    } else {
      io.out(
        `${safe(t.id)}: ${bytes.length} bytes of ${safe(type)} (save it: distro output ${safe(run.id)} ${safe(t.id)} -o FILE)`,
      );
    }
  }
  io.out(`run ${safe(run.id)} succeeded`);
}

function printProblems(problems: Problem[], file: string, io: Io): void {
  for (const p of problems)
    io.err(`  ${file ? `${file}:` : ""}${p.line}:${p.column}: ${p.path ? `${safe(p.path)}: ` : ""}${safe(p.message)}`);
}

/** The `distro` bin: runs `main` on the process's arguments and streams, and sets the exit code. */
export function runCli(): void {
  // Lines go out terminal-safe whatever a caller forgot; raw bytes (an output piped to a file,
  // the progress line's own redraw codes) go through `write`.
  main(process.argv.slice(2), {
    out: (l) => process.stdout.write(`${safeText(l)}\n`),
    write: (b) => process.stdout.write(b),
    err: (l) => process.stderr.write(`${safeText(l)}\n`),
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
