#!/usr/bin/env node
// Builds the example tasks (AssemblyScript, wasm_tasks/*.ts) and the test fixtures
// (WebAssembly text, wasm_tasks/fixtures/*.wat) into wasm_tasks/build/. Offline, npm-installed
// toolchains only. A module is rebuilt only when a source is newer than it.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";
import wabtInit from "wabt";

const root = fileURLToPath(new URL("../wasm_tasks/", import.meta.url));
const out = join(root, "build");
// asc resolves the shim's `lib` folder against the working directory, so build from the repo root.
process.chdir(fileURLToPath(new URL("..", import.meta.url)));
const shim = "node_modules/@assemblyscript/wasi-shim/asconfig.json";
mkdirSync(join(out, "fixtures"), { recursive: true });

const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
};
const libTime = Math.max(...readdirSync(join(root, "lib")).map((f) => mtime(join(root, "lib", f))));
let built = 0;

for (const file of readdirSync(root).filter((f) => f.endsWith(".ts"))) {
  const src = join(root, file);
  const dest = join(out, `${basename(file, ".ts")}.wasm`);
  if (mtime(dest) > Math.max(mtime(src), libTime)) continue;
  const { error, stderr } = await asc.main([src, "--config", shim, "--outFile", dest, "--optimize", "--noAssert"], {});
  if (error) {
    console.error(`build:tasks: ${file} failed\n${stderr.toString()}`);
    process.exit(1);
  }
  built++;
}

const wabt = await wabtInit();
for (const file of readdirSync(join(root, "fixtures")).filter((f) => f.endsWith(".wat"))) {
  const src = join(root, "fixtures", file);
  const dest = join(out, "fixtures", `${basename(file, ".wat")}.wasm`);
  if (mtime(dest) > mtime(src)) continue;
  const module = wabt.parseWat(file, readFileSync(src, "utf8"));
  writeFileSync(dest, module.toBinary({}).buffer);
  module.destroy();
  built++;
}

console.log(`build:tasks: ${built} module(s) built into ${out}`);
