// Following and fixing a run by its short id (issue 17): the 12-digit ids `distro runs` prints
// work wherever a command takes a run id, an unknown or ambiguous prefix exits 2 saying so, and
// `distro submit --wait` and `distro watch` follow a run through a coordinator killed (SIGKILL)
// and restarted on the same port and state, re-attaching to the watch socket.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startCoordinator } from "../../dev/local";
import { Cluster } from "./harness";

const cluster = new Cluster();
const distro = (...args: string[]) => cluster.distro(...args);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await cluster.start();
  await cluster.upload("spin.wasm", "init.wasm", "greet.wasm", "aggregate.wasm", "fail.wasm");
});
afterAll(() => cluster.stop());
afterEach(async () => {
  await Promise.all(cluster.runners.splice(0).map((r) => r.stop("SIGKILL")));
});

/** A DAG file of `count` spin tasks of `ms` each, its result cache off, named `name`. */
function spinFile(name: string, count = 40, ms = 300): string {
  const file = join(cluster.dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\ncache: false\ntasks:\n  - { id: spin, module: spin.wasm, map: { range: [0, ${count}] }, params: { ms: ${ms} } }\n`,
  );
  return file;
}

/** The full id of the newest run named `name`, once it is listed. */
async function runNamed(name: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const found = (await cluster.client.runs(50)).runs.find((r) => r.name === name);
    if (found) return found.id;
    await sleep(50);
  }
  throw new Error(`no run named ${name}`);
}

/** Once `id` has `done` tasks succeeded: the coordinator killed (SIGKILL) and started again on its port and state. */
async function restartMidRun(id: string, done: number): Promise<void> {
  const before = await cluster.until(id, (r) => (r.counts.succeeded ?? 0) >= done, 60_000);
  expect(before.status).toBe("running");
  const { port } = cluster.coordinator;
  await cluster.coordinator.stop("SIGKILL");
  await sleep(1000); // long enough for a follower to notice, and to try again at least once
  cluster.coordinator = await startCoordinator({ port, persistTo: join(cluster.dir, "state") });
}

describe("short run ids", () => {
  it("the 12 digits distro runs prints work in status, output, watch, pause, resume, cancel and retry", async () => {
    cluster.runner({ name: "ids" });
    const hello = await distro("submit", "dags/hello_fanout.yaml", "--watch");
    expect(hello.code).toBe(0);
    const id = /submitted run ([0-9a-f]{64})/.exec(hello.out)![1]!;
    const listed = (await distro("runs")).out.split("\n").find((l) => l.startsWith(id.slice(0, 12)));
    expect(listed).toMatch(/^[0-9a-f]{12}\s+hello-fanout\s+succeeded/);
    const short = listed!.slice(0, 12);

    const status = await distro("status", short);
    expect(status.code).toBe(0);
    expect(status.out).toContain("succeeded 100% 5/5 done");
    const output = await distro("output", short, "greet[1]");
    expect(output.code).toBe(0);
    expect(JSON.parse(output.out)).toEqual({ name: "Bob", message: "Hello, Bob!" });
    // Watching a run that has ended: its final snapshot, then what submit --watch prints.
    const watched = await distro("watch", short);
    expect(watched.code).toBe(0);
    expect(watched.out).toMatch(/^\[\d+s\] succeeded 100% 5\/5 done/m);
    expect(watched.out).toContain(`run ${id} succeeded`);
    expect((await distro("watch", "--help")).out).toContain("Usage: distro watch ID");
    const json = await distro("watch", short.slice(0, 8), "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ id, status: "succeeded", tasks_total: 5 });

    const slow = await distro("submit", "test/e2e/fixtures/slow.yaml", "--modules", "wasm_tasks/build");
    const slowId = /submitted run ([0-9a-f]{64})/.exec(slow.out)![1]!;
    const slowShort = slowId.slice(0, 12);
    expect((await distro("pause", slowShort)).out).toBe(`run ${slowId} is paused\n`);
    expect((await distro("resume", slowShort)).out).toBe(`run ${slowId} is running\n`);
    expect((await distro("cancel", slowShort)).out).toBe(`run ${slowId} is cancelled\n`);
    const retried = await distro("retry", slowShort);
    expect(retried.err).not.toMatch(/not a run id|no run|ambiguous/);
    expect(retried.out).toContain(slowId);
    await distro("cancel", slowId);
  });

  it("distro watch of a run that fails exits 1 and says what failed", async () => {
    cluster.runner({ name: "fails" });
    const { id } = await cluster.client.submit(
      "name: doomed\ntasks:\n  - { id: boom, module: fail.wasm, retries: 0 }\n",
    );
    const watched = await distro("watch", id.slice(0, 12));
    expect(watched.code).toBe(1);
    expect(watched.err).toMatch(/task boom failed after 1 attempt\(s\)/);
    expect(watched.out).toContain(`run ${id} failed`);
  });

  it("an unknown, ambiguous, short or malformed prefix exits 2 with the coordinator's message", async () => {
    const unknown = await distro("status", "0000000000fe");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^distro: no run 0000000000fe$/m);
    expect((await distro("watch", "0000000000fe")).err).toMatch(/^distro: no run 0000000000fe$/m);
    // Two lines in the run index sharing 12 digits (no such runs: the prefix never gets that far).
    const shared = "abcdefabcdef";
    const rows = [`${shared}0${"1".repeat(51)}`, `${shared}1${"2".repeat(51)}`]
      .map((id) => `('${id}', 'fake', 'succeeded', 0, '{}', 0, 0, 0)`)
      .join(", ");
    const sql = `INSERT OR REPLACE INTO run_index (id, name, status, tasks, counts, created_at, updated_at, finished_at) VALUES ${rows}`;
    const wrangler = spawnSync(
      "npx",
      ["wrangler", "d1", "execute", "DB", "--local", "--persist-to", join(cluster.dir, "state"), "--command", sql],
      { cwd: ROOT, encoding: "utf8", env: { ...process.env, CI: "1" } },
    );
    expect(wrangler.status, wrangler.stderr).toBe(0);
    const message = `distro: run id prefix ${shared} is ambiguous: it matches ${shared}0…, ${shared}1… (give more digits)`;
    for (const command of [["status"], ["watch"], ["cancel"], ["output", "x"]]) {
      const [verb, ...more] = command;
      const ambiguous = await distro(verb!, shared, ...more);
      expect(ambiguous.code, verb).toBe(2);
      expect(ambiguous.err).toContain(message);
    }
    for (const bad of ["abcdefa", "ABCDEFABCDEF", "not-a-run"]) {
      const refused = await distro("watch", bad);
      expect(refused.code, bad).toBe(2);
      expect(refused.err).toMatch(
        /is not a run id: give its 64 hex digits \(lower-case\), or a unique prefix of at least 8/,
      );
    }
  });
});

describe("following through a coordinator restart", () => {
  it("distro submit --wait: the coordinator killed and restarted mid-run, the CLI reconnects and prints the outputs", async () => {
    cluster.runner({ name: "steady" });
    await cluster.connected("steady");
    const submitted = distro("submit", spinFile("through-restart"), "--wait", "--modules", "wasm_tasks/build");
    const id = await runNamed("through-restart");
    await restartMidRun(id, 8);
    const { code, out, err } = await submitted;
    expect(code, err).toBe(0);
    expect(err).toMatch(/^distro: lost the coordinator \(.+\); reconnecting…$/m);
    expect(err).toMatch(/^distro: reconnected after \d+s$/m);
    // Told once per outage, however many tries it took.
    expect(err.match(/lost the coordinator/g)).toHaveLength(1);
    expect(out).toMatch(/^\[\d+s\] succeeded 100% 40\/40 done/m);
    for (const i of [0, 3, 9]) expect(out).toContain(`spin[${i}]: {"index":${i},"square":${i * i}}`);
    expect(out).toContain(`run ${id} succeeded`);
    expect((await cluster.client.summary(id)).counts.succeeded).toBe(40);
  });

  it("distro watch: follows a run by its short id through a restart and exits with its final status", async () => {
    cluster.runner({ name: "watched" });
    await cluster.connected("watched");
    const { id } = await cluster.client.submit(
      "name: watched\ncache: false\ntasks:\n  - { id: spin, module: spin.wasm, map: { range: [0, 40] }, params: { ms: 300 } }\n",
    );
    const watching = distro("watch", id.slice(0, 12));
    await restartMidRun(id, 8);
    const { code, out, err } = await watching;
    expect(code, err).toBe(0);
    expect(err).toMatch(/^distro: lost the coordinator \(.+\); reconnecting…$/m);
    expect(err).toMatch(/^distro: reconnected after \d+s$/m);
    expect(out).toMatch(/^\[\d+s\] succeeded 100% 40\/40 done/m);
    expect(out).toContain(`run ${id} succeeded`);
  });
});
