// The attempt pipeline (runner/attempt.ts) through fake hosts: a module cache that hands out
// fixture modules or fails as a real one would, a coordinator whose blobs and uploads the test
// holds, and real task threads running the fixture .wasm of wasm_tasks/build.
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Assignment, BlobRef } from "../../core/protocol/messages";
import { runAttempt, settleAttempt, type AttemptHost } from "../../runner/attempt";
import { ThreadPool } from "../../runner/executor/pool";
import { ModuleError } from "../../runner/modules";

const threads = new ThreadPool(2, new URL("../../dist/runner/executor/thread.js", import.meta.url));
afterAll(() => threads.close());

const compiled = new Map<string, Promise<WebAssembly.Module>>();
const compile = (name: string) => {
  if (!compiled.has(name))
    compiled.set(name, WebAssembly.compile(readFileSync(new URL(`../../wasm_tasks/build/${name}`, import.meta.url))));
  return compiled.get(name)!;
};

const SHA = (c: string) => c.repeat(64);
const utf8 = (text: string) => new TextEncoder().encode(text);

interface Fake {
  host: AttemptHost;
  lines: string[];
  uploads: Uint8Array[];
}

/** A host whose module cache maps a task's `module` to a fixture file (or a thrown error). */
function fake(
  modules: Record<string, string | Error>,
  blobs: Record<string, Uint8Array> = {},
  upload: (bytes: Uint8Array) => Promise<BlobRef> = (bytes) =>
    Promise.resolve({ sha256: SHA("f"), size: bytes.length }),
): Fake {
  const lines: string[] = [];
  const uploads: Uint8Array[] = [];
  const host: AttemptHost = {
    modules: {
      get: (sha256) => {
        const entry = modules[sha256];
        if (entry instanceof Error) return Promise.reject(entry);
        if (entry === undefined) return Promise.reject(new Error(`no module ${sha256}`));
        return compile(entry);
      },
    },
    http: {
      blob: (sha256) => {
        const bytes = blobs[sha256];
        return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`GET blob ${sha256}: HTTP 404`));
      },
      upload: (bytes) => {
        uploads.push(bytes);
        return upload(bytes);
      },
      // The coordinator's copy of an envelope too large for its frame: this test's own.
      envelope: (t) =>
        Promise.resolve(JSON.stringify({ task: t.task, fetched: true, inputs: { one: { $ref: SHA("b") } } })),
    },
    threads,
    log: { info: (line) => lines.push(line), debug: () => {} },
  };
  return { host, lines, uploads };
}

const task = (over: Partial<Assignment> = {}): Assignment => ({
  task: "t",
  attempt: 1,
  module: SHA("a"),
  args: [],
  env: {},
  stdin: `{"inputs":{}}`,
  refs: [],
  timeoutMs: 10_000,
  memoryBytes: 64 << 20,
  maxOutputBytes: 1 << 20,
  inlineOutputBytes: 1 << 16,
  ...over,
});

/** Both phases, as the Runner calls them for an attempt it did not drop. */
async function attempt(f: Fake, t: Assignment, signal = new AbortController().signal) {
  const outcome = await runAttempt(t, f.host, signal);
  return settleAttempt(t, outcome, 5, f.host, { run: "r" });
}

describe("attempt pipeline", () => {
  it("puts each $ref input's blob value in the envelope, runs the task and returns its output inline", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" }, { [SHA("b")]: utf8(`{"n":42}`) });
    const stdin = JSON.stringify({ task: "t", inputs: { one: { $ref: SHA("b") }, many: [{ $ref: SHA("b") }, 7] } });
    const result = await attempt(f, task({ stdin, refs: [SHA("b")] }));
    expect(result).toMatchObject({ task: "t", attempt: 1, ok: true, durationMs: 5 });
    const out = Buffer.from(result.output!, "base64");
    expect(JSON.parse(out.toString())).toEqual({
      task: "t",
      inputs: { one: { n: 42 }, many: [{ n: 42 }, 7] },
    });
    expect(f.uploads).toEqual([]);
    expect(f.lines).toEqual([`task t attempt 1: ok in 5 ms (${out.length} bytes out)`]);
  });

  it("fetches an envelope too large for its frame (stdinBytes), then resolves its refs in it", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" }, { [SHA("b")]: utf8(`[1,2]`) });
    const result = await attempt(f, task({ stdin: "", stdinBytes: 60, refs: [SHA("b")] }));
    expect(JSON.parse(Buffer.from(result.output!, "base64").toString())).toEqual({
      task: "t",
      fetched: true,
      inputs: { one: [1, 2] },
    });
  });

  it("uploads an output over the inline limit and sends its reference instead", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" });
    const stdin = JSON.stringify({ inputs: {}, pad: "x".repeat(3000) });
    const result = await attempt(f, task({ stdin, inlineOutputBytes: 1000 }));
    expect(result).toMatchObject({ ok: true, outputRef: { sha256: SHA("f"), size: stdin.length } });
    expect(result.output).toBeUndefined();
    expect(new TextDecoder().decode(f.uploads[0])).toBe(stdin);
    expect(f.lines[0]).toMatch(/ok in 5 ms \(3\d+ bytes out, uploaded\)$/);
  });

  it("fails the attempt as a retryable output failure when the upload fails", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" }, {}, () => Promise.reject(new Error("PUT: HTTP 503")));
    const result = await attempt(f, task({ stdin: `{"pad":"${"x".repeat(2000)}"}`, inlineOutputBytes: 1000 }));
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "output", message: "could not upload the output: PUT: HTTP 503", retryable: true },
    });
    expect(result.output).toBeUndefined();
  });

  it("classifies a non-zero exit (retryable, with its code) and a trap, keeping the stderr tail", async () => {
    const f = fake({ [SHA("a")]: "fail.wasm", [SHA("b")]: "fixtures/trap.wasm" });
    const exit = await attempt(f, task({ args: ["5"] }));
    expect(exit).toMatchObject({ ok: false, failure: { kind: "exit", exitCode: 5, retryable: true } });
    expect(exit.stderr).toContain("giving up on purpose with exit code 5");
    const trap = await attempt(f, task({ module: SHA("b") }));
    expect(trap).toMatchObject({ ok: false, failure: { kind: "trap", retryable: true } });
    expect(f.lines[1]).toMatch(/^task t attempt 1: failed in 5 ms \(trap: .*unreachable/);
  });

  it("reports a module that cannot be had or run with the failure the cache gave", async () => {
    const f = fake({
      [SHA("a")]: new ModuleError({ kind: "bad_module", message: "import env.x is not allowed", retryable: false }),
      [SHA("b")]: new ModuleError({ kind: "lost", message: "could not fetch module", retryable: true }),
      [SHA("c")]: new ModuleError({ kind: "memory", message: "needs more memory than allowed", retryable: false }),
      [SHA("d")]: new ModuleError({ kind: "bad_module", message: "arrived with a different sha256", retryable: true }),
    });
    expect((await attempt(f, task())).failure).toEqual({
      kind: "bad_module",
      message: "import env.x is not allowed",
      retryable: false,
    });
    expect((await attempt(f, task({ module: SHA("b") }))).failure).toMatchObject({ kind: "lost", retryable: true });
    expect((await attempt(f, task({ module: SHA("c") }))).failure).toMatchObject({ kind: "memory", retryable: false });
    // A corrupted download is worth another try: the cache's verdict is kept, not re-derived from the kind.
    expect((await attempt(f, task({ module: SHA("d") }))).failure).toMatchObject({
      kind: "bad_module",
      retryable: true,
    });
  });

  it("an input blob that cannot be fetched is not the task's fault: lost, retryable", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" });
    const stdin = JSON.stringify({ inputs: { one: { $ref: SHA("b") } } });
    expect((await attempt(f, task({ stdin, refs: [SHA("b")] }))).failure).toEqual({
      kind: "lost",
      message: `could not prepare the task: GET blob ${SHA("b")}: HTTP 404`,
      retryable: true,
    });
  });

  it("an attempt aborted before it runs ends cancelled without running", async () => {
    const f = fake({ [SHA("a")]: "echo.wasm" });
    const abort = new AbortController();
    abort.abort();
    const outcome = await runAttempt(task(), f.host, abort.signal);
    expect(outcome).toMatchObject({ type: "error", kind: "cancelled" });
    expect((await settleAttempt(task(), outcome, 0, f.host)).failure).toMatchObject({ kind: "lost", retryable: true });
  });
});
