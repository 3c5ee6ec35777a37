// Data in a run, as pure modules: typed params and their placeholders (core/dag/params.ts via
// parseDag), inputs and maps over data in the plan, the machine creating a map's instances when
// the task it maps over succeeds, the envelope of a map over files, and the runner resolving a
// file stored as parts.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseDag } from "../../core/dag/parse";
import { envelopeOf, transition, type Effect, type RunEvent } from "../../worker/run/machine";
import { resolveInputs } from "../../runner/blobs";
import { splitLines } from "../../cli/inputs";
import { checkInputs, inputsSchema } from "../../worker/run-inputs";
import type { Assignment, TaskResult } from "../../core/protocol/messages";
import { ok, plan } from "../helpers/run-fixtures";
import { MemoryStore } from "./memory-store";

const problems = (yaml: string, params?: Record<string, unknown>) => {
  const parsed = parseDag(yaml, { params });
  return parsed.ok ? [] : parsed.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
};
const planOf = (yaml: string, params?: Record<string, unknown>) => {
  const parsed = parseDag(yaml, { params });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.plan;
};
const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? e.tasks : []));

const TILES = `params:
  tiles: { type: integer, default: 64, min: 1 }
  name: { type: string, default: "x" }
  wait: 2s
tasks:
  - id: tile
    module: m
    map: { range: [0, "{{params.tiles}}"] }
    timeout: "{{params.wait}}"
    requires: { labels: ["{{params.name}}-gpu"] }
`;

describe("typed params", () => {
  it("fill map.range, timeout and requires from their defaults or the values given at submit", () => {
    const [tile] = planOf(TILES).nodes;
    expect([tile!.instances, tile!.range, tile!.timeoutMs, tile!.requires]).toEqual([
      64,
      [0, 64],
      2000,
      { labels: ["x-gpu"] },
    ]);
    expect(tile!.params).toEqual({ tiles: 64, name: "x", wait: "2s" });
    const [small] = planOf(TILES, { tiles: 16, name: "big", wait: "5s" }).nodes;
    expect([small!.instances, small!.timeoutMs, small!.requires, small!.params.tiles]).toEqual([
      16,
      5000,
      { labels: ["big-gpu"] },
      16,
    ]);
  });

  it("refuse a wrong type, a bound crossed, an unknown param and an unknown placeholder, each named", () => {
    expect(problems(TILES, { tiles: "16" })).toEqual([
      '2:params.tiles: `params.tiles`: param tiles is of type integer, got string "16"',
    ]);
    expect(problems(TILES, { tiles: 0 })).toEqual(["2:params.tiles: `params.tiles`: param tiles is at least 1, got 0"]);
    expect(problems(TILES, { tiles: 2.5 })[0]).toContain("param tiles is of type integer, got number 2.5");
    expect(problems(TILES, { wait: 3 })[0]).toContain("param wait is of type string, got integer 3");
    expect(problems(TILES, { tile: 3 })[0]).toContain(
      "unknown param tile: the DAG has no such param; it declares tiles, name, wait",
    );
    expect(problems(`params: { n: { type: integer } }\ntasks: [{ id: a, module: m }]`)[0]).toContain(
      "param n (integer) has no default: give it at submit",
    );
    expect(problems(`params: { n: { type: integer, default: "1" } }\ntasks: [{ id: a, module: m }]`)[0]).toContain(
      "its default",
    );
    expect(problems(`tasks:\n  - { id: a, module: m, map: { range: [0, "{{params.nope}}"] } }`)).toEqual([
      "2:tasks[0].map.range[1]: `{{params.nope}}` names no param of the DAG or the task",
    ]);
    // A placeholder that resolves to a wrong type for the field is the schema's problem, located.
    expect(problems(TILES, { name: "y", tiles: 4, wait: "soon" })[0]).toMatch(/^9:tasks\[0\]\.timeout: .*"soon"/);
  });
});

describe("inputs and maps over data in the plan", () => {
  it("splits depends_on into tasks and inputs, and gives maps over data no width yet", () => {
    const p = planOf(`inputs: [text, photos]
tasks:
  - { id: split, module: m, depends_on: [text] }
  - { id: each, module: m, map: { over: split, max_instances: 50 } }
  - { id: pic, module: m, map: { files: photos } }
  - { id: all, module: m, depends_on: [each, pic, text] }
`);
    const by = new Map(p.nodes.map((n) => [n.id, n]));
    expect(p.inputs).toEqual(["text", "photos"]);
    expect([by.get("split")!.deps, by.get("split")!.inputs]).toEqual([[], ["text"]]);
    expect([
      by.get("each")!.deps,
      by.get("each")!.over,
      by.get("each")!.maxInstances,
      by.get("each")!.instances,
    ]).toEqual([["split"], "split", 50, 0]);
    expect([by.get("pic")!.files, by.get("pic")!.inputs, by.get("pic")!.maxInstances]).toEqual([
      "photos",
      ["photos"],
      10_000,
    ]);
    expect([by.get("all")!.deps, by.get("all")!.inputs]).toEqual([["each", "pic"], ["text"]]);
  });

  it("refuses a map over a mapped task, over itself, over files of no input, and an input named like a task", () => {
    const bad = problems(`inputs: [a, t]
tasks:
  - { id: a, module: m, map: { range: [0, 2] } }
  - { id: b, module: m, map: { over: a } }
  - { id: c, module: m, map: { over: c } }
  - { id: d, module: m, map: { files: nope } }
  - { id: e, module: m, depends_on: [x] }
`);
    expect(bad).toEqual([
      '1:inputs[0]: input "a" has the name of a task',
      '4:tasks[1].map.over: map.over names task "a", which is mapped; it must be a plain task',
      '5:tasks[2].map.over: task "c" maps over its own output',
      '6:tasks[3].map.files: map.files names no input: "nope" (declare it under `inputs:`)',
      '7:tasks[4].depends_on[0]: unknown dependency "x" of task "e" (no task or input has that name)',
    ]);
    expect(
      problems(
        `tasks:\n  - { id: a, module: m }\n  - { id: b, module: m, map: { over: a, max_instances: 100001 } }`,
      )[0],
    ).toContain("map.max_instances");
  });
});

describe("a map over a task's output", () => {
  const DAG = (cap = "") => `tasks:
  - { id: split, module: m }
  - { id: each, module: m, map: { over: split${cap} }, args: ["{{item}}"] }
  - { id: after, module: m, depends_on: [each] }
`;
  const run = (yaml: string, output: string) => {
    const store = new MemoryStore();
    transition(store, { type: "start", plan: plan(yaml) }, 0);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    const effects = transition(
      store,
      { type: "results", runner: "r", results: [ok(a!, output)], want: 100, received: 1 },
      2,
    );
    return { store, effects };
  };

  it("creates one instance per element when the task succeeds, each with its item, dependents after them", () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ n: i }));
    const { store, effects } = run(DAG(), JSON.stringify(items));
    expect(store.node("each").spec.instances).toBe(5000);
    expect(store.node("each").remaining).toBe(5000);
    const sent = dispatched(effects);
    expect(sent.map((a) => a.task).slice(0, 3)).toEqual(["each[0]", "each[1]", "each[2]"]);
    expect(sent[2]!.args).toEqual(['{"n":2}']);
    expect(JSON.parse(sent[1]!.stdin)).toMatchObject({ item: { n: 1 }, index: 1, task: "each[1]" });
    expect(store.tasks.get("after")!.state).toBe("blocked");
  });

  it("an empty array leaves the map with no instances and its dependents run at once", () => {
    const { store, effects } = run(DAG(), "[]");
    expect(store.node("each").spec.instances).toBe(0);
    expect(dispatched(effects).map((a) => a.task)).toEqual(["after"]);
    expect(JSON.parse(dispatched(effects)[0]!.stdin).inputs).toEqual({ each: [] });
  });

  it("an output that is no array, or longer than max_instances, fails the task, naming why", () => {
    const object = run(DAG(), '{"a": 1}');
    expect(object.store.tasks.get("split")!.state).toBe("failed");
    expect(object.store.attempts.at(-1)!.failure!.message).toBe(
      'task "each" maps over this output (map.over): it must be a JSON array, and it is an object',
    );
    expect(object.store.tasks.get("after")!.state).toBe("skipped");
    expect(object.effects).toContainEqual({ type: "finished", status: "failed" });
    const long = run(DAG(", max_instances: 3"), "[1, 2, 3, 4]");
    expect(long.store.attempts.at(-1)!.failure).toMatchObject({ kind: "output", retryable: false });
    expect(long.store.attempts.at(-1)!.failure!.message).toContain("its 4 elements are more than max_instances, 3");
    expect(run(DAG(), "not json").store.attempts.at(-1)!.failure!.message).toContain("and it is not JSON");
  });
});

describe("a map over files", () => {
  const file = (i: number) => ({ name: `f${i}.txt`, size: i, sha256: String(i).repeat(64).slice(0, 64) });
  const big = {
    name: "big.bin",
    size: 5,
    sha256: "e".repeat(64),
    parts: [
      { sha256: "c".repeat(64), size: 3 },
      { sha256: "d".repeat(64), size: 2 },
    ],
  };
  const inputs = { photos: { files: [file(1), file(2), file(3)] }, one: { file: big }, n: { value: { k: 1 } } };
  const DAG = `inputs: [photos, one, n]
tasks:
  - { id: each, module: m, map: { files: photos }, args: ["{{item}}"], depends_on: [n] }
  - { id: all, module: m, depends_on: [each, photos, one] }
`;

  it("gives each instance its file by reference and its name as the item; a folder reader gets the listing", () => {
    const store = new MemoryStore();
    transition(store, { type: "start", plan: plan(DAG, inputs) }, 0);
    const sent = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 9, holding: [] }, 1));
    expect(sent.map((a) => [a.task, a.args[0], a.refs])).toEqual([
      ["each[0]", "f1.txt", ["1".repeat(64)]],
      ["each[1]", "f2.txt", ["2".repeat(64)]],
      ["each[2]", "f3.txt", ["3".repeat(64)]],
    ]);
    expect(JSON.parse(sent[0]!.stdin).inputs).toEqual({ n: { k: 1 }, photos: { $file: file(1) } });
    const done = sent.map((a) => ok(a, "1"));
    const [all] = dispatched(
      transition(store, { type: "results", runner: "r", results: done, want: 1, received: 3 }, 2),
    );
    expect(all!.refs).toEqual(["c".repeat(64), "d".repeat(64)]);
    expect(JSON.parse(all!.stdin).inputs).toEqual({
      each: [1, 1, 1],
      photos: [file(1), file(2), file(3)],
      one: { $file: big },
    });
  });

  it("the runner joins a file's parts and checks the whole against its hash", async () => {
    const bytes = new TextEncoder().encode("hello");
    const whole = { ...big, sha256: createHash("sha256").update(bytes).digest("hex") };
    const parts = new Map([
      ["c".repeat(64), bytes.subarray(0, 3)],
      ["d".repeat(64), bytes.subarray(3)],
    ]);
    const task = {
      stdin: JSON.stringify({ inputs: { one: { $file: whole } } }),
      refs: [...parts.keys()],
      files: ["one"],
    } as Assignment;
    const http = {
      blob: (sha: string) => Promise.resolve(parts.get(sha)!),
      envelope: () => Promise.reject(new Error("none")),
    };
    expect(JSON.parse(await resolveInputs(task, http)).inputs.one).toEqual({
      name: "big.bin",
      size: 5,
      sha256: whole.sha256,
      $bytes: Buffer.from("hello").toString("base64"),
    });
    // Parts that do not make the file the submission named are its fault: kind input, not retried.
    const lying = { ...task, stdin: JSON.stringify({ inputs: { one: { $file: big } } }) };
    await expect(resolveInputs(lying, http)).rejects.toMatchObject({
      failure: { kind: "input", retryable: false, message: expect.stringContaining("do not hash to the sha256:eeee") },
    });
    // A marker the coordinator did not put there (a task's output that looks like one) stays as it is.
    const output = { ...task, stdin: JSON.stringify({ inputs: { dep: { $file: 0 } } }), files: [] };
    expect(JSON.parse(await resolveInputs(output, http)).inputs.dep).toEqual({ $file: 0 });
  });

  it("--chunk cuts on line boundaries, a line longer than a chunk whole", () => {
    const text = new TextEncoder().encode("ab\ncd\nefghij\nk");
    expect(splitLines(text, 6).map((b) => new TextDecoder().decode(b))).toEqual(["ab\ncd\n", "efghij\n", "k"]);
    expect(splitLines(new Uint8Array(0), 4)).toEqual([]);
  });
});

describe("an envelope too large for its frame", () => {
  it("travels as its size, and the run builds it whole when the runner asks", () => {
    const store = new MemoryStore();
    const dag = `tasks:
  - { id: split, module: m }
  - { id: each, module: m, map: { over: split } }
  - { id: all, module: m, depends_on: [each] }
`;
    transition(store, { type: "start", plan: plan(dag) }, 0);
    const attach: RunEvent = { type: "attach", runner: "r", name: "r", want: 100, holding: [] };
    const [a] = dispatched(transition(store, attach, 1));
    const forty = JSON.stringify(Array.from({ length: 40 }, (_, i) => i));
    const results = (list: TaskResult[], received: number) =>
      dispatched(transition(store, { type: "results", runner: "r", results: list, want: 100, received }, 2));
    // 40 outputs of 250 KB (each within the inline limit): a 10 MB envelope for `all`.
    const big = "y".repeat(250_000);
    const output = Buffer.from(JSON.stringify(big)).toString("base64");
    const each = results([ok(a!, forty)], 1);
    const [all] = results(
      each.map((t) => ({ ...ok(t, "0"), output })),
      41,
    );
    expect(all!.stdin).toBe("");
    const whole = envelopeOf(store, store.task("all")!, all!.attempt);
    expect(all!.stdinBytes).toBe(new TextEncoder().encode(whole).length);
    expect(JSON.parse(whole).inputs.each).toEqual(Array.from({ length: 40 }, () => big));
  });
});

describe("docs/dag-format.md", () => {
  it("its example DAG parses, each commented map as well", () => {
    const text = readFileSync(new URL("../../docs/dag-format.md", import.meta.url), "utf8");
    const example = /```yaml\n([\s\S]*?)```/.exec(text)![1]!;
    expect(problems(example)).toEqual([]);
    const maps = [...example.matchAll(/# (map: \{.*\})\s+#/g)].map((m) => m[1]!);
    expect(maps).toHaveLength(3);
    for (const map of maps) expect(problems(example.replace(/map: \{ items: [^}]*\}/, map))).toEqual([]);
  });
});

describe("hostile outputs and submissions", () => {
  const DAG = `tasks:
  - { id: split, module: m }
  - { id: each, module: m, map: { over: split } }
  - { id: after, module: m, depends_on: [split] }
`;
  const run = (output: string) => {
    const store = new MemoryStore();
    transition(store, { type: "start", plan: plan(DAG) }, 0);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    // Up to 200 KB inline; larger in blob storage, its bytes read by the host as DagRun does.
    const bytes = Buffer.from(output);
    const ref = { sha256: "b".repeat(64), size: bytes.length };
    const inline = bytes.length <= 200_000;
    const result = inline
      ? { ...ok(a!, "0"), output: bytes.toString("base64") }
      : { ...ok(a!, "0"), output: undefined, outputRef: ref };
    const blobs = new Map(inline ? [] : [[ref.sha256, new Uint8Array(bytes)]]);
    const effects = transition(
      store,
      { type: "results", runner: "r", results: [result], want: 5, received: 1, blobs },
      2,
    );
    return { store, effects, failure: store.attempts.find((x) => x.task === "split")!.failure };
  };

  it("an output nested too deep, holding too many values or elements too large is refused by the map, not parsed into the run", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(run(deep).failure!.message).toContain("it is nested deeper than 100 levels");
    expect(run(`[${"0,".repeat(1_000_001)}0]`).failure!.message).toContain("its JSON holds more than 1,000,000 values");
    // Characters are not bytes: 400,000 CJK characters are 1.2 MB of UTF-8.
    expect(run(JSON.stringify(["漢".repeat(400_000)])).failure!.message).toContain("element 0 is over 1,000,000 bytes");
    expect(run(JSON.stringify(["a".repeat(100)])).failure).toBeNull();
  });

  it("a deep output a dependent reads is bytes to it, so no envelope is too deep to build", () => {
    const store = new MemoryStore();
    const dag = "tasks:\n  - { id: a, module: m }\n  - { id: b, module: m, depends_on: [a] }\n";
    transition(store, { type: "start", plan: plan(dag) }, 0);
    const [a] = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 1, holding: [] }, 1));
    const deep = "[".repeat(50_000) + "]".repeat(50_000);
    const result = { ...ok(a!, "0"), output: Buffer.from(deep).toString("base64") };
    const done = transition(store, { type: "results", runner: "r", results: [result], want: 1, received: 1 }, 2);
    expect(JSON.parse(dispatched(done)[0]!.stdin).inputs.a).toEqual({ $bytes: Buffer.from(deep).toString("base64") });
  });

  it("a task whose envelope would pass 24 MiB fails at dispatch, kind input, saying what to do", () => {
    const store = new MemoryStore();
    const dag =
      "tasks:\n  - { id: a, module: m, map: { range: [0, 100] } }\n  - { id: b, module: m, depends_on: [a] }\n";
    transition(store, { type: "start", plan: plan(dag) }, 0);
    const sent = dispatched(transition(store, { type: "attach", runner: "r", name: "r", want: 100, holding: [] }, 1));
    const output = Buffer.from(JSON.stringify("z".repeat(255_000))).toString("base64");
    const results = sent.map((t) => ({ ...ok(t, "0"), output }));
    const effects = transition(store, { type: "results", runner: "r", results, want: 1, received: 100 }, 2);
    expect(dispatched(effects)).toEqual([]);
    expect(store.tasks.get("b")!.state).toBe("failed");
    const failure = store.attempts.find((x) => x.task === "b")!.failure!;
    expect(failure).toMatchObject({ kind: "input", retryable: false });
    expect(failure.message).toMatch(/^its envelope would be more than 24\.0 MiB .*reduce in stages/);
    expect(effects).toContainEqual({ type: "finished", status: "failed" });
  });

  it("params too large for every task, placeholders that multiply them, and __proto__ as a name are refused", () => {
    const decl = "params: { p: { type: string, default: x } }\n";
    expect(problems(`${decl}tasks: [{ id: a, module: m }]`, { p: "y".repeat(100_001) })[0]).toContain(
      "the DAG's params come to 100,009 bytes as JSON (with those given at submit); at most 100,000",
    );
    const labels = Array.from({ length: 50 }, () => '"{{params.p}}"').join(", ");
    const many = `${decl}tasks: [{ id: a, module: m, requires: { labels: [${labels}] } }]`;
    expect(problems(many, { p: "y".repeat(99_000) }).join()).toContain(
      "placeholders would put more than 4,000,000 characters of params into the DAG",
    );
    expect(problems("inputs: [__proto__]\ntasks: [{ id: a, module: m }]")[0]).toContain("not __proto__");
    expect(problems("tasks: [{ id: __proto__, module: m }]")[0]).toContain("not __proto__");
  });
});

describe("a submission's inputs", () => {
  const DAG = "inputs: [text, n]\ntasks:\n  - { id: a, module: m, depends_on: [text, n] }\n";
  const check = async (inputs: Record<string, unknown>, stored: Record<string, number> = {}) => {
    const parsed = parseDag(DAG);
    if (!parsed.ok) throw new Error("bad test DAG");
    const given = inputsSchema.safeParse(inputs);
    if (!given.success) return [given.error.issues[0]!.message];
    const answer = await checkInputs(parsed, given.data, (shas) =>
      Promise.resolve(new Map(shas.flatMap((s) => (s in stored ? [[s, stored[s]!] as const] : [])))),
    );
    return answer.ok ? [] : answer.problems.map((p) => p.message);
  };
  const sha = (c: string) => c.repeat(64);

  it("are each declared, given, uploaded at their sizes, and within their limits", async () => {
    const file = { name: "t", size: 3, sha256: sha("a") };
    expect(await check({ text: { file }, n: { value: 1 } }, { [sha("a")]: 3 })).toEqual([]);
    expect(await check({ text: { file } }, { [sha("a")]: 3 })).toEqual([
      'input "n" is not given: submit it with `--input n=PATH` (or `inputs.n` in the body)',
    ]);
    expect(await check({ text: { file }, n: { value: 1 }, extra: { value: 2 } }, { [sha("a")]: 3 })).toEqual([
      'input "extra" is given but the DAG does not declare it under `inputs:`',
    ]);
    expect(await check({ text: { file }, n: { value: 1 } })).toEqual([
      `input "text": blob sha256:${sha("a")} is not uploaded (PUT /api/blobs/sha256:${sha("a")} first)`,
    ]);
    // One blob named with two sizes is refused, whichever is checked against storage.
    const twice = { files: [file, { ...file, name: "u", size: 999 }] };
    expect((await check({ text: twice, n: { value: 1 } }, { [sha("a")]: 3 }))[0]).toContain(
      "is given as 999 bytes and as 3",
    );
    // Bytes, not characters: 400,000 CJK characters are 1.2 MB.
    expect((await check({ text: { file }, n: { value: "漢".repeat(400_000) } }, { [sha("a")]: 3 }))[0]).toContain(
      "an inline value is 1200002 bytes as JSON, more than 1000000",
    );
    const deep = JSON.parse("[".repeat(200) + "]".repeat(200)) as unknown;
    expect((await check({ text: { file }, n: { value: deep } }, { [sha("a")]: 3 }))[0]).toContain(
      "nested deeper than 100",
    );
    expect((await check({ text: { file: { ...file, size: 65 * 1024 * 1024 } }, n: { value: 1 } }))[0]).toContain(
      "a file is at most 67108864 bytes",
    );
  });
});
