// Fuzzing in workerd (fast-check): random and mutated requests to every route (methods, paths
// with random ids, queries, headers, bodies: DAG documents cut and spliced, JSON of any shape)
// never get a 5xx, and a 4xx says why in `{error}`; random, mutated, out-of-order, duplicated and
// oversized frames on a runner's run and pool sockets never break an object (a socket it closes
// gets a close code of the protocol's, never 1011), and a control run still succeeds afterwards.
// A fixed budget in CI; `npm run fuzz -- --seconds N` runs each property about N seconds.
import { env, SELF } from "cloudflare:test";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, asDevice, base, RUNNER, RunnerSocket, runnerInfo } from "./socket";

/** Seconds per property when `npm run fuzz` asks for a time; 0 in `npm test` (the fixed counts below). */
const SECONDS = Number(env.FUZZ_SECONDS ?? "0") || 0;
const budget = (runs: number): fc.Parameters<unknown> =>
  SECONDS > 0 ? { numRuns: 1e9, interruptAfterTimeLimit: SECONDS * 1000 } : { numRuns: runs };
/** A property's test timeout: its budget and room to spare. */
const TIMEOUT = (SECONDS > 0 ? SECONDS * 1000 : 0) + 120_000;
let cases = 0;
afterAll(() => console.log(`fuzz (workers): ${cases} cases`));

const CONTROL = "name: control\ncache: false\ntasks:\n  - { id: a, module: step.wasm }\n";
const DAG = `name: fuzzed
params: { n: { type: integer, default: 3, min: 1 } }
inputs: [text]
tasks:
  - id: split
    module: step.wasm
    depends_on: [text]
  - id: each
    module: step.wasm
    depends_on: [split]
    map: { over: split }
    args: ["{{item}}", "{{params.n}}"]
  - id: sum
    module: step.wasm
    depends_on: [each]
`;

/** A control run (submitted before the fuzzing) and a device's credential, for paths and headers. */
let controlRun = "";
let device = { Authorization: "" };

beforeAll(async () => {
  const put = await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  expect(put.status).toBe(200);
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: CONTROL });
  expect(res.status).toBe(201);
  controlRun = (await res.json<{ id: string }>()).id;
  device = await asDevice("fuzz-device");
});

const hex = (min: number, max: number) =>
  fc.array(fc.constantFrom(..."0123456789abcdef"), { minLength: min, maxLength: max }).map((a) => a.join(""));

/** A path segment: ids of every shape (the control run's most often), names, junk, escapes. */
const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constant("CONTROL") },
  { weight: 2, arbitrary: hex(64, 64) },
  { weight: 1, arbitrary: hex(0, 70) },
  { weight: 1, arbitrary: hex(64, 64).map((h) => `sha256:${h}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 10 }).map(encodeURIComponent) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("..", "%00", "%2F", "%ZZ", "a", "step.wasm", "self", "enroll", "connect", "envelope"),
  },
  { weight: 1, arbitrary: fc.nat(5000).map((n) => "x".repeat(n)) },
);

const TEMPLATES = [
  "/api/dags",
  "/api/dags/*",
  "/api/dags/*/timeline",
  "/api/dags/*/watch",
  "/api/dags/*/*",
  "/api/dags/*/tasks/*/output",
  "/api/dags/*/tasks/*/logs",
  "/api/enrollments",
  "/api/enrollments/*",
  "/api/modules",
  "/api/modules/*",
  "/api/runners",
  "/api/runners/*",
  "/api/runners/*/trust",
  "/api/blobs/*",
  "/api/tokens",
  "/api/tokens/*",
  "/metrics",
  "/runner-*.tgz",
  "/*",
  "/*/*/*",
];

const path = fc
  .tuple(fc.constantFrom(...TEMPLATES), fc.array(segment, { minLength: 3, maxLength: 3 }))
  .map(([template, parts]) => {
    let i = 0;
    return template.replace(/\*/g, () => parts[i++]!.replace("CONTROL", controlRun));
  });

const query = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("summary", "offset", "limit", "state", "run", "token", "attempt", "task"),
        fc.string({ maxLength: 8 }),
      ),
      fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String), fc.constantFrom("-1", "1e9", "NaN", "")),
    ),
    { maxLength: 3 },
  )
  .map((pairs) => (pairs.length === 0 ? "" : `?${new URLSearchParams(pairs).toString()}`));

/** A DAG document cut, spliced and mangled: where parsers and schemas meet. */
const mutatedDag = fc
  .array(
    fc.tuple(
      fc.nat(DAG.length),
      fc.nat(40),
      fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(": ", "- ", "{", "]", "\n", "&a", "*a", "'")),
    ),
    { maxLength: 6 },
  )
  .map((edits) => edits.reduce((doc, [at, cut, put]) => doc.slice(0, at) + put + doc.slice(at + cut), DAG));

const body = fc.oneof(
  fc.string({ maxLength: 200 }),
  mutatedDag,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        dag: fc.oneof(mutatedDag, fc.string()),
        params: fc.jsonValue({ maxDepth: 2 }),
        inputs: fc.jsonValue({ maxDepth: 3 }),
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc.uint8Array({ maxLength: 300 }),
);

const authorization = fc.oneof(
  { weight: 6, arbitrary: fc.constant("api") },
  { weight: 1, arbitrary: fc.constantFrom("none", "garbage", "runner", "device") },
);
const headerOf = (kind: string): Record<string, string> =>
  kind === "api"
    ? API
    : kind === "runner"
      ? RUNNER
      : kind === "device"
        ? device
        : kind === "garbage"
          ? { Authorization: "Bearer nope" }
          : {};

const request = fc.record({
  method: fc.oneof(
    { weight: 4, arbitrary: fc.constant("GET") },
    { weight: 3, arbitrary: fc.constant("POST") },
    { weight: 2, arbitrary: fc.constantFrom("PUT", "DELETE") },
    { weight: 1, arbitrary: fc.constantFrom("PATCH", "HEAD", "OPTIONS") },
  ),
  path,
  query,
  auth: authorization,
  contentType: fc.option(
    fc.constantFrom("application/json", "application/yaml", "application/wasm", "text/plain", "x/y"),
    { nil: undefined },
  ),
  key: fc.option(
    fc.string({ maxLength: 20 }).filter((k) => /^[\x20-\x7e]*$/.test(k)),
    { nil: undefined },
  ),
  upgrade: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  body,
});

describe("fuzzed HTTP requests", () => {
  it(
    "never get a 5xx, and a 4xx says why",
    async () => {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          cases++;
          const headers: Record<string, string> = { ...headerOf(r.auth) };
          if (r.contentType) headers["Content-Type"] = r.contentType;
          if (r.key !== undefined) headers["Idempotency-Key"] = r.key;
          if (r.upgrade) headers.Upgrade = "websocket";
          const res = await SELF.fetch(`${base}${r.path}${r.query}`, {
            method: r.method,
            headers,
            body: r.method === "GET" || r.method === "HEAD" ? undefined : r.body,
          });
          if (res.webSocket) {
            res.webSocket.accept();
            res.webSocket.close(1000, "fuzz");
            return;
          }
          const text = await res.text();
          expect(res.status, `${r.method} ${r.path}${r.query}: ${text.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400 && r.method !== "HEAD" && res.headers.get("Content-Type")?.includes("json"))
            expect(typeof (JSON.parse(text) as { error?: unknown }).error, text.slice(0, 300)).toBe("string");
        }),
        budget(400),
      );
    },
    TIMEOUT,
  );
});

/**
 * Frames a runner might send: mostly well formed, naming the control run's task and attempts near
 * its real ones, so that they reach the machine (results, starts, hand-backs, logs), and some with
 * fields of any value, so that they reach the schema's errors.
 */
const task = fc.oneof(
  { weight: 4, arbitrary: fc.constant("a") },
  fc.constantFrom("nope", "a[0]", ""),
  fc.string({ maxLength: 10 }),
);
const attempt = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) },
  fc.integer({ min: -2, max: 0 }),
  fc.double(),
  fc.constant(2 ** 60),
);
const ref = fc.record({ task, attempt });
const result = fc.record(
  {
    task,
    attempt,
    ok: fc.boolean(),
    output: fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 20 })),
    outputRef: fc.record({ sha256: hex(64, 64), size: fc.nat() }),
    failure: fc.record({
      kind: fc.constantFrom("exit", "trap", "lost", "timeout", "x"),
      message: fc.string({ maxLength: 30 }),
      retryable: fc.boolean(),
    }),
    stderr: fc.string({ maxLength: 30 }),
    durationMs: fc.oneof({ weight: 4, arbitrary: fc.nat(10_000) }, fc.integer()),
  },
  { requiredKeys: ["task", "attempt", "ok", "durationMs"] },
);
const want = fc.oneof({ weight: 4, arbitrary: fc.nat(10) }, fc.integer(), fc.constant(1e9));
const frame = fc.oneof(
  fc.record({
    type: fc.constant("results"),
    results: fc.array(result, { minLength: 1, maxLength: 4 }),
    want,
    received: fc.nat(20),
    started: fc.array(ref, { maxLength: 2 }),
  }),
  fc.record({ type: fc.constant("want"), want, received: fc.nat(20), started: fc.array(ref, { maxLength: 2 }) }),
  fc.record({ type: fc.constant("started"), tasks: fc.array(ref, { minLength: 1, maxLength: 3 }) }),
  fc.record({ type: fc.constant("reject"), tasks: fc.array(ref, { minLength: 1, maxLength: 3 }) }),
  fc.record({ type: fc.constant("log"), task, attempt, offset: fc.nat(2000), chunk: fc.string({ maxLength: 50 }) }),
  fc.record({ type: fc.constant("status"), free: want, runs: fc.constant([]) }),
  fc.record({
    type: fc.constant("hello"),
    protocol: fc.constantFrom(PROTOCOL_VERSION, PROTOCOL_VERSION, 1, 99),
    runner: fc.constant(runnerInfo("fuzz-device", 2)),
    want,
  }),
  fc.record({ type: fc.string({ maxLength: 8 }) }),
);
const wire = fc.oneof(
  { weight: 6, arbitrary: frame.map((f) => JSON.stringify(f)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
  { weight: 1, arbitrary: fc.constantFrom("ping", "", "{", "null", "[]", '{"type":"results"}', "x".repeat(300_000)) },
);

/** The close codes a socket of the protocol may get: the protocol's own, and a plain close. */
const CLOSES: number[] = [...Object.values(CLOSE), 1000, 1005];

describe("fuzzed runner frames", () => {
  it(
    "never break the run or the pool: closes are the protocol's, and the objects still answer",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.boolean(),
          fc.array(wire, { minLength: 1, maxLength: 12 }),
          async (pool, helloFirst, frames) => {
            cases++;
            const socket = await RunnerSocket.open(
              pool ? "/api/runners/connect" : `/api/runners/connect?run=${controlRun}`,
              "fuzz-device",
            );
            if (helloFirst)
              socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("fuzz-device", 2), want: 2 });
            // Out of order and duplicated: a frame is sometimes sent twice.
            for (const f of frames) {
              if (socket.closed) break;
              socket.send(f);
              if (f.length % 3 === 0 && !socket.closed) socket.send(f);
            }
            // What the object makes of them is settled once a request to it has been answered.
            const status = await SELF.fetch(`${base}/api/dags/${controlRun}?summary`, { headers: API });
            expect(status.status).toBe(200);
            const runners = await SELF.fetch(`${base}/api/runners`, { headers: API });
            expect(runners.status).toBe(200);
            // An exception inside the object comes back as a non-fatal error frame: none may.
            const broke = socket.seen.filter(
              (f) => f.type === "error" && /could not process the frame/.test(f.message),
            );
            expect(broke, JSON.stringify(frames).slice(0, 500)).toEqual([]);
            if (socket.closed) expect(CLOSES, JSON.stringify(socket.closed)).toContain(socket.closed.code);
            else socket.ws.close(1000, "fuzz done");
          },
        ),
        budget(60),
      );
    },
    TIMEOUT,
  );
});

describe("after the fuzzing", () => {
  it("a control run still succeeds with a well-behaved runner", async () => {
    const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: CONTROL });
    expect(res.status).toBe(201);
    const id = (await res.json<{ id: string }>()).id;
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "good-device");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("good-device", 1), want: 1 });
    await run.next("welcome");
    const { tasks } = await run.next("tasks");
    const [a] = tasks;
    run.send({
      type: "results",
      results: [{ task: a!.task, attempt: a!.attempt, ok: true, output: btoa("{}"), stderr: "", durationMs: 1 }],
      want: 0,
      received: 1,
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const summary = await (
        await SELF.fetch(`${base}/api/dags/${id}?summary`, { headers: API })
      ).json<{ status: string }>();
      if (summary.status === "succeeded") break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});
