// The runner's identity (a device id kept across restarts, one claim per process), its flags
// and its JSON log lines.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveConfig, UsageError } from "../../runner/config";
import { claimRunnerId, deviceId } from "../../runner/identity";
import { consoleLogger } from "../../runner/log";

const dir = mkdtempSync(join(tmpdir(), "distro-identity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("identity", () => {
  it("keeps the device id in the config dir, so a restart is the same device", () => {
    const id = deviceId(dir, "my laptop");
    expect(id).toMatch(/^my-laptop-[0-9a-f]{8}$/);
    expect(deviceId(dir, "renamed")).toBe(id);
    expect(readFileSync(join(dir, "device-id"), "utf8").trim()).toBe(id);
  });

  it("gives a second live process on the device its own id, and a dead process's claim to the next one", () => {
    const device = deviceId(dir, "pc");
    const first = claimRunnerId(dir, device, process.pid);
    expect(first.id).toBe(device);
    const other = claimRunnerId(dir, device, process.ppid); // alive: our parent
    expect(other.id).toBe(`${device}.2`);
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    first.release();
    const again = claimRunnerId(dir, device, dead);
    expect(again.id).toBe(device);
    // `dead` has exited, so its claim is free to take: a restarted runner gets the id back.
    expect(claimRunnerId(dir, device, process.pid).id).toBe(device);
    other.release();
  });
});

describe("flags", () => {
  const base = ["--coordinator", "http://127.0.0.1:8787", "--token", "t"];

  it("reads sizes, labels and the config dir", () => {
    const config = resolveConfig(
      [...base, "--ram-per-slot", "64MiB", "--reserve-ram", "1GiB", "--labels", "gpu, fast", "--json"],
      { DISTRO_CONFIG_DIR: "/tmp/x" },
    );
    expect(config).toMatchObject({
      ramPerSlotBytes: 64 * 1024 ** 2,
      reserveRamBytes: 1024 ** 3,
      labels: ["gpu", "fast"],
      json: true,
      configDir: "/tmp/x",
    });
  });

  it("names the flag of a bad value", () => {
    const bad: [string[], RegExp][] = [
      [["--ram-per-slot", "lots"], /--ram-per-slot: expected a size/],
      [["--reserve-ram", "2 apples"], /--reserve-ram: expected a size/],
      [["--labels", "gpu,has space"], /--labels: "has space" is not a label/],
      [["--slots", "0"], /--slots: expected a whole number/],
    ];
    for (const [args, message] of bad) expect(() => resolveConfig([...base, ...args], {})).toThrow(message);
    expect(() => resolveConfig([...base, "--jsn"], {})).toThrow(UsageError);
  });
});

describe("log", () => {
  it("writes one JSON object per line with --json, and debug lines only with --verbose", () => {
    const lines: string[] = [];
    const log = consoleLogger({ verbose: false, json: true }, (l) => lines.push(l));
    log.info("task a attempt 1: ok in 5 ms", { event: "task", task: "a", attempt: 1, ms: 5, outcome: "ok" });
    log.debug("hidden");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "info",
      msg: "task a attempt 1: ok in 5 ms",
      event: "task",
      task: "a",
      attempt: 1,
      ms: 5,
      outcome: "ok",
    });
    expect(Date.parse((JSON.parse(lines[0]!) as { time: string }).time)).not.toBeNaN();
  });
});
