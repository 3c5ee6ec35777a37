// The Runner against a local `ws` server playing the coordinator, with fake module cache and
// blob storage and real task threads running fixture .wasm: the lifecycle (ready, draining,
// stopped; failed when the coordinator refuses the token, the process left to the bin), and one
// task from `join` to its result over the pool and run sockets. The lifecycle table on its own.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { decodeRunnerMessage, encode } from "../../core/protocol/codec";
import { PROTOCOL_VERSION, type Assignment, type RunnerMessage } from "../../core/protocol/messages";
import { resolveConfig, type RunnerConfig } from "../../runner/config";
import { ThreadPool } from "../../runner/executor/pool";
import { Lifecycle } from "../../runner/lifecycle";
import { Runner } from "../../runner/runner";

const echo = WebAssembly.compile(readFileSync(new URL("../../wasm_tasks/build/echo.wasm", import.meta.url)));
const RUN = "3fa9c0de".repeat(8); // a run id: 64 hex digits
let cleanup: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A coordinator on a free port; `refuse` turns every socket away with HTTP 401. */
async function coordinator(
  options: { refuse?: boolean } = {},
): Promise<{ url: URL; frames: RunnerMessage[]; sockets: Map<string, WebSocket> }> {
  const server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    verifyClient: (_info, done) => (options.refuse ? done(false, 401, "Unauthorized") : done(true)),
  });
  await new Promise<void>((resolve) => server.once("listening", resolve));
  const frames: RunnerMessage[] = [];
  const sockets = new Map<string, WebSocket>();
  server.on("connection", (ws, req: IncomingMessage) => {
    const run = new URL(req.url ?? "/", "http://x").searchParams.get("run") ?? "pool";
    sockets.set(run, ws);
    ws.on("message", (data) => {
      const text = (data as Buffer).toString();
      if (text === "ping") return;
      const decoded = decodeRunnerMessage(text);
      if (!decoded.ok) throw new Error(decoded.error);
      frames.push(decoded.message);
      if (decoded.message.type !== "hello") return;
      ws.send(encode({ type: "welcome", protocol: PROTOCOL_VERSION, heartbeatMs: 3000 }));
      if (run === "pool") ws.send(encode({ type: "join", run: RUN, priority: 0 }));
    });
  });
  cleanup.push(async () => {
    for (const ws of server.clients) ws.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), frames, sockets };
}

function runner(url: URL): { runner: Runner; lines: string[]; threads: ThreadPool } {
  const config = resolveConfig(["--coordinator", url.toString(), "--token", "t", "--slots", "2"], {}) as RunnerConfig;
  const lines: string[] = [];
  const threads = new ThreadPool(2, new URL("../../dist/runner/executor/thread.js", import.meta.url));
  const r = new Runner({
    config,
    info: {
      id: "dev-1",
      name: "dev",
      platform: "linux",
      arch: "x64",
      cores: 2,
      memory: 1 << 30,
      freeMemory: 1 << 29,
      slots: 2,
      labels: [],
      version: "0.0.0",
    },
    threads,
    modules: { get: () => echo },
    http: {
      blob: () => Promise.reject(new Error("no blobs here")),
      upload: () => Promise.reject(new Error("no uploads here")),
    },
    log: { info: (line) => lines.push(line), debug: () => {} },
    sample: () => Promise.resolve({ freeMemory: 1 << 29, load: 5 }),
  });
  cleanup.push(() => r.stop(0));
  return { runner: r, lines, threads };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const task = (n: number): Assignment => ({
  task: `echo[${n}]`,
  attempt: 1,
  module: "a".repeat(64),
  args: [],
  env: {},
  stdin: JSON.stringify({ task: `echo[${n}]`, inputs: {} }),
  refs: [],
  timeoutMs: 10_000,
  memoryBytes: 64 << 20,
  maxOutputBytes: 1 << 20,
  inlineOutputBytes: 1 << 16,
});

describe("runner lifecycle", () => {
  it("fails when the coordinator refuses the token, closes its threads, and leaves the exit to the bin", async () => {
    const { url } = await coordinator({ refuse: true });
    const { runner: r, lines, threads } = runner(url);
    r.start();
    expect(await r.finished).toBe("failed");
    expect(r.state).toBe("failed");
    expect(lines).toContain(
      "runner: connecting -> failed (the coordinator refused the token (HTTP 401: Unauthorized))",
    );
    // The pool closed the threads: a job now ends at once as the runner shutting down.
    const job = { module: await echo, args: [], env: {}, stdin: new Uint8Array(), maxOutputBytes: 1, timeoutMs: 1 };
    expect(await threads.run(job)).toMatchObject({ kind: "crash", message: "the runner is shutting down" });
    await r.stop(0); // nothing left to stop: no change, no error
    expect(r.state).toBe("failed");
  });

  it("the bin (compiled, in dist/) exits 1 when the runner fails, having logged why", async () => {
    const { url } = await coordinator({ refuse: true });
    const dir = mkdtempSync(join(tmpdir(), "distro-runner-bin-"));
    const args = ["--coordinator", url.toString(), "--token", "t", "--slots", "1", "--config-dir", dir];
    const bin = new URL("../../bin/distro-runner.js", import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, ...args, "--cache-dir", join(dir, "cache")], { stdio: "pipe" });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(out).toContain("runner: connecting -> failed (the coordinator refused the token (HTTP 401");
    expect(code).toBe(1);
  });

  it("takes a task from a join to its result, then stops: connecting, ready, draining, stopped", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r, lines } = runner(url);
    r.start();
    await until(() => frames.some((f) => f.type === "hello" && f.holding.length === 0 && f.want === 2));
    expect(r.state).toBe("ready");
    sockets.get(RUN)!.send(encode({ type: "tasks", tasks: [task(0), task(1), task(2)], backlog: 0 }));
    await until(() => frames.some((f) => f.type === "results"));
    const rejected = frames.find((f) => f.type === "reject");
    expect(rejected).toEqual({ type: "reject", tasks: [{ task: "echo[2]", attempt: 1 }] }); // beyond the 2 slots
    await until(() => frames.flatMap((f) => (f.type === "results" ? f.results : [])).length === 2);
    const all = frames.flatMap((f) => (f.type === "results" ? f.results : []));
    // Two threads: the results come in either order.
    const seen = all.map((x) => [x.task, x.ok, Buffer.from(x.output!, "base64").toString()]);
    expect(seen.sort((a, b) => String(a[0]).localeCompare(String(b[0])))).toEqual([
      ["echo[0]", true, JSON.stringify({ task: "echo[0]", inputs: {} })],
      ["echo[1]", true, JSON.stringify({ task: "echo[1]", inputs: {} })],
    ]);
    await r.stop(0);
    expect(await r.finished).toBe("stopped");
    expect(lines.filter((l) => l.startsWith("runner: "))).toEqual([
      "runner: connecting -> ready",
      "runner: ready -> draining",
      "runner: draining -> stopped",
    ]);
  });
});

describe("lifecycle table", () => {
  const log = () => {
    const lines: string[] = [];
    return { lines, log: { info: (line: string) => lines.push(line), debug: () => {} } };
  };

  it("allows the planned changes, logs each one, and settles only in a final state", async () => {
    const { lines, log: l } = log();
    const life = new Lifecycle(l);
    expect(() => life.settle()).toThrow("runner: cannot settle while connecting");
    life.set("ready");
    expect(life.accepting).toBe(true);
    life.set("draining");
    expect(life.accepting).toBe(false);
    life.set("failed", "the coordinator refused the token");
    life.settle();
    expect(await life.finished).toBe("failed");
    expect(lines).toEqual([
      "runner: connecting -> ready",
      "runner: ready -> draining",
      "runner: draining -> failed (the coordinator refused the token)",
    ]);
  });

  it("refuses a change the table does not allow, naming both states", () => {
    const life = new Lifecycle(log().log);
    expect(() => life.set("stopped")).toThrow("runner: cannot go from connecting to stopped");
    life.set("ready");
    expect(() => life.set("connecting")).toThrow("runner: cannot go from ready to connecting");
    expect(() => life.set("ready")).toThrow("runner: cannot go from ready to ready");
    life.set("draining");
    life.set("stopped");
    expect(() => life.set("failed")).toThrow("runner: cannot go from stopped to failed");
    expect(life.state).toBe("stopped");
  });
});
