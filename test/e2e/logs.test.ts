// Whole logs with a real runner: a task's stderr of 200 KiB comes back whole through
// `distro logs`, and `--follow` prints a line the task writes while the task still runs.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_TOKENS } from "../../dev/local";
import { Cluster } from "./harness";

const cluster = new Cluster();
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "logs-runner" });
  await cluster.connected("logs-runner");
  await cluster.upload("chatty.wasm");
});
afterAll(() => cluster.stop());

/** What chatty writes for `params.bytes`: 64-byte lines, the last one cut. */
function chattyBytes(n: number): string {
  let out = "";
  for (let i = 0; out.length < n; i++) out += `chatty ${String(i).padStart(6, "0")}: ${"x".repeat(48)}\n`;
  return out.slice(0, n);
}

async function submit(params: Record<string, number>): Promise<string> {
  const yaml = `name: logs\ncache: false\ntasks:\n  - id: talk\n    module: chatty.wasm\n    params: ${JSON.stringify(params)}\n`;
  return (await cluster.client.submit(yaml)).id;
}

describe("distro logs", () => {
  it("prints a task's 200 KiB of stderr whole; an unknown task or attempt exits 2", async () => {
    const id = await submit({ bytes: 200 * 1024 });
    await cluster.until(id, (run) => run.status === "succeeded");
    const { code, stdout, err } = await cluster.distro("logs", id, "talk");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(stdout.toString("utf8")).toBe(chattyBytes(200 * 1024));
    expect((await cluster.distro("logs", id, "nope")).code).toBe(2);
    const missing = await cluster.distro("logs", id, "talk", "--attempt", "2");
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no attempt 2/);
  });

  it("--follow shows a line the task writes while it still runs, and ends with the attempt", async () => {
    const id = await submit({ lines: 2, pause_ms: 2500 });
    await cluster.until(id, (run) => run.tasks.some((t) => t.id === "talk" && t.state === "leased"), 30_000);
    const child = spawn(
      process.execPath,
      [
        "bin/distro.js",
        "logs",
        id,
        "talk",
        "--follow",
        "--coordinator",
        cluster.coordinator.url.toString(),
        "--token",
        DEV_TOKENS.api,
      ],
      { cwd: ROOT },
    );
    let out = "";
    /** When each piece of standard output came, and whether the task was still running then. */
    const seen: { text: string; running: Promise<boolean> }[] = [];
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const running = cluster.client.run(id).then((run) => run.tasks.find((t) => t.id === "talk")!.state === "leased");
      seen.push({ text: d.toString(), running });
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    expect(out).toBe("chatty: line 0\nchatty: line 1\n");
    const first = seen.find((s) => s.text.includes("chatty: line 0"))!;
    expect(first.text).not.toContain("chatty: line 1");
    expect(await first.running).toBe(true);
    expect((await cluster.client.summary(id)).status).toBe("succeeded");
  });
});
