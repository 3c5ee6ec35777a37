// Every `distro` subcommand as a process against the real local coordinator with a real runner:
// its happy path and one bad input each, --json on the read commands, --help on each, and the
// progress display's plain-line form (standard output is not a terminal here).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnrollmentCreated, RevokeAnswer, RunnerListing, TrustAnswer } from "../../core/api";
import { Cluster } from "./harness";

const cluster = new Cluster();
const distro = (...args: string[]) => cluster.distro(...args);
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
let runId = "";

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "cli-runner" });
  await cluster.connected("cli-runner");
});
afterAll(() => cluster.stop());

describe("distro", () => {
  it("submit --watch follows the run with progress lines and exits 0; a missing file exits 2", async () => {
    const { code, out } = await distro("submit", "dags/hello_fanout.yaml", "--watch");
    expect(code).toBe(0);
    runId = /submitted run ([0-9a-f]{64})/.exec(out)![1]!;
    const progress = out.split("\n").filter((l) => /^\[\d+s\] /.test(l));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatch(/^\[\d+s\] succeeded 100% 5\/5 done/);
    expect(out).toContain(`run ${runId} succeeded`);
    const missing = await distro("submit", "dags/nope.yaml", "--watch");
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read .*nope\.yaml/);
  });

  it("submit --idempotency-key twice makes one run: the second answer is the first's run", async () => {
    const key = `e2e-${Date.now()}`;
    const submit = async () => {
      const { code, out } = await distro("submit", "dags/hello_fanout.yaml", "--idempotency-key", key, "--json");
      expect(code).toBe(0);
      return (JSON.parse(out) as { id: string }).id;
    };
    const first = await submit();
    expect(await submit()).toBe(first);
    const runs = JSON.parse((await distro("runs", "--json")).out) as { id: string }[];
    expect(runs.filter((r) => r.id === first)).toHaveLength(1);
  });

  it("runs lists it (text and --json); a bad --limit exits 2", async () => {
    const text = await distro("runs");
    expect(text.code).toBe(0);
    expect(text.out).toMatch(new RegExp(`${runId.slice(0, 12)}\\s+hello-fanout\\s+succeeded\\s+5/5`));
    const json = JSON.parse((await distro("runs", "--json")).out) as { id: string; counts: Record<string, number> }[];
    expect(json.find((r) => r.id === runId)!.counts.succeeded).toBe(5);
    expect((await distro("runs", "--limit", "0")).code).toBe(2);
  });

  it("status shows each task's instances by state (text and --json); an unknown run exits 2", async () => {
    const text = await distro("status", runId);
    expect(text.code).toBe(0);
    expect(text.out).toContain("succeeded 100% 5/5 done");
    expect(text.out).toMatch(/greet\s+3\s+3 succeeded/);
    const json = JSON.parse((await distro("status", runId, "--json")).out) as {
      nodes: { id: string; counts: Record<string, number> }[];
    };
    expect(json.nodes.find((n) => n.id === "greet")!.counts).toEqual({ succeeded: 3 });
    const failing = await distro("submit", "test/e2e/fixtures/fails.yaml", "--watch", "--modules", "wasm_tasks/build");
    expect(failing.code).toBe(1);
    const failed = await distro("status", /submitted run ([0-9a-f]{64})/.exec(failing.out)![1]!);
    expect(failed.out).toMatch(/^failed 100% 1\/1 done · 1 failed$/m);
    expect(failed.out).toMatch(/task boom failed after 1 attempt\(s\): exit: exited with code 4/);
    const unknown = await distro("status", "0".repeat(64));
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/no run/);
  });

  it("runners lists the runner and its device (text and --json); an extra argument exits 2", async () => {
    const text = await distro("runners");
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/cli-runner\s+\w+\/\w+\s+\d+\/2/);
    expect(text.out).toMatch(/^DEVICE\s+NAME\s+STATE\s+LABELS\s+TRUSTED$/m);
    expect(text.out).toMatch(/^NAME\s+PLATFORM\s+BUSY\s+CPU\s+FREE MEMORY\s+LABELS\s+RUNS\s+STATE$/m);
    expect(text.out).toMatch(/^cli-runner\s.*\sready$/m);
    // Joined with the development secret: trusted.
    expect(text.out).toMatch(/^cli-runner-[0-9a-f]{8}\s+cli-runner\s+connected\s+-\s+yes$/m);
    const json = JSON.parse((await distro("runners", "--json")).out) as RunnerListing;
    expect(json.runners.find((r) => r.name === "cli-runner")!.slots).toBe(2);
    expect(json.devices.find((d) => d.name === "cli-runner")).toMatchObject({
      connected: true,
      revoked_at: null,
      trusted: true,
      cooled_until: null,
    });
    expect(json.runners.find((r) => r.name === "cli-runner")!.cooled_until).toBeNull();
    expect((await distro("runners", "extra")).code).toBe(2);
  });

  it("runners add prints the enrollment and each platform's command (text and --json); bad flags exit 2", async () => {
    const origin = cluster.coordinator.url.origin;
    const install = `npx --yes ${cluster.runnerUrl} --coordinator ${origin}`;
    const text = await distro("runners", "add", "--labels", "gpu,arm64", "--uses", "3", "--ttl", "2h");
    expect(text.code).toBe(0);
    expect(text.out).toMatch(
      /^enrollment \S+: 3 device\(s\) may join until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 2h00m\)$/m,
    );
    expect(text.out).toMatch(/^labels: gpu,arm64; trusted: no$/m);
    expect(text.out).toMatch(new RegExp(`^Linux and macOS:\n {2}DISTRO_ENROLL=\\S+ ${escape(install)}$`, "m"));
    expect(text.out).toMatch(
      new RegExp(`^Windows \\(PowerShell\\):\n {2}\\$env:DISTRO_ENROLL="\\S+"; ${escape(install)}$`, "m"),
    );
    expect(text.out).toMatch(
      new RegExp(`^Android \\(Termux\\):\n {2}pkg install -y nodejs && DISTRO_ENROLL=\\S+ ${escape(install)}$`, "m"),
    );
    expect(text.out).toMatch(/shown only this once/);
    const json = JSON.parse((await distro("runners", "add", "--trusted", "--json")).out) as EnrollmentCreated;
    expect(json).toMatchObject({ uses: 1, used: 0, labels: [], trusted: true, revoked_at: null });
    expect(json.commands.unix).toBe(`DISTRO_ENROLL=${json.token} ${install}`);
    expect(json.command).toBe(json.commands.unix);
    expect(json.expires_at - json.created_at).toBe(3_600_000);
    for (const [flag, value] of [
      ["--uses", "0"],
      ["--ttl", "31d"],
      ["--labels", "a b"],
    ]) {
      const bad = await distro("runners", "add", flag!, value!);
      expect(bad.code, `${flag} ${value}`).toBe(2);
      expect(bad.err).toContain(`distro: ${flag}: `);
    }
  });

  it("runners revoke disconnects a device and lists it revoked; an unknown device exits 2", async () => {
    cluster.runner({ name: "cli-doomed", configDir: join(cluster.dir, "config-doomed") });
    await cluster.connected("cli-doomed");
    const listing = JSON.parse((await distro("runners", "--json")).out) as RunnerListing;
    const id = listing.devices.find((d) => d.name === "cli-doomed")!.id;
    const revoked = await distro("runners", "revoke", id);
    expect(revoked.code).toBe(0);
    expect(revoked.out).toMatch(new RegExp(`^revoked device ${id}: [1-9]\\d* socket\\(s\\) closed\n$`));
    expect((await distro("runners")).out).toMatch(new RegExp(`^${id}\\s+cli-doomed\\s+revoked \\d+s ago`, "m"));
    const again = JSON.parse((await distro("runners", "revoke", id, "--json")).out) as RevokeAnswer;
    expect(again).toMatchObject({ device: { id, connected: false }, closed: 0 });
    const unknown = await distro("runners", "revoke", "no-such-device");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^distro: no device no-such-device$/m);
  });

  it("runners untrust purges the device's cache entries and runners trust restores it (text and --json); an unknown device exits 2", async () => {
    const listing = JSON.parse((await distro("runners", "--json")).out) as RunnerListing;
    const id = listing.devices.find((d) => d.name === "cli-runner")!.id;
    // The first test's run was done by this device, trusted, so its outputs were filed in the cache.
    const untrusted = await distro("runners", "untrust", id);
    expect(untrusted.code).toBe(0);
    expect(untrusted.out).toMatch(new RegExp(`^untrusted device ${id}: [1-9]\\d* result cache entr(y|ies) purged\n$`));
    expect((await distro("runners")).out).toMatch(new RegExp(`^${id}\\s+cli-runner\\s+connected\\s+-\\s+no$`, "m"));
    const again = JSON.parse((await distro("runners", "untrust", id, "--json")).out) as TrustAnswer;
    expect(again).toMatchObject({ device: { id, trusted: false, connected: true }, purged: 0 });
    const trusted = JSON.parse((await distro("runners", "trust", id, "--json")).out) as TrustAnswer;
    expect(trusted).toMatchObject({ device: { id, trusted: true }, purged: 0 });
    const text = await distro("runners", "trust", id);
    expect(text.code).toBe(0);
    expect(text.out).toBe(`trusted device ${id}: the outputs it produces are filed in the result cache\n`);
    expect((await distro("runners")).out).toMatch(new RegExp(`^${id}\\s+cli-runner\\s+connected\\s+-\\s+yes$`, "m"));
    for (const verb of ["trust", "untrust"]) {
      const unknown = await distro("runners", verb, "no-such-device");
      expect(unknown.code, verb).toBe(2);
      expect(unknown.err).toMatch(/^distro: no device no-such-device$/m);
    }
  });

  it("output prints a task's output and writes it with -o; an unknown task exits 2", async () => {
    const text = await distro("output", runId, "greet[1]");
    expect(text.code).toBe(0);
    expect(JSON.parse(text.out)).toEqual({ name: "Bob", message: "Hello, Bob!" });
    const file = join(cluster.dir, "aggregate.json");
    expect((await distro("output", runId, "aggregate", "-o", file)).out).toMatch(
      /wrote \d+ bytes \(application\/json\)/,
    );
    const missing = await distro("output", runId, "nope");
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/has no task nope/);
  });

  it("modules push uploads under the file name (text and --json); bytes not wasm exit 2, saying why", async () => {
    const text = await distro("modules", "push", "wasm_tasks/build/noop.wasm", "wasm_tasks/build/echo.wasm");
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^noop\.wasm: .*sha256:[0-9a-f]{64}$/m);
    expect(text.out).toMatch(/^echo\.wasm: /m);
    const json = JSON.parse((await distro("modules", "push", "wasm_tasks/build/noop.wasm", "--json")).out) as {
      name: string;
    }[];
    expect(json.map((m) => m.name)).toEqual(["noop.wasm"]);
    const bogus = join(cluster.dir, "bogus.wasm");
    writeFileSync(bogus, "not wasm at all");
    const bad = await distro("modules", "push", bogus);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/module "bogus.wasm" is not a valid/);
    expect((await distro("modules", "pull", "x")).code).toBe(2);
  });

  it("pause, resume and cancel a run; each exits 2 on a bad input", async () => {
    const { out } = await distro("submit", "test/e2e/fixtures/slow.yaml", "--modules", "wasm_tasks/build");
    const id = /submitted run ([0-9a-f]{64})/.exec(out)![1]!;
    expect((await distro("resume", id)).code).toBe(2);
    expect((await distro("pause", id)).out).toBe(`run ${id} is paused\n`);
    expect(JSON.parse((await distro("resume", id, "--json")).out)).toEqual({ id, status: "running" });
    expect((await distro("cancel", id)).out).toBe(`run ${id} is cancelled\n`);
    expect((await distro("cancel", id)).code).toBe(2); // already over
    const noId = await distro("pause");
    expect(noId.code).toBe(2);
    expect(noId.err).toMatch(/pause takes exactly one run ID/);
  });

  it("rm deletes a finished run (text and --json); an open run and an unknown one exit 2", async () => {
    const { out } = await distro("submit", "test/e2e/fixtures/slow.yaml", "--modules", "wasm_tasks/build");
    const id = /submitted run ([0-9a-f]{64})/.exec(out)![1]!;
    const open = await distro("rm", id);
    expect(open.code).toBe(2);
    expect(open.err).toMatch(/is (queued|running): cancel it first, or wait for its end/);
    await distro("cancel", id);
    expect((await distro("rm", id.slice(0, 12))).out).toBe(`deleted run ${id}\n`);
    expect((await distro("status", id)).code).toBe(2);
    expect((await distro("rm", id)).code).toBe(2);
    const { out: second } = await distro("submit", "dags/hello_fanout.yaml", "--wait");
    const done = /submitted run ([0-9a-f]{64})/.exec(second)![1]!;
    expect(JSON.parse((await distro("rm", done, "--json")).out)).toEqual({ id: done, deleted: true });
  });

  it("tokens create, list and revoke a scoped token (text and --json); what it may do follows its scope; bad flags exit 2", async () => {
    const made = await distro("tokens", "create", "--name", "wall display", "--scope", "read", "--ttl", "30d");
    expect(made.code).toBe(0);
    expect(made.out).toMatch(/^token ([0-9a-f]{16}) \(wall display\), scope read: good until .* UTC \(in 30d/);
    const token = /^ {2}(dat_[A-Za-z0-9_-]{43})$/m.exec(made.out)![1]!;
    const id = /^token ([0-9a-f]{16})/.exec(made.out)![1]!;
    expect(made.out).toContain("It is shown only this once");
    // Read: runs yes; an enrollment (admin) and a submission (submit) no, each saying why.
    expect((await distro("runs", "--token", token)).code).toBe(0);
    const add = await distro("runners", "add", "--token", token);
    expect(add.code).toBe(2);
    expect(add.err).toContain(`token ${id} (wall display) has scope read; POST /api/enrollments needs admin`);
    const submit = await distro("submit", "dags/hello_fanout.yaml", "--token", token);
    expect(submit.err).toMatch(/has scope read; (PUT \/api\/modules\/\S+|POST \/api\/dags) needs submit/);
    // Listed without the token, then revoked: 401 from then on.
    const listed = await distro("tokens", "list");
    expect(listed.out).toMatch(new RegExp(`${id}\\s+wall display\\s+read\\s+\\S+ \\S+\\s+good until`));
    expect(listed.out).not.toContain(token);
    const json = JSON.parse((await distro("tokens", "--json")).out) as { id: string; scope: string }[];
    expect(json.find((t) => t.id === id)!.scope).toBe("read");
    expect((await distro("tokens", "revoke", id)).out).toBe(`revoked token ${id} (wall display)\n`);
    const after = await distro("runs", "--token", token);
    expect(after.code).toBe(2);
    expect(after.err).toMatch(new RegExp(`token ${id} \\(wall display\\) was revoked at `));
    // Bad flags.
    expect((await distro("tokens", "create", "--scope", "read")).err).toMatch(/--name NAME is required/);
    expect((await distro("tokens", "create", "--name", "x", "--scope", "root")).err).toMatch(
      /--scope takes read, submit, admin, not "root"/,
    );
    const ttl = await distro("tokens", "create", "--name", "x", "--scope", "read", "--ttl", "forever");
    expect(ttl.code).toBe(2);
    expect(ttl.err).toMatch(/ttl: expected a duration from 1s to 400d/);
    expect((await distro("tokens", "revoke", "nope")).code).toBe(2);
  });

  it("--help for every command, and exit 2 for an unknown one", async () => {
    for (const command of [
      ...["submit", "runs", "status", "runners", "runners add", "runners revoke", "runners trust", "runners untrust"],
      ...[
        "output",
        "cancel",
        "pause",
        "resume",
        "modules",
        "rm",
        "tokens",
        "tokens list",
        "tokens create",
        "tokens revoke",
      ],
    ]) {
      const { code, out } = await distro(...command.split(" "), "--help");
      expect(code, command).toBe(0);
      expect(out).toContain(`Usage: distro ${command}`);
    }
    const top = await distro("--help");
    expect(top.out).toMatch(/Commands:[\s\S]*modules/);
    expect((await distro("frobnicate")).code).toBe(2);
  });
});
