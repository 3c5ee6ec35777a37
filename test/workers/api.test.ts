// The Worker's HTTP API inside workerd: auth and fail-closed secrets, module validation, and
// every kind of bad DAG answered with a located 400.
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { API_CSP, PAGE_CSP } from "../../worker/headers";
import { app } from "../../worker/index";
import { wasmModule } from "../helpers/wasm-builder";
import { API, asDevice, base, RUNNER } from "./socket";

const hex = async (bytes: BufferSource) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");

const submit = (yaml: string) => SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: yaml });
const upload = (name: string, bytes: BodyInit = wasmModule()) =>
  SELF.fetch(`${base}/api/modules/${name}`, { method: "PUT", headers: API, body: bytes });

interface Problems {
  error: string;
  problems: { path: string; line: number; column: number; message: string }[];
}

describe("auth", () => {
  it("answers 401 without a token, with a wrong token, and with the runner token on API routes", async () => {
    const none = await SELF.fetch(`${base}/api/dags`);
    expect(none.status).toBe(401);
    expect(none.headers.get("WWW-Authenticate")).toContain("Bearer");
    expect((await none.json<{ error: string }>()).error).toMatch(/Authorization/);
    expect((await SELF.fetch(`${base}/api/dags`, { headers: { Authorization: "Bearer nope" } })).status).toBe(401);
    expect((await SELF.fetch(`${base}/api/dags`, { headers: RUNNER })).status).toBe(401);
    expect(
      (await SELF.fetch(`${base}/api/runners/connect`, { headers: { ...API, Upgrade: "websocket" } })).status,
    ).toBe(401);
  });

  it("fails closed: with no secrets configured, submissions and runners are refused with a reason", async () => {
    const bare = { ...env, API_TOKEN: undefined, RUNNER_TOKEN: undefined };
    const dag = await app.request("/api/dags", { method: "POST", headers: API, body: "tasks: []" }, bare);
    expect(dag.status).toBe(503);
    expect((await dag.json<{ error: string }>()).error).toMatch(/no API_TOKEN configured/);
    // Without RUNNER_TOKEN the development secret enrolls nobody, and enrollments need the API token.
    const enroll = { method: "POST", headers: RUNNER, body: JSON.stringify({ name: "box" }) };
    const runner = await app.request("/api/runners/enroll", enroll, bare);
    expect(runner.status).toBe(401);
    expect((await runner.json<{ error: string }>()).error).toMatch(/unknown enrollment token/);
    const minted = await app.request("/api/enrollments", { method: "POST", headers: API, body: "{}" }, bare);
    expect(minted.status).toBe(503);
    const upload = await app.request("/api/modules/x.wasm", { method: "PUT", headers: API, body: wasmModule() }, bare);
    expect(upload.status).toBe(503);
  });
});

describe("PUT /api/modules/:name", () => {
  it("stores a valid task module by sha256", async () => {
    const bytes = wasmModule();
    const res = await upload("valid.wasm", bytes);
    expect(res.status).toBe(200);
    const body = await res.json<{ name: string; sha256: string; size: number }>();
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    expect(body).toEqual({ name: "valid.wasm", sha256: digest, size: bytes.length });
    const back = await SELF.fetch(`${base}/api/modules/sha256:${digest}`, { headers: API });
    expect(new Uint8Array(await back.arrayBuffer())).toEqual(bytes);
  });

  it("refuses a module with an import outside WASI preview1, naming it", async () => {
    const res = await upload("bad.wasm", wasmModule({ imports: [["env", "open_socket"]] }));
    expect(res.status).toBe(400);
    const body = await res.json<Problems>();
    expect(body.problems[0]!.message).toContain(`"env"."open_socket"`);
  });

  it("refuses bytes that are not WebAssembly, and a module without _start", async () => {
    const junk = await upload("junk.wasm", new TextEncoder().encode("#!/bin/sh\necho hi\n"));
    expect(junk.status).toBe(400);
    expect((await junk.json<Problems>()).problems[0]!.message).toMatch(/magic/);
    const lib = await upload("lib.wasm", wasmModule({ exportStart: false }));
    expect((await lib.json<Problems>()).problems[0]!.message).toMatch(/_start/);
  });

  it("refuses an invalid module name", async () => {
    expect((await upload("..%2Fetc")).status).toBe(400);
  });
});

describe("POST /api/dags problems", () => {
  const cases: [string, string, { path: string; line: number; column: number; message: RegExp }][] = [
    [
      "YAML syntax error",
      "name: x\ntasks:\n  - id: a\n    module: [unclosed\n",
      { path: "", line: 5, column: 1, message: /YAML syntax error/ },
    ],
    [
      "a cycle",
      "tasks:\n  - id: a\n    module: m.wasm\n    depends_on: [b]\n" +
        "  - id: b\n    module: m.wasm\n    depends_on: [a]\n",
      { path: "tasks[0].depends_on[0]", line: 4, column: 18, message: /cycle: a → b → a/ },
    ],
    [
      "an unknown dependency",
      "tasks:\n  - id: a\n    module: m.wasm\n    depends_on: [ghost]\n",
      { path: "tasks[0].depends_on[0]", line: 4, column: 18, message: /unknown dependency "ghost"/ },
    ],
    [
      "a duplicate id",
      "tasks:\n  - id: a\n    module: m.wasm\n  - id: a\n    module: m.wasm\n",
      { path: "tasks[1].id", line: 4, column: 9, message: /duplicate task id "a"/ },
    ],
    [
      "an unknown module",
      "tasks:\n  - id: a\n    module: never-uploaded.wasm\n",
      { path: "tasks[0].module", line: 3, column: 13, message: /unknown module "never-uploaded.wasm"/ },
    ],
    [
      "a missing tasks list",
      "name: no-tasks\n",
      { path: "tasks", line: 1, column: 1, message: /needs a `tasks` list/ },
    ],
    [
      "an unknown field",
      "tasks:\n  - id: a\n    module: m.wasm\n    dependson: [b]\n",
      { path: "tasks[0].dependson", line: 4, column: 16, message: /unknown field `dependson`/ },
    ],
  ];
  for (const [what, yaml, expected] of cases) {
    it(`answers 400 naming ${what} with path, line and column`, async () => {
      const res = await submit(yaml);
      expect(res.status).toBe(400);
      const body = await res.json<Problems>();
      expect(body.error).toBe("invalid DAG");
      const [problem] = body.problems;
      expect(problem).toMatchObject({ path: expected.path, line: expected.line, column: expected.column });
      expect(problem!.message).toMatch(expected.message);
    });
  }

  it("answers 413 for a body over the limit", async () => {
    const res = await submit(`name: big\n# ${"x".repeat(9 * 1024 * 1024)}\n`);
    expect(res.status).toBe(413);
  });

  it("answers 404 for a run that does not exist", async () => {
    expect((await SELF.fetch(`${base}/api/dags/${"0".repeat(64)}`, { headers: API })).status).toBe(404);
    // Not a run id at all is a 400 (run-ids.test.ts).
    expect((await SELF.fetch(`${base}/api/dags/not-an-id`, { headers: API })).status).toBe(400);
    const socket = { headers: { ...(await asDevice("lost")), Upgrade: "websocket" } };
    expect((await SELF.fetch(`${base}/api/runners/connect?run=${"0".repeat(64)}`, socket)).status).toBe(404);
  });
});

describe("status page", () => {
  it("is served at / without a token, with its script", async () => {
    const page = await SELF.fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`<script type="module" src="/app.js">`);
    expect((await SELF.fetch(`${base}/app.js`)).status).toBe(200);
  });

  it("answers unknown API routes with a JSON 404", async () => {
    const res = await SELF.fetch(`${base}/api/nothing`, { headers: API });
    expect(res.status).toBe(404);
    expect((await res.json<{ error: string }>()).error).toMatch(/no route GET \/api\/nothing/);
  });
});

describe("/api/blobs", () => {
  it("takes a blob from a device only with a lease in the run it names, and from the operator (devices.test.ts stores one)", async () => {
    const RUNNER = await asDevice("uploader");
    const bytes = new TextEncoder().encode("tile bytes".repeat(1000));
    const sha = await hex(bytes);
    const put = await SELF.fetch(`${base}/api/blobs/sha256:${sha}`, { method: "PUT", headers: RUNNER, body: bytes });
    expect(put.status).toBe(403);
    expect((await put.json<{ error: string }>()).error).toMatch(/uploads an output for a run: add \?run=/);
    const elsewhere = await SELF.fetch(`${base}/api/blobs/sha256:${sha}?run=${"0".repeat(64)}`, {
      method: "PUT",
      headers: RUNNER,
      body: bytes,
    });
    expect(elsewhere.status).toBe(404); // no such run
    expect((await SELF.fetch(`${base}/api/blobs/sha256:${"0".repeat(64)}`, { headers: API })).status).toBe(404);
    expect((await SELF.fetch(`${base}/api/blobs/not-a-hash`, { headers: RUNNER })).status).toBe(400);
    // The operator uploads the files of runs' inputs, asking with HEAD first which are there.
    const head = () => SELF.fetch(`${base}/api/blobs/sha256:${sha}`, { method: "HEAD", headers: API });
    expect((await head()).status).toBe(404);
    const mine = await SELF.fetch(`${base}/api/blobs/sha256:${sha}`, { method: "PUT", headers: API, body: bytes });
    expect(await mine.json()).toEqual({ sha256: sha, size: bytes.length });
    const there = await head();
    expect([there.status, there.headers.get("Content-Length")]).toEqual([200, String(bytes.length)]);
    const wrong = await SELF.fetch(`${base}/api/blobs/sha256:${"1".repeat(64)}`, {
      method: "PUT",
      headers: API,
      body: bytes,
    });
    expect(wrong.status).toBe(400);
    // A device may not ask what the coordinator holds outside its leases.
    expect((await SELF.fetch(`${base}/api/blobs/sha256:${sha}`, { method: "HEAD", headers: RUNNER })).status).toBe(403);
  });
});

describe("security headers", () => {
  it("every response carries nosniff and no-referrer; page and assets the page's CSP, the rest a sandbox", async () => {
    const wasm = wasmModule();
    await upload("headers.wasm", wasm);
    const device = await asDevice("headers");
    const blob = new TextEncoder().encode("<svg><script>alert(1)</script></svg>".repeat(10));
    const sha = await hex(blob);
    // Stored as a runner with a lease would have (it claimed a type; none is kept).
    await env.BLOBS.put(`outputs/${sha}`, blob, { httpMetadata: { contentType: "image/svg+xml" } });
    const requests: [string, RequestInit, string][] = [
      ["/", {}, PAGE_CSP],
      ["/app.js", {}, PAGE_CSP],
      ["/style.css", {}, PAGE_CSP],
      ["/api/dags", { headers: API }, API_CSP],
      ["/api/runners", { headers: API }, API_CSP],
      ["/metrics", { headers: API }, API_CSP],
      ["/api/modules/headers.wasm", { headers: API }, API_CSP],
      [
        `/api/blobs/sha256:${sha}`,
        { method: "PUT", headers: { ...device, "Content-Type": "image/svg+xml" }, body: blob },
        API_CSP,
      ], // 403: no lease
      [`/api/blobs/sha256:${sha}`, { headers: device }, API_CSP], // 403: no lease names it
      ["/api/enrollments", { headers: API }, API_CSP],
      ["/api/dags", {}, API_CSP], // 401
      ["/api/dags", { method: "POST", headers: API, body: "tasks: [" }, API_CSP], // 400
      ["/api/nothing", { headers: API }, API_CSP], // 404
      [`/api/dags/${"0".repeat(64)}/tasks/a/output`, { headers: API }, API_CSP], // 404
    ];
    for (const [path, init, csp] of requests) {
      const res = await SELF.fetch(`${base}${path}`, init);
      await res.arrayBuffer();
      const what = `${init.method ?? "GET"} ${path} (${res.status})`;
      expect(res.headers.get("X-Content-Type-Options"), what).toBe("nosniff");
      expect(res.headers.get("Referrer-Policy"), what).toBe("no-referrer");
      expect(res.headers.get("Content-Security-Policy"), what).toBe(csp);
    }
    // A blob is served as opaque bytes whatever type its uploader claimed.
    const got = await SELF.fetch(`${base}/api/blobs/sha256:${sha}`, { headers: API });
    expect(got.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(got.headers.get("Content-Disposition")).toBe(`attachment; filename="${sha}.bin"`);
    expect(await got.text()).toContain("<script>");
  });
});
