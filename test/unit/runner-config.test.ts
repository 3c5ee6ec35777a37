// The runner's claims on its device's runner ids (one per process), its flags and environment
// (what to enroll with, --insecure and which hosts need it), and its JSON log lines.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isLocalHost } from "../../runner/address";
import { resolveConfig, UsageError, type RunnerConfig } from "../../runner/config";
import { claimRunnerId } from "../../runner/identity";
import { consoleLogger } from "../../runner/log";

const dir = mkdtempSync(join(tmpdir(), "distro-identity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("identity", () => {
  it("gives a second live process on the device its own id, and a dead process's claim to the next one", () => {
    const device = "pc-0123abcd";
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
  const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveConfig(argv, env) as RunnerConfig;

  it("enrolls with DISTRO_ENROLL (environment only) or the dev token (--token, DISTRO_RUNNER_TOKEN), never DISTRO_TOKEN", () => {
    const url = ["--coordinator", "http://127.0.0.1:8787"];
    expect(config(url, { DISTRO_ENROLL: "e", DISTRO_RUNNER_TOKEN: "d", DISTRO_TOKEN: "api" })).toMatchObject({
      enrollToken: "e",
      devToken: "d",
    });
    expect(config([...url, "--token", "flag"], { DISTRO_RUNNER_TOKEN: "env" }).devToken).toBe("flag");
    // Nothing to enroll with is not an error here: a saved credential may be in the config dir.
    expect(config(url, { DISTRO_TOKEN: "api", DISTRO_ENROLL: "" })).toMatchObject({
      enrollToken: undefined,
      devToken: undefined,
    });
    expect(config(url, { DISTRO_COORDINATOR: "x" }).coordinator.href).toBe("http://127.0.0.1:8787/");
    expect(config([], { DISTRO_COORDINATOR: "https://distro.example/" }).coordinator.href).toBe(
      "https://distro.example/",
    );
    expect(() => resolveConfig([...url, "--enroll", "e"], {})).toThrow(UsageError);
  });

  it("refuses http:// and ws:// to a host outside this machine and private LANs unless --insecure", () => {
    for (const url of [
      "http://distro.example",
      "ws://203.0.113.7:8787",
      "http://[2001:db8::1]/",
      "http://172.32.0.1",
    ]) {
      expect(() => config(["--coordinator", url])).toThrow(/is not encrypted .* pass --insecure/);
      expect(config(["--coordinator", url, "--insecure"]).insecure).toBe(true);
    }
    for (const url of ["https://distro.example", "wss://203.0.113.7", "http://192.168.1.20:8787", "http://[::1]:8787"])
      expect(config(["--coordinator", url]).insecure).toBe(false);
  });

  it("counts as local: loopback, private and link-local IPv4, ::1, fc00::/7, fe80::/10, localhost, *.local", () => {
    const local = [
      ["127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "192.168.0.1", "169.254.1.1"],
      ["172.16.0.0", "172.16.0.1", "172.31.255.255", "localhost", "localhost.", "printer.local", "box.lan.local"],
      ["[::1]", "[fc00::1]", "[fdff:ffff::1]", "[fe80::1]", "[febf::1]", "[::ffff:7f00:1]", "[::ffff:c0a8:101]"],
    ].flat();
    const remote = [
      ["172.15.255.255", "172.32.0.0", "11.0.0.1", "192.169.0.1", "169.255.0.1", "8.8.8.8", "0.0.0.0"],
      ["[::2]", "[fbff::1]", "[fe00::1]", "[fec0::1]", "[2001:db8::1]", "[::ffff:808:808]", "[::]"],
      ["distro.example", "local", "mylocal", "localhost.example", "example.local.com", "127.0.0.1.nip.io"],
    ].flat();
    for (const host of local) expect(isLocalHost(host), host).toBe(true);
    for (const host of remote) expect(isLocalHost(host), host).toBe(false);
    // As URL.hostname gives them.
    expect(isLocalHost(new URL("http://[FE80::1]:80/").hostname)).toBe(true);
    expect(isLocalHost(new URL("http://0x7f000001/").hostname)).toBe(true);
  });

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
