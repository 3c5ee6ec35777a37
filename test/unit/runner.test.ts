// The Runner against a local server playing the coordinator (fake-coordinator.ts), with fake
// module cache and blob storage and real task threads running fixture .wasm: the lifecycle
// (ready, draining, stopped; failed when the coordinator refuses the device, the process left to
// the bin), one task from `join` to its result over the pool and run sockets, and the fetches of
// each run naming it. The bin: enrolling, its usage error with nothing to enroll with, a revoked
// device. The lifecycle table on its own.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { decodeRunnerMessage, encode } from "../../core/protocol/codec";
import { CLOSE, PROTOCOL_VERSION, type Assignment, type RunnerMessage } from "../../core/protocol/messages";
import { resolveConfig, type RunnerConfig } from "../../runner/config";
import { credentialFile } from "../../runner/credential";
import { ThreadPool } from "../../runner/executor/pool";
import type { RunnerIdentity } from "../../runner/identity";
import { Lifecycle } from "../../runner/lifecycle";
import { Runner, type RunnerParts } from "../../runner/runner";
import { answerFor, fakeCoordinator, type Answer } from "./fake-coordinator";

const echo = WebAssembly.compile(readFileSync(new URL("../../wasm_tasks/build/echo.wasm", import.meta.url)));
const spin = WebAssembly.compile(readFileSync(new URL("../../wasm_tasks/build/spin.wasm", import.meta.url)));
const RUN = "3fa9c0de".repeat(8); // a run id: 64 hex digits
let cleanup: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A coordinator on a free port; `refuse` turns every socket away (default: 401 with an {error}). */
async function coordinator(
  options: { refuse?: Answer | true; maxSlots?: number } = {},
): Promise<{ url: URL; frames: RunnerMessage[]; sockets: Map<string, WebSocket> }> {
  const frames: RunnerMessage[] = [];
  const refusal = options.refuse === true ? { status: 401, body: { error: "unknown credential" } } : options.refuse;
  const fake = await fakeCoordinator({
    upgrade: () => refusal,
    onConnection: (ws, run) => hello(ws, run, frames, options.maxSlots),
  });
  cleanup.push(() => fake.close());
  return { url: fake.url, frames, sockets: fake.sockets };
}

/** Keeps the runner's frames; answers a hello with welcome, and on the pool with a join of RUN. */
function hello(ws: WebSocket, run: string, frames: RunnerMessage[], maxSlots?: number): void {
  ws.on("message", (data) => {
    const text = (data as Buffer).toString();
    if (text === "ping") return void ws.send("pong"); // as the coordinator's runtime answers, or the runner takes the link as dead
    const decoded = decodeRunnerMessage(text);
    if (!decoded.ok) throw new Error(decoded.error);
    frames.push(decoded.message);
    if (decoded.message.type !== "hello") return;
    const slots = run === "pool" ? maxSlots : undefined;
    ws.send(encode({ type: "welcome", protocol: PROTOCOL_VERSION, heartbeatMs: 3000, slots }));
    if (run === "pool") ws.send(encode({ type: "join", run: RUN, priority: 0 }));
  });
}

/** A device whose credential the coordinator does not know, with nothing to enroll again with. */
const identity: RunnerIdentity = {
  credential: () => "dev-1.secret",
  runnerId: () => "dev-1",
  renew: () => Promise.resolve("this device's credential is unknown to the coordinator"),
  revoked: (detail) => `device dev-1 was revoked (${detail})`,
};

function runner(
  url: URL,
  module = echo,
  parts: Pick<RunnerParts, "resultWaitMs"> = {},
): { runner: Runner; lines: string[]; threads: ThreadPool; fetched: string[] } {
  const fetched: string[] = [];
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
    identity,
    threads,
    modules: {
      get: (sha256, _memory, run) => {
        fetched.push(`module ${sha256.slice(0, 4)} for ${run?.slice(0, 8)}`);
        return module;
      },
    },
    http: {
      blob: (sha256, run) => {
        fetched.push(`blob ${sha256.slice(0, 4)} for ${run.slice(0, 8)}`);
        return Promise.resolve(new TextEncoder().encode(`{"n":1}`));
      },
      upload: () => Promise.reject(new Error("no uploads here")),
      envelope: () => Promise.reject(new Error("no large envelopes here")),
    },
    log: { info: (line) => lines.push(line), debug: () => {} },
    sample: () => Promise.resolve({ freeMemory: 1 << 29, load: 5 }),
    ...parts,
  });
  cleanup.push(() => r.stop(0));
  return { runner: r, lines, threads, fetched };
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
  it("fails when the coordinator refuses the device, closes its threads, and leaves the exit to the bin", async () => {
    const { url } = await coordinator({ refuse: true });
    const { runner: r, lines, threads } = runner(url);
    r.start();
    expect(await r.finished).toBe("failed");
    expect(r.state).toBe("failed");
    expect(lines).toContain(
      "runner: connecting -> failed (this device's credential is unknown to the coordinator " +
        "(HTTP 401: unknown credential))",
    );
    // The pool closed the threads: a job now ends at once as the runner shutting down.
    const job = { module: await echo, args: [], env: {}, stdin: new Uint8Array(), maxOutputBytes: 1, timeoutMs: 1 };
    expect(await threads.run(job)).toMatchObject({ kind: "crash", message: "the runner is shutting down" });
    await r.stop(0); // nothing left to stop: no change, no error
    expect(r.state).toBe("failed");
  });

  it("offers no more slots than the coordinator counts for it (its welcome's slots)", async () => {
    const { frames, url } = await coordinator({ maxSlots: 1 });
    const { runner: r, lines } = runner(url);
    r.start();
    await until(() => frames.some((f) => f.type === "status" && f.slots === 1));
    await until(() => frames.some((f) => f.type === "hello" && f.runner.id === "dev-1" && f.want === 1));
    expect(frames.some((f) => f.type === "hello" && f.want === 2)).toBe(false);
    expect(lines).toContainEqual(expect.stringMatching(/^slots 2 -> 1 /));
  });

  it("takes a task from a join to its result, then stops: connecting, ready, draining, stopped", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r, lines, fetched } = runner(url);
    r.start();
    await until(() => frames.some((f) => f.type === "hello" && f.holding.length === 0 && f.want === 2));
    // Both sockets say hello with the identity's runner id.
    expect(frames.filter((f) => f.type === "hello").map((f) => f.type === "hello" && f.runner.id)).toEqual([
      "dev-1",
      "dev-1",
    ]);
    expect(r.state).toBe("ready");
    const withRef = {
      ...task(1),
      stdin: JSON.stringify({ task: "echo[1]", inputs: { a: { $ref: "b".repeat(64) } } }),
      refs: ["b".repeat(64)],
    };
    sockets.get(RUN)!.send(encode({ type: "tasks", tasks: [task(0), withRef, task(2)], backlog: 0 }));
    await until(() => frames.some((f) => f.type === "results"));
    const rejected = frames.find((f) => f.type === "reject");
    expect(rejected).toEqual({ type: "reject", tasks: [{ task: "echo[2]", attempt: 1 }] }); // beyond the 2 slots
    await until(() => frames.flatMap((f) => (f.type === "results" ? f.results : [])).length === 2);
    const all = frames.flatMap((f) => (f.type === "results" ? f.results : []));
    // Two threads: the results come in either order.
    const seen = all.map((x) => [x.task, x.ok, Buffer.from(x.output!, "base64").toString()]);
    expect(seen.sort((a, b) => String(a[0]).localeCompare(String(b[0])))).toEqual([
      ["echo[0]", true, JSON.stringify({ task: "echo[0]", inputs: {} })],
      ["echo[1]", true, JSON.stringify({ task: "echo[1]", inputs: { a: { n: 1 } } })],
    ]);
    // Each fetch names the run whose task needs it (the coordinator serves only those).
    expect(new Set(fetched)).toEqual(new Set(["module aaaa for 3fa9c0de", "blob bbbb for 3fa9c0de"]));
    await r.stop(0);
    expect(await r.finished).toBe("stopped");
    expect(lines.filter((l) => l.startsWith("runner: "))).toEqual([
      "runner: connecting -> ready",
      "runner: ready -> draining",
      "runner: draining -> stopped",
    ]);
  });
});

/** Runs the compiled bin (dist/) with a fresh config dir; resolves when it exits. */
function bin(
  url: URL,
  env: Record<string, string>,
  options: { dir?: string; args?: string[]; until?: (out: string) => boolean } = {},
): Promise<{ code: number | null; out: string; err: string; dir: string }> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "distro-runner-bin-"));
  cleanup.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  const args = ["--coordinator", url.toString(), "--slots", "1", "--config-dir", dir, "--cache-dir", join(dir, "c")];
  const path = new URL("../../bin/distro-runner.js", import.meta.url).pathname;
  const { PATH, HOME } = process.env;
  const child = spawn(process.execPath, [path, ...args, ...(options.args ?? [])], {
    stdio: "pipe",
    env: { PATH, HOME, ...env },
  });
  cleanup.push(() => Promise.resolve(child.kill("SIGKILL")));
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    if (options.until?.(out)) child.kill("SIGTERM");
  });
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err, dir })));
}

describe("the bin (compiled, in dist/)", () => {
  it("with no credential and nothing to enroll with exits 2, saying how to enroll", async () => {
    const fake = await fakeCoordinator();
    cleanup.push(() => fake.close());
    const { code, err } = await bin(fake.url, { DISTRO_TOKEN: "the CLI's API token" });
    expect(code).toBe(2);
    expect(err).toMatch(/this device has no credential for http:\/\/127\.0\.0\.1:\d+ \(none in .*\.json\)/);
    expect(err).toContain("`distro runners add`");
    expect(err).toContain("DISTRO_ENROLL=<token>");
    expect(err).toContain("--token");
    expect(fake.enrolls).toEqual([]); // DISTRO_TOKEN is not the runner's
  });

  it("enrolls with DISTRO_ENROLL, keeps the credential 0600, and exits 1 when the device is revoked", async () => {
    const frames: RunnerMessage[] = [];
    const fake = await fakeCoordinator({
      enroll: () => ({ status: 200, body: { ...answerFor("box", 0xabcd, ["gpu"]), enrollment: "enr1" } }),
      onConnection: (ws, run) => {
        hello(ws, run, frames);
        // Revoked once it has said hello: the coordinator closes the pool socket with 4403.
        ws.once("message", () => setTimeout(() => ws.close(CLOSE.revoked, "device box-0000abcd was revoked"), 50));
      },
    });
    cleanup.push(() => fake.close());
    const { code, out, dir } = await bin(fake.url, { DISTRO_ENROLL: "enroll-token" }, { args: ["--labels", "fast"] });
    expect(fake.enrolls).toEqual(["Bearer enroll-token"]);
    expect(fake.upgrades[0]).toBe(`Bearer ${answerFor("box", 0xabcd).credential}`);
    const first = frames.find((f) => f.type === "hello");
    expect(first).toMatchObject({ runner: { id: "box-0000abcd", labels: ["fast", "gpu"] } });
    expect(out).toContain("enrolled as device box-0000abcd with enrollment enr1, labels gpu; credential saved in");
    expect(out).toMatch(
      /runner: ready -> failed \(device box-0000abcd was revoked \(close 4403: device box-0000abcd was revoked\)/,
    );
    expect(code).toBe(1);
    // Kept, 0600: a restart is refused again and says why.
    const file = credentialFile(dir, fake.url);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({
      coordinator: fake.url.origin,
      device: "box-0000abcd",
      labels: ["gpu"],
      trusted: false,
      enrollment: "enr1",
    });
    expect(out).toContain(`to join again, delete ${file} and enroll the device anew with DISTRO_ENROLL=`);
  });

  it("waits for a coordinator not up yet, retrying the enrollment; a signal meanwhile exits 0, lock let go", async () => {
    const fake = await fakeCoordinator();
    const url = fake.url;
    await fake.close(); // nobody listens there now
    const { code, out, dir } = await bin(url, { DISTRO_RUNNER_TOKEN: "dev" }, { until: (o) => /retry 2 in/.test(o) });
    expect(out).toMatch(
      /enroll: coordinator http:\/\/127\.0\.0\.1:\d+ not reachable \(connect ECONNREFUSED .*\); retry 1 in /,
    );
    expect(out).toContain("SIGTERM before the runner started: exiting");
    expect(code).toBe(0);
    expect(readdirSync(join(dir, "credentials"))).toEqual([]);
  });

  it("refuses plain http:// to a host beyond the LAN (exit 2) unless --insecure, which warns once", async () => {
    const remote = new URL("http://distro.invalid:8787");
    const refused = await bin(remote, { DISTRO_RUNNER_TOKEN: "dev" });
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("pass --insecure to send the traffic and the device's credential unencrypted");
    const warned = await bin(
      remote,
      { DISTRO_RUNNER_TOKEN: "dev" },
      { args: ["--insecure"], until: (o) => /retry 1/.test(o) },
    );
    expect(warned.out.split("\n").filter((l) => l.includes("warning"))).toEqual([
      expect.stringMatching(
        / warning: --insecure: http:\/\/distro\.invalid:8787 is not encrypted; the traffic and this device's credential travel in the clear$/,
      ),
    ]);
  });

  it("an enrollment the coordinator refuses ends it with the coordinator's words, exit 1, no retry", async () => {
    const error = "enrollment enr1 has been used 1 of 1 times";
    const fake = await fakeCoordinator({ enroll: () => ({ status: 403, body: { error } }) });
    cleanup.push(() => fake.close());
    const { code, err } = await bin(fake.url, { DISTRO_ENROLL: "used-up" });
    expect(err).toContain(`refused to enroll this device with DISTRO_ENROLL (HTTP 403: ${error})`);
    expect(code).toBe(1);
    expect(fake.enrolls).toHaveLength(1);
  });

  it("a saved credential the coordinator forgot: enrolled again with the dev token, or an exit naming it", async () => {
    const frames: RunnerMessage[] = [];
    let forgotten = true;
    const fake = await fakeCoordinator({
      upgrade: (req) => {
        const stale = req.headers.authorization === `Bearer ${answerFor("pc", 1).credential}`;
        return stale && forgotten ? { status: 401, body: { error: "unknown credential" } } : undefined;
      },
      onConnection: (ws, run) => hello(ws, run, frames),
    });
    cleanup.push(() => fake.close());
    // First start: enrolled with the dev token as device pc-00000001, then stopped.
    const dir = mkdtempSync(join(tmpdir(), "distro-runner-bin-"));
    forgotten = false;
    await bin(fake.url, { DISTRO_RUNNER_TOKEN: "dev" }, { dir, args: ["--name", "pc"], until: (o) => /ready/.test(o) });
    // The coordinator's state is reset: it no longer knows pc-00000001.
    forgotten = true;
    const again = await bin(
      fake.url,
      {},
      { dir, args: ["--name", "pc", "--token", "dev"], until: (o) => /ready/.test(o) },
    );
    expect(again.out).toContain("does not know device pc-00000001's credential");
    // Under the same device id, which the development token may claim: the runner keeps its ids.
    expect(again.out).toContain("enrolled as device pc-00000001 with the development token (--token)");
    expect(fake.upgrades.slice(-1)).toEqual([`Bearer ${answerFor("pc", 2, [], "pc-00000001").credential}`]);
    expect(frames.filter((f) => f.type === "hello").map((f) => f.type === "hello" && f.runner.id)).toEqual([
      "pc-00000001",
      "pc-00000001",
    ]);
    // Without a token to enroll with, the runner says what is wrong and exits 1.
    forgotten = false;
    const stale = { ...answerFor("pc", 1), coordinator: fake.url.origin, enrolled_at: 1 };
    writeFileSync(credentialFile(dir, fake.url), JSON.stringify(stale));
    forgotten = true;
    const alone = await bin(fake.url, {}, { dir });
    expect(alone.out).toContain(
      "this device's credential is unknown to the coordinator " +
        `${fake.url.origin}; enroll it again with DISTRO_ENROLL (a token from \`distro runners add\`)`,
    );
    expect(alone.code).toBe(1);
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

describe("prefetch and stealing", () => {
  const spinning = (n: number, ms: number): Assignment => ({
    ...task(n),
    task: `spin[${n}]`,
    stdin: JSON.stringify({ task: `spin[${n}]`, params: { ms }, inputs: {} }),
  });
  /** Attempts handed back, or said to have started (in `started`, `want` and `results` frames). */
  const refs = (frames: RunnerMessage[], type: "reject" | "started") =>
    frames.flatMap((f) => {
      if (f.type === type) return f.tasks.map((t) => t.task);
      if (type === "started" && (f.type === "want" || f.type === "results")) return f.started.map((t) => t.task);
      return [];
    });
  const done = (frames: RunnerMessage[]) =>
    frames.flatMap((f) => (f.type === "results" ? f.results.map((r) => r.task) : []));

  it("holds tasks beyond its slots once it knows them short, runs at most its slots, and a steal takes back only ones not started", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r } = runner(url, spin);
    r.start();
    await until(() => frames.some((f) => f.type === "hello" && f.holding.length === 0 && f.want === 2));
    // Short ones: a mean of a few ms over 2 slots asks for many more (about 100 ms of work, at most
    // 16). Two at a time until it does: on a loaded machine the first ones may take long.
    const run = sockets.get(RUN)!;
    const wants = () => frames.flatMap((f) => (f.type === "want" || f.type === "results" ? [f.want] : []));
    // The last want is what it holds room for now (an earlier, larger one may have shrunk since:
    // sent that many, the rest would come straight back).
    const latest = () => wants().at(-1) ?? 0;
    let short = 0;
    const rounds = Date.now() + 8000;
    while (latest() < 5 && Date.now() < rounds) {
      run.send(encode({ type: "tasks", tasks: [spinning(1000 + short, 1), spinning(1001 + short, 1)], backlog: 10 }));
      short += 2;
      await until(() => done(frames).length === short);
      await until(() => latest() >= 5, 500).catch(() => undefined);
    }
    const want = latest();
    expect(want).toBeGreaterThanOrEqual(5);
    // As many of 150 ms as it asks for: two run, the rest wait.
    run.send(
      encode({ type: "tasks", tasks: Array.from({ length: want }, (_, i) => spinning(2 + i, 150)), backlog: 0 }),
    );
    // While the first two of them run, a steal takes back the two it holds last.
    await new Promise((r) => setTimeout(r, 100));
    expect(refs(frames, "reject")).toEqual([]);
    run.send(encode({ type: "steal", count: 2 }));
    await until(() => refs(frames, "reject").length === 2);
    const last = [`spin[${want}]`, `spin[${want + 1}]`];
    expect(refs(frames, "reject").sort()).toEqual(last.sort());
    await until(() => done(frames).length === short + want - 2, 10_000);
    // Neither ran: no result of them, nor a start.
    expect(done(frames).filter((t) => last.includes(t))).toEqual([]);
    expect(refs(frames, "started").filter((t) => last.includes(t))).toEqual([]);
    // A steal with nothing left to hand back is answered with a want that says what started.
    run.send(encode({ type: "steal", count: 1 }));
    const before = frames.length;
    await until(() => frames.slice(before).some((f) => f.type === "want"));
    expect(frames.slice(before).some((f) => f.type === "reject")).toBe(false);
  });
});

describe("results waiting for company", () => {
  const spinning = (n: number, ms: number): Assignment => ({
    ...task(n),
    task: `spin[${n}]`,
    stdin: JSON.stringify({ task: `spin[${n}]`, params: { ms }, inputs: {} }),
  });
  /** The results frames' tasks, frame by frame. */
  const batches = (frames: RunnerMessage[]) =>
    frames.flatMap((f) => (f.type === "results" ? [f.results.map((r) => r.task)] : []));

  // A wait of a minute: a result that waits for it fails the test, one that goes on its own
  // does not depend on the machine's speed.
  it("wait for the tasks a frame asked for when the run has some; with none, only for more of the run waiting to start here", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r } = runner(url, spin, { resultWaitMs: 60_000 });
    r.start();
    await until(() => sockets.has(RUN) && frames.some((f) => f.type === "hello" && "holding" in f));
    const run = sockets.get(RUN)!;
    // The run has more ready (backlog 5): the first result goes with the credit it frees, the
    // second waits for the tasks that credit brings, and goes with the next result.
    run.send(encode({ type: "tasks", tasks: [spinning(0, 0), spinning(1, 300)], backlog: 5 }));
    await until(() => batches(frames).length === 1);
    expect(batches(frames)).toEqual([["spin[0]"]]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(batches(frames)).toEqual([["spin[0]"]]);
    // Nothing more is ready (backlog 0): a want the run has nothing for would get no answer, so
    // once the runner has nothing left to run, what it holds goes.
    run.send(encode({ type: "tasks", tasks: [spinning(2, 0), spinning(3, 300)], backlog: 0 }));
    await until(() => batches(frames).flat().length === 4);
    const [, ...rest] = batches(frames);
    expect(rest.flat().sort()).toEqual(["spin[1]", "spin[2]", "spin[3]"]);
    // spin[3] ended last, with nothing left to run: its result did not wait for a minute.
    expect(rest.at(-1)).toContain("spin[3]");
    // Still none ready: a result goes at once though another of the run's tasks still runs here
    // (a dependent of it may be waiting), not with that one's.
    const before = batches(frames).length;
    run.send(encode({ type: "tasks", tasks: [spinning(4, 600), spinning(5, 0)], backlog: 0 }));
    await until(() => batches(frames).flat().includes("spin[4]"));
    expect(batches(frames).slice(before)).toEqual([["spin[5]"], ["spin[4]"]]);
  });
});

describe("tasks sent ahead", () => {
  const frameOf = (frames: RunnerMessage[], type: "results") =>
    frames.flatMap((f) => (f.type === type ? f.results : []));
  const ahead = (base: Assignment, key: string, after: string): Assignment => {
    const stdin = JSON.stringify({ task: key, inputs: { [after]: null } });
    const at = stdin.indexOf("null");
    return {
      ...base,
      task: key,
      stdin: stdin.slice(0, at) + stdin.slice(at + 4),
      after: { task: after, attempt: 1, at },
    };
  };

  it("start once the attempt they wait for succeeded here, with its output written in where the run said", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r } = runner(url, echo);
    r.start();
    await until(() => sockets.has(RUN) && frames.some((f) => f.type === "hello" && "holding" in f));
    // Within its credit (2 slots): b waits for a.
    const a = task(0);
    const b = ahead(task(1), "echo[1]", "echo[0]");
    const run = sockets.get(RUN)!;
    run.send(encode({ type: "tasks", tasks: [a, b], backlog: 0 }));
    await until(() => frameOf(frames, "results").length === 2);
    const results = frameOf(frames, "results");
    expect(results.map((res) => res.task)).toEqual(["echo[0]", "echo[1]"]);
    const output = JSON.parse(Buffer.from(results[1]!.output!, "base64").toString()) as unknown;
    expect(output).toEqual({ task: "echo[1]", inputs: { "echo[0]": JSON.parse(a.stdin) } });
    // One sent ahead of an attempt that already ended here takes its output at once; one sent
    // ahead of an attempt it knows nothing of goes back.
    const c = ahead(task(2), "echo[2]", "echo[1]");
    const stray = ahead(task(3), "echo[3]", "echo[9]");
    run.send(encode({ type: "tasks", tasks: [c, stray], backlog: 0 }));
    await until(() => frameOf(frames, "results").length === 3);
    const third = JSON.parse(Buffer.from(frameOf(frames, "results")[2]!.output!, "base64").toString()) as unknown;
    expect(third).toEqual({ task: "echo[2]", inputs: { "echo[1]": output } });
    await until(() => frames.some((f) => f.type === "reject"));
    expect(frames.flatMap((f) => (f.type === "reject" ? f.tasks : []))).toEqual([{ task: "echo[3]", attempt: 1 }]);
  });

  it("are dropped unrun when what they wait for fails, and a steal never takes them", async () => {
    const { frames, url, sockets } = await coordinator();
    const { runner: r } = runner(url, spin);
    r.start();
    await until(() => sockets.has(RUN) && frames.some((f) => f.type === "hello" && "holding" in f));
    const slow = { ...task(0), task: "spin[0]", stdin: JSON.stringify({ task: "spin[0]", params: { ms: 2000 } }) };
    const a = { ...slow, timeoutMs: 300 };
    const b = ahead({ ...task(1), stdin: "" }, "spin[1]", "spin[0]");
    const run = sockets.get(RUN)!;
    run.send(encode({ type: "tasks", tasks: [a, b], backlog: 0 }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = frames.length;
    run.send(encode({ type: "steal", count: 1 }));
    await until(() => frames.slice(before).some((f) => f.type === "want"));
    await until(() => frameOf(frames, "results").length === 1);
    expect(frameOf(frames, "results")[0]).toMatchObject({ task: "spin[0]", ok: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // b never ran, never started, and was not handed back: the run takes it back on its own.
    const named = frames.filter((f) => JSON.stringify(f).includes("spin[1]"));
    expect(named).toEqual([]);
  });
});
