#!/usr/bin/env node
// `npm run build:page`: the status page, as the Worker serves it (wrangler.toml `[assets]`):
// page/main.ts and what it imports of core/ bundled by esbuild into dist/site/app.js, beside
// page/index.html, style.css and _headers, and examples.json (the DAGs of dags/, which the page
// offers as starting points). The bundle's metafile is checked: an input from outside page/,
// core/ and the two packages core uses fails the build. build-packages.js adds runner.tgz.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "dist", "site");
const ALLOWED = ["page/", "core/", "node_modules/zod/", "node_modules/yaml/"];

mkdirSync(OUT, { recursive: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { app: "page/main.ts" },
  outdir: OUT,
  bundle: true,
  platform: "browser",
  target: "es2022",
  format: "esm",
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});
const strays = Object.keys(result.metafile.inputs).filter((input) => !ALLOWED.some((dir) => input.startsWith(dir)));
if (strays.length > 0) {
  console.error(`build:page: the page bundles modules from outside ${ALLOWED.join(", ")}:\n  ${strays.join("\n  ")}`);
  process.exit(1);
}
for (const file of ["index.html", "style.css", "_headers"]) copyFileSync(join(ROOT, "page", file), join(OUT, file));
const examples = readdirSync(join(ROOT, "dags"))
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => ({
    name: f.replace(/\.yaml$/, ""),
    file: `dags/${f}`,
    text: readFileSync(join(ROOT, "dags", f), "utf8"),
  }));
writeFileSync(join(OUT, "examples.json"), JSON.stringify(examples));
const bytes = result.metafile.outputs[relative(ROOT, join(OUT, "app.js")).split("\\").join("/")]?.bytes ?? 0;
console.log(`build:page: dist/site/app.js ${(bytes / 1024).toFixed(0)} KiB, ${examples.length} examples`);
