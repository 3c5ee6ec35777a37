#!/usr/bin/env node
// `npm start`: the local default. Starts the coordinator (wrangler dev, state in
// .wrangler/state) and one runner, runs dags/hello_fanout.yaml, prints its result and the
// status URL, and keeps serving until Ctrl-C. Extra `--var NAME:value` arguments go to
// wrangler dev (e.g. `npm start -- --var API_TOKEN:secret`); PORT picks the port (default 8787),
// HOST the address (default 127.0.0.1; HOST=0.0.0.0 lets runners on other devices connect).
import { main as distro } from "../dist/cli/distro.js";
import { DEV_TOKENS, freePort, ROOT, startCoordinator, startRunner } from "../dist/dev/local.js";

const vars = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = argv[i] === "--var" ? /^([^:]+):(.*)$/.exec(argv[i + 1] ?? "") : null;
  if (!m) {
    console.error(`npm start: unexpected argument "${argv[i]}"; only --var NAME:value is passed on to wrangler dev`);
    process.exit(2);
  }
  vars[m[1]] = m[2];
  i++;
}
const apiToken = vars.API_TOKEN ?? DEV_TOKENS.api;
const runnerToken = vars.RUNNER_TOKEN ?? DEV_TOKENS.runner;

async function portToUse() {
  const wanted = Number(process.env.PORT ?? 8787);
  const probe = await fetch(`http://127.0.0.1:${wanted}/`).then(
    () => true,
    () => false,
  );
  if (!probe) return wanted;
  const other = await freePort();
  console.log(`port ${wanted} is taken; using ${other}`);
  return other;
}

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
console.log("starting the local coordinator (wrangler dev)…");
const coordinator = await startCoordinator({
  port: await portToUse(),
  ip: process.env.HOST,
  vars,
  echo: (l) => console.log(`[coordinator] ${l}`),
});
console.log(`coordinator listening on ${coordinator.url} (${elapsed()})`);
const runner = startRunner({
  coordinator: coordinator.url,
  token: runnerToken,
  echo: (l) => console.log(`[runner] ${l}`),
});

let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  console.log("stopping runner and coordinator…");
  await runner.stop("SIGTERM");
  await coordinator.stop("SIGTERM");
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));
runner.exited.then((code) => {
  if (!stopping) console.log(`[runner] exited with code ${code}`);
});

const code = await distro(
  ["submit", "dags/hello_fanout.yaml", "--wait", "--coordinator", coordinator.url.toString(), "--token", apiToken],
  {
    out: (l) => console.log(l),
    write: (b) => process.stdout.write(b),
    err: (l) => console.error(l),
    env: process.env,
    cwd: ROOT,
  },
);
console.log(`\nhello_fanout finished in ${elapsed()} (exit code ${code}).`);
console.log(`Status page: ${coordinator.url}  (API token: ${apiToken})`);
console.log(
  `Add a device: the page's "Add a device", or npx distro runners add --coordinator ${coordinator.url} --token ${apiToken}` +
    " (for other devices to reach it, start with HOST=0.0.0.0 and use this machine's LAN address)",
);
console.log("Serving until Ctrl-C.");
