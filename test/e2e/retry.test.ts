// Fixing a run that failed, end to end with a real runner: `distro retry ID` gives the task that
// failed for good, and what it skipped, new attempts in the same run, which then succeeds with
// the outputs of the first round byte for byte; `distro retry ID --from TASK` makes a new run,
// linked, that re-runs TASK and what depends on it and reuses the rest.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RetryAnswer, RunView } from "../../core/api";
import { ROOT } from "../../dev/local";
import { Cluster } from "./harness";

const cluster = new Cluster();
const DAG = readFileSync(join(ROOT, "test/e2e/fixtures/fixable.yaml"), "utf8");
const attempts = (run: RunView, task: string) => run.tasks.find((t) => t.id === task)!.attempts;

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "fixer" });
  await cluster.connected("fixer");
  await cluster.upload("echo.wasm", "flaky.wasm");
});
afterAll(() => cluster.stop());

describe("retry", () => {
  let id = "";

  it("re-runs only the failed task and what it skipped; the run succeeds, the first round's outputs unchanged", async () => {
    ({ id } = await cluster.client.submit(DAG));
    expect((await cluster.client.wait(id)).status).toBe("failed");
    const first = await cluster.client.run(id);
    expect(first.tasks.map((t) => [t.id, t.state])).toEqual([
      ["good", "succeeded"],
      ["flaky", "failed"],
      ["after", "skipped"],
    ]);
    const good = await cluster.client.output(id, "good");

    const { code, out, err } = await cluster.distro("retry", id);
    expect([code, err]).toEqual([0, ""]);
    expect(out).toBe(`run ${id} is running: 2 task(s) run again\n`);
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const second = await cluster.client.run(id);
    expect(second.finished_at).not.toBeNull();
    expect(attempts(second, "good")).toHaveLength(1);
    // Both rounds in the history: flaky's failed first attempt, then its second, which succeeded.
    expect(attempts(second, "flaky").map((a) => [a.attempt, a.outcome])).toEqual([
      [1, "failed"],
      [2, "succeeded"],
    ]);
    expect(Buffer.from(await cluster.client.output(id, "good")).equals(Buffer.from(good))).toBe(true);
    const after = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "after"))) as {
      inputs: { good: unknown; flaky: { attempt: number } };
    };
    expect(after.inputs.flaky).toEqual({ attempt: 2 });
    // A run that succeeded has nothing to retry.
    const again = await cluster.distro("retry", id);
    expect([again.code, again.err]).toEqual([2, expect.stringContaining("every task succeeded") as unknown]);
  });

  it("--from TASK makes a linked run that re-runs TASK and its dependents and reuses the rest", async () => {
    const { code, out } = await cluster.distro("retry", id, "--from", "after", "--json");
    expect(code).toBe(0);
    const answer = JSON.parse(out) as RetryAnswer;
    expect(answer).toMatchObject({ retry_of: id, retried: 1 });
    expect(answer.id).not.toBe(id);
    expect((await cluster.client.wait(answer.id)).status).toBe("succeeded");
    const linked = await cluster.client.run(answer.id);
    expect(linked.retry_of).toBe(id);
    for (const task of ["good", "flaky"])
      expect(attempts(linked, task)).toMatchObject([{ outcome: "cached", runner: `run:${id}` }]);
    expect(attempts(linked, "after")).toMatchObject([{ outcome: "succeeded", runner_name: "fixer" }]);
    const after = JSON.parse(new TextDecoder().decode(await cluster.client.output(answer.id, "after"))) as {
      inputs: { flaky: unknown };
    };
    expect(after.inputs.flaky).toEqual({ attempt: 2 });
    const bad = await cluster.distro("retry", id, "--from", "nope");
    expect([bad.code, bad.err]).toEqual([2, expect.stringContaining("the run has no task nope") as unknown]);
  });
});
