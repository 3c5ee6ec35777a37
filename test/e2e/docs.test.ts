// Docs run as written: every command of every fenced shell block in README.md and docs/*.md runs
// against a real local coordinator (with one runner), in a temporary working copy, with the
// docs' coordinator addresses pointed at it and `<id>` filled from the block's submit. A command
// fails on a non-zero exit, on printing an error, or on its timeout; long-running ones must reach
// their readiness. What cannot run here is in NOT_RUN with the reason, matched by command prefix.
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_TOKENS, freePort, ROOT, type Proc } from "../../dev/local";
import {
  describeFailure,
  extractBlocks,
  runBlock,
  type BackgroundRule,
  type CommandResult,
  type DocBlock,
  type RunContext,
  type SkipRule,
} from "./docs-blocks";
import { Cluster } from "./harness";

/** Commands the check does not run, by prefix (leading `sudo` and `NAME=value` aside), and why. */
const NOT_RUN: SkipRule[] = [
  {
    prefix: "npm install",
    reason:
      "covered by CI: .ci/run installs from scratch (npm ci) on a clean clone; here it would rewrite " +
      "node_modules under the running tests (`npm start` after it: test/e2e/start.test.ts)",
  },
  { prefix: "npm ci", reason: "covered by CI: .ci/run runs it on a clean clone; here it would delete node_modules" },
  { prefix: "npm test", reason: "covered by CI: .ci/run runs it; from inside npm test it would recurse" },
  { prefix: "npm start", reason: "covered by test/e2e/start.test.ts (the aggregate, the status URL, Ctrl-C)" },
  { prefix: "pkg ", reason: "Termux's package manager: Android only" },
  { prefix: "termux-", reason: "Termux (Android) only" },
  { prefix: "systemctl", reason: "needs systemd and root" },
  { prefix: "journalctl", reason: "needs systemd" },
  { prefix: "docker", reason: "no Docker daemon here" },
  { prefix: "powershell", reason: "PowerShell: Windows" },
  { prefix: "pwsh", reason: "PowerShell: Windows" },
  { prefix: "$env:", reason: "PowerShell: Windows" },
  { prefix: "npx wrangler login", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler d1 create", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler r2 bucket create", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler secret put", reason: "needs a Cloudflare account (and prompts for the secret)" },
  { prefix: "npx wrangler deploy", reason: "needs a Cloudflare account" },
];

let wranglerPort = 0;

/** Runs until stopped: started in the background, checked for readiness, stopped by process group. */
const BACKGROUND: BackgroundRule[] = [
  {
    prefix: "npx distro-runner",
    ready: "a runner that connected after it started is in GET /api/runners",
    async waitReady(proc: Proc, ctx: RunContext) {
      const t0 = Date.now();
      const deadline = t0 + (ctx.timeoutMs ?? 90_000);
      const headers = { authorization: `Bearer ${DEV_TOKENS.api}` };
      for (;;) {
        const res = await fetch(new URL("/api/runners", ctx.coordinator), { headers });
        const { runners } = (await res.json()) as { runners: { connected_at: number }[] };
        if (runners.some((r) => r.connected_at >= t0)) return;
        if (!proc.running) throw new Error("it exited");
        if (Date.now() > deadline) throw new Error(`none in ${(deadline - t0) / 1000} s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  },
  {
    prefix: "npx wrangler dev",
    ready: "the Worker answers GET /api/runners on the port it was given",
    async rewrite(text: string) {
      wranglerPort = await freePort();
      const state = "--persist-to .wrangler-docs --show-interactive-dev-session=false";
      return `${text} --ip 127.0.0.1 --port ${wranglerPort} ${state}`;
    },
    async waitReady(proc: Proc, ctx: RunContext) {
      const deadline = Date.now() + (ctx.timeoutMs ?? 90_000);
      for (;;) {
        const res = await fetch(`http://127.0.0.1:${wranglerPort}/api/runners`).catch(() => undefined);
        await res?.body?.cancel();
        if (res && res.status < 500) return;
        if (!proc.running) throw new Error("it exited");
        if (Date.now() > deadline) throw new Error("it did not answer in time");
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  },
];

const DOCS = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
];
const BLOCKS: DocBlock[] = DOCS.flatMap((file) => extractBlocks(readFileSync(join(ROOT, file), "utf8"), file));

const cluster = new Cluster();
const results: CommandResult[] = [];
let ctx: RunContext;

/** A working copy of the repository: a temporary folder of links to its entries, where outputs land. */
function workingCopy(dir: string): string {
  const copy = join(dir, "work");
  mkdirSync(copy);
  const own = new Set([".git", ".wrangler", "test-artifacts", "out"]);
  for (const entry of readdirSync(ROOT)) if (!own.has(entry)) symlinkSync(join(ROOT, entry), join(copy, entry));
  return copy;
}

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "docs-runner" });
  await cluster.connected("docs-runner");
  const cwd = workingCopy(cluster.dir);
  ctx = {
    cwd,
    coordinator: cluster.coordinator.url,
    skip: NOT_RUN,
    background: BACKGROUND,
    timeoutMs: 90_000,
    env: {
      DISTRO_COORDINATOR: cluster.coordinator.url.toString(),
      // The docs' `$RUNNER_TOKEN` / `$API_TOKEN` stand for the coordinator's secrets.
      RUNNER_TOKEN: DEV_TOKENS.runner,
      API_TOKEN: DEV_TOKENS.api,
      // Runners started by the docs keep their cache and device id here, not in ~.
      XDG_CACHE_HOME: join(cluster.dir, "xdg-cache"),
      DISTRO_CONFIG_DIR: join(cluster.dir, "docs-config"),
      PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
      // npx must find this repository's bins, never fetch a package.
      npm_config_offline: "true",
      NO_COLOR: "1",
    },
  };
});

afterAll(async () => {
  const lines = results.map((r) => {
    const why = r.status === "ok" ? "" : `  (${r.reason})`;
    const took = `${(r.ms / 1000).toFixed(1).padStart(5)}s`;
    return `${r.status.padEnd(7)} ${took}  ${r.file}:${r.line}  ${r.text.split("\n")[0]}${why}`;
  });
  if (lines.length) console.log(`docs commands:\n${lines.join("\n")}`);
  await cluster.stop();
});

describe("the docs check itself", () => {
  it("finds the shell blocks of README.md and docs/*.md, split into commands at their lines", () => {
    const readme = BLOCKS.filter((b) => b.file === "README.md").flatMap((b) => b.commands);
    expect(readme.length).toBeGreaterThan(5);
    const md = [
      "# t",
      "```sh",
      "A=1; B=2   # two variables",
      "",
      "for x in a b; do",
      "  echo $x",
      "done",
      "curl -sS \\",
      "  -H 'x: #1' \\",
      "  http://127.0.0.1:8787/   # → ok",
      "```",
      "```yaml",
      "no: command",
      "```",
      "```console",
      "$ echo hi",
      "hi",
      "```",
    ].join("\n");
    expect(extractBlocks(md, "t.md")).toEqual([
      {
        file: "t.md",
        line: 2,
        commands: [
          { file: "t.md", line: 3, text: "A=1; B=2" },
          { file: "t.md", line: 5, text: "for x in a b; do\n  echo $x\ndone" },
          { file: "t.md", line: 8, text: "curl -sS -H 'x: #1' http://127.0.0.1:8787/" },
        ],
      },
      { file: "t.md", line: 15, commands: [{ file: "t.md", line: 16, text: "echo hi" }] },
    ]);
  });

  it("reports a planted broken command, and an error printed with exit code 0, with their file:line", async () => {
    const md = [
      "```sh",
      "X=kept; cd dags",
      'test "$X" = kept && test -f hello_fanout.yaml',
      "npx distro nosuchcommand",
      "echo never",
      "```",
      "```sh",
      "curl -sS -H 'Authorization: Bearer dev-api-token' http://127.0.0.1:8787/api/dags/nosuchrun",
      "```",
      "```sh",
      "npx wrangler deploy",
      "```",
    ].join("\n");
    const got: CommandResult[] = [];
    for (const block of extractBlocks(md, "planted.md")) got.push(...(await runBlock(block, ctx)));
    expect(got.map((r) => [`${r.file}:${r.line}`, r.status])).toEqual([
      ["planted.md:2", "ok"],
      ["planted.md:3", "ok"],
      ["planted.md:4", "failed"],
      ["planted.md:5", "skipped"],
      ["planted.md:8", "failed"],
      ["planted.md:11", "skipped"],
    ]);
    const failures = got.filter((r) => r.status === "failed").map(describeFailure);
    expect(failures[0]).toMatch(
      /^planted\.md:4: npx distro nosuchcommand\n {2}failed: exit code 2\n.*unknown command/s,
    );
    expect(got[3]!.reason).toBe("not run: an earlier command of the block failed");
    expect(failures[1]).toMatch(/^planted\.md:8: curl /);
    expect(failures[1]).toContain(
      `ran as: curl -sS -H 'Authorization: Bearer dev-api-token' ${cluster.coordinator.url.origin}/`,
    );
    expect(failures[1]).toContain("failed: exit code 0, but it printed an error");
  });

  it("runs a long-running command in the background until it is ready, then stops its process group", async () => {
    const [block] = extractBlocks("```sh\nnpx wrangler dev --env-file .dev.vars.example\n```\n", "server.md");
    const [result] = await runBlock(block!, ctx);
    expect(result).toMatchObject({ status: "ok", ran: expect.stringContaining(`--port ${wranglerPort}`) });
    await expect(fetch(`http://127.0.0.1:${wranglerPort}/`)).rejects.toThrow();
  });
});

describe("docs run as written", () => {
  for (const block of BLOCKS) {
    const first = block.commands[0]?.text.split("\n")[0] ?? "(empty)";
    it(`${block.file}:${block.line}: ${first}`, { timeout: 30_000 + 90_000 * block.commands.length }, async () => {
      const got = await runBlock(block, ctx);
      results.push(...got);
      const failures = got.filter((r) => r.status === "failed").map(describeFailure);
      expect(failures, failures.join("\n\n")).toEqual([]);
    });
  }
});
