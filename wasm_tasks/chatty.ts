// chatty: writes `params.bytes` bytes of stderr (default 0) as 64-byte lines
// "chatty 000000: xxx…\n" (the last one cut to fit), one write per line; then `params.lines`
// lines "chatty: line <i>\n" (default 0), `params.pause_ms` apart (default 0, a busy wait).
// Outputs {"bytes": b, "lines": n}. Tests of streamed logs use it.
import { envelope } from "./lib/json";

const params = envelope().get("params");
const bytes = <i64>params.number("bytes", 0);
const lines = <i32>params.number("lines", 0);
const pause = <i64>params.number("pause_ms", 0);
const fill = "x".repeat(64 - 16);
let written: i64 = 0;
for (let i = 0; written < bytes; i++) {
  let line = "chatty " + i.toString().padStart(6, "0") + ": " + fill + "\n";
  if (written + 64 > bytes) line = line.slice(0, <i32>(bytes - written));
  process.stderr.write(line);
  written += line.length;
}
for (let i = 0; i < lines; i++) {
  if (i > 0) {
    const until = Date.now() + pause;
    while (Date.now() < until);
  }
  process.stderr.write("chatty: line " + i.toString() + "\n");
}
process.stdout.write('{"bytes":' + bytes.toString() + ',"lines":' + lines.toString() + "}");
