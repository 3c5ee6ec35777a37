// deploy/ runs as written: the runner's systemd unit passes `systemd-analyze verify` (and
// `security`: hardened), and its ExecStartPre= and ExecStart= lines install the runner from a
// real local coordinator with no registry, enroll with a real token from an EnvironmentFile and
// connect; revoked, it exits with a status the unit does not restart on. The Dockerfile's RUN line
// installs the runner the same way, and its ENTRYPOINT and CMD enroll and connect with the
// credential on the volume. Neither systemd nor Docker runs here: docs-deploy.ts runs the files'
// commands as written, with their paths moved under a temporary root.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceView, EnrollmentCreated, RunnerListing } from "../../core/api";
import { ROOT, type Proc } from "../../dev/local";
import {
  buildOutsideDocker,
  IMAGE_HOMES,
  makeUnitDirs,
  NO_REGISTRY,
  NODE_DIR,
  parseDockerfile,
  parseUnit,
  runOutsideDocker,
  runToEnd,
  settings,
  start,
  unitCommand,
  unitDirs,
  unitEnv,
  type Ran,
} from "./docs-deploy";
import { Cluster } from "./harness";

const cluster = new Cluster();
beforeAll(() => cluster.start());
afterAll(() => cluster.stop());

describe("deploy/ runs as written", () => {
  const hasSystemd = spawnSync("systemd-analyze", ["--version"]).status === 0;
  const unitFile = join(ROOT, "deploy", "distro-runner.service");

  /** `systemd-analyze verify` of a unit's text: exit code and what it printed (warnings included). */
  function verify(text: string): Ran {
    const dir = mkdtempSync(join(cluster.dir, "unit-"));
    writeFileSync(join(dir, "distro-runner.service"), text);
    const r = spawnSync("systemd-analyze", ["verify", join(dir, "distro-runner.service")], { encoding: "utf8" });
    return { code: r.status, output: `${r.stdout}${r.stderr}` };
  }

  /** The device that joined with enrollment `id`, once it is connected. */
  async function joined(id: string, proc: Proc): Promise<DeviceView> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { devices } = await cluster.client.json<RunnerListing>("/api/runners");
      const found = devices.find((d) => d.enrollment === id && d.connected);
      if (found) return found;
      if (!proc.running || Date.now() > deadline)
        throw new Error(`no device of enrollment ${id} connected:\n${proc.lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function enrollment(): Promise<EnrollmentCreated> {
    return cluster.client.json<EnrollmentCreated>("/api/enrollments", { method: "POST", body: "{}" });
  }

  /** The one credential file in `configDir`; it must be the owner's alone. */
  function credentialMode(configDir: string): string {
    const dir = join(configDir, "credentials");
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    expect(files).toHaveLength(1);
    return (statSync(join(dir, files[0]!)).mode & 0o777).toString(8);
  }

  it.skipIf(!hasSystemd)("deploy/distro-runner.service passes systemd-analyze verify and security", () => {
    const text = readFileSync(unitFile, "utf8");
    expect(verify(text)).toEqual({ code: 0, output: "" });
    // The check can fail: a misspelt setting is only a warning to systemd, and a failure here.
    const planted = verify(text.replace("RestartSec=", "RestartSecs="));
    expect(planted.output).toMatch(/Unknown key name 'RestartSecs'|Unknown key 'RestartSecs'/);
    // Hardened: an overall exposure of at most 2.0 ("OK"; the scale is 0 to 10).
    const security = spawnSync("systemd-analyze", ["security", "--offline=yes", "--threshold=20", unitFile], {
      encoding: "utf8",
    });
    expect(security.status, `${security.stdout}${security.stderr}`).toBe(0);
    expect(security.stdout).toMatch(/Overall exposure level for distro-runner\.service: [01]\.\d OK/);
  });

  it("deploy/distro-runner.service: its ExecStartPre installs from the coordinator, its ExecStart joins; revoked, it exits with a status it is not restarted on", async () => {
    const unit = parseUnit(readFileSync(unitFile, "utf8"));
    // The secrets come from the EnvironmentFile, never from the unit's command lines or settings.
    const [envFile, ...more] = settings(unit, "Service", "EnvironmentFile");
    expect([envFile, more]).toEqual(["/etc/distro-runner.env", []]);
    const lines = [...settings(unit, "Service", "ExecStartPre"), ...settings(unit, "Service", "ExecStart")];
    for (const line of [...lines, ...settings(unit, "Service", "Environment")])
      expect(line).not.toMatch(/DISTRO_ENROLL|DISTRO_RUNNER_TOKEN|--token|dse_/);

    const root = mkdtempSync(join(cluster.dir, "systemd-root-"));
    const made = await enrollment();
    // /etc/distro-runner.env as docs/runner.md says to write it.
    const env = unitEnv(unit, root, { DISTRO_COORDINATOR: cluster.coordinator.url.origin, DISTRO_ENROLL: made.token });
    // Outside systemd: npm's registry unreachable, and a node where this test's is, should the unit's PATH not have it.
    Object.assign(env, NO_REGISTRY);
    if (!env.PATH!.split(":").includes(NODE_DIR)) env.PATH = `${env.PATH}:${NODE_DIR}`;
    makeUnitDirs(unit, root);
    for (const line of settings(unit, "Service", "ExecStartPre")) {
      const pre = await runToEnd(unitCommand(line, root, env), env, root, 120_000);
      expect(pre.code, `ExecStartPre=${line}\n${pre.output}`).toBe(0);
    }
    const [execStart] = settings(unit, "Service", "ExecStart");
    const proc = start(unitCommand(execStart!, root, env), env, root);
    try {
      const device = await joined(made.id, proc);
      expect(credentialMode(env.DISTRO_CONFIG_DIR!)).toBe("600");
      expect(env.DISTRO_CONFIG_DIR!.startsWith(`${unitDirs(root)["%S"]}/`)).toBe(true);
      await cluster.client.json(`/api/runners/${device.id}`, { method: "DELETE" });
      const code = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r("running"), 10_000))]);
      const noRestart = settings(unit, "Service", "RestartPreventExitStatus").flatMap((v) => v.split(/\s+/));
      expect(noRestart, proc.lines.join("\n")).toContain(String(code));
      expect(proc.lines.join("\n")).toMatch(new RegExp(`device ${device.id} was revoked`));
    } finally {
      await proc.stop("SIGKILL");
    }
  });

  it("deploy/runner.Dockerfile: its RUN installs from the coordinator with no registry; ENTRYPOINT and CMD join, the credential on the volume", async () => {
    const df = parseDockerfile(readFileSync(join(ROOT, "deploy", "runner.Dockerfile"), "utf8"), {
      DISTRO_COORDINATOR: cluster.coordinator.url.origin,
    });
    expect(df.from).toBe("node:20-slim");
    expect(df.env.DISTRO_COORDINATOR).toBe(cluster.coordinator.url.origin);
    const root = mkdtempSync(join(cluster.dir, "docker-root-"));
    for (const r of await buildOutsideDocker(df, root)) expect(r.code, r.output).toBe(0);
    // The config dir (the default, under the user's home) is on a volume.
    const home = IMAGE_HOMES[df.user]!;
    const configDir = df.env.DISTRO_CONFIG_DIR ?? `${home}/.config/distro`;
    expect(df.volumes.some((v) => configDir === v || configDir.startsWith(`${v.replace(/\/$/, "")}/`))).toBe(true);
    expect(df.env.DISTRO_CONFIG_DIR).toBeUndefined(); // else it would need mapping under root, as HOME is

    const made = await enrollment();
    // `docker run -e DISTRO_ENROLL`: the token from the environment of `docker run`.
    const proc = runOutsideDocker(df, root, { DISTRO_ENROLL: made.token });
    try {
      await joined(made.id, proc);
      expect(credentialMode(join(root, configDir))).toBe("600");
      // `docker stop` sends SIGTERM: the runner drains and exits 0.
      await proc.stop("SIGTERM", 40_000);
      expect(await proc.exited, proc.lines.join("\n")).toBe(0);
    } finally {
      await proc.stop("SIGKILL");
    }
  });
});
