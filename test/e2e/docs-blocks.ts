/**
 * The docs check's machinery (used by test/e2e/docs.test.ts): finds the fenced shell blocks of a
 * markdown file, splits each into commands with their file:line, and runs a block's commands one
 * by one with bash against a given coordinator, as a newcomer would paste them, with their
 * addresses and placeholders filled (docs-placeholders.ts). Each block is a fresh device: an empty
 * HOME of its own, where a runner it starts keeps its credential. Pure extraction first, then the
 * runner; what is skipped and what runs in the background is decided by the tables the caller
 * passes in.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Proc } from "../../dev/local";
import { fill, remember, type Made } from "./docs-placeholders";

/** One command of a doc: a line, or lines joined by a trailing `\` or an open loop. */
interface DocCommand {
  file: string;
  /** 1-based line of the command's first line. */
  line: number;
  text: string;
}

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's language: sh, bash, shell, console, or powershell (pwsh, ps1). */
  lang: string;
  commands: DocCommand[];
}

const SHELL_FENCE = /^\s*```\s*(sh|bash|shell|console|powershell|pwsh|ps1)\b/;
const ANY_FENCE = /^\s*```/;

/** The fenced sh/bash/shell/console blocks of `markdown`, each split into commands. */
export function extractBlocks(markdown: string, file: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!ANY_FENCE.test(lines[i]!)) continue;
    const shell = SHELL_FENCE.exec(lines[i]!);
    const start = i;
    const body: { line: number; text: string }[] = [];
    for (i++; i < lines.length && !ANY_FENCE.test(lines[i]!); i++) body.push({ line: i + 1, text: lines[i]! });
    if (!shell) continue;
    const console = shell[1] === "console" && body.some((l) => l.text.startsWith("$ "));
    // In a console transcript only the `$ ` lines are commands; the rest is what they print.
    const input = console
      ? body.filter((l) => l.text.startsWith("$ ")).map((l) => ({ ...l, text: l.text.slice(2) }))
      : body;
    blocks.push({ file, line: start + 1, lang: shell[1]!, commands: splitCommands(input, file) });
  }
  return blocks;
}

/**
 * Splits lines into commands: a blank line or the end of a line ends one, unless the line ends
 * with `\` or leaves a `for`/`while`/`if` open; `# comments` are dropped.
 */
function splitCommands(lines: { line: number; text: string }[], file: string): DocCommand[] {
  const commands: DocCommand[] = [];
  let current: DocCommand | undefined;
  let depth = 0;
  let continued = false;
  for (const { line, text } of lines) {
    const code = stripComment(text).trimEnd();
    if (code.trim() === "") {
      if (current && !continued && depth === 0) current = undefined;
      continue;
    }
    const body = code.endsWith("\\") ? code.slice(0, -1).trimEnd() : code;
    if (current) current.text += continued ? ` ${body.trim()}` : `\n${body}`;
    else commands.push((current = { file, line, text: body.trim() }));
    continued = code.endsWith("\\");
    depth += nesting(body);
    if (!continued && depth <= 0) {
      current = undefined;
      depth = 0;
    }
  }
  return commands;
}

/** The line without a `#` comment (a `#` that starts a word outside quotes). */
function stripComment(text: string): string {
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"') i++;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "\\") i++;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1]!))) return text.slice(0, i);
  }
  return text;
}

/** How many loops and ifs the line opens minus how many it closes. */
function nesting(code: string): number {
  const words = code.split(/[\s;&|()]+/);
  return (
    words.filter((w) => w === "do" || w === "if" || w === "case").length -
    words.filter((w) => w === "done" || w === "fi" || w === "esac").length
  );
}

/** A command left out of the run, matched by the start of its text. */
export interface SkipRule {
  prefix: string;
  reason: string;
}

/** A command that keeps running (a server, a runner): started, checked for readiness, stopped. */
export interface BackgroundRule {
  prefix: string;
  /** What readiness means, for the report. */
  ready: string;
  /**
   * Resolves once the process is ready (with the device it enrolled, for a runner); throws with
   * a reason otherwise. `enrollment`: the enrollment whose token the command was given.
   */
  waitReady(proc: Proc, ctx: RunContext, enrollment: string | undefined): Promise<{ device?: string } | void>;
  /** Rewrites the command before it starts (e.g. to give a server a free port). */
  rewrite?(text: string, ctx: RunContext): Promise<string>;
}

export interface RunContext {
  /** Where the commands run (a temporary working copy of the repository). */
  cwd: string;
  /** The coordinator that stands in for every coordinator address the docs name. */
  coordinator: URL;
  /** Added to the environment of every command. */
  env: Record<string, string>;
  /** The coordinator's API token, to mint the enrollments that `<token>` stands for. */
  apiToken: string;
  skip: SkipRule[];
  /** Blocks not run at all, by fence language (e.g. powershell), and why. */
  skipLangs: Record<string, string>;
  background: BackgroundRule[];
  /** Per command (default 90 s); a background command gets this long to become ready. */
  timeoutMs?: number;
}

/** What happened to one command (the command as it ran: addresses and placeholders filled). */
interface Outcome {
  status: "ok" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  reason?: string;
  ran: string;
  output: string;
}

export type CommandResult = DocCommand & Outcome & { ms: number };

/** Output that means something went wrong even when the exit code is 0 (curl shows 4xx bodies). */
const ERROR_OUTPUT = new RegExp(
  [
    String.raw`"error"\s*:\s*"`, // an API error body
    String.raw`^\s*(?:npm )?(?:error\b|ERR!)`, // a line that starts with error, npm's too
    String.raw`\b\w*Error:`, // Error:, TypeError:, …
    "command not found",
    "No such file or directory",
    String.raw`^curl: \(\d+\)`,
  ].join("|"),
  "im",
);
/** The rule whose prefix starts the command (leading `sudo` and `NAME=value` assignments aside). */
function matchRule<R extends { prefix: string }>(text: string, rules: R[]): R | undefined {
  const bare = text.replace(/^(?:sudo\s+|[A-Za-z_]\w*=\S*\s+)*/, "");
  return rules.find((r) => bare.startsWith(r.prefix) || text.startsWith(r.prefix));
}

/**
 * Runs a block's commands in order in `ctx.cwd`, each in its own `bash` that first loads the
 * variables the earlier commands of the block set. Stops the block at its first failure (the
 * rest are reported as not run); never rejects.
 */
export async function runBlock(block: DocBlock, ctx: RunContext): Promise<CommandResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "distro-docs-state-"));
  // Each block is a device of its own: runners it starts keep their credential in this HOME.
  const home = join(dir, "home");
  mkdirSync(home);
  const run: BlockRun = { ctx, state: join(dir, "vars.sh"), env: { HOME: home }, made: {} };
  const results: CommandResult[] = [];
  try {
    for (const command of block.commands) {
      const t0 = Date.now();
      const failed = results.some((r) => r.status === "failed");
      const langSkip = ctx.skipLangs[block.lang];
      const outcome = langSkip
        ? { status: "skipped" as const, reason: langSkip, ran: "", output: "" }
        : await runCommand(command.text, run, failed);
      results.push({ ...command, ...outcome, ms: Date.now() - t0 });
      if (outcome.status === "ok") remember(command.text, outcome.output, run.made);
    }
  } finally {
    // A server the block stopped may still be writing its last files here as it exits (CI once
    // saw ENOTEMPTY): retried, not raced.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
  return results;
}

/** One block's run: where its variables are kept, its environment, what its commands made. */
interface BlockRun {
  ctx: RunContext;
  state: string;
  env: Record<string, string>;
  made: Made;
}

async function runCommand(text: string, run: BlockRun, failed: boolean): Promise<Outcome> {
  const { ctx } = run;
  const skip = matchRule(text, ctx.skip);
  if (skip) return { status: "skipped", reason: skip.reason, ran: "", output: "" };
  if (failed)
    return { status: "skipped", reason: "not run: an earlier command of the block failed", ran: "", output: "" };
  let filled;
  try {
    filled = await fill(text, ctx, run.made);
  } catch (e) {
    return { status: "failed", reason: (e as Error).message, ran: text, output: "" };
  }
  if ("unfilled" in filled) return { status: "failed", reason: filled.unfilled, ran: text, output: "" };
  const background = matchRule(text, ctx.background);
  return background ? runBackground(filled.ran, background, run, filled.enrollment) : runForeground(filled.ran, run);
}

/** The bash script around a command: the block's variables and folder in, `set -e`, both out again. */
function script(command: string, state: string, save: boolean): string {
  // allexport, so that plain `NAME=value` assignments are in `export -p` for the next command.
  const load = `set -a; [ -f '${state}' ] && . '${state}'; set -eo pipefail`;
  const keep = `trap 'export -p > "${state}"; printf "cd %q\\n" "$PWD" >> "${state}"' EXIT`;
  return `${load}\n${save ? `${keep}\n` : ""}${command}\n`;
}

/** What would make a block's runner some other device than the block's own: not passed on from ours. */
const DEVICE_VARS = ["DISTRO_CONFIG_DIR", "XDG_CONFIG_HOME", "DISTRO_ENROLL", "DISTRO_RUNNER_TOKEN", "DISTRO_TOKEN"];

function spawnBash(command: string, run: BlockRun, save: boolean) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !DEVICE_VARS.includes(k)));
  return spawn("bash", ["-c", script(command, run.state, save)], {
    cwd: run.ctx.cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...inherited, ...run.ctx.env, ...run.env },
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function runForeground(ran: string, run: BlockRun): Promise<Outcome> {
  const timeoutMs = run.ctx.timeoutMs ?? 90_000;
  const child = spawnBash(ran, run, true);
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  // "close", not "exit": the output is complete, even its last line without a newline.
  const closed = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
  const code = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  if (code === "timeout") {
    killGroup(child.pid!);
    return { status: "failed", reason: `still running after ${timeoutMs / 1000} s (killed)`, ran, output };
  }
  if (code !== 0) return { status: "failed", reason: `exit code ${code}`, ran, output };
  return judge("exit code 0", ran, output);
}

async function runBackground(
  command: string,
  rule: BackgroundRule,
  run: BlockRun,
  enrollment: string | undefined,
): Promise<Outcome> {
  const { ctx } = run;
  const ran = rule.rewrite ? await rule.rewrite(command, ctx) : command;
  const proc = new Proc(spawnBash(ran, run, false));
  try {
    const ready = await rule.waitReady(proc, ctx, enrollment);
    if (ready?.device) run.made.device = ready.device;
    return judge("ready", ran, proc.lines.join("\n"));
  } catch (e) {
    const reason = `did not become ready (${rule.ready}): ${(e as Error).message}`;
    return { status: "failed", reason, ran, output: proc.lines.join("\n") };
  } finally {
    await proc.stop("SIGTERM", 5000);
  }
}

/** Ok, unless the output shows an error. */
function judge(soFar: string, ran: string, output: string): Outcome {
  const error = ERROR_OUTPUT.exec(output);
  if (!error) return { status: "ok", ran, output };
  return {
    status: "failed",
    reason: `${soFar}, but it printed an error (${JSON.stringify(error[0].trim())})`,
    ran,
    output,
  };
}

/** A failure as one readable paragraph: where, what, why, and the end of what it printed. */
export function describeFailure(r: CommandResult): string {
  const tail = r.output.split("\n").slice(-40).join("\n    ");
  const ran = r.ran && r.ran !== r.text ? `\n  ran as: ${r.ran}` : "";
  return `${r.file}:${r.line}: ${r.text}${ran}\n  failed: ${r.reason}\n  output:\n    ${tail || "(none)"}`;
}
