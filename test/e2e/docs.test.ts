// Docs run as written: every command of every fenced shell block in README.md and docs/*.md runs
// against a real local coordinator (with one runner), in a temporary working copy, with the
// docs' coordinator addresses pointed at it and `<id>`, `<token>`, `<enrollment>` and `<device>`
// filled from what the block made (or made for it: docs-blocks.ts). A command fails on a non-zero
// exit, on printing an error, or on its timeout; long-running ones must reach their readiness.
// What cannot run here is in NOT_RUN with the reason, matched by command prefix. The join commands
// the docs show for the platforms that cannot run here (PowerShell, Termux) are checked against
// what the coordinator prints; deploy/'s files run in docs-deploy.test.ts.
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
import { NO_REGISTRY } from "./docs-deploy";
import { Cluster } from "./harness";
import type { EnrollmentCreated, RunnerListing } from "../../core/api";

/** Where the commands that install deploy/'s files are run instead. */
const DEPLOY_TESTS = "the file's own commands run in test/e2e/docs-deploy.test.ts";

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
  {
    prefix: "npm run build",
    reason:
      "would rebuild dist/ and public/runner.tgz under the running tests; npm test builds first, and " +
      "test/e2e/pack.test.ts checks the packages",
  },
  { prefix: "systemctl", reason: `needs systemd and root; ${DEPLOY_TESTS}` },
  { prefix: "journalctl", reason: "needs systemd" },
  { prefix: "cp deploy/distro-runner.service /etc/", reason: `writes /etc/systemd (root); ${DEPLOY_TESTS}` },
  { prefix: "install -m 600 /dev/null /etc/", reason: `writes /etc (root); ${DEPLOY_TESTS}` },
  { prefix: "sudoedit", reason: "an editor, as root" },
  { prefix: "docker", reason: `no Docker daemon here; ${DEPLOY_TESTS}` },
  { prefix: "powershell", reason: "PowerShell: Windows" },
  { prefix: "pwsh", reason: "PowerShell: Windows" },
  { prefix: "$env:", reason: "PowerShell: Windows" },
  { prefix: "npx wrangler login", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler d1 create", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler r2 bucket create", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler secret put", reason: "needs a Cloudflare account (and prompts for the secret)" },
  { prefix: "npx wrangler deploy", reason: "needs a Cloudflare account" },
  { prefix: "npx wrangler d1 migrations apply distro --remote", reason: "needs a Cloudflare account" },
];

/** Why the check runs no PowerShell block (their join command's form is checked below). */
const POWERSHELL = "PowerShell: Windows";

let wranglerPort = 0;

/**
 * A runner the docs start: ready once a runner process that connected after it started is in
 * GET /api/runners and, when the command was given an enrollment token, once the device that
 * enrolled with it is connected (so a runner that fell back on some other credential fails).
 */
async function runnerReady(proc: Proc, ctx: RunContext, enrollment: string | undefined): Promise<{ device: string }> {
  const t0 = Date.now();
  const deadline = t0 + (ctx.timeoutMs ?? 90_000);
  const headers = { authorization: `Bearer ${DEV_TOKENS.api}` };
  for (;;) {
    const res = await fetch(new URL("/api/runners", ctx.coordinator), { headers });
    const { runners, devices } = (await res.json()) as RunnerListing;
    const fresh = runners.filter((r) => r.connected_at >= t0).map((r) => r.id.replace(/\.\d+$/, ""));
    const joined = devices.find(
      (d) => d.connected && fresh.includes(d.id) && (enrollment === undefined || d.enrollment === enrollment),
    );
    if (joined) return { device: joined.id };
    if (!proc.running) throw new Error("it exited");
    if (Date.now() > deadline) throw new Error(`none in ${(deadline - t0) / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs until stopped: started in the background, checked for readiness, stopped by process group. */
const BACKGROUND: BackgroundRule[] = [
  {
    prefix: "npx distro-runner",
    ready: "a runner that connected after it started is in GET /api/runners (with the device of its token)",
    waitReady: runnerReady,
  },
  {
    // The one-line join: npx installs the runner from the coordinator's /runner.tgz (or a file).
    prefix: "npx --yes ",
    ready: "the runner installed from the coordinator connected (as the device of its enrollment token)",
    waitReady: runnerReady,
  },
  {
    prefix: "npx wrangler dev",
    ready: "the Worker answers GET /api/runners on the port it was given",
    async rewrite(text: string) {
      // Its state is the working copy's own .wrangler/state, where the block's
      // `wrangler d1 migrations apply distro --local` put the schema.
      wranglerPort = await freePort();
      return `${text} --ip 127.0.0.1 --port ${wranglerPort} --show-interactive-dev-session=false`;
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
      // Runners started by the docs keep their module cache here, not in ~ (each block has a
      // config dir of its own for the device's credential: docs-blocks.ts).
      XDG_CACHE_HOME: join(cluster.dir, "xdg-cache"),
      PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
      // npx finds this repository's bins, or installs the runner from the coordinator's
      // /runner.tgz; the registry cannot be reached, so it never fetches a package from there.
      ...NO_REGISTRY,
      npm_config_cache: join(cluster.dir, "npm-cache"),
      NO_COLOR: "1",
    },
    apiToken: DEV_TOKENS.api,
    skipLangs: { powershell: POWERSHELL, pwsh: POWERSHELL, ps1: POWERSHELL },
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
        lang: "sh",
        commands: [
          { file: "t.md", line: 3, text: "A=1; B=2" },
          { file: "t.md", line: 5, text: "for x in a b; do\n  echo $x\ndone" },
          { file: "t.md", line: 8, text: "curl -sS -H 'x: #1' http://127.0.0.1:8787/" },
        ],
      },
      { file: "t.md", line: 15, lang: "console", commands: [{ file: "t.md", line: 16, text: "echo hi" }] },
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
    // Stopped: its port goes quiet (workerd may answer a last request while it shuts down).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await fetch(`http://127.0.0.1:${wranglerPort}/`).then(
        async (res) => (await res.body?.cancel(), true),
        () => false,
      );
      if (!up) break;
      if (Date.now() > deadline) throw new Error(`wrangler dev still answers on ${wranglerPort} 10 s after it stopped`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it("fills <token> with a real enrollment, then <device> with the device that joined; a bad token fails", async () => {
    const join = "npx --yes http://127.0.0.1:8787/runner.tgz --coordinator http://127.0.0.1:8787";
    const md = [
      "```sh",
      "npx distro runners add --token dev-api-token",
      `DISTRO_ENROLL=<token> ${join}`,
      "ls -l ~/.config/distro/credentials/",
      "npx distro runners revoke <device> --token dev-api-token",
      `DISTRO_ENROLL=<token> ${join}`,
      "```",
      "```sh",
      `DISTRO_ENROLL=not-a-token ${join}`,
      "```",
      "```powershell",
      `$env:DISTRO_ENROLL="<token>"; ${join}`,
      "```",
    ].join("\n");
    const got: CommandResult[] = [];
    for (const block of extractBlocks(md, "planted.md")) got.push(...(await runBlock(block, ctx)));
    expect(got.map((r) => [r.line, r.status])).toEqual([
      [2, "ok"],
      [3, "ok"],
      [4, "ok"],
      [5, "ok"],
      [6, "failed"],
      [9, "failed"],
      [12, "skipped"],
    ]);
    const token = /DISTRO_ENROLL=(\S+)/.exec(got[0]!.output)![1]!;
    expect(got[1]!.ran).toContain(`DISTRO_ENROLL=${token} `); // the token the block's own `runners add` printed
    expect(got[2]!.output).toMatch(/^-rw------- .*\.json$/m);
    const device = /revoked device (\S+):/.exec(got[3]!.output)![1]!;
    expect(got[1]!.output).toContain(`enrolled as device ${device}`);
    // The device is enrolled already, so the fresh token goes unused and the runner is not its device.
    expect(got[4]!.reason).toMatch(/did not become ready .*it exited/);
    expect(got[4]!.output).toMatch(new RegExp(`device ${device} was revoked`));
    expect(got[5]!.reason).toMatch(/did not become ready/);
    expect(got[5]!.output).toMatch(/unknown enrollment token/);
    expect(got[6]!.reason).toBe(POWERSHELL);
  });
});

describe("the join commands the docs show are the coordinator's", () => {
  it("docs/runner.md has each platform's command, and README.md the Linux one, as the coordinator prints them", async () => {
    const res = await fetch(new URL("/api/enrollments", cluster.coordinator.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${DEV_TOKENS.api}` },
      body: "{}",
    });
    const { token, commands } = (await res.json()) as EnrollmentCreated;
    const build = /\/runner-([0-9a-f]{12})\.tgz/.exec(commands.unix)![1]!;
    const shown = (cmd: string, docOrigin: string) =>
      cmd
        .replaceAll(token, "<token>")
        .replaceAll(`runner-${build}`, "runner-<build>")
        .replaceAll(cluster.coordinator.url.origin, docOrigin);
    const runner = readFileSync(join(ROOT, "docs/runner.md"), "utf8");
    for (const cmd of Object.values(commands))
      expect(runner).toContain(shown(cmd, "https://distro.example.workers.dev"));
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(shown(commands.unix, "http://192.168.1.10:8787"));
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
