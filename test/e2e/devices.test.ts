// A device joins as itself, end to end: the one-line command `distro runners add` prints installs
// the runner from the local coordinator (no registry, empty HOME) and connects it, once; nobody
// who lacks a device's credential can act as it, even with the development secret; a revoked
// device loses its sockets, its tasks finish elsewhere, and its runner exits saying why.
// Real coordinator (wrangler dev), real runner processes installed by npx, real WASM.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { DeviceView, EnrollmentCreated, RunnerListing } from "../../core/api";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { DEV_TOKENS, Proc } from "../../dev/local";
import { Cluster, fakeRunner } from "./harness";

const cluster = new Cluster();
const started: Proc[] = [];

beforeAll(async () => {
  await cluster.start();
  await cluster.upload("spin.wasm", "noop.wasm");
});
afterEach(async () => {
  await Promise.all([...started.splice(0), ...cluster.runners.splice(0)].map((p) => p.stop("SIGKILL")));
});
afterAll(() => cluster.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `distro runners add` with `flags`, as a user runs it: its enrollment (from --json). */
async function add(...flags: string[]): Promise<EnrollmentCreated> {
  const { code, out, err } = await cluster.distro("runners", "add", ...flags, "--json");
  expect(code, err).toBe(0);
  return JSON.parse(out) as EnrollmentCreated;
}

/**
 * Runs a printed one-line command as a new device would: in an empty folder, with an empty HOME
 * and the npm registry unreachable (port 9 refuses), so npx can only install from the coordinator.
 */
function device(
  command: string,
  extra: string[] = [],
  home = mkdtempSync(join(cluster.dir, "home-")),
): Proc & { home: string } {
  const cwd = join(home, "work");
  mkdirSync(cwd, { recursive: true });
  const env = {
    PATH: process.env.PATH!,
    HOME: home,
    npm_config_registry: "http://127.0.0.1:9",
    npm_config_update_notifier: "false",
  };
  const child = spawn("sh", ["-c", [command, ...extra].join(" ")], { cwd, env, detached: true });
  const proc = Object.assign(new Proc(child), { home });
  started.push(proc);
  return proc;
}

async function listing(): Promise<RunnerListing> {
  return cluster.client.json<RunnerListing>("/api/runners");
}

/** The device that joined with enrollment `id`, once one of its runners is connected. */
async function joined(id: string, timeoutMs = 60_000): Promise<DeviceView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { devices } = await listing();
    const found = devices.find((d) => d.enrollment === id && d.connected);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no device of enrollment ${id} connected`);
    await sleep(200);
  }
}

async function exitOf(proc: Proc, timeoutMs: number): Promise<number | null> {
  return Promise.race([proc.exited, sleep(timeoutMs).then(() => "running" as const)]).then((code) => {
    if (code === "running") throw new Error(`still running after ${timeoutMs} ms:\n${proc.lines.join("\n")}`);
    return code;
  });
}

describe("joining in one line", () => {
  it("installs from the coordinator with no registry and connects; the same command again is refused, and so is an expired one", async () => {
    const made = await add("--labels", "lan,box", "--uses", "1");
    expect(made.commands.unix).toContain(`npx --yes ${cluster.runnerUrl} `);
    const first = device(made.commands.unix, ["--name", "newcomer", "--slots", "1"]);
    const dev = await joined(made.id);
    expect(dev).toMatchObject({ name: "newcomer", labels: ["lan", "box"], enrollment: made.id, trusted: false });
    const { runners } = await listing();
    expect(runners.find((r) => r.id === dev.id)?.labels).toEqual(expect.arrayContaining(["lan", "box"]));

    // The same command on another device: the enrollment's one use is spent.
    const again = device(made.commands.unix, ["--name", "second"]);
    expect(await exitOf(again, 60_000)).not.toBe(0);
    expect(again.lines.join("\n")).toMatch(new RegExp(`enrollment ${made.id} has been used 1 of 1 times`));
    expect(first.running).toBe(true);

    const brief = await add("--ttl", "1s");
    await sleep(1500);
    const late = device(brief.commands.unix);
    expect(await exitOf(late, 60_000)).not.toBe(0);
    expect(late.lines.join("\n")).toMatch(new RegExp(`enrollment ${brief.id} expired at`));
  });
});

/** Speaks the runner protocol with `credential` and says hello as runner `id`: how the socket ended. */
async function impersonate(credential: string, id: string): Promise<{ status?: number; code?: number }> {
  const url = new URL("/api/runners/connect", cluster.coordinator.url);
  url.protocol = "ws:";
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${credential}` } });
  return new Promise((resolve) => {
    ws.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode }));
    ws.on("open", () =>
      ws.send(
        JSON.stringify({
          type: "hello",
          protocol: PROTOCOL_VERSION,
          runner: { ...fakeRunner(id) },
          want: 4,
          holding: [],
        }),
      ),
    );
    ws.on("close", (code) => resolve({ code }));
    ws.on("error", () => undefined);
  });
}

describe("nobody else can be a device", () => {
  it("knowing a device's id and the development secret, but not its credential, opens nothing and disturbs nothing (both modes)", async () => {
    const made = await add();
    const enrolled = device(made.commands.unix, ["--name", "enrolled-victim", "--slots", "1"]);
    const dev = cluster.runner({ name: "dev-victim", configDir: join(cluster.dir, "config-dev-victim"), slots: 1 });
    const victim = (await joined(made.id)).id;
    await cluster.connected("dev-victim");
    const devId = (await listing()).runners.find((r) => r.name === "dev-victim")!.id;
    const id = (
      await cluster.client.submit(
        `name: guarded\ncache: false\ntasks:\n  - { id: work, module: spin.wasm, map: { range: [0, 4] }, params: { ms: 300 } }\n`,
      )
    ).id;

    for (const target of [victim, devId]) {
      // The development secret cannot claim an id someone holds...
      const res = await fetch(new URL("/api/runners/enroll", cluster.coordinator.url), {
        method: "POST",
        headers: { Authorization: `Bearer ${DEV_TOKENS.runner}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "thief", device: target }),
      });
      expect(res.status).toBe(403);
      // ...a made-up credential for it is refused at the door...
      expect(await impersonate(`${target}.${"A".repeat(43)}`, target)).toEqual({ status: 401 });
      // ...and a device of its own (enrolled with the secret) may not say hello as it.
      const own = await cluster.credential(`thief-${target.slice(0, 20)}`);
      expect(await impersonate(own, target)).toEqual({ code: CLOSE.protocol });
      expect(await impersonate(own, `${target}.2`)).toEqual({ code: CLOSE.protocol });
    }
    const done = await cluster.until(id, (r) => r.status !== "running", 60_000);
    expect(done.status).toBe("succeeded");
    const runnersOf = done.tasks.flatMap((t) => t.attempts.map((a) => a.runner));
    expect(new Set(runnersOf)).toEqual(new Set(runnersOf.filter((r) => r === victim || r === devId)));
    // Both victims are still there, never replaced.
    const { runners } = await listing();
    expect(runners.map((r) => r.id)).toEqual(expect.arrayContaining([victim, devId]));
    expect(enrolled.running && dev.running).toBe(true);
    expect([...enrolled.lines, ...dev.lines].join("\n")).not.toMatch(/replaced/);
  });
});

describe("revocation", () => {
  it("distro runners revoke: sockets close within 2 s, its tasks finish elsewhere, it cannot come back, and it exits saying so", async () => {
    const made = await add();
    const doomed = device(made.commands.unix, ["--name", "doomed", "--slots", "2"]);
    const id = (await joined(made.id)).id;
    const run = (
      await cluster.client.submit(
        `name: revoked\ncache: false\ntasks:\n  - { id: long, module: spin.wasm, map: { range: [0, 2] }, params: { ms: 4000 }, retries: 0 }\n`,
      )
    ).id;
    await cluster.until(run, (r) => r.counts.leased === 2);
    cluster.runner({ name: "heir", configDir: join(cluster.dir, "config-heir") });
    await cluster.connected("heir");

    const before = Date.now();
    const { code, out, err } = await cluster.distro("runners", "revoke", id);
    expect(code, err).toBe(0);
    expect(out).toContain(id);
    for (;;) {
      const { runners } = await listing();
      if (!runners.some((r) => r.id === id)) break;
      await sleep(50);
    }
    expect(Date.now() - before).toBeLessThan(2000);
    expect(await exitOf(doomed, 10_000)).not.toBe(0);
    expect(doomed.lines.join("\n")).toMatch(/revoked/);

    const done = await cluster.until(run, (r) => r.status !== "running", 60_000);
    expect(done.status).toBe("succeeded");
    for (const task of done.tasks)
      expect(task.attempts.map((a) => [a.runner === id ? "doomed" : a.runner_name, a.outcome])).toEqual([
        ["doomed", "returned"],
        ["heir", "succeeded"],
      ]);
    // It cannot come back: the same device (its HOME keeps the credential) is refused and exits.
    const back = device(made.commands.unix, ["--name", "doomed"], doomed.home);
    expect(await exitOf(back, 60_000)).not.toBe(0);
    expect(back.lines.join("\n")).toMatch(new RegExp(`device ${id} was revoked`));
    const { devices } = await listing();
    expect(devices.find((d) => d.id === id)?.revoked_at).toBeGreaterThan(0);
    expect((await listing()).runners.some((r) => r.id === id)).toBe(false);
  });
});
