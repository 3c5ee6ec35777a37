// The two packages a user installs (`npm run build:packages`): each is one bundle with no runtime
// dependency, so it installs from its tarball alone with the npm registry unreachable. The
// runner package holds runner/ and core/ code only; installed that way it answers --help, and it
// runs a real task against the real local coordinator.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_TOKENS, Proc, ROOT } from "../../dev/local";
import { Cluster } from "./harness";

const PACKAGES = join(ROOT, "dist", "packages");
const dir = mkdtempSync(join(tmpdir(), "distro-pack-"));
const cluster = new Cluster();
const offline = {
  ...process.env,
  HOME: join(dir, "home"),
  npm_config_cache: join(dir, "npm-cache"),
  npm_config_registry: "http://127.0.0.1:9",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
};

/** Installs a package's tarball into a new empty folder with no registry in reach; returns the folder. */
function installOffline(name: string): string {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  execFileSync("npm", ["init", "-y"], { cwd: folder, env: offline, stdio: "ignore" });
  execFileSync("npm", ["install", join(PACKAGES, `${name}.tgz`)], { cwd: folder, env: offline, encoding: "utf8" });
  return folder;
}

const bin = (folder: string, name: string) => join(folder, "node_modules", ".bin", name);
const inputs = (name: string) => JSON.parse(readFileSync(join(PACKAGES, `${name}.inputs.json`), "utf8")) as string[];
const files = (name: string) =>
  execFileSync("tar", ["tzf", join(PACKAGES, `${name}.tgz`)], { encoding: "utf8" })
    .trim()
    .split("\n")
    .sort();

beforeAll(() => mkdirSync(join(dir, "home"), { recursive: true }));
afterAll(async () => {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the packages", () => {
  it("the runner package is runner/ and core/ code in one bundle, with no dependency to fetch", () => {
    const manifest = JSON.parse(readFileSync(join(PACKAGES, "distro-runner", "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(manifest.dependencies).toBeUndefined();
    expect(files("distro-runner")).toEqual(["package/distro-runner.js", "package/package.json", "package/thread.js"]);
    const ours = inputs("distro-runner").filter((f) => !f.startsWith("node_modules/"));
    expect(ours.some((f) => f.startsWith("runner/")) && ours.some((f) => f.startsWith("core/"))).toBe(true);
    expect(ours.filter((f) => !/^(runner|core)\//.test(f))).toEqual([]);
    expect(inputs("distro-runner").filter((f) => /^(worker|cli|bench|test|dev)\//.test(f))).toEqual([]);
    expect(inputs("distro").filter((f) => !f.startsWith("node_modules/") && !/^(cli|core)\//.test(f))).toEqual([]);
  });

  it("installs from its tarball into an empty folder with the registry unreachable and answers --help", () => {
    const runner = installOffline("distro-runner");
    expect(execFileSync(bin(runner, "distro-runner"), ["--help"], { encoding: "utf8", env: offline })).toContain(
      "Usage: distro-runner --coordinator URL [options]",
    );
    const cli = installOffline("distro");
    expect(execFileSync(bin(cli, "distro"), ["--help"], { encoding: "utf8", env: offline })).toContain(
      "Usage: distro <command>",
    );
  });

  it("the installed runner runs a real task for the real coordinator", async () => {
    await cluster.start();
    await cluster.upload("echo.wasm");
    const folder = join(dir, "distro-runner");
    const child = spawn(
      bin(folder, "distro-runner"),
      [
        "--coordinator",
        cluster.coordinator.url.toString(),
        "--token",
        DEV_TOKENS.runner,
        "--name",
        "packaged",
        "--slots",
        "1",
        "--cache-dir",
        join(dir, "cache"),
        "--config-dir",
        join(dir, "config"),
      ],
      { env: offline, detached: true },
    );
    const proc = new Proc(child);
    try {
      await cluster.connected("packaged");
      const { id } = await cluster.client.submit(
        "name: packaged\ncache: false\ntasks:\n  - { id: hello, module: echo.wasm, params: { x: 1 } }\n",
      );
      const run = await cluster.until(id, (r) => r.status === "succeeded" || r.status === "failed");
      expect(run.status).toBe("succeeded");
      expect(run.tasks[0]!.attempts[0]!.runner_name).toBe("packaged");
    } finally {
      await proc.stop();
    }
  });
});
