// `distro runners`, `runners add`, `runners revoke` and `runners trust`/`untrust` without a
// coordinator: the flags of `runners add` made into the EnrollmentRequest it posts (or a usage
// error naming the flag), and the runner and device tables (cooled down ones too), the enrollment
// text and the trust lines printed from the coordinator's answers.
import { describe, expect, it } from "vitest";
import { UsageError } from "../../cli/command";
import { enrollmentRequest } from "../../cli/enrollment";
import { cooledDown, deviceLines, enrollmentLines, runnerLines, trustLine } from "../../cli/format";
import type { DeviceView, EnrollmentCreated, RunnerView } from "../../core/api";

const now = Date.UTC(2026, 11, 1, 12);
const device = (over: Partial<DeviceView>): DeviceView => ({
  id: "laptop-0a1b2c3d",
  name: "laptop",
  labels: [],
  trusted: false,
  enrollment: "enr1",
  enrolled_at: now - 86_400_000,
  last_seen: null,
  connected: false,
  revoked_at: null,
  cooled_until: null,
  ...over,
});
const runner = (over: Partial<RunnerView>): RunnerView => ({
  id: "laptop-0a1b2c3d",
  name: "laptop",
  platform: "linux",
  arch: "x64",
  cores: 4,
  memory: 8 * 2 ** 30,
  freeMemory: 2 ** 30,
  slots: 4,
  labels: [],
  version: "0.1.0",
  busy: 1,
  load: 12.4,
  history: [],
  runs: ["r1"],
  connected_at: now - 60_000,
  last_seen: now,
  cooled_until: null,
  ...over,
});

describe("runners add flags", () => {
  it("leaves what is not given to the coordinator's defaults", () => {
    expect(enrollmentRequest({})).toEqual({});
  });

  it("sends labels (deduplicated), uses, a duration or seconds, and trusted", () => {
    expect(enrollmentRequest({ labels: "gpu, arm64,gpu", uses: "5", ttl: "2d", trusted: true })).toEqual({
      labels: ["gpu", "arm64"],
      uses: 5,
      ttl: "2d",
      trusted: true,
    });
    expect(enrollmentRequest({ ttl: "90" })).toEqual({ ttl: 90 });
    expect(enrollmentRequest({ ttl: "30m" })).toEqual({ ttl: "30m" });
    expect(enrollmentRequest({ ttl: "30d", uses: "1000" })).toEqual({ ttl: "30d", uses: 1000 });
  });

  it("refuses what the coordinator would, naming the flag", () => {
    for (const [flags, message] of [
      [{ uses: "0" }, /^--uses: expected a whole number from 1 to 1000, got "0"$/],
      [{ uses: "1001" }, /^--uses: .* got "1001"$/],
      [{ uses: "2.5" }, /^--uses: .* got "2.5"$/],
      [{ uses: "-1" }, /^--uses: /],
      [{ ttl: "31d" }, /^--ttl: expected a duration from 1s to 30d such as "1h" or "2d" \(or seconds\), got "31d"$/],
      [{ ttl: "0" }, /^--ttl: .* got "0"$/],
      [{ ttl: "500ms" }, /^--ttl: /],
      [{ ttl: "2592001" }, /^--ttl: /],
      [{ ttl: "an hour" }, /^--ttl: /],
      [{ labels: "" }, /^--labels: "" is not a label \(1 to 64 of letters, digits, _ \. : -\)$/],
      [{ labels: "a,,b" }, /^--labels: "" is not a label/],
      [{ labels: "gpu,x\u001b[2J" }, /^--labels: "x\u001b\[2J" is not a label/],
      [{ labels: "l".repeat(65) }, /is not a label/],
      [{ labels: Array.from({ length: 65 }, (_, i) => `l${i}`).join(",") }, /^--labels: at most 64 labels, got 65$/],
    ] as const) {
      expect(() => enrollmentRequest(flags), JSON.stringify(flags)).toThrow(UsageError);
      expect(() => enrollmentRequest(flags)).toThrow(message);
    }
  });
});

describe("distro runners: the device table", () => {
  it("says how to enroll when there is no device", () => {
    expect(deviceLines([], now)).toEqual(["no devices enrolled (distro runners add)"]);
  });

  it("shows each device's state: revoked over connected, else last seen, or never", () => {
    const lines = deviceLines(
      [
        device({ id: "a-00000001", name: "a", connected: true, last_seen: now, labels: ["gpu", "arm"], trusted: true }),
        device({ id: "b-00000002", name: "b", last_seen: now - 125_000 }),
        device({ id: "c-00000003", name: "c", last_seen: now - 3 * 86_400_000 }),
        device({ id: "d-00000004", name: "d" }),
        device({ id: "e-00000005", name: "e", connected: true, revoked_at: now - 30_000 }),
      ],
      now,
    );
    expect(lines).toEqual([
      "DEVICE      NAME  STATE                LABELS   TRUSTED",
      "a-00000001  a     connected            gpu,arm  yes",
      "b-00000002  b     last seen 2m05s ago  -        no",
      "c-00000003  c     last seen 3d ago     -        no",
      "d-00000004  d     never                -        no",
      "e-00000005  e     revoked 30s ago      -        no",
    ]);
  });

  it("shows how long a cooled-down device has left, over connected and last seen; revoked still wins", () => {
    const lines = deviceLines(
      [
        device({ id: "a-00000001", name: "a", connected: true, last_seen: now, cooled_until: now + 130_000 }),
        device({ id: "b-00000002", name: "b", last_seen: now - 5_000, cooled_until: now + 3_600_000 }),
        device({ id: "c-00000003", name: "c", connected: true, cooled_until: now - 1 }),
        device({ id: "d-00000004", name: "d", revoked_at: now - 30_000, cooled_until: now + 60_000 }),
      ],
      now,
    );
    expect(lines).toEqual([
      "DEVICE      NAME  STATE                  LABELS  TRUSTED",
      "a-00000001  a     cooled down for 2m10s  -       no",
      "b-00000002  b     cooled down for 1h00m  -       no",
      "c-00000003  c     connected              -       no",
      "d-00000004  d     revoked 30s ago        -       no",
    ]);
  });

  it("says cooled down only while cooled_until is ahead of now", () => {
    expect(cooledDown(now + 130_000, now)).toBe("cooled down for 2m10s");
    expect(cooledDown(now + 400, now)).toBe("cooled down for 0s");
    expect(cooledDown(now, now)).toBeNull();
    expect(cooledDown(now - 1_000, now)).toBeNull();
    expect(cooledDown(null, now)).toBeNull();
  });
});

describe("distro runners: the runner table", () => {
  it("marks a runner whose device is cooled down, with the time left; the others are ready", () => {
    const lines = runnerLines(
      [
        runner({ name: "ghost", labels: ["gpu"], cooled_until: now + 65_000 }),
        runner({ name: "honest", load: null, cooled_until: now - 1_000 }),
      ],
      now,
    );
    expect(lines).toEqual([
      "NAME    PLATFORM   BUSY  CPU  FREE MEMORY     LABELS  RUNS  STATE",
      "ghost   linux/x64  1/4   12%  1 GiB of 8 GiB  gpu     1     cooled down for 1m05s",
      "honest  linux/x64  1/4   -    1 GiB of 8 GiB  -       1     ready",
    ]);
  });
});

describe("distro runners trust / untrust", () => {
  const answer = (purged: number) => ({ device: device({ trusted: purged < 0 }), purged: Math.max(0, purged) });

  it("says the device's outputs are cached from now on, or how many cache entries went with its trust", () => {
    expect(trustLine(answer(-1), true)).toBe(
      "trusted device laptop-0a1b2c3d: the outputs it produces are filed in the result cache",
    );
    expect(trustLine(answer(3), false)).toBe("untrusted device laptop-0a1b2c3d: 3 result cache entries purged");
    expect(trustLine(answer(1), false)).toBe("untrusted device laptop-0a1b2c3d: 1 result cache entry purged");
    expect(trustLine(answer(0), false)).toBe("untrusted device laptop-0a1b2c3d: 0 result cache entries purged");
  });
});

describe("distro runners add: the enrollment", () => {
  const created: EnrollmentCreated = {
    id: "enr1",
    token: "tok",
    expires_at: now + 3_600_000,
    uses: 3,
    used: 0,
    labels: ["gpu"],
    trusted: true,
    created_at: now,
    revoked_at: null,
    devices: [],
    command: "DISTRO_ENROLL=tok npx --yes http://c/runner.tgz --coordinator http://c",
    commands: {
      unix: "DISTRO_ENROLL=tok npx --yes http://c/runner.tgz --coordinator http://c",
      powershell: '$env:DISTRO_ENROLL="tok"; npx --yes http://c/runner.tgz --coordinator http://c',
      termux: "pkg install -y nodejs && DISTRO_ENROLL=tok npx --yes http://c/runner.tgz --coordinator http://c",
    },
  };

  it("prints the expiry, each platform's command under its heading, and that the token is shown once", () => {
    const lines = enrollmentLines(created, now);
    expect(lines[0]).toBe("enrollment enr1: 3 device(s) may join until 2026-12-01 13:00:00 UTC (in 1h00m)");
    expect(lines[1]).toBe("labels: gpu; trusted: yes");
    const text = lines.join("\n");
    expect(text).toContain(`\nLinux and macOS:\n  ${created.commands.unix}\n`);
    expect(text).toContain(`\nWindows (PowerShell):\n  ${created.commands.powershell}\n`);
    expect(text).toContain(`\nAndroid (Termux):\n  ${created.commands.termux}\n`);
    expect(text).toMatch(/shown only this once/);
    expect(enrollmentLines({ ...created, expires_at: now + 30 * 86_400_000 }, now)[0]).toMatch(/\(in 30d\)$/);
  });
});
