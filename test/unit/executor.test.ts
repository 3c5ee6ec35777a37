// The runner's executor with real task modules built from wasm_tasks/: the WASI shim's stdin,
// args, env and stdout; exit codes, traps, timeouts and output limits; the module check.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModuleCache } from "../../runner/modules";
import { afterAll, describe, expect, it } from "vitest";
import { ThreadPool, type Job } from "../../runner/executor/pool";
import { toResult } from "../../runner/attempt";
import { BadModule, checkTaskModule, inspectModule, limitMemory } from "../../core/wasm/inspect";
import { GROW_REFUSED, watchGrows } from "../../core/wasm/grow-watch";
import { wasmModule } from "../helpers/wasm-builder";

const build = new URL("../../wasm_tasks/build/", import.meta.url);
const bytes = (name: string) => readFileSync(new URL(name, build));
const compile = (name: string) => WebAssembly.compile(bytes(name));

// Vitest runs TypeScript sources; the pool loads its thread from the compiled dist/.
const pool = new ThreadPool(2, new URL("../../dist/runner/executor/thread.js", import.meta.url));
afterAll(() => pool.close());

const job = async (name: string, over: Partial<Job> = {}): Promise<Job> => ({
  module: await compile(name),
  args: ["task"],
  env: {},
  stdin: new Uint8Array(0),
  maxOutputBytes: 1 << 20,
  timeoutMs: 10_000,
  ...over,
});

describe("ThreadPool with real modules", () => {
  it("gives a task its stdin and returns its stdout (echo)", async () => {
    const stdin = new TextEncoder().encode(`{"task":"e","params":{"x":"ü"},"inputs":{}}`);
    const outcome = await pool.run(await job("echo.wasm", { stdin }));
    expect(outcome.type).toBe("exit");
    if (outcome.type === "exit") {
      expect(outcome.code).toBe(0);
      expect(new TextDecoder().decode(outcome.stdout)).toBe(`{"task":"e","params":{"x":"ü"},"inputs":{}}`);
    }
  });

  it("passes args to the task (greet) and reads the envelope's inputs", async () => {
    const stdin = new TextEncoder().encode(
      JSON.stringify({ task: "greet[0]", params: {}, inputs: { init: { greeting: "Hi" } }, item: "Zed", index: 0 }),
    );
    const outcome = await pool.run(await job("greet.wasm", { args: ["greet[0]", "Ana"], stdin }));
    expect(outcome.type === "exit" && new TextDecoder().decode(outcome.stdout)).toBe(
      `{"name":"Ana","message":"Hi, Ana!"}`,
    );
  });

  it("reports a non-zero exit code with the stderr tail", async () => {
    const outcome = await pool.run(await job("fail.wasm", { args: ["fail", "7"] }));
    expect(outcome).toMatchObject({ type: "exit", code: 7 });
    expect(outcome.stderr).toContain("giving up on purpose with exit code 7");
  });

  it("reports a trap with what was written to stderr before it", async () => {
    const outcome = await pool.run(await job("fixtures/trap.wasm"));
    expect(outcome).toMatchObject({ type: "error", kind: "trap" });
    if (outcome.type === "error") expect(outcome.message).toMatch(/unreachable/);
    expect(outcome.stderr).toContain("about to hit unreachable");
  });

  it("terminates an infinite loop at its timeout, and the pool runs the next task", async () => {
    const outcome = await pool.run(await job("fixtures/infinite-loop.wasm", { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ type: "error", kind: "timeout" });
    const next = await pool.run(await job("noop.wasm"));
    expect(next.type === "exit" && new TextDecoder().decode(next.stdout)).toBe("null");
  });

  it("stops a task that writes more than its output limit", async () => {
    const stdin = new TextEncoder().encode("x".repeat(5000));
    const outcome = await pool.run(await job("echo.wasm", { stdin, maxOutputBytes: 1000 }));
    expect(outcome).toMatchObject({ type: "error", kind: "output" });
  });
});

describe("resizing", () => {
  it("grows at once, and shrinks as busy threads finish their jobs, losing none", async () => {
    const sized = new ThreadPool(1, new URL("../../dist/runner/executor/thread.js", import.meta.url));
    try {
      sized.resize(3);
      expect(sized.size).toBe(3);
      const spin = (index: number) =>
        job("spin.wasm", {
          stdin: new TextEncoder().encode(JSON.stringify({ task: "s", index, params: { ms: 400 }, inputs: {} })),
        });
      const jobs = await Promise.all([0, 1, 2].map(spin));
      const pending = jobs.map((j) => sized.run(j));
      expect(sized.busy).toBe(3); // side by side, none queued
      const runs = await Promise.all(pending);
      sized.resize(1);
      expect(runs.map((o) => o.type === "exit" && new TextDecoder().decode(o.stdout))).toEqual([
        '{"index":0,"square":0}',
        '{"index":1,"square":1}',
        '{"index":2,"square":4}',
      ]);
      expect(sized.size).toBe(1);

      const two = await Promise.all([0, 1].map(spin));
      sized.resize(2);
      const both = two.map((j) => sized.run(j));
      sized.resize(1); // both threads are busy: neither is stopped
      expect(sized.size).toBe(2);
      expect((await Promise.all(both)).map((o) => o.type === "exit" && o.code)).toEqual([0, 0]);
      expect(sized.size).toBe(1);
    } finally {
      await sized.close();
    }
  });
});

describe("memory limit", () => {
  const assignment = {
    task: "bomb",
    attempt: 1,
    module: "0".repeat(64),
    args: [],
    env: {},
    stdin: "",
    refs: [],
    timeoutMs: 10_000,
    maxOutputBytes: 1 << 20,
    inlineOutputBytes: 1 << 18,
  };

  it("caps a module's memory: a memory bomb fails as `memory`, not by taking the machine's RAM", async () => {
    const limit = 8 * 1024 * 1024;
    const module = await WebAssembly.compile(
      limitMemory(bytes("fixtures/memory-bomb.wasm"), limit) as Uint8Array<ArrayBuffer>,
    );
    const outcome = await pool.run({ ...(await job("noop.wasm")), module });
    expect(outcome).toMatchObject({ type: "error", kind: "trap", memoryBytes: limit });
    expect(toResult({ ...assignment, memoryBytes: limit }, outcome, 1).failure).toMatchObject({
      kind: "memory",
      retryable: false,
      message: expect.stringMatching(/memory limit of 8388608 bytes/),
    });
  });

  /** A module as the runner compiles it: capped at `limit`, its grows watched. */
  const capped = (name: string, limit: number) => {
    const limited = limitMemory(bytes(name), limit);
    return WebAssembly.compile((watchGrows(limited) ?? limited) as Uint8Array<ArrayBuffer>);
  };
  const MiB64 = 64 << 20;

  it("knows a refused grow: bombs in 100- and 103-page steps under 64 MiB are `memory`, far from the cap", async () => {
    for (const [name, lastPages] of [
      ["fixtures/grow-by-100.wasm", 1001],
      ["fixtures/grow-by-103.wasm", 928],
    ] as const) {
      const outcome = await pool.run({ ...(await job("noop.wasm")), module: await capped(name, MiB64) });
      // It trapped after the refused grow, 1.4 and 6 MiB short of the cap: too far for a guess by size.
      expect(outcome, name).toMatchObject({
        type: "error",
        kind: "trap",
        growRefused: true,
        memoryBytes: lastPages * 65536,
      });
      expect(toResult({ ...assignment, memoryBytes: MiB64 }, outcome, 1).failure, name).toMatchObject({
        kind: "memory",
        retryable: false,
        message: expect.stringMatching(/memory limit of 67108864 bytes \(trap: unreachable\)/),
      });
    }
  });

  it("keeps a plain trap well under the cap a `trap`, and an exit an `exit`, watched or not", async () => {
    // trap.wasm has no memory.grow to watch: judged by size, 64 KiB is far from the cap.
    const trap = await pool.run({ ...(await job("noop.wasm")), module: await capped("fixtures/trap.wasm", MiB64) });
    expect(trap).toMatchObject({ type: "error", kind: "trap", growRefused: undefined });
    expect(toResult({ ...assignment, memoryBytes: MiB64 }, trap, 1).failure).toMatchObject({
      kind: "trap",
      retryable: true,
    });
    expect(watchGrows(limitMemory(wasmModule(), 1 << 20))).toBeNull();
    // fail.wasm (AssemblyScript) is watched, grew nothing refused, and exits 7.
    const exit = await pool.run({
      ...(await job("fail.wasm", { args: ["fail", "7"] })),
      module: await capped("fail.wasm", MiB64),
    });
    expect(exit).toMatchObject({ type: "exit", code: 7, growRefused: false });
    expect(toResult({ ...assignment, memoryBytes: MiB64 }, exit, 1).failure).toMatchObject({
      kind: "exit",
      exitCode: 7,
    });
  });

  it("counts only the last grow: one refused, then one that succeeds, then a trap is a `trap`", async () => {
    const outcome = await pool.run({
      ...(await job("noop.wasm")),
      module: await capped("fixtures/grow-recovers.wasm", MiB64),
    });
    expect(outcome).toMatchObject({ type: "error", kind: "trap", growRefused: false });
    expect(toResult({ ...assignment, memoryBytes: MiB64 }, outcome, 1).failure).toMatchObject({ kind: "trap" });
  });

  it("watches a module of megabytes, and leaves an invalid one as it is (so it cannot reach what is added)", () => {
    const uleb = (n: number) => {
      const out: number[] = [];
      do {
        out.push((n & 0x7f) | (n >= 128 ? 0x80 : 0));
        n = Math.floor(n / 128);
      } while (n > 0);
      return out;
    };
    const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
    /** `count` functions of () -> i32: `nops` nops, `memory.grow 1`, and with `readGlobal` a drop and `global.get 0`. */
    const module = (count: number, nops: number, readGlobal = false) => {
      const code: number[] = [...uleb(count)];
      for (let i = 0; i < count; i++) {
        const tail = [0x41, 1, 0x40, 0, ...(readGlobal ? [0x1a, 0x23, 0] : [])];
        const body = [0, ...new Array<number>(nops).fill(0x01), ...tail, 0x0b];
        code.push(...uleb(body.length), ...body);
      }
      const types = section(1, [1, 0x60, 0, 1, 0x7f]);
      const funcs = section(3, [...uleb(count), ...new Array<number>(count).fill(0)]);
      const head = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...types, ...funcs, ...section(5, [1, 0, 1])];
      return Uint8Array.from([...head, 10, ...uleb(code.length), ...code]);
    };
    const big = module(2000, 600);
    expect(big.length).toBeGreaterThan(1 << 20);
    const watched = watchGrows(big);
    expect(watched && WebAssembly.validate(watched as Uint8Array<ArrayBuffer>)).toBe(true);
    // Reading global 0 of a module with no globals is invalid; once the refusal global is added
    // it would not be, so such a module is left alone (and fails to compile as it is).
    const reader = module(1, 0, true);
    expect(WebAssembly.validate(reader)).toBe(false);
    expect(watchGrows(reader)).toBeNull();
  });

  it("watches the grows of every example task, which still run as before", async () => {
    const stdin = new TextEncoder().encode(`{"task":"e","params":{"x":1},"inputs":{}}`);
    const watched = watchGrows(limitMemory(bytes("echo.wasm"), MiB64));
    expect(watched).not.toBeNull();
    expect(inspectModule(watched!).exports.map((e) => e.name)).toContain(GROW_REFUSED);
    const outcome = await pool.run({ ...(await job("echo.wasm")), module: await capped("echo.wasm", MiB64), stdin });
    expect(outcome).toMatchObject({ type: "exit", code: 0, growRefused: false });
    for (const name of ["greet.wasm", "aggregate.wasm", "matmul_tile.wasm", "mandelbrot_png.wasm", "digest.wasm"])
      expect(watchGrows(limitMemory(bytes(name), MiB64)), name).toSatisfy((b: Uint8Array | null) =>
        WebAssembly.validate(b as Uint8Array<ArrayBuffer>),
      );
  });

  it("leaves a module that fits alone, and refuses one that needs more than the limit to start", async () => {
    const module = await WebAssembly.compile(limitMemory(bytes("greet.wasm"), 64 << 20) as Uint8Array<ArrayBuffer>);
    const outcome = await pool.run({
      ...(await job("greet.wasm")),
      module,
      stdin: new TextEncoder().encode(`{"inputs":{}}`),
    });
    expect(outcome).toMatchObject({ type: "exit", code: 0 });
    expect(toResult({ ...assignment, memoryBytes: 64 << 20 }, outcome, 1).ok).toBe(true);
    expect(inspectModule(limitMemory(wasmModule(), 1 << 20)).exports.map((e) => e.name)).toEqual(["_start", "memory"]);
    expect(() => limitMemory(bytes("greet.wasm"), 1000)).toThrow(BadModule);
  });
});

describe("module check", () => {
  it("accepts the example tasks and names a forbidden import", () => {
    for (const name of ["init.wasm", "greet.wasm", "aggregate.wasm", "noop.wasm"])
      expect(checkTaskModule(bytes(name)), name).toEqual([]);
    expect(checkTaskModule(bytes("fixtures/forbidden-import.wasm"))).toEqual([
      `import "env"."open_socket" is outside WASI preview1; tasks may import only wasi_snapshot_preview1`,
    ]);
    expect(inspectModule(bytes("greet.wasm")).imports.every((i) => i.module === "wasi_snapshot_preview1")).toBe(true);
  });

  it("the runner refuses to run a module with a forbidden import, even one that got past the coordinator", async () => {
    const dir = await import("node:fs/promises").then((fs) => fs.mkdtemp(join(tmpdir(), "distro-modules-")));
    const forbidden = bytes("fixtures/forbidden-import.wasm");
    const cache = new ModuleCache(dir, () => Promise.resolve(new Uint8Array(forbidden)));
    const sha = createHash("sha256").update(forbidden).digest("hex");
    await expect(cache.get(sha, 1 << 20, "a".repeat(64))).rejects.toMatchObject({
      failure: { kind: "bad_module", retryable: false, message: expect.stringContaining(`"env"."open_socket"`) },
    });
  });

  it("a module that arrives with another hash is a retryable failure, and the next fetch may bring the right bytes", async () => {
    const dir = await import("node:fs/promises").then((fs) => fs.mkdtemp(join(tmpdir(), "distro-modules-")));
    const good = new Uint8Array(bytes("noop.wasm"));
    const sha = createHash("sha256").update(good).digest("hex");
    let fetches = 0;
    const cache = new ModuleCache(dir, () => Promise.resolve(++fetches === 1 ? new Uint8Array([0, 1, 2]) : good));
    await expect(cache.get(sha, 1 << 24, "a".repeat(64))).rejects.toMatchObject({
      failure: { kind: "bad_module", retryable: true, message: expect.stringContaining("different sha256") },
    });
    await expect(cache.get(sha, 1 << 24, "a".repeat(64))).resolves.toBeInstanceOf(WebAssembly.Module);
    expect(fetches).toBe(2);
  });

  it("explains truncated and non-wasm bytes instead of throwing", () => {
    expect(checkTaskModule(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 2, 50]))[0]).toMatch(/runs past the end/);
    expect(checkTaskModule(new TextEncoder().encode("hello world"))[0]).toMatch(/bad magic/);
  });
});
