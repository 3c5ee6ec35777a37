// bcrypt in the password audit (wasm_tasks/lib/bcrypt.ts through password_shard) against the
// reference bcryptjs, and the generated Blowfish tables (scripts/blowfish-pi.js) against the
// committed wasm_tasks/lib/blowfish_pi.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { taskThreads } from "../helpers/task-threads";
import { afterAll, describe, expect, it } from "vitest";
import type { JobOutcome } from "../../runner/executor/pool";

const { pool, compile } = taskThreads(2);
afterAll(() => pool.close());

/** Runs a task with the envelope the coordinator would build; returns how it ended. */
async function outcome(name: string, envelope: Record<string, unknown>): Promise<JobOutcome> {
  return pool.run({
    module: await compile(name),
    args: [String(envelope.task)],
    env: {},
    stdin: new TextEncoder().encode(JSON.stringify({ attempt: 1, inputs: {}, ...envelope })),
    maxOutputBytes: 1 << 20,
    timeoutMs: 60_000,
  });
}

/** What password_shard and password_report output (and password_report's `inputs.shard`). */
interface Audit {
  checked: number;
  found: { password: string; hash: string }[];
}

/** Runs a task that must succeed; returns its output as JSON. */
async function run(name: string, envelope: Record<string, unknown>): Promise<Audit> {
  const ended = await outcome(name, envelope);
  if (ended.type !== "exit" || ended.code !== 0)
    throw new Error(`${name} failed: ${JSON.stringify({ ...ended, stdout: undefined })}`);
  return JSON.parse(new TextDecoder().decode(ended.stdout)) as Audit;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The password audit over `params` in `shards` shards, merged by password_report. */
async function audit(params: Record<string, unknown>, shards: number) {
  const outputs = await Promise.all(
    range(shards).map((index) =>
      run("password_shard", { task: `shard[${index}]`, params: { ...params, shards }, index }),
    ),
  );
  return run("password_report", { task: "report", params, inputs: { shard: outputs } });
}

describe("bcrypt in password_shard", () => {
  const long = "correct horse battery staple, ".repeat(3); // 90 bytes: only the first 72 count
  const words = ["", "hunter2", "pässwörd", long, "zebra", "alpha"];
  // With suffixes: 1, the candidates are each word and the word followed by "0".
  const candidates = words.flatMap((w) => [w, `${w}0`]);
  const planted = ["", "hunter2", "pässwörd", long, "zebra0"];

  for (const cost of [4, 5, 6, 8]) {
    it(`finds exactly the candidates that bcryptjs hashes to a target, at cost ${cost}`, async () => {
      const salt = bcrypt.genSaltSync(cost);
      const targets = [...planted, "not-a-candidate"].map((p) => bcrypt.hashSync(p, salt));
      const params = { algorithm: "bcrypt", cost, salt: salt.slice(-22), suffixes: 1, words, targets };
      const report = await audit(params, 2);
      expect(report.checked).toBe(candidates.length);
      // The long word matches with its suffix too: what follows the 72nd byte is ignored.
      const expected = candidates
        .map((password) => ({ password, hash: bcrypt.hashSync(password, salt) }))
        .filter(({ hash }) => targets.includes(hash))
        .sort((a, b) => (a.password < b.password ? -1 : 1));
      expect(expected.map((f) => f.password)).toEqual(["", long, `${long}0`, "hunter2", "pässwörd", "zebra0"]);
      expect(report.found).toEqual(expected);
      expect(targets[0]).toMatch(new RegExp(`^\\$2b\\$0${cost}\\$`));
    });
  }

  const salt = "abcdefghijklmnopqrstuu";
  for (const [what, params, message] of [
    ["cost 3", { cost: 3, salt }, "cost must be an integer from 4 to 31"],
    ["cost 32", { cost: 32, salt }, "cost must be an integer from 4 to 31"],
    ["a fractional cost", { cost: 6.5, salt }, "cost must be an integer from 4 to 31"],
    ["a string cost", { cost: "6", salt }, "cost must be an integer from 4 to 31"],
    ["a short salt", { cost: 4, salt: "abc" }, "salt must be 22 characters"],
    ["a salt outside the alphabet", { cost: 4, salt: "abcdefghijklmnopqrstu+" }, "salt must be 22 characters"],
    ["the default salt", { cost: 4 }, "salt must be 22 characters"],
  ] as const) {
    it(`exits with code 2 and says why for ${what}`, async () => {
      const ended = await outcome("password_shard", {
        task: "shard[0]",
        params: { algorithm: "bcrypt", words: ["a"], targets: [], ...params },
        index: 0,
      });
      expect(ended).toMatchObject({ type: "exit", code: 2 });
      expect(ended.stderr).toContain(message);
    });
  }
});

describe("blowfish_pi.ts", () => {
  it("is what scripts/blowfish-pi.js generates", () => {
    const dir = mkdtempSync(join(tmpdir(), "blowfish-pi-"));
    try {
      const out = join(dir, "blowfish_pi.ts");
      execFileSync(process.execPath, [new URL("../../scripts/blowfish-pi.js", import.meta.url).pathname, out]);
      const committed = readFileSync(new URL("../../wasm_tasks/lib/blowfish_pi.ts", import.meta.url), "utf8");
      expect(readFileSync(out, "utf8")).toBe(committed);
      // Blowfish's published first and last words: P1 and S4[255].
      expect(committed).toContain("0x243f6a88, 0x85a308d3");
      expect(committed.trimEnd()).toMatch(/0x3ac372e6,\n\];$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
