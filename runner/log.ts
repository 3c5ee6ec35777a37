/**
 * The runner's log: one line per event, prefixed with the time. `debug` lines appear only
 * with --verbose.
 */
export interface Logger {
  info(line: string): void;
  debug(line: string): void;
}

export function consoleLogger(verbose: boolean, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  const stamp = () => new Date().toISOString().slice(11, 23);
  return {
    info: (line) => write(`${stamp()} ${line}`),
    debug: (line) => {
      if (verbose) write(`${stamp()} ${line}`);
    },
  };
}
