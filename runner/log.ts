/**
 * The runner's log: one line per event, prefixed with the time, or with `--json` one JSON
 * object per line ({"time", "level", "msg", ...the event's fields}). `debug` lines appear
 * only with --verbose.
 */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(line: string, fields?: LogFields): void;
  debug(line: string, fields?: LogFields): void;
}

export function consoleLogger(
  options: { verbose: boolean; json?: boolean },
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
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
