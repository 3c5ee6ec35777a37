// flaky: fails (exit code 1) on its first `params.fail_times` attempts (default 2), then
// succeeds with {"attempt": n}. `fail_times: -1` fails every time. Tests of retries use it.
import { envelope } from "./lib/json";

const env = envelope();
const attempt = <i32>env.get("attempt").num;
const limit = <i32>env.get("params").number("fail_times", 2);
if (limit < 0 || attempt <= limit) {
  process.stderr.write("flaky: failing attempt " + attempt.toString() + " on purpose\n");
  process.exit(1);
}
process.stdout.write('{"attempt":' + attempt.toString() + "}");
