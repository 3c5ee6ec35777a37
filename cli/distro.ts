/**
 * `distro`: the command line for a Distro coordinator: submit DAGs and follow them with a live
 * progress display, list runs, runners and devices, enroll, revoke and trust devices, read outputs,
 * control runs, push modules. The command table (commands.ts) drives the help, the parsing and
 * the dispatch here: each command takes the common flags and its own, and any other flag is a
 * usage error naming it. Exit codes: 0 success, 1 the run failed (or the coordinator could not be
 * reached), 2 bad usage or input.
 */
import { parseArgs } from "node:util";
import { ApiError, Client } from "./client.js";
import { flagHelp, UsageError, type Command, type Flags, type Io, type Values } from "./command.js";
import { COMMANDS } from "./commands.js";
import { printProblems } from "./submit.js";
import { safe, safeText } from "./terminal.js";

/** The flags every command takes. */
const COMMON = {
  coordinator: {
    type: "string",
    value: "URL",
    help: "coordinator base URL (env DISTRO_COORDINATOR, default http://127.0.0.1:8787)",
  },
  token: { type: "string", value: "TOKEN", help: "the coordinator's API_TOKEN (env DISTRO_TOKEN)" },
  help: { type: "boolean", short: "h", help: "show help" },
} as const satisfies Flags;

/**
 * Every flag some command takes: the first, lenient pass parses with these to find the command
 * among the arguments and to tell a flag no command takes from one this command does not. (A
 * flag two commands take has the same type in both: a unit test checks.)
 */
const ALL_FLAGS = { ...Object.values(COMMANDS).reduce<Flags>((all, c) => ({ ...all, ...c.options }), {}), ...COMMON };

const COMMON_HELP = ["Options (every command):", ...Object.entries(COMMON).flatMap(([n, f]) => flagHelp(n, f))];

const NAME_WIDTH = Math.max(...Object.keys(COMMANDS).map((name) => name.length));

const HELP = `Usage: distro <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(NAME_WIDTH)}  ${c.summary}`)
  .join("\n")}

Run distro <command> --help for a command's options.
Exit codes: 0 success, 1 the run failed (or the coordinator could not be reached), 2 bad usage or input.

${COMMON_HELP.join("\n")}`;

function commandHelp(name: string, c: Command): string {
  const options = Object.entries(c.options).flatMap(([n, f]) => flagHelp(n, f));
  const summary = `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`;
  const subcommands = Object.entries(COMMANDS)
    .filter(([sub]) => sub.startsWith(`${name} `))
    .map(([sub, s]) => `  ${sub.padEnd(NAME_WIDTH)}  ${s.summary}`);
  const subSection = subcommands.length > 0 ? `\nSubcommands:\n${subcommands.join("\n")}\n` : "";
  const section = options.length > 0 ? `\nOptions:\n${options.join("\n")}\n` : "";
  return `Usage: distro ${name}${c.usage ? ` ${c.usage}` : ""}\n\n${summary}\n${subSection}${section}\n${COMMON_HELP.join("\n")}`;
}

/** parseArgs over `flags`; the values come back typed as the flags declare them. */
function parseFlags<F extends Flags>(argv: string[], flags: F, strict: boolean) {
  const options = Object.fromEntries(
    Object.entries(flags).map(([name, { type, short, multiple }]) => [
      name,
      { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) },
    ]),
  );
  const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict, tokens: true });
  // parseArgs gives each option the type its config names, which is what Values<F> says.
  return { ...parsed, values: parsed.values as Values<F> };
}

/**
 * Finds the command and parses its flags: an unknown command, a flag no command takes, or one
 * this command does not take is a UsageError naming it; a flag's missing or unwanted value is
 * parseArgs's error. Without a command only the common flags count (the help is shown). The
 * first two words name a subcommand when the table has them ("runners add"), else the first.
 */
function parse(argv: string[]) {
  const lenient = parseFlags(argv, ALL_FLAGS, false);
  const [first, second] = lenient.positionals;
  for (const t of lenient.tokens)
    if (t.kind === "option" && !Object.hasOwn(ALL_FLAGS, t.name)) throw new UsageError(`unknown flag ${t.rawName}`);
  if (first === undefined) return { name: first, command: undefined, values: lenient.values, rest: [] };
  const words = second !== undefined && Object.hasOwn(COMMANDS, `${first} ${second}`) ? 2 : 1;
  const name = words === 2 ? `${first} ${second}` : first;
  if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
  const command = COMMANDS[name]!;
  const takes = { ...command.options, ...COMMON };
  for (const t of lenient.tokens)
    if (t.kind === "option" && !Object.hasOwn(takes, t.name))
      throw new UsageError(`${name} does not take ${t.rawName}`);
  const { values, positionals } = parseFlags(argv, takes, true);
  return { name, command, values, rest: positionals.slice(words) };
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    const { name, command, values, rest } = parse(argv);
    if (values.help || !command) {
      io.out(command ? commandHelp(name, command) : HELP);
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
    const args = (n: number, what: string) => {
      if (rest.length !== n) throw new UsageError(`${name} takes ${what}`);
      return rest;
    };
    return await command.run({ client: new Client(url, token), values, rest, io, args });
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
      process.stderr.write(`distro: ${safeText(String((e as Error).stack ?? e))}\n`);
      process.exitCode = 1;
    },
  );
}
