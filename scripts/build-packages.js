#!/usr/bin/env node
// `npm run build:packages`: the two packages a user installs, each bundled by esbuild so that it
// has no runtime dependency to fetch (a device installs it without reaching any registry):
//   dist/packages/distro-runner/  the `distro-runner` bin: runner/ and core/ only
//   dist/packages/distro/         the `distro` bin: cli/ and core/ only
// and their tarballs, dist/packages/distro-runner.tgz and dist/packages/distro.tgz. Each bundle's
// metafile is checked: an input from outside the package's own folders fails the build. The
// coordinator serves the runner's tarball itself, so a device installs it from the coordinator it
// joins (same commit, same version, no registry): it is copied to dist/site/runner.tgz, beside the
// status page (build-page.js), with its sha256 in dist/site/runner.tgz.sha256 (rebuilt by every build).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "dist", "packages");
const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

const PACKAGES = [
  {
    name: "distro-runner",
    description: "Lends this device to a Distro coordinator: runs WebAssembly tasks it is given.",
    bin: "distro-runner",
    // The task threads' entry is loaded beside the bundle (runner/executor/pool.ts: ./thread.js).
    entries: { "distro-runner": "runner/cli.ts", thread: "runner/executor/thread.ts" },
    allowed: ["runner/", "core/"],
  },
  {
    name: "distro",
    description: "The command line of a Distro coordinator: submit DAGs, follow runs, read outputs.",
    bin: "distro",
    entries: { distro: "cli/main.ts" },
    allowed: ["cli/", "core/"],
  },
];

rmSync(OUT, { recursive: true, force: true });
for (const pkg of PACKAGES) {
  const dir = join(OUT, pkg.name);
  mkdirSync(dir, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: pkg.entries,
    outdir: dir,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    minifySyntax: true,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
    // ws loads these optional native speed-ups inside try/catch; the runner needs neither.
    external: ["bufferutil", "utf-8-validate"],
    // Bundled CommonJS dependencies (ws, systeminformation) call require() for Node built-ins.
    banner: {
      js: [
        `import { createRequire as __createRequire } from "node:module";`,
        "const require = __createRequire(import.meta.url);",
      ].join(" "),
    },
  });
  const foreign = Object.keys(result.metafile.inputs).filter(
    (input) => !input.startsWith("node_modules/") && !pkg.allowed.some((folder) => input.startsWith(folder)),
  );
  if (foreign.length > 0)
    throw new Error(`${pkg.name} would ship code from outside ${pkg.allowed.join(", ")}: ${foreign.join(", ")}`);
  // What went into the bundle, for the packaging test (kept beside the package, not in it).
  writeFileSync(
    join(OUT, `${pkg.name}.inputs.json`),
    `${JSON.stringify(Object.keys(result.metafile.inputs).sort(), null, 2)}\n`,
  );
  const bin = join(dir, `${pkg.bin}.js`);
  writeFileSync(bin, `#!/usr/bin/env node\n${readFileSync(bin, "utf8")}`, { mode: 0o755 });
  const manifest = {
    name: pkg.name,
    version: root.version,
    description: pkg.description,
    license: root.license,
    type: "module",
    engines: root.engines,
    bin: { [pkg.bin]: `${pkg.bin}.js` },
    files: ["*.js"],
  };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", OUT], { cwd: dir, encoding: "utf8" })
    .trim()
    .split("\n")
    .pop();
  renameSync(join(OUT, tarball), join(OUT, `${pkg.name}.tgz`));
  const size = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(
    `${relative(ROOT, dir)}: ${(size / 1024).toFixed(0)} KiB bundled, ${relative(ROOT, join(OUT, `${pkg.name}.tgz`))}`,
  );
}

mkdirSync(join(ROOT, "dist", "site"), { recursive: true });
const served = join(ROOT, "dist", "site", "runner.tgz");
copyFileSync(join(OUT, "distro-runner.tgz"), served);
const sha256 = createHash("sha256").update(readFileSync(served)).digest("hex");
writeFileSync(`${served}.sha256`, `${sha256}  runner.tgz\n`);
console.log(`${relative(ROOT, served)}: served by the coordinator at /runner.tgz, sha256 ${sha256}`);
