#!/usr/bin/env node
// `npm run check:deploy` (run by .ci/run): builds the status page (scripts/build-page.js), then
// bundles the Worker as `wrangler deploy` would, without
// an account or the network (`wrangler deploy --dry-run`), and reports its size against the
// Workers limit on a script's compressed size (3 MiB on the Free plan, 10 MiB on Paid). Fails
// when the bundle does not build or passes the Free plan's limit.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FREE_LIMIT_KIB = 3 * 1024;
const PAID_LIMIT_KIB = 10 * 1024;

// `[assets]` names dist/site, which must exist: the page is built first (it takes a second).
const page = spawnSync(process.execPath, [join(ROOT, "scripts/build-page.js")], { cwd: ROOT, stdio: "inherit" });
if (page.status !== 0) process.exit(1);

const outdir = mkdtempSync(join(tmpdir(), "distro-deploy-"));
try {
  const wrangler = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
  const ran = spawnSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir], {
    cwd: ROOT,
    encoding: "utf8",
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      NO_COLOR: "1",
      CI: "1",
    },
  });
  const output = `${ran.stdout}${ran.stderr}`;
  const size = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
  if (ran.status !== 0 || !size) {
    console.error(`check:deploy: \`wrangler deploy --dry-run\` failed (exit ${ran.status}):\n${output.trim()}`);
    process.exit(1);
  }
  const [total, gzip] = [Number(size[1]), Number(size[2])];
  const share = (limit) => `${((100 * gzip) / limit).toFixed(0)} %`;
  console.log(
    `check:deploy: the Worker bundles: ${total.toFixed(0)} KiB, ${gzip.toFixed(0)} KiB compressed: ` +
      `${share(FREE_LIMIT_KIB)} of the Free plan's ${FREE_LIMIT_KIB / 1024} MiB limit, ` +
      `${share(PAID_LIMIT_KIB)} of the Paid plan's ${PAID_LIMIT_KIB / 1024} MiB`,
  );
  if (gzip > FREE_LIMIT_KIB) {
    console.error(`check:deploy: the compressed bundle passes the Free plan's ${FREE_LIMIT_KIB / 1024} MiB limit`);
    process.exit(1);
  }
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
