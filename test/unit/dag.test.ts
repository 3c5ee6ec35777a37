// The DAG parser and its helpers: normalisation and defaults, units, located problems, and the
// per-instance substitution and envelope of the task ABI.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDag } from "../../core/dag/parse";
import { parseDuration, parseSize } from "../../core/units";
import { envelope, outputValue, substitute, toBase64 } from "../../core/abi";

describe("parseDag", () => {
  it("normalises a valid DAG: defaults, params, dependency order", () => {
    const result = parseDag(`
name: demo
defaults: { retries: 1, timeout: 2m, memory: 64MiB }
params: { shared: 1, over: dag }
tasks:
  - id: last
    module: m.wasm
    depends_on: [first, first]
    params: { over: task }
    timeout: 500ms
  - id: first
    module: sha256:${"ab".repeat(32)}
    map: { range: [10, 13] }
    args: [3, "{{item}}"]
    env: { LEVEL: 2 }
`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [first, last] = result.plan.nodes;
    expect(first).toMatchObject({
      id: "first",
      instances: 3,
      range: [10, 13],
      args: ["3", "{{item}}"],
      env: { LEVEL: "2" },
      retries: 1,
      timeoutMs: 120_000,
      memoryBytes: 64 * 1024 ** 2,
    });
    expect(last).toMatchObject({
      id: "last",
      deps: ["first"],
      instances: null,
      params: { shared: 1, over: "task" },
      timeoutMs: 500,
    });
  });

  it("reports every schema problem with its location, not only the first", () => {
    const result = parseDag("tasks:\n  - id: 9lives\n    module: m\n    retries: -1\n    timeout: soon\n");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => [p.path, p.line])).toEqual([
      ["tasks[0].id", 2],
      ["tasks[0].retries", 4],
      ["tasks[0].timeout", 5],
    ]);
    expect(result.problems[2]!.message).toMatch(/expected a duration/);
  });

  it("refuses a DAG that expands past the instance limit", () => {
    const result = parseDag("tasks:\n  - { id: a, module: m, map: { range: [0, 100001] } }\n");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]!.message).toMatch(/100001 task instances; at most 100000/);
  });

  it("refuses a document that is not a mapping, and an empty body", () => {
    for (const text of ["- just\n- a list\n", ""]) {
      const result = parseDag(text);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.problems[0]!.message).toMatch(/a DAG is a mapping/);
    }
  });

  it("reads JSON bodies too", () => {
    expect(parseDag(`{"tasks": [{"id": "a", "module": "m"}]}`).ok).toBe(true);
  });
});

describe("units", () => {
  it("parses durations and sizes, and rejects nonsense", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("1.5m")).toBe(90_000);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration("0s")).toBeUndefined();
    expect(parseDuration("ten")).toBeUndefined();
    expect(parseSize("64MiB")).toBe(64 * 1024 ** 2);
    expect(parseSize("1GB")).toBe(1e9);
    expect(parseSize("12 parsecs")).toBeUndefined();
  });
});

describe("task ABI helpers", () => {
  it("substitutes index, item and params (nested, non-string as JSON)", () => {
    expect(
      substitute("{{index}}:{{item}}:{{ params.a.b }}:{{params.o}}:{{params.none}}", 2, "x", {
        a: { b: 5 },
        o: { k: [1] },
      }),
    ).toBe(`2:x:5:{"k":[1]}:`);
  });

  it("shows JSON outputs as JSON and other bytes as base64", () => {
    expect(outputValue(new TextEncoder().encode(`{"a":1}`))).toEqual({ a: 1 });
    expect(outputValue(new Uint8Array([0xff, 0x00]))).toEqual({ $bytes: "/wA=" });
    // Text that cannot start JSON is bytes without being parsed; JSON after whitespace and a BOM is JSON.
    expect(outputValue(new TextEncoder().encode("hello"))).toEqual({ $bytes: "aGVsbG8=" });
    expect(outputValue(new Uint8Array([0xef, 0xbb, 0xbf, 0x20, 0x0a, 0x5b, 0x31, 0x5d]))).toEqual([1]);
    expect(outputValue(new TextEncoder().encode(" \t\r\n"))).toEqual({ $bytes: "IAkNCg==" });
    expect(outputValue(new Uint8Array())).toEqual({ $bytes: "" });
  });

  it("encodes base64 as Node does, for every length and byte", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString("base64"));
      }),
      { numRuns: 500 },
    );
    const all = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
    expect(toBase64(all)).toBe(Buffer.from(all).toString("base64"));
  });

  it("builds the envelope with item and index only for mapped instances", () => {
    const node = {
      id: "t",
      module: "m",
      deps: [],
      instances: 2,
      items: ["a", "b"],
      args: [],
      env: {},
      params: { p: 1 },
      retries: 0,
      retryDelayMs: 0,
      retryDelayMaxMs: 0,
      timeoutMs: 1,
      memoryBytes: 1,
      priority: 0,
      cache: false,
      lostRetries: 10,
    };
    expect(JSON.parse(envelope(node, 1, { d: 3 }, 2))).toEqual({
      task: "t[1]",
      attempt: 2,
      params: { p: 1 },
      inputs: { d: 3 },
      item: "b",
      index: 1,
    });
    expect(JSON.parse(envelope({ ...node, instances: null }, null, {}, 1))).toEqual({
      task: "t",
      attempt: 1,
      params: { p: 1 },
      inputs: {},
    });
  });
});
