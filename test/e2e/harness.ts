/**
 * Shared set-up for end-to-end tests: a real local coordinator (wrangler dev) with its state in
 * a temporary folder, real runner processes, and an API client; everything stopped afterwards.
 */
import type { RunnerInfo } from "../../core/protocol/messages";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "../../cli/client";
import {
  DEV_TOKENS,
  enrollDevice,
  ROOT,
  startCoordinator,
  startRunner,
  type Coordinator,
  type CoordinatorOptions,
  type Proc,
  type RunnerOptions,
} from "../../dev/local";
import type { RunView } from "../../core/api";

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), "distro-e2e-"));
  coordinator!: Coordinator;
  client!: Client;
  readonly runners: Proc[] = [];

  async start(options: CoordinatorOptions = {}): Promise<this> {
    this.coordinator = await startCoordinator({ persistTo: join(this.dir, "state"), ...options });
    this.client = new Client(this.coordinator.url, DEV_TOKENS.api);
    return this;
  }

  runner(options: Partial<RunnerOptions> = {}): Proc {
    const proc = startRunner({
      coordinator: this.coordinator.url,
      cacheDir: join(this.dir, `cache-${this.runners.length}`),
      // A device per name: a runner started again under its name is the same device again.
      configDir: join(this.dir, `config-${options.name ?? this.runners.length}`),
      slots: 2,
      ...options,
    });
    this.runners.push(proc);
    return proc;
  }

  /** Resolves once every named runner is connected to the pool. */
  async connected(...names: string[]): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { runners } = await this.client.json<{ runners: { name: string }[] }>("/api/runners");
      if (names.every((n) => runners.some((r) => r.name === n))) return;
      if (Date.now() > deadline)
        throw new Error(
          `runners ${names.join(", ")} did not connect; connected: ${runners.map((r) => r.name).join(", ")}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The credential of device `device`, enrolled with the development secret (dev/local.ts enrollDevice). */
  credential(device: string): Promise<string> {
    return enrollDevice(this.coordinator.url, device);
  }

  /** Runs the `distro` CLI as a process against this coordinator (with the API token unless `--token` is given). */
  distro(...args: string[]): Promise<{ code: number | null; out: string; err: string; stdout: Buffer }> {
    const auth = args.includes("--token") ? [] : ["--token", DEV_TOKENS.api];
    return new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        ["bin/distro.js", ...args, "--coordinator", this.coordinator.url.toString(), ...auth],
        { cwd: ROOT },
      );
      const chunks: Buffer[] = [];
      let err = "";
      child.stdout.on("data", (d: Buffer) => chunks.push(d));
      child.stderr.on("data", (d) => (err += d));
      child.on("exit", (code) =>
        resolve({ code, out: Buffer.concat(chunks).toString(), err, stdout: Buffer.concat(chunks) }),
      );
    });
  }

  /** Polls the run until `check` holds (or throws after `timeoutMs`). */
  async until(id: string, check: (run: RunView) => boolean, timeoutMs = 60_000): Promise<RunView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.client.run(id);
      if (check(run)) return run;
      if (Date.now() > deadline)
        throw new Error(`run ${id} did not reach the expected state: ${JSON.stringify(run.counts)} ${run.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The URL the join commands install the runner from: this build's, `/runner-<12 hex>.tgz`. */
  get runnerUrl(): string {
    const build = readFileSync(join(ROOT, "dist", "site", "runner.tgz.sha256"), "utf8").slice(0, 12);
    return `${this.coordinator.url.origin}/runner-${build}.tgz`;
  }

  /** Uploads built modules from wasm_tasks/build under their file names. */
  async upload(...names: string[]): Promise<void> {
    for (const name of names) {
      await this.client.uploadModule(name.split("/").pop()!, readFileSync(join(ROOT, "wasm_tasks", "build", name)));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop("SIGKILL")));
    await this.coordinator?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The device report of a runner that is not there: a test speaking the protocol as a hostile device. */
export function fakeRunner(id: string): RunnerInfo {
  return {
    id,
    name: "hostile",
    platform: "linux",
    arch: "x64",
    cores: 8,
    memory: 2 ** 33,
    freeMemory: 2 ** 32,
    slots: 8,
    labels: [],
    version: "0.1.0",
    node: process.versions.node,
  };
}
