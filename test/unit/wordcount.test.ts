// The word-count tasks (wordcount_count per chunk, wordcount_top to merge) against the
// JavaScript reference in test/helpers/wordcount.ts, run in real task threads.
import { createHash } from "node:crypto";
import { taskThreads } from "../helpers/task-threads";
import { afterAll, describe, expect, it } from "vitest";
import type { JobOutcome } from "../../runner/executor/pool";
import { countWords, splitLines, topWords, wordText } from "../helpers/wordcount";

const { pool, compile } = taskThreads(4);
afterAll(() => pool.close());

/** Runs a task on raw stdin; resolves with how it ended. */
async function exec(name: string, stdin: string): Promise<JobOutcome> {
  return pool.run({
    module: await compile(name),
    args: [name],
    env: {},
    stdin: new TextEncoder().encode(stdin),
    maxOutputBytes: 16 << 20,
    timeoutMs: 60_000,
  });
}

/** Runs a task with an envelope as the coordinator builds it; returns its output parsed. */
async function run(name: string, envelope: Record<string, unknown>): Promise<unknown> {
  const outcome = await exec(name, JSON.stringify({ task: name, attempt: 1, params: {}, inputs: {}, ...envelope }));
  if (outcome.type !== "exit" || outcome.code !== 0)
    throw new Error(`${name} failed: ${JSON.stringify({ ...outcome, stdout: undefined })}`);
  return JSON.parse(new TextDecoder().decode(outcome.stdout));
}

/** Expects the task to exit 2 with `message` on stderr. */
async function rejects(name: string, stdin: string, message: RegExp): Promise<void> {
  const outcome = await exec(name, stdin);
  expect(outcome.type === "exit" && { code: outcome.code, stderr: outcome.stderr }).toEqual({
    code: 2,
    stderr: expect.stringMatching(message),
  });
}

/** A file input as the coordinator passes it. */
const file = (name: string, bytes: Uint8Array) => ({
  name,
  size: bytes.length,
  sha256: createHash("sha256").update(bytes).digest("hex"),
  $bytes: Buffer.from(bytes).toString("base64"),
});

interface Counted {
  words: number;
  counts: Record<string, number>;
}

/** wordcount_count on chunk `index`. */
const count = (bytes: Uint8Array, index: number, params: Record<string, unknown> = {}) => {
  const item = `part-${String(index).padStart(5, "0")}.txt`;
  const key = typeof params.input === "string" ? params.input : "text";
  return run("wordcount_count", {
    task: `count[${index}]`,
    params,
    inputs: { [key]: file(item, bytes) },
    item,
    index,
  }) as Promise<Counted>;
};

const top = (outputs: Counted[], params: Record<string, unknown> = {}) =>
  run("wordcount_top", {
    task: "top",
    params,
    inputs: { [typeof params.from === "string" ? params.from : "count"]: outputs },
  });

const utf8 = (s: string) => Buffer.from(s, "utf8");
/** A task's counts as the reference's Map. */
const asMap = (c: Counted) => new Map(Object.entries(c.counts));
const toCounted = (m: Map<string, number>): Counted => ({
  words: [...m.values()].reduce((a, b) => a + b, 0),
  counts: Object.fromEntries(m),
});

describe("wordcount", () => {
  it("counts a 3 MB text in 1 MiB chunks exactly as the reference, top 10 and top 50", async () => {
    const text = wordText(3_000_000, 7);
    const chunks = splitLines(text, 1 << 20);
    expect(chunks.length).toBe(3);
    const outputs = await Promise.all(chunks.map((chunk, i) => count(utf8(chunk), i)));
    outputs.forEach((output, i) => {
      const reference = countWords(chunks[i]!);
      expect(asMap(output)).toEqual(reference);
      expect(output.words).toBe(topWords(reference, 0).words);
    });
    const reference = countWords(text);
    expect(reference.size).toBeGreaterThan(1500);
    expect(await top(outputs)).toEqual(topWords(reference, 10));
    expect(await top(outputs, { top: 50 })).toEqual(topWords(reference, 50));
  });

  it("handles chunk edges, case, non-letters and non-ASCII bytes, with a named input", async () => {
    const bytes = Buffer.concat([
      utf8("Hello, WORLD world World! café ÜBER naïve abc123def a@b[c`d{e_f\n"),
      Buffer.from([0x61, 0x62, 0xff, 0x63, 0x64, 0x80, 0x7a]),
      utf8("\r\n\tZz zZ end"),
    ]);
    const output = await count(bytes, 0, { input: "chunk" });
    expect(asMap(output)).toEqual(countWords(bytes));
    expect(output).toEqual({
      words: 22,
      counts: {
        ...{ hello: 1, world: 3, caf: 1, ber: 1, na: 1, ve: 1, abc: 1, def: 1 },
        ...{ a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, ab: 1, cd: 1, z: 1, zz: 2, end: 1 },
      },
    });
    expect(await count(new Uint8Array(0), 1)).toEqual({ words: 0, counts: {} });
    expect(await count(utf8("...123 \n"), 2)).toEqual({ words: 0, counts: {} });
    // One word that is the whole chunk, and base64 sent with escaped slashes and no padding.
    const long = "Ab".repeat(200_000);
    expect(await count(utf8(long), 3)).toEqual({ words: 1, counts: { [long.toLowerCase()]: 1 } });
    const b64 = Buffer.from([0xff, 0xfe, 0x41, 0x3f, 0xbf, 0x42]).toString("base64");
    expect(b64).toContain("/");
    const raw = `{"task":"count[4]","inputs":{"text":{"$bytes":"${b64.replace(/\//g, "\\/").replace(/=+$/, "")}"}}}`;
    const outcome = await exec("wordcount_count", raw);
    expect(outcome.type === "exit" && JSON.parse(new TextDecoder().decode(outcome.stdout))).toEqual({
      words: 2,
      counts: { a: 1, b: 1 },
    });
  });

  it("merges thousands of outputs and one of 60,000 words, ties by word in byte order", async () => {
    const text = wordText(3_000_000, 11);
    const outputs = splitLines(text, 1500).map((chunk) => toCounted(countWords(chunk)));
    expect(outputs.length).toBeGreaterThan(1900);
    const big = new Map<string, number>();
    for (let i = 0; i < 60_000; i++)
      big.set(
        `w${i.toString(26)}`.replace(/\d/g, (d) => "qrstuvwxyz".charAt(+d)),
        1 + (i % 7),
      );
    outputs.push(toCounted(big));
    const reference = countWords(text);
    for (const [w, c] of big) reference.set(w, (reference.get(w) ?? 0) + c);
    expect(reference.size).toBeGreaterThan(60_000);
    expect(await top(outputs, { from: "counted", top: 50 })).toEqual(topWords(reference, 50));
    // Every word, when top is at least the number of words; equal counts go in byte order.
    const ties = new Map([...big].slice(0, 3000).map(([w]) => [w, 2]));
    ties.set("zebra", 3).set("Zebra", 3).set("apple", 1);
    expect(await top([toCounted(ties)], { top: 5000 })).toEqual(topWords(ties, 5000));
  });

  it("decodes escaped keys and ignores members it does not know", async () => {
    const raw =
      '{"params":{"top":3},"inputs":{"count":[{"words":3,"counts":{"caf\\u00e9":2,"x\\"y":1},"extra":[1,{"a":"}"}]},' +
      '{"note":null,"counts":{"café":1},"words":1}]}}';
    const outcome = await exec("wordcount_top", raw);
    expect(outcome.type === "exit" && JSON.parse(new TextDecoder().decode(outcome.stdout))).toEqual({
      words: 4,
      distinct: 2,
      top: [
        { word: "café", count: 3 },
        { word: 'x"y', count: 1 },
      ],
    });
  });

  it("exits 2 with a message on bad input", async () => {
    const envelope = (inputs: unknown, params: unknown = {}) => JSON.stringify({ task: "t", params, inputs });
    await rejects("wordcount_count", envelope({}), /inputs\.text is missing/);
    await rejects(
      "wordcount_count",
      envelope({ text: { $bytes: "aGk=" } }, { input: "chunk" }),
      /inputs\.chunk is missing/,
    );
    await rejects("wordcount_count", envelope({ text: { name: "a.txt" } }), /not \{"\$bytes"/);
    await rejects("wordcount_count", envelope({ text: "hello" }), /not \{"\$bytes"/);
    await rejects("wordcount_count", envelope({ text: { $bytes: 12 } }), /not \{"\$bytes"/);
    await rejects("wordcount_count", envelope({ text: { $bytes: "ab!d" } }), /not valid base64/);
    await rejects("wordcount_count", envelope({ text: { $bytes: "abcde" } }), /not valid base64/);
    await rejects(
      "wordcount_count",
      envelope({ text: { $bytes: "" } }, { input: 3 }),
      /params\.input must be a string/,
    );
    await rejects("wordcount_count", '{"inputs": {"text": {"$bytes": "aGk=', /invalid JSON/);
    await rejects("wordcount_count", "[]", /not a JSON object/);
    const ok = [{ words: 1, counts: { a: 1 } }];
    await rejects("wordcount_top", envelope({}), /inputs\.count is not an array/);
    await rejects("wordcount_top", envelope({ count: { words: 1, counts: {} } }), /inputs\.count is not an array/);
    await rejects("wordcount_top", envelope({ counted: ok }), /inputs\.count is not an array/);
    await rejects("wordcount_top", envelope({ count: [...ok, { words: 1 }] }), /inputs\.count\[1\] is not/);
    await rejects("wordcount_top", envelope({ count: [{ counts: {} }] }), /inputs\.count\[0\] is not/);
    await rejects("wordcount_top", envelope({ count: [{ words: 1, counts: { a: "1" } }] }), /\[0\] is not/);
    await rejects("wordcount_top", envelope({ count: [{ words: 1, counts: { a: 1.5 } }] }), /\[0\] is not/);
    await rejects("wordcount_top", envelope({ count: [{ words: -1, counts: {} }] }), /\[0\] is not/);
    await rejects("wordcount_top", envelope({ count: ["x"] }), /\[0\] is not/);
    for (const t of [0, -3, 2.5, "ten"])
      await rejects("wordcount_top", envelope({ count: ok }, { top: t }), /params\.top must be an integer/);
  });
});
