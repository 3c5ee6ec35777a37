// Whole stderr, streamed while a task runs: the WASI shim hands it to the thread, which posts it
// to the pool in batches (few messages, never one per write), cut at 1 MiB with the rest counted;
// the runner's stream turns it into `log` frames within its budget (runner/stderr-stream.ts).
import { afterAll, describe, expect, it } from "vitest";
import { LOG_LIMITS } from "../../core/protocol/messages";
import { decodeRunnerMessage, encode } from "../../core/protocol/codec";
import { StderrBatches } from "../../runner/executor/stderr-batches";
import { LogBudget, StderrStream, type LogFrame } from "../../runner/stderr-stream";
import { taskThreads } from "../helpers/task-threads";

const { pool, compile } = taskThreads(1);
afterAll(() => pool.close());

/** What chatty writes for `params.bytes`: 64-byte lines, the last one cut. */
export function chattyBytes(n: number): string {
  let out = "";
  for (let i = 0; out.length < n; i++) out += `chatty ${String(i).padStart(6, "0")}: ${"x".repeat(48)}\n`;
  return out.slice(0, n);
}

/** Runs chatty with `params`; each stderr batch is kept, and `onStderr` hears it as it comes. */
async function runChatty(params: Record<string, number>, onStderr: (bytes: Uint8Array) => void = () => {}) {
  const batches: Uint8Array[] = [];
  const stdin = new TextEncoder().encode(JSON.stringify({ task: "c", params, inputs: {} }));
  const outcome = await pool.run({
    module: await compile("chatty"),
    args: ["c"],
    env: {},
    stdin,
    maxOutputBytes: 1 << 20,
    timeoutMs: 20_000,
    onStderr: (bytes) => {
      batches.push(bytes);
      onStderr(bytes);
    },
  });
  return { outcome, batches, text: Buffer.concat(batches).toString("utf8") };
}

describe("stderr through the thread pool", () => {
  it("gives 200 KiB written in 64-byte writes whole, in a few messages", async () => {
    const { outcome, batches, text } = await runChatty({ bytes: 200 * 1024 });
    expect(outcome).toMatchObject({ type: "exit", code: 0 });
    expect(text).toBe(chattyBytes(200 * 1024));
    expect(batches.length).toBeLessThanOrEqual(8);
    expect(batches.every((b) => b.length <= 64 * 1024)).toBe(true);
    expect(outcome.stderrDropped).toBeUndefined();
    // The result's tail is as before.
    expect(outcome.stderr).toBe(chattyBytes(200 * 1024).slice(-4096));
  });

  it("keeps the first 1 MiB and counts what it cut", async () => {
    const { outcome, text } = await runChatty({ bytes: LOG_LIMITS.attemptBytes + 5000 });
    expect(Buffer.byteLength(text)).toBe(LOG_LIMITS.attemptBytes);
    expect(text).toBe(chattyBytes(LOG_LIMITS.attemptBytes));
    expect(outcome.stderrDropped).toBe(5000);
  });

  it("posts a line written before a long computation while the task still runs", async () => {
    const started = Date.now();
    const seen: number[] = [];
    await runChatty({ lines: 2, pause_ms: 1000 }, () => seen.push(Date.now() - started));
    const ended = Date.now() - started;
    expect(seen.length).toBe(2);
    expect(seen[0]!).toBeLessThan(ended - 800);
  });
});

describe("StderrBatches", () => {
  it("posts at once after a quiet spell, then at most every everyMs or per maxBytes", () => {
    let now = 1000;
    const posted: number[] = [];
    const b = new StderrBatches((bytes) => posted.push(bytes.length), { everyMs: 200, maxBytes: 10, now: () => now });
    b.add(new Uint8Array(3));
    expect(posted).toEqual([3]);
    b.add(new Uint8Array(4));
    b.add(new Uint8Array(4));
    expect(posted).toEqual([3]);
    b.add(new Uint8Array(25)); // fills 10 twice, keeps 3 (8 + 25 = 33)
    expect(posted).toEqual([3, 10, 10, 10]);
    now += 150;
    b.poll();
    expect(posted).toEqual([3, 10, 10, 10]);
    now += 60;
    b.poll();
    expect(posted).toEqual([3, 10, 10, 10, 3]);
    b.flush();
    expect(posted.length).toBe(5);
  });
});

describe("StderrStream", () => {
  const ref = { task: "t", attempt: 2 };
  /** What the runner gives a stream: the whole assignment, of which frames name only two fields. */
  const assignment = { ...ref, module: "m", args: [], env: {} };
  const enc = (s: string) => new TextEncoder().encode(s);

  it("sends nothing for a quick attempt whose stderr its result's tail holds", () => {
    const frames: LogFrame[] = [];
    const s = new StderrStream(ref, (f) => frames.push(f) > 0, new LogBudget());
    s.push(enc("hello\n"));
    s.end();
    expect(frames).toEqual([]);
  });

  it("after its hold, sends chunks with offsets in bytes, a split character whole, each a valid frame", async () => {
    const frames: LogFrame[] = [];
    const s = new StderrStream(assignment, (f) => frames.push(f) > 0, new LogBudget(), { holdMs: 10 });
    const euro = enc("€"); // 3 bytes, split across two batches
    s.push(new Uint8Array([...enc("a"), euro[0]!]));
    await new Promise((r) => setTimeout(r, 30));
    s.push(new Uint8Array([euro[1]!, euro[2]!, ...enc("b")]));
    s.push(enc("x".repeat(70_000)));
    s.end();
    expect(frames.map((f) => f.offset)).toEqual([0, 1, 5, 5 + 65_536]);
    expect(frames.map((f) => f.chunk).join("")).toBe(`a€b${"x".repeat(70_000)}`);
    for (const f of frames) expect(decodeRunnerMessage(encode(f)).ok).toBe(true);
  });

  it("cuts the log at a chunk it cannot send and says how much was dropped last", async () => {
    const frames: LogFrame[] = [];
    let open = true;
    const s = new StderrStream(ref, (f) => open && frames.push(f) > 0, new LogBudget(), { holdMs: 0 });
    await new Promise((r) => setTimeout(r, 5));
    s.push(enc("one\n"));
    open = false;
    s.push(enc("two\n"));
    open = true;
    s.push(enc("three\n"));
    s.end(100);
    expect(frames).toEqual([
      { type: "log", ...ref, offset: 0, chunk: "one\n" },
      { type: "log", ...ref, offset: 4, chunk: "", dropped: 4 + 6 + 100 },
    ]);
  });

  it("a budget takes frames within its bytes and frames, and refills", () => {
    let now = 0;
    const budget = new LogBudget({ bytesPerSec: 100, byteBurst: 200, framesPerSec: 10, frameBurst: 2 }, () => now);
    expect(budget.take(150)).toBe(true);
    expect(budget.take(100)).toBe(false);
    expect(budget.take(50)).toBe(true);
    expect(budget.take(1)).toBe(false); // out of frames
    now += 1000;
    expect(budget.take(100)).toBe(true);
  });
});
