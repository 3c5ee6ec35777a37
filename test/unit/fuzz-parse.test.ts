// A fuzz test of the DAG parser (core/dag/parse.ts): whatever text and params a submission
// brings, `parseDag` answers with a plan or with problems located by path, line and column, and
// never throws or hangs. The inputs are arbitrary strings, YAML documents built from the format's
// own keys with values of every type (anchors, aliases, tags and repeated keys among them), deeply
// nested documents, task graphs of any shape, and the example DAGs of dags/ with characters and
// lines changed; then the inputs fuzzing found to break the parser, as fixed cases. Each property
// runs a fixed number of cases; with FUZZ_SECONDS=N set, each runs for about N seconds instead.
// fast-check picks the seed and prints it with any counterexample, to replay it. The last line
// printed is how many cases ran.
import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseDag, type ParseResult } from "../../core/dag/parse";

const DAGS = new URL("../../dags/", import.meta.url);
const examples = readdirSync(DAGS)
  .filter((name) => name.endsWith(".yaml"))
  .sort()
  .map((name) => readFileSync(new URL(name, DAGS), "utf8"));

/** FUZZ_SECONDS=N: each property runs for about N seconds instead of its fixed number of cases. */
const seconds = Number(process.env.FUZZ_SECONDS);
const timed = Number.isFinite(seconds) && seconds > 0;

/** fast-check's parameters for a property of `numRuns` cases, or of FUZZ_SECONDS seconds. */
function budget<T>(numRuns: number): fc.Parameters<T> {
  if (!timed) return { numRuns };
  // The plugin works on a property of any arguments; its type says `unknown`, the property's differ.
  const stop = fc.interruptAfterTimeLimit(seconds * 1000) as fc.Plugin<T>;
  return { numRuns: Number.MAX_SAFE_INTEGER, plugins: [stop] };
}

/** Each test's own timeout: its cases, or FUZZ_SECONDS, with room for shrinking a failure. */
const TIMEOUT_MS = timed ? seconds * 1000 + 60_000 : 60_000;

/** One case slower than this is a failure: the parser must answer quickly, not only eventually. */
const SLOW_CASE_MS = 5_000;

let cases = 0;
let plans = 0;
afterAll(() => console.log(`fuzz-parse: ${cases} cases (${plans} gave a plan)`));

/** How many lines a text has at most: a lone `\r` counts as a line end too. */
const lineCount = (text: string) => text.split(/\r\n|\r|\n/).length;

/** What is wrong with the answer of `parseDag` for `text`, as a list of complaints (none: it is sound). */
function complaints(result: ParseResult, text: string): string[] {
  const out: string[] = [];
  if (result.ok) {
    const { plan } = result;
    if (typeof plan.name !== "string") out.push(`plan.name is ${typeof plan.name}`);
    if (!Array.isArray(plan.inputs)) out.push("plan.inputs is not a list");
    if (!Array.isArray(plan.nodes) || plan.nodes.length === 0) out.push("a plan without nodes");
    // The nodes come in dependency order: each after the nodes it depends on.
    const seen = new Set<string>();
    for (const node of plan.nodes) {
      for (const dep of node.deps) if (!seen.has(dep)) out.push(`node ${node.id} comes before its dependency ${dep}`);
      if (seen.has(node.id)) out.push(`node ${node.id} twice`);
      seen.add(node.id);
    }
    return out;
  }
  if (!Array.isArray(result.problems) || result.problems.length === 0) return ["refused without a problem"];
  const lines = lineCount(text);
  for (const p of result.problems) {
    const at = JSON.stringify(p);
    if (typeof p.message !== "string" || p.message === "") out.push(`no message: ${at}`);
    if (typeof p.path !== "string") out.push(`no path: ${at}`);
    if (!Number.isInteger(p.line) || p.line < 1 || p.line > lines) out.push(`line outside the document: ${at}`);
    if (!Number.isInteger(p.column) || p.column < 1) out.push(`column below 1: ${at}`);
  }
  return out;
}

/** Parses one input and checks the answer; a throw from `parseDag` fails the property as it is. */
function check(text: string, params?: Record<string, unknown>): ParseResult {
  cases++;
  const started = performance.now();
  const result = parseDag(text, params === undefined ? undefined : { params });
  const took = performance.now() - started;
  expect(took, "milliseconds parseDag took").toBeLessThan(SLOW_CASE_MS);
  expect(complaints(result, text)).toEqual([]);
  if (result.ok) plans++;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Params given at submit: JSON values (what the API and the CLI's --param hand over), under the
// names the example DAGs declare and a few that no DAG should take at face value.

const paramName = fc.constantFrom(
  "greeting",
  "names",
  "n",
  "tiles",
  "width",
  "shards",
  "algorithm",
  "product",
  "top",
  "x",
  "a",
  "__proto__",
  "constructor",
  "",
);
const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);
const paramValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(0, -1, 16, 1.5, 2 ** 53, -0, "", "{{params.n}}", [], {}, null, true),
  },
  // Past the DAG's params limits: 100,000 bytes as JSON, 100 levels deep.
  { weight: 1, arbitrary: fc.constantFrom<unknown>("x".repeat(100_001), nested(150)) },
);
const givenParams = fc.oneof(
  fc.constant(undefined),
  // What the strict documents and the example DAGs take.
  fc.record({ n: fc.nat({ max: 10 }) }, { requiredKeys: [] }),
  fc.array(fc.tuple(paramName, paramValue), { maxLength: 4 }).map((entries) => Object.fromEntries(entries)),
);

// ---------------------------------------------------------------------------------------------
// (1) Arbitrary strings: printable ASCII, any code point, graphemes, and strings made of the
// characters and tokens YAML and the DAG format give meaning to.

const YAML_CHARS = [..." \t\n\r-:?,[]{}#&*!|>'\"%@`\\.~0123456789aeimnrst_\u00a0\u0085\u2028\ufeff\u0000\ud800😀"];
const TOKENS = [
  "tasks:",
  "\n",
  "\n  - ",
  "  ",
  "id: ",
  "module: m",
  "depends_on: ",
  "map: ",
  "{ range: [0, 3] }",
  "items: ",
  "over: ",
  "files: ",
  "params:",
  "inputs: [a]",
  "defaults:",
  "retries: ",
  "timeout: ",
  "memory: ",
  "requires: ",
  "{{params.n}}",
  "&a ",
  "*a",
  "!!str ",
  "<<: ",
  "---\n",
  "...\n",
  "%YAML 1.1\n",
  "[",
  "]",
  "{",
  "}",
  ", ",
  ": ",
  "a",
  "1",
  "-1",
  '"',
  "'",
  "|\n",
  "# c",
];
const strings = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 100 }),
  fc.string({ unit: fc.constantFrom(...YAML_CHARS), maxLength: 300 }),
  fc.string({ unit: fc.constantFrom(...TOKENS), maxLength: 60 }),
);

// ---------------------------------------------------------------------------------------------
// (2) YAML documents from a grammar of the DAG format: a tree of nodes with the format's keys and
// values mostly of the right kind, now and then of any kind, written out in flow style, block
// style or by the `yaml` package.

type Style = "plain" | "double" | "single";
/** A YAML node to write out: a scalar as written, a list, a mapping (whose keys may repeat), an alias. */
type Y = (
  | { kind: "scalar"; text: string; style: Style }
  | { kind: "seq"; items: Y[] }
  | { kind: "map"; entries: [string, Y][] }
  | { kind: "alias"; name: string }
) & { anchor?: string; tag?: string };

const ANCHORS = ["a", "b", "c"];
const anyStyle = (texts: fc.Arbitrary<string>): fc.Arbitrary<Y> =>
  fc
    .tuple(texts, fc.constantFrom<Style>("plain", "plain", "plain", "double", "single"))
    .map(([text, style]) => ({ kind: "scalar", text, style }));

const idText = fc.constantFrom("a", "b", "c", "init", "greet", "photos", "t-1", "_x", "9lives", "__proto__", "");
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.integer({ min: -3, max: 30 }).map(String),
  fc.double().map(String),
  fc.bigInt().map(String),
  fc.constantFrom(
    "0",
    "-0",
    "1e309",
    "-1e309",
    ".nan",
    ".inf",
    "-.inf",
    "NaN",
    "Infinity",
    "0x1F",
    "0o17",
    "1_000",
    "9007199254740993",
    "100000",
    "100001",
    "-1001",
    "1000",
    "20",
    "21",
  ),
);
const unitText = fc.constantFrom(
  "30s",
  "500ms",
  "2m",
  "1h",
  "3601s",
  "1.5m",
  "0",
  "0s",
  "1d",
  "64MiB",
  "4GiB",
  "4.1GiB",
  "1B",
  "0B",
  "10 KB",
  "-5s",
  "1e3s",
  "{{params.n}}s",
  "{{params.n}}MiB",
);
const placeholderText = fc.constantFrom(
  "{{params.n}}",
  "{{params.tiles}}",
  "{{ params.x }}",
  "{{params.a.b}}",
  "{{params.__proto__}}",
  "{{params.constructor}}",
  "{{params.missing}}",
  "{{item}}",
  "{{index}}",
);
const otherText = fc.constantFrom(
  "true",
  "false",
  "yes",
  "null",
  "~",
  "",
  "2001-12-14",
  "m.wasm",
  `sha256:${"ab".repeat(32)}`,
  "- x",
  ": x",
  "#",
  "'",
  '"',
  "string",
  "integer",
  "number",
  "boolean",
  "array",
  "object",
);
const longText = fc.oneof(
  { weight: 20, arbitrary: fc.string({ minLength: 200, maxLength: 3000 }) },
  // Past one task's 1,000,000 bytes as JSON.
  { weight: 1, arbitrary: fc.constant("y".repeat(1_000_001)) },
);
const anyText = fc.oneof(
  { weight: 3, arbitrary: idText },
  { weight: 3, arbitrary: numberText },
  { weight: 2, arbitrary: unitText },
  { weight: 2, arbitrary: placeholderText },
  { weight: 2, arbitrary: otherText },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 1, arbitrary: longText },
);
const anyKey = fc.oneof(
  anyText,
  fc.constantFrom("nmae", "task", "dependson", "<<", "? x", "__proto__", "constructor", "toString", "a b", "-"),
);
const tag = fc.constantFrom(
  "!!str",
  "!!int",
  "!!float",
  "!!bool",
  "!!null",
  "!!seq",
  "!!map",
  "!!set",
  "!!binary",
  "!x",
);

/** `arb` once in `n` times, else undefined. */
const onceIn = <T>(n: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const alias: fc.Arbitrary<Y> = fc.constantFrom(...ANCHORS).map((name) => ({ kind: "alias", name }));
const anyScalar = anyStyle(anyText);

/** Now and then an anchor or a tag on a node. */
const withProps = (node: fc.Arbitrary<Y>): fc.Arbitrary<Y> =>
  fc
    .tuple(node, onceIn(5, fc.constantFrom(...ANCHORS)), onceIn(12, tag))
    .map(([y, anchor, t]) => (y.kind === "alias" ? y : { ...y, anchor, tag: t }));

/** Any node at all: scalars, lists and mappings of any keys, aliases. */
const { wild } = fc.letrec<{ wild: Y; wildSeq: Y; wildMap: Y }>((tie) => ({
  wild: withProps(fc.oneof({ maxDepth: 3 }, anyScalar, tie("wildSeq"), tie("wildMap"), alias)),
  wildSeq: fc.array(tie("wild"), { maxLength: 4 }).map((items) => ({ kind: "seq", items })),
  wildMap: fc.array(fc.tuple(anyKey, tie("wild")), { maxLength: 4 }).map((entries) => ({ kind: "map", entries })),
}));

const listOf = (item: fc.Arbitrary<Y>, maxLength = 4): fc.Arbitrary<Y> =>
  fc.array(item, { maxLength }).map((items) => ({ kind: "seq", items }));

/**
 * DAG documents. Loose, every value is now and then of any kind, with anchors and tags, and a
 * mapping has at times a stray key or a key written twice; strict, the values are of the kinds
 * the format takes (most of those documents give a plan, the rest a problem of their values).
 */
function grammar(loose: boolean): fc.Arbitrary<Y> {
  /** `good`, or (loose) `bad` now and then. */
  const pick = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) =>
    loose ? fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: bad }) : good;
  const value = (good: fc.Arbitrary<Y>) => (loose ? withProps(pick(good, wild)) : good);

  /** A mapping with its `required` keys nearly always and each `optional` key now and then. */
  const mapping = (required: Record<string, fc.Arbitrary<Y>>, optional: Record<string, fc.Arbitrary<Y>>) => {
    const entry = (key: string, v: fc.Arbitrary<Y>, presentWeight: number, absentWeight: number) =>
      fc.oneof(
        { weight: presentWeight, arbitrary: value(v).map((y): [string, Y] => [key, y]) },
        { weight: absentWeight, arbitrary: fc.constant(null) },
      );
    const entries = [
      ...Object.entries(required).map(([k, v]) => entry(k, v, loose ? 20 : 1, loose ? 1 : 0)),
      ...Object.entries(optional).map(([k, v]) => entry(k, v, 1, 3)),
    ];
    const odd = loose ? fc.tuple(onceIn(8, fc.tuple(anyKey, wild)), onceIn(8, fc.nat())) : fc.constant([]);
    return fc.tuple(fc.tuple(...entries), odd).map(([present, [stray, twice]]): Y => {
      const list = present.filter((e): e is [string, Y] => e !== null);
      if (stray) list.push(stray);
      if (twice !== undefined && list.length > 0) list.push(list[twice % list.length]!);
      return { kind: "map", entries: list };
    });
  };

  // Strict, a scalar YAML would read as something else is written in quotes.
  const scalarOf = (texts: fc.Arbitrary<string>): fc.Arbitrary<Y> =>
    loose
      ? anyStyle(texts)
      : texts.map((t) => ({ kind: "scalar", text: t, style: /^[\w.-]+$/.test(t) ? "plain" : "double" }));
  const id = scalarOf(pick(fc.constantFrom("a", "b", "c", "init", "greet", "photos", "t-1", "_x"), idText));
  const text = pick(fc.oneof(fc.constantFrom("Alice", "m.wasm", "{{item}}", "{{params.n}}"), fc.string()), anyText);
  const scalar = scalarOf(text);
  const count = scalarOf(pick(fc.oneof(fc.nat({ max: 20 }).map(String), fc.constant("{{params.n}}")), numberText));
  const duration = scalarOf(pick(fc.constantFrom("30s", "500ms", "2m", "1h", "250", "{{params.n}}s"), unitText));
  const size = scalarOf(pick(fc.constantFrom("64MiB", "1GiB", "4GiB", "512", "{{params.n}}MiB"), unitText));
  const bool = scalarOf(pick(fc.constantFrom("true", "false"), fc.constantFrom("yes", "1", "True", "~")));
  const range = fc.tuple(fc.integer({ min: -5, max: 5 }), fc.nat({ max: 10 })).map(([start, width]): Y => ({
    kind: "seq",
    items: [start, start + width].map((n): Y => ({ kind: "scalar", text: String(n), style: "plain" })),
  }));
  const policy = {
    retries: count,
    lost_retries: count,
    retry_delay: duration,
    retry_delay_max: duration,
    timeout: duration,
    memory: size,
    priority: count,
  };
  const map = fc.oneof(
    mapping({ items: listOf(scalar) }, {}),
    mapping({ range: pick(range, listOf(count, 3)) }, {}),
    mapping({ over: id }, { max_instances: count }),
    mapping({ files: id }, { max_instances: count }),
    ...(loose
      ? [mapping({}, { items: listOf(scalar), range: listOf(count, 3), over: id, files: id, max_instances: count })]
      : []),
  );
  const requires = mapping({}, { memory: size, cores: count, labels: listOf(scalar), arch: scalar, platform: scalar });
  const paramType = scalarOf(
    pick(fc.constantFrom("string", "integer", "number", "boolean", "array", "object"), anyText),
  );
  const paramDecl = mapping(
    { type: paramType },
    { default: scalar, min: count, max: count, enum: listOf(scalar), description: scalar },
  );
  /** A mapping of `key`s to `value`s; strict, each key once. */
  const table = (key: fc.Arbitrary<string>, v: fc.Arbitrary<Y>, maxLength: number) =>
    (loose
      ? fc.array(fc.tuple(key, v), { maxLength })
      : fc.uniqueArray(fc.tuple(key, v), { maxLength, selector: ([k]) => k })
    ).map((entries): Y => ({ kind: "map", entries }));
  const paramKey = pick(fc.constantFrom("greeting", "tiles", "x"), fc.oneof(idText, paramName));
  const params = table(paramKey, fc.oneof(scalar, count, paramDecl), 3).map((y): Y => {
    // Strict, the `n` that placeholders name is there, a number.
    if (loose || y.kind !== "map") return y;
    return { kind: "map", entries: [["n", { kind: "scalar", text: "3", style: "plain" }], ...y.entries] };
  });
  const envKey = pick(fc.constantFrom("MODE", "LEVEL"), anyKey);
  const task = mapping(
    { id, module: scalarOf(pick(fc.constantFrom("m.wasm", `sha256:${"ab".repeat(32)}`), anyText)) },
    {
      depends_on: listOf(id, 3),
      map,
      args: listOf(scalar),
      env: table(envKey, scalar, 3),
      params,
      ...policy,
      requires,
      cache: bool,
    },
  );
  const tasks = fc.array(task, { minLength: loose ? 0 : 1, maxLength: 5 }).map((items): Y => ({ kind: "seq", items }));
  const other = { name: scalar, defaults: mapping({}, policy), inputs: listOf(id, 2), cache: bool };
  // Strict, the DAG has its params (with the `n` placeholders name).
  const dag = loose ? mapping({ tasks }, { ...other, params }) : mapping({ tasks, params }, other);
  return loose ? fc.oneof({ weight: 9, arbitrary: dag }, { weight: 1, arbitrary: wild }) : dag;
}

/** A scalar as YAML text in its style. */
function scalarText(y: { text: string; style: Style }): string {
  if (y.style === "double") return JSON.stringify(y.text);
  if (y.style === "single") return `'${y.text.replaceAll("'", "''")}'`;
  return y.text;
}

/** The anchor and tag of a node, as written before it (with a space), or "". */
function props(y: Y): string {
  if (y.kind === "alias") return "";
  return [y.anchor && `&${y.anchor}`, y.tag].filter(Boolean).join(" ");
}

/** A node in flow style: `{key: value, ...}` and `[item, ...]`. */
function flow(y: Y): string {
  const body =
    y.kind === "scalar"
      ? scalarText(y)
      : y.kind === "alias"
        ? `*${y.name}`
        : y.kind === "seq"
          ? `[${y.items.map(flow).join(", ")}]`
          : `{${y.entries.map(([k, v]) => `${k}: ${flow(v)}`).join(", ")}}`;
  const before = props(y);
  return before ? `${before} ${body}` : body;
}

/** A node in block style down to `flowBelow` levels (flow style under that), indented by `indent`. */
function block(y: Y, indent: number, flowBelow: number): string {
  const pad = " ".repeat(indent);
  if ((y.kind !== "seq" && y.kind !== "map") || flowBelow <= 0) return `${pad}${flow(y)}`;
  const items: [string, Y][] =
    y.kind === "seq" ? y.items.map((v) => ["-", v]) : y.entries.map(([k, v]) => [`${k}:`, v]);
  if (items.length === 0) return `${pad}${flow(y)}`;
  const head = props(y) ? `${pad}${props(y)}\n` : "";
  const lines = items.map(([lead, v]) => {
    const nestedBlock = (v.kind === "seq" || v.kind === "map") && flowBelow > 1;
    return nestedBlock ? `${pad}${lead}\n${block(v, indent + 2, flowBelow - 1)}` : `${pad}${lead} ${flow(v)}`;
  });
  return head + lines.join("\n");
}

/** The node as a JS value for `yaml`'s stringify: an alias is the same object as its anchor's. */
function toValue(y: Y, anchors: Map<string, unknown>): unknown {
  if (y.kind === "alias") return anchors.get(y.name) ?? `*${y.name}`;
  let value: unknown;
  if (y.kind === "scalar") {
    const n = Number(y.text);
    value = y.style === "plain" && y.text.trim() !== "" && !Number.isNaN(n) ? n : y.text;
  } else if (y.kind === "seq") {
    value = y.items.map((v) => toValue(v, anchors));
  } else {
    const out: Record<string, unknown> = {};
    for (const [k, v] of y.entries) Object.defineProperty(out, k, { value: toValue(v, anchors), enumerable: true });
    value = out;
  }
  if (y.anchor) anchors.set(y.anchor, value);
  return value;
}

const PREFIXES = ["", "", "", "---\n", "%YAML 1.1\n---\n", "%YAML 1.2\n---\n", "# a DAG\n", "\ufeff", "--- !!map\n"];
const SUFFIXES = ["", "", "", "\n", "\n...\n", "\n---\nsecond: document\n", "\n# end", "\r\n"];

const documents = fc
  .record({
    tree: fc.oneof(grammar(true), grammar(false)),
    style: fc.constantFrom("flow", "block", "yaml"),
    flowBelow: fc.integer({ min: 1, max: 5 }),
    yamlOptions: fc.record({
      indent: fc.constantFrom(2, 4),
      lineWidth: fc.constantFrom(0, 20, 80),
      defaultStringType: fc.constantFrom<"PLAIN" | "QUOTE_DOUBLE" | "QUOTE_SINGLE" | "BLOCK_LITERAL">(
        "PLAIN",
        "QUOTE_DOUBLE",
        "QUOTE_SINGLE",
        "BLOCK_LITERAL",
      ),
      collectionStyle: fc.constantFrom<"any" | "block" | "flow">("any", "block", "flow"),
    }),
    prefix: fc.constantFrom(...PREFIXES),
    suffix: fc.constantFrom(...SUFFIXES),
    lineEnd: fc.constantFrom("\n", "\n", "\n", "\r\n"),
  })
  .map(({ tree, style, flowBelow, yamlOptions, prefix, suffix, lineEnd }) => {
    let body: string;
    if (style === "flow") body = flow(tree);
    else if (style === "block") body = block(tree, 0, flowBelow);
    else {
      try {
        body = stringify(toValue(tree, new Map()), yamlOptions);
      } catch {
        body = flow(tree);
      }
    }
    return prefix + body.replaceAll("\n", lineEnd) + suffix;
  });

// ---------------------------------------------------------------------------------------------
// Deeply nested documents: past any depth a DAG needs, up to where a recursive reader runs out
// of stack.

const OPENERS: [string, string][] = [
  ["[", "]"],
  ["{a: ", "}"],
  ["[&x ", "]"],
  ["!!seq [", "]"],
  ["{? ", "}"],
  ["- ", ""],
  ["? ", ""],
];
/** Block collections one inside the other, one a line: mappings by indentation, lists under keys. */
const INDENTED: ((i: number) => string)[] = [
  (i) => `${" ".repeat(i)}k:`,
  (i) => `${"  ".repeat(i)}- k:`,
  (i) => `${" ".repeat(i)}? k`,
];
const deepDocuments = fc
  .record({
    opener: fc.constantFrom(...OPENERS),
    indented: fc.option(fc.constantFrom(...INDENTED), { freq: 3, nil: undefined }),
    depth: fc.integer({ min: 50, max: 2500 }),
    closed: fc.boolean(),
    where: fc.constantFrom("top", "params", "items"),
  })
  .map(({ opener: [open, close], indented, depth, closed, where }) => {
    const body = indented
      ? Array.from({ length: depth }, (_, i) => indented(i)).join("\n") + " x"
      : open.repeat(depth) + "x" + (closed ? close.repeat(depth) : "");
    // A line after the nesting closes every level at once.
    if (where === "top") return closed ? `${body}\nz: 1\n` : body;
    const pad = (n: number) => body.replaceAll("\n", `\n${" ".repeat(n)}`);
    if (where === "params") return `params:\n  a:\n    ${pad(4)}\ntasks: [{ id: a, module: m }]\n`;
    return `tasks:\n  - id: a\n    module: m\n    map:\n      items:\n        - ${pad(10)}\n`;
  });

// ---------------------------------------------------------------------------------------------
// (3) The example DAGs with characters and lines deleted, inserted, replaced, swapped, repeated.

const EDITS = [
  "deleteChars",
  "insertChars",
  "replaceChars",
  "deleteLine",
  "duplicateLine",
  "swapLines",
  "insertLine",
  "indent",
  "dedent",
  "replaceValue",
  "borrowLine",
] as const;
interface Edit {
  op: (typeof EDITS)[number];
  at: number;
  other: number;
  text: string;
}
const edit: fc.Arbitrary<Edit> = fc.record({
  op: fc.constantFrom(...EDITS),
  at: fc.nat(),
  other: fc.nat(),
  text: fc.oneof(
    fc.string({ unit: fc.constantFrom(...YAML_CHARS), minLength: 1, maxLength: 4 }),
    fc.constantFrom(...TOKENS),
    anyText.filter((t) => t.length < 1000),
    fc.string({ unit: "binary", minLength: 1, maxLength: 3 }),
  ),
});

/** The text with one edit applied; positions wrap around the text's length. */
function applyEdit(text: string, e: Edit): string {
  const pos = e.at % (text.length + 1);
  const span = 1 + (e.other % 3);
  const lines = text.split("\n");
  const i = e.at % lines.length;
  const j = e.other % lines.length;
  switch (e.op) {
    case "deleteChars":
      return text.slice(0, pos) + text.slice(pos + span);
    case "insertChars":
      return text.slice(0, pos) + e.text + text.slice(pos);
    case "replaceChars":
      return text.slice(0, pos) + e.text + text.slice(pos + span);
    case "deleteLine":
      lines.splice(i, 1);
      break;
    case "duplicateLine":
      lines.splice(i, 0, lines[i]!);
      break;
    case "swapLines":
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      break;
    case "insertLine":
      lines.splice(i, 0, e.text);
      break;
    case "indent":
      lines[i] = " ".repeat(span) + lines[i]!;
      break;
    case "dedent":
      lines[i] = lines[i]!.replace(new RegExp(`^ {0,${span}}`), "");
      break;
    case "replaceValue": {
      const colon = lines[i]!.indexOf(": ");
      lines[i] = colon < 0 ? lines[i]! + e.text : lines[i]!.slice(0, colon + 2) + e.text;
      break;
    }
    case "borrowLine": {
      // A line of another example, where this one has its own.
      const from = examples[e.other % examples.length]!.split("\n");
      lines.splice(i, 0, from[e.at % from.length]!);
      break;
    }
  }
  return lines.join("\n");
}

const mutations = fc
  .tuple(fc.nat({ max: examples.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 6 }))
  .map(([which, edits]) => edits.reduce(applyEdit, examples[which]!));

// ---------------------------------------------------------------------------------------------
// Graphs: tasks that depend on and map over one another at random (cycles, self-dependencies,
// unknown names and maps over maps among them), now and then a chain thousands of tasks long.

interface GraphTask {
  deps: number[];
  over?: number | undefined;
  mapped: "none" | "items" | "range" | "files";
}
const graphTask: fc.Arbitrary<GraphTask> = fc.record({
  deps: fc.array(fc.nat(), { maxLength: 3 }),
  over: onceIn(6, fc.nat()),
  mapped: fc.constantFrom("none", "none", "none", "items", "range", "files"),
});
/** A chain of `n` tasks, each depending on the next (the last on the first: a cycle), or on the one before. */
const chain = (n: number, kind: "forward" | "cycle" | "backward"): GraphTask[] =>
  Array.from({ length: n }, (_, i) => {
    if (kind === "backward") return { deps: i > 0 ? [i - 1] : [], mapped: "none" };
    return { deps: i < n - 1 ? [i + 1] : kind === "cycle" ? [0] : [], mapped: "none" };
  });
const graphs = fc
  .oneof(
    // Acyclic (each task names tasks before it only) or not, some names unknown either way.
    { weight: 49, arbitrary: fc.tuple(fc.array(graphTask, { minLength: 1, maxLength: 30 }), fc.boolean()) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 1000, max: 5000 }), fc.constantFrom("forward", "cycle", "backward"))
        .map(([n, kind]): [GraphTask[], boolean] => [chain(n, kind), false]),
    },
  )
  .map(([tasks, acyclic]) => {
    const n = tasks.length;
    // Index n names the input, n + 1 a task that does not exist.
    const name = (i: number) => (i < n ? `t${i}` : i === n ? "input0" : "nothing");
    const ref = (d: number, i: number) => (acyclic ? (i > 0 ? name(d % i) : "input0") : name(d % (n + 2)));
    const lines = tasks.map((t, i) => {
      const fields = [`id: t${i}`, "module: m"];
      if (t.deps.length > 0) fields.push(`depends_on: [${t.deps.map((d) => ref(d, i)).join(", ")}]`);
      if (t.over !== undefined) fields.push(`map: { over: ${ref(t.over, i)} }`);
      else if (t.mapped === "items") fields.push("map: { items: [1, 2] }");
      else if (t.mapped === "range") fields.push("map: { range: [0, 3] }");
      else if (t.mapped === "files") fields.push("map: { files: input0 }");
      return `  - { ${fields.join(", ")} }`;
    });
    return `inputs: [input0]\ntasks:\n${lines.join("\n")}\n`;
  });

// ---------------------------------------------------------------------------------------------

describe("parseDag under fuzzing", () => {
  it("reads the example DAGs as they are", () => {
    expect(examples.length).toBeGreaterThan(0);
    for (const text of examples) expect(check(text).ok).toBe(true);
  });

  it(
    "answers any string with a plan or located problems",
    () => {
      fc.assert(
        fc.property(strings, givenParams, (text, given) => void check(text, given)),
        budget(2000),
      );
    },
    TIMEOUT_MS,
  );

  it(
    "answers documents built from the format's keys, with values of every type",
    () => {
      fc.assert(
        fc.property(documents, givenParams, (text, given) => void check(text, given)),
        budget(1000),
      );
    },
    TIMEOUT_MS,
  );

  it(
    "answers deeply nested documents",
    () => {
      fc.assert(
        fc.property(deepDocuments, (text) => void check(text)),
        budget(300),
      );
    },
    TIMEOUT_MS,
  );

  it(
    "answers the example DAGs with random edits",
    () => {
      fc.assert(
        fc.property(mutations, givenParams, (text, given) => void check(text, given)),
        budget(1000),
      );
    },
    TIMEOUT_MS,
  );

  it(
    "answers task graphs of any shape, and orders a plan's nodes after their dependencies",
    () => {
      fc.assert(
        fc.property(graphs, (text) => void check(text)),
        budget(500),
      );
    },
    TIMEOUT_MS,
  );

  it("refuses a YAML alias bomb quickly, as a problem", () => {
    // "Billion laughs": nine levels of nine aliases each, 9^9 strings once expanded.
    const levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    const bomb =
      levels
        .map(
          (name, i) =>
            `${name}: &${name} [${Array(9)
              .fill(i === 0 ? '"lol"' : `*${levels[i - 1]}`)
              .join(", ")}]`,
        )
        .join("\n") + "\ntasks: [{ id: t, module: m }]\n";
    const started = performance.now();
    const result = check(bomb);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(result.ok).toBe(false);
  });
});

// What the fuzzing found, each a case of its own: every one of these threw, took seconds or took
// the process down before the fixes in core/dag/parse.ts and core/dag/params.ts.
describe("parseDag on what fuzzing found", () => {
  /** The problems of a document that must be refused. */
  const refused = (text: string) => {
    const result = check(text);
    expect(result.ok).toBe(false);
    return result.ok ? [] : result.problems;
  };

  it("refuses an alias with no anchor (yaml threw a ReferenceError)", () => {
    expect(refused("*a")[0]!.message).toMatch(/YAML alias error: Unresolved alias/);
    expect(refused("tasks: [{ id: a, module: *m }]")[0]!.message).toMatch(/Unresolved alias/);
  });

  it("refuses aliases past the alias budget (yaml threw a ReferenceError)", () => {
    // A chain of 300 anchors, each a list holding the one before: no bomb, but past 100 aliases.
    const chain = Array.from({ length: 300 }, (_, i) => `k${i}: &a${i} [${i === 0 ? "x" : `*a${i - 1}`}]`);
    expect(refused(`${chain.join("\n")}\ntasks: [{ id: a, module: m }]\n`)[0]!.message).toMatch(
      /Excessive alias count/,
    );
  });

  it("refuses an alias inside the node it names (substitution recursed until the stack ran out)", () => {
    for (const text of [
      "tasks: [{ id: a, module: m, map: &m { items: [*m] } }]",
      "tasks: [{ id: a, module: m, map: { items: &i [*i] } }]",
      "tasks: [{ id: a, module: m, requires: &r { labels: *r } }]",
      "defaults: &d { retries: *d }\ntasks: [{ id: a, module: m }]",
      // JSON.stringify of the task threw "Converting circular structure to JSON".
      "tasks: [{ id: a, module: m, params: &p { a: *p } }]",
    ])
      expect(refused(text)[0]!.message).toMatch(/alias stands inside the node it names/);
  });

  it("refuses collections nested past 200 levels, however often (yaml's stack overflow aborted Node)", () => {
    // The process died on the second or third such document, not the first.
    const deep = "[".repeat(10_000) + "]".repeat(10_000);
    for (let i = 0; i < 4; i++) expect(refused(deep)[0]).toMatchObject({ line: 1, column: 201 });
    // Block lists and mappings, one inside the other, two levels a line.
    const block = Array.from({ length: 110 }, (_, i) => `${"  ".repeat(i)}- k:`);
    expect(refused(`${block.join("\n")} x\n`)[0]).toMatchObject({ line: 101, column: 201 });
  });

  it("reads 200 levels of nesting and refuses 201, as written or through aliases", () => {
    // The document, its task list, the task, its map and map.items are five levels.
    const items = (depth: number) =>
      `tasks:\n  - id: a\n    module: m\n    map:\n      items:\n        - ${"[".repeat(depth - 5)}1${"]".repeat(depth - 5)}\n`;
    expect(check(items(200)).ok).toBe(true);
    expect(refused(items(201))[0]!.message).toMatch(/nested deeper than 200 levels/);
    // 150 levels written once and held again by an alias 100 levels down.
    const deep = `${"[".repeat(150)}1${"]".repeat(150)}`;
    const aliased = `x: &d ${deep}\ntasks: [{ id: a, module: m, params: { p: ${"[".repeat(100)}*d${"]".repeat(100)} } }]`;
    expect(refused(aliased)[0]!.message).toMatch(/aliases expanded, the document nests deeper than 200 levels/);
  });

  it("refuses keys that are collections or aliases quickly (yaml took seconds to write them out as text)", () => {
    // 40 params, each a key holding a key 190 levels down: 30 KB that took 3 s, and more after.
    const chain = `${"{? ".repeat(190)}x${"}".repeat(190)}`;
    const params = Array.from({ length: 40 }, (_, i) => `  p${i}: ${chain}`);
    const started = performance.now();
    const problems = refused(`params:\n${params.join("\n")}\ntasks: [{ id: a, module: m }]\n`);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(problems[0]).toMatchObject({ line: 2, column: 10, message: expect.stringMatching(/a key is a plain name/) });
    expect(refused("x: &k [1]\n*k : 2\ntasks: [{ id: a, module: m }]")[0]!.line).toBe(2);
    expect(refused("tasks: [{ id: a, module: m }]\n? - x\n: y\n")[0]!.line).toBe(2);
    // The usual way to write one: a placeholder out of quotes, `{{…}}` being a mapping in a mapping.
    expect(refused("tasks: [{ id: a, module: m, retries: {{params.n}} }]")[0]!.message).toMatch(
      /placeholder goes in quotes/,
    );
  });

  it("refuses lines indented past 400 columns (yaml's parser recursed closing that many block levels)", () => {
    // 1,805 nested explicit keys, closed at once by the line after them: the parser itself threw.
    const text = `params:\n  a:\n    ${"? ".repeat(1_805)}x\ntasks: [{ id: a, module: m }]\n`;
    expect(refused(text)[0]).toMatchObject({
      line: 3,
      column: 401,
      message: expect.stringMatching(/past 400 columns/),
    });
    const mappings = Array.from({ length: 3_000 }, (_, i) => `${" ".repeat(i)}k:`);
    expect(refused(`${mappings.join("\n")} x\nz: 1\n`)[0]!.line).toBe(402);
  });

  it("takes {{params.constructor}} for a param the DAG does not have (it substituted Object and threw)", () => {
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const problems = refused(`tasks: [{ id: a, module: m, retry_delay_max: "{{params.${name}}}" }]`);
      expect(problems[0]).toMatchObject({
        path: "tasks[0].retry_delay_max",
        message: expect.stringMatching(/names no param/),
      });
    }
    const nested = refused("params: { n: 1 }\ntasks: [{ id: a, module: m, retries: '{{params.n.constructor}}' }]");
    expect(nested[0]!.message).toMatch(/`\{\{params.n.constructor\}\}` names no param/);
  });

  it("plans a chain of 5,000 tasks (ordering them recursed until the stack ran out)", () => {
    const tasks = Array.from({ length: 5_000 }, (_, i) => `  - { id: t${i}, module: m, depends_on: [t${i + 1}] }`);
    const result = check(`tasks:\n${tasks.join("\n")}\n  - { id: t5000, module: m }\n`);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.plan.nodes.map((n) => n.id).slice(0, 2)).toEqual(["t5000", "t4999"]);
  });

  it("still names the cycle in a long chain closed on itself", () => {
    const tasks = Array.from(
      { length: 5_000 },
      (_, i) => `  - { id: t${i}, module: m, depends_on: [t${(i + 1) % 5_000}] }`,
    );
    const problems = refused(`tasks:\n${tasks.join("\n")}\n`);
    expect(problems[0]!.message).toMatch(/^dependency cycle: t0 → t1 → t2 → .* → t4999 → t0$/);
  });
});
