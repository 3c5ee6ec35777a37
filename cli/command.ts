/**
 * The shape of a `distro` command: its usage line, summary, the flags it takes and what it runs.
 * One table of these (commands.ts) drives the help, the parsing and the dispatch (distro.ts), so
 * a command and its flags are written down once; a command sees only the flags it declared, typed.
 */
import type { Client } from "./client.js";

/** Where the CLI reads and writes: the process's streams in the bin, captured ones in tests. */
export interface Io {
  out: (line: string) => void;
  /** Raw bytes to standard output (distro output without -o). */
  write: (bytes: Uint8Array) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Standard output is a terminal of this many columns (progress redraws in place); absent: plain lines. */
  tty?: { columns: number };
}

/** Bad usage or input: exit code 2 with the message. */
export class UsageError extends Error {}

/** A flag as node:util parseArgs takes it, with its help. */
export interface Flag {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's name in the help, e.g. "DIR". */
  value?: string;
  /** One line per entry; later lines continue under the first. */
  help: string | string[];
}

export type Flags = Record<string, Flag>;

/** The parsed values of `F`: a string, a list of strings (multiple) or a boolean, when given. */
export type Values<F extends Flags> = {
  [K in keyof F]?: F[K]["type"] extends "boolean" ? boolean : F[K]["multiple"] extends true ? string[] : string;
};

/** What a command's `run` gets. */
interface Context<F extends Flags> {
  client: Client;
  values: Values<F>;
  /** The positional arguments after the command's name. */
  rest: string[];
  io: Io;
  /** `rest`, when it holds exactly `n` arguments; else a usage error saying the command takes `what`. */
  args: (n: number, what: string) => string[];
}

export interface Command<F extends Flags = Flags> {
  /** What follows the command's name in its usage line, e.g. "ID TASK [-o FILE]". */
  usage: string;
  summary: string;
  /** The flags this command takes beyond the common ones (--coordinator, --token, --help). */
  options: F;
  /** Returns the exit code. */
  run(ctx: Context<F>): Promise<number>;
}

/**
 * A table entry: the command as written, its `run` typed by its own `options` (a method's
 * parameter is compared both ways, so the table can hold commands of different flags).
 */
export function command<F extends Flags>(c: Command<F>): Command {
  return c;
}

/** A flag's help lines, the text starting at column 25 (e.g. `  -o, --out DIR          with --wait: …`). */
export function flagHelp(name: string, flag: Flag): string[] {
  const left = `  ${flag.short ? `-${flag.short}, ` : ""}--${name}${flag.value ? ` ${flag.value}` : ""}`;
  const [first, ...more] = typeof flag.help === "string" ? [flag.help] : flag.help;
  return [`${left.padEnd(24)} ${first}`, ...more.map((line) => `${" ".repeat(25)}${line}`)];
}
