/**
 * `distro`: the command line for a Distro coordinator. `distro submit FILE [--wait]` uploads
 * the modules a DAG names, submits it, and with --wait follows it to the end. Exit codes: 0
 * success, 1 the run failed (or the coordinator could not be reached), 2 bad usage or input.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDocument } from "yaml";
import { parseDag } from "../worker/dag/parse.js";
import type { Problem } from "../worker/dag/plan.js";
import { ApiError, Client, type RunInfo } from "./client.js";

const HELP = `Usage: distro <command> [options]

Commands:
  submit FILE [--wait]   upload the modules FILE names, submit the DAG; --wait follows it to the end
  output ID TASK         print a task's output, or write it with -o FILE
  cancel ID              cancel a run: running attempts are stopped, the rest never runs
  pause ID               let running attempts finish, start nothing new
  resume ID              resume a paused run

Options (every command):
  --coordinator URL      coordinator base URL (env DISTRO_COORDINATOR, default http://127.0.0.1:8787)
  --token TOKEN          the coordinator's API_TOKEN (env DISTRO_TOKEN)
  -h, --help             show this help

Options (output):
  -o, --out FILE         write the output to FILE instead of standard output

Options (submit):
  --modules DIR          where to find the .wasm files the DAG names (repeatable; default: the
                         DAG's folder and wasm_tasks/build)
  --wait                 print progress until the run ends, then its final outputs
  -o, --out DIR          with --wait: write the final tasks' outputs into DIR (TASK.png, .json, .bin)
  --param NAME=VALUE     set a DAG-level param before submitting (VALUE is JSON, else a string)
  --json                 print the run as JSON instead of text (also for cancel, pause, resume)`;

export class UsageError extends Error {}

interface Io {
  out: (line: string) => void;
  /** Raw bytes to standard output (distro output without -o). */
  write: (bytes: Uint8Array) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
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
        json: { type: "boolean" },
        out: { type: "string", short: "o" },
        param: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || !command) {
      io.out(HELP);
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
    switch (command) {
      case "submit": {
        if (rest.length !== 1) throw new UsageError("submit takes exactly one FILE");
        const out = values.out === undefined ? undefined : resolve(io.cwd, values.out);
        const opts = { modules: values.modules ?? [], wait: values.wait ?? false, json: values.json ?? false, out, params: parseParams(values.param ?? []) };
        return await submit(client, resolve(io.cwd, rest[0]!), opts, io);
      }
      case "output": {
        if (rest.length !== 2) throw new UsageError("output takes a run ID and a TASK (id or id[index])");
        const { bytes, type } = await client.outputWithType(rest[0]!, rest[1]!);
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
        if (rest.length !== 1) throw new UsageError(`${command} takes exactly one run ID`);
        const run = await client.control(rest[0]!, command);
        io.out(values.json ? JSON.stringify(run) : `run ${run.id} is ${run.status}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
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
  wait: boolean;
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
  if (!opts.wait) {
    if (opts.json) io.out(JSON.stringify(run, null, 2));
    return 0;
  }
  const started = Date.now();
  const final = await client.wait(run.id, (r) => {
    if (!opts.json) io.out(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${progressLine(r)}`);
  });
  if (opts.json) {
    io.out(JSON.stringify(final, null, 2));
    return final.status === "succeeded" ? 0 : 1;
  }
  await printResult(client, final, opts.out, io);
  return final.status === "succeeded" ? 0 : 1;
}

/** "running: 3/5 succeeded, 1 leased, 1 blocked" */
export function progressLine(run: RunInfo): string {
  const parts = Object.entries(run.counts)
    .filter(([state, n]) => n > 0 && state !== "succeeded")
    .map(([state, n]) => `${n} ${state}`);
  return `${run.status}: ${run.counts.succeeded ?? 0}/${run.tasks_total} succeeded${parts.length ? `, ${parts.join(", ")}` : ""}`;
}

/** Prints (or writes into `out`) the outputs of the run's final tasks, or what failed and why. */
async function printResult(client: Client, run: RunInfo, out: string | undefined, io: Io): Promise<void> {
  if (run.status !== "succeeded") {
    const tasks = (await client.run(run.id)).tasks ?? [];
    for (const t of tasks.filter((t) => t.state === "failed")) {
      const last = t.attempts[t.attempts.length - 1];
      io.err(`task ${t.id} failed after ${t.attempts.length} attempt(s): ${last?.failure_kind ?? "?"}: ${last?.error ?? "no reason recorded"}`);
      if (last?.stderr) io.err(`  stderr: ${last.stderr.trimEnd().split("\n").slice(-5).join("\n          ")}`);
    }
    io.out(`run ${run.id} ${run.status}`);
    return;
  }
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
  }).then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`distro: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
