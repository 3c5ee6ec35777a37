// The runner installs anywhere: `npm pack`, then `npx distro-runner --help` in an empty folder
// with nothing but the tarball; its dependency tree has no install scripts and no native addons.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { ROOT } from "../../cli/local";

const dir = mkdtempSync(join(tmpdir(), "distro-pack-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });

it("npm pack + npx distro-runner --help works in an empty folder, with no install scripts or native addons", () => {
  const tarball = join(dir, npm(["pack", "--pack-destination", dir, "--silent"], ROOT).trim().split("\n").pop()!);
  expect(existsSync(tarball)).toBe(true);
  const empty = join(dir, "empty");
  execFileSync("mkdir", ["-p", empty]);
  const help = execFileSync("npx", ["--yes", "--package", tarball, "distro-runner", "--help"], { cwd: empty, encoding: "utf8" });
  expect(help).toContain("Usage: distro-runner --coordinator URL --token TOKEN");
  const cli = execFileSync("npx", ["--yes", "--package", tarball, "distro", "--help"], { cwd: empty, encoding: "utf8" });
  expect(cli).toContain("Usage: distro <command>");

  // Install it as a user would, then look at every package in the tree.
  npm(["init", "-y"], empty);
  npm(["install", "--omit=dev", tarball], empty);
  const modules = join(empty, "node_modules");
  const packages: string[] = [];
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (name.startsWith("@")) walk(path);
      else if (existsSync(join(path, "package.json"))) {
        packages.push(path);
        if (existsSync(join(path, "node_modules"))) walk(join(path, "node_modules"));
      }
    }
  };
  walk(modules);
  expect(packages.map((p) => p.split("node_modules/").pop())).toEqual(expect.arrayContaining(["distro", "ws", "systeminformation", "yaml", "zod"]));
  const scripts = packages.filter((p) => {
    const s = (JSON.parse(readFileSync(join(p, "package.json"), "utf8")) as { scripts?: Record<string, string> }).scripts ?? {};
    return ["preinstall", "install", "postinstall"].some((k) => k in s) || existsSync(join(p, "binding.gyp"));
  });
  expect(scripts).toEqual([]);
  const native: string[] = [];
  const findNative = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) findNative(path);
      else if (name.endsWith(".node")) native.push(path);
    }
  };
  findNative(modules);
  expect(native).toEqual([]);
});
