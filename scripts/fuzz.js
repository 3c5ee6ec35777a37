#!/usr/bin/env node
// `npm run fuzz -- --seconds N`: the fuzz tests (test/unit/fuzz-parse.test.ts: the DAG parser;
// test/workers/fuzz.test.ts: the HTTP routes and the runner sockets' frames, in workerd), each
// property for about N seconds (default 60) instead of the fixed counts `npm test` runs. Each
// file prints how many cases it ran; a failure prints the seed and the shrunk input.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const FILES = ["test/unit/fuzz-parse.test.ts", "test/workers/fuzz.test.ts"];

let values;
try {
  ({ values } = parseArgs({ options: { seconds: { type: "string", default: "60" } } }));
} catch (e) {
  console.error(`npm run fuzz: ${e.message}; usage: npm run fuzz -- [--seconds N]`);
  process.exit(2);
}
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
  console.error(`npm run fuzz: --seconds takes a number of seconds above 0 (at most a day), not "${values.seconds}"`);
  process.exit(2);
}
const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
const run = spawnSync(process.execPath, [vitest, "run", ...FILES], {
  cwd: fileURLToPath(new URL("..", import.meta.url)),
  stdio: "inherit",
  env: { ...process.env, FUZZ_SECONDS: String(seconds) },
});
process.exit(run.status ?? 1);
