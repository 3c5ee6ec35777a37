/**
 * The runner's log: one line per event, prefixed with the time, or with `--json` one JSON
 * object per line ({"time", "level", "msg", ...the event's fields}). `debug` lines appear
 * only with --verbose. Lines reach stdout together, once a turn of the event loop.
 */
import { writeSync } from "node:fs";

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(line: string, fields?: LogFields): void;
  debug(line: string, fields?: LogFields): void;
}

/** Lines gathered before a write that does not wait for the turn to end. */
const BATCH_LINES = 512;

/**
 * Writes lines to stdout, those of one turn of the event loop in one write: a busy runner logs a
 * line per task, and stdout is often a pipe (a supervisor, a terminal multiplexer), where every
 * write is a system call that wakes the reader. Whatever is left goes out as the process exits.
 */
function stdoutLines(): (line: string) => void {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    process.stdout.write(text);
  };
  process.on("exit", () => {
    if (pending.length === 0) return;
    const text = pending.join("");
    try {
      writeSync(1, text);
    } catch {
      // A full pipe whose descriptor does not block: as the stream would have written it.
      process.stdout.write(text);
    }
  });
  return (line) => {
    if (pending.push(`${line}\n`) === 1) setImmediate(flush);
    else if (pending.length >= BATCH_LINES) flush();
  };
}

export function consoleLogger(
  options: { verbose: boolean; json?: boolean },
  write: (line: string) => void = stdoutLines(),
): Logger {
  const emit = (level: "info" | "debug", msg: string, fields: LogFields = {}) => {
    const time = new Date().toISOString();
    write(options.json ? JSON.stringify({ time, level, msg, ...fields }) : `${time.slice(11, 23)} ${msg}`);
  };
  return {
    info: (line, fields) => emit("info", line, fields),
    debug: (line, fields) => {
      if (options.verbose) emit("debug", line, fields);
    },
  };
}
