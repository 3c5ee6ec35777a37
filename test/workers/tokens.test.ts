// Scoped API tokens (core/tokens.ts): every operator route answers a token of too low a scope
// with 403 naming both scopes, and takes one of its scope; a submit token controls only the runs
// it submitted; a revoked or expired token gets 401 everywhere; the coordinator keeps only
// hashes. In workerd.
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RunSummary, TokenCreated, TokenSelf, TokenView } from "../../core/api";
import { PROTOCOL_VERSION } from "../../core/protocol/messages";
import type { TokenScope } from "../../core/tokens";
import { app } from "../../worker/index";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RUNNER, WatchSocket } from "./socket";

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function mint(scope: TokenScope, extra: Record<string, unknown> = {}): Promise<TokenCreated> {
  const res = await SELF.fetch(`${base}/api/tokens`, {
    method: "POST",
    headers: API,
    body: JSON.stringify({ name: `a ${scope} token`, scope, ...extra }),
  });
  expect(res.status).toBe(201);
  return res.json<TokenCreated>();
}

async function submitAs(token: string): Promise<RunSummary> {
  const res = await SELF.fetch(`${base}/api/dags`, {
    method: "POST",
    headers: bearer(token),
    body: "name: t\ncache: false\ntasks:\n  - { id: a, module: step.wasm }\n",
  });
  expect(res.status).toBe(201);
  return res.json<RunSummary>();
}

const ZERO = "0".repeat(64);

/**
 * Every operator route (its pattern as the app routes it), a request to it, and the scope it
 * needs; `:run` is a run the admin submitted.
 */
const ROUTES: [route: string, path: string, needs: TokenScope, body?: string][] = [
  ["GET /api/dags", "/api/dags", "read"],
  ["GET /api/dags/:id", "/api/dags/:run", "read"],
  ["GET /api/dags/:id", "/api/dags/:run?summary", "read"],
  ["GET /api/dags/:id/watch", "/api/dags/:run/watch", "read"],
  ["GET /api/dags/:id/timeline", "/api/dags/:run/timeline", "read"],
  ["GET /api/dags/:id/tasks/:task/output", "/api/dags/:run/tasks/a/output", "read"],
  ["GET /api/dags/:id/tasks/:task/logs", "/api/dags/:run/tasks/a/logs", "read"],
  ["GET /api/runners", "/api/runners", "read"],
  ["GET /api/modules", "/api/modules", "read"],
  ["GET /api/modules/:ref", "/api/modules/step.wasm", "read"],
  ["GET /api/blobs/:ref", `/api/blobs/sha256:${ZERO}`, "read"],
  ["HEAD /api/blobs/:ref", `/api/blobs/sha256:${ZERO}`, "read"],
  ["GET /metrics", "/metrics", "read"],
  ["GET /api/tokens/self", "/api/tokens/self", "read"],
  ["POST /api/dags", "/api/dags", "submit", "name: t\ntasks:\n  - { id: a, module: step.wasm }\n"],
  ["PUT /api/modules/:name", "/api/modules/other.wasm", "submit"],
  ["PUT /api/blobs/:ref", `/api/blobs/sha256:${ZERO}`, "submit", "x"],
  ["POST /api/enrollments", "/api/enrollments", "admin", "{}"],
  ["GET /api/enrollments", "/api/enrollments", "admin"],
  ["DELETE /api/enrollments/:id", "/api/enrollments/0000000000000000", "admin"],
  ["DELETE /api/runners/:id", "/api/runners/nobody", "admin"],
  ["PUT /api/runners/:id/trust", "/api/runners/nobody/trust", "admin"],
  ["DELETE /api/runners/:id/trust", "/api/runners/nobody/trust", "admin"],
  ["POST /api/tokens", "/api/tokens", "admin", '{"name":"x","scope":"read"}'],
  ["GET /api/tokens", "/api/tokens", "admin"],
  ["DELETE /api/tokens/:id", "/api/tokens/0000000000000000", "admin"],
];

/** The routes of a run's controls (submit, for the runs the token submitted: tested below). */
const CONTROL_ROUTES = [
  "POST /api/dags/:id/:action{cancel|pause|resume}",
  "POST /api/dags/:id/retry",
  "DELETE /api/dags/:id",
];

/** Routes no operator token is for: a device's, the enrollment exchange, the runner package, the bench's echo (admin, with BENCH_ECHO only). */
const NOT_OPERATOR = [
  "POST /api/runners/enroll",
  "GET /api/runners/envelope",
  "GET /api/runners/connect",
  "GET /:file{runner-[0-9a-f]{12}\\.tgz}",
  "GET /api/bench/echo",
];

/** The controls of a run: submit, for the runs the token submitted. */
const CONTROLS = ["cancel", "pause", "resume", "retry"] as const;

async function call(method: string, path: string, token: string, body?: string): Promise<Response> {
  const init: RequestInit = { method, headers: bearer(token) };
  if (path.startsWith("/api/modules/") && method === "PUT") init.body = wasmModule();
  else if (body !== undefined) init.body = body;
  return SELF.fetch(`${base}${path}`, init);
}

describe("scoped API tokens", () => {
  it("cover every route of the app: each is in the table above, a control, or not an operator's", () => {
    const routes = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`));
    const known = new Set([...ROUTES.map(([route]) => route), ...CONTROL_ROUTES, ...NOT_OPERATOR]);
    expect([...routes].sort()).toEqual([...known].sort());
  });

  it("gate every operator route by scope: below it 403 naming both, at or above it not refused", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const { id: run } = await submitAs("test-api-token");
    const tokens = { read: await mint("read"), submit: await mint("submit"), admin: await mint("admin") };
    for (const [route, template, needs, body] of ROUTES) {
      const method = route.split(" ")[0]!;
      const path = template.replace(":run", run);
      for (const scope of ["read", "submit", "admin"] as const) {
        const res = await call(method, path, tokens[scope].token, body);
        const allowed = ["read", "submit", "admin"].indexOf(scope) >= ["read", "submit", "admin"].indexOf(needs);
        const what = `${method} ${template} with a ${scope} token`;
        if (allowed) expect([401, 403, 503], what).not.toContain(res.status);
        else {
          expect(res.status, what).toBe(403);
          if (method !== "HEAD")
            expect((await res.json<{ error: string }>()).error, what).toBe(
              `token ${tokens[scope].id} (a ${scope} token) has scope ${scope}; ${method} ${new URL(path, base).pathname} needs ${needs}`,
            );
        }
      }
    }
    // A read token may control no run, not even to ask.
    for (const action of CONTROLS) {
      const res = await call("POST", `/api/dags/${run}/${action}`, tokens.read.token);
      expect(res.status, action).toBe(403);
    }
    expect((await call("DELETE", `/api/dags/${run}`, tokens.read.token)).status).toBe(403);
  });

  it("let a submit token control only the runs it submitted, and record who submitted each", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const [mine, theirs] = [await mint("submit"), await mint("submit")];
    const run = await submitAs(mine.token);
    expect(run.submitted_by).toEqual({ token: mine.id, name: "a submit token" });
    const byAdmin = await submitAs("test-api-token");
    expect(byAdmin.submitted_by).toEqual({ token: "API_TOKEN", name: "API_TOKEN" });
    // The summary and the full view say it too.
    const view = await (await call("GET", `/api/dags/${run.id}`, theirs.token)).json<RunSummary>();
    expect(view.submitted_by).toEqual({ token: mine.id, name: "a submit token" });

    const pause = await call("POST", `/api/dags/${run.id}/pause`, theirs.token);
    expect(pause.status).toBe(403);
    expect((await pause.json<{ error: string }>()).error).toBe(
      `token ${theirs.id} (a submit token) has scope submit: it controls only the runs it submitted, and run ${run.id.slice(0, 12)} was submitted by token ${mine.id} (a submit token)`,
    );
    expect((await call("POST", `/api/dags/${byAdmin.id}/cancel`, mine.token)).status).toBe(403);
    expect((await call("POST", `/api/dags/${run.id}/retry`, theirs.token, "{}")).status).toBe(403);
    expect((await call("POST", `/api/dags/${run.id}/pause`, mine.token)).status).toBe(200);
    expect((await call("POST", `/api/dags/${run.id}/resume`, mine.token)).status).toBe(200);
    expect((await call("POST", `/api/dags/${run.id}/cancel`, mine.token)).status).toBe(200);
    // An admin token controls any run.
    const admin = await mint("admin");
    expect((await call("POST", `/api/dags/${byAdmin.id}/cancel`, admin.token)).status).toBe(200);
  });

  it("refuse a revoked or an expired token with 401 on every route, and an unknown one too", async () => {
    const revoked = await mint("admin");
    const res = await SELF.fetch(`${base}/api/tokens/${revoked.id}`, { method: "DELETE", headers: API });
    expect((await res.json<TokenView>()).revoked_at).toEqual(expect.any(Number));
    const expiring = await mint("admin", { ttl: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const cases: [string, string, RegExp][] = [
      [revoked.token, "revoked", new RegExp(`^token ${revoked.id} \\(a admin token\\) was revoked at \\d{4}-`)],
      [expiring.token, "expired", new RegExp(`^token ${expiring.id} \\(a admin token\\) expired at \\d{4}-`)],
      [`dat_${"x".repeat(43)}`, "unknown", /^invalid token$/],
    ];
    for (const [token, what, message] of cases)
      for (const [route, template, , body] of ROUTES) {
        const method = route.split(" ")[0]!;
        const path = template.replace(":run", ZERO);
        const r = await call(method, path, token, body);
        expect(r.status, `${what}: ${method} ${template}`).toBe(401);
        if (method !== "HEAD") expect((await r.json<{ error: string }>()).error, what).toMatch(message);
      }
  });

  it("are listed without their secret and stored only as hashes; self says what a token is", async () => {
    const made = await mint("read", { ttl: "30d" });
    expect(made.token).toMatch(/^dat_[A-Za-z0-9_-]{43}$/);
    expect(made.expires_at! - made.created_at).toBe(30 * 86_400_000);
    const listed = await (await SELF.fetch(`${base}/api/tokens`, { headers: API })).json<{ tokens: TokenView[] }>();
    const mine = listed.tokens.find((t) => t.id === made.id)!;
    expect(mine).toEqual({
      id: made.id,
      name: "a read token",
      scope: "read",
      created_at: made.created_at,
      expires_at: made.expires_at,
      revoked_at: null,
    });
    expect(JSON.stringify(listed)).not.toContain(made.token);
    const rows = await env.DB.prepare(`SELECT * FROM api_tokens`).all();
    expect(JSON.stringify(rows.results)).not.toContain(made.token.slice(4));
    const self = await (await call("GET", "/api/tokens/self", made.token)).json<TokenSelf>();
    expect(self).toEqual({ scope: "read", token: { id: made.id, name: "a read token", expires_at: made.expires_at } });
    const bootstrap = await (await SELF.fetch(`${base}/api/tokens/self`, { headers: API })).json<TokenSelf>();
    expect(bootstrap).toEqual({ scope: "admin", token: null });
  });

  it("never let an operator's socket act as a device: a watch path written encoded, with a device header, is a watcher", async () => {
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const { id: run } = await submitAs("test-api-token");
    const read = await mint("read");
    for (const path of [`/api/dags/${run}/watc%68`, `/api/dags/${run}/%77atch`, `/api/dags/${run}/watch`]) {
      const res = await SELF.fetch(`${base}${path}`, {
        headers: { ...bearer(read.token), Upgrade: "websocket", "X-Distro-Device": "trusty" },
      });
      expect(res.status, path).toBe(101);
      const socket = new WatchSocket(res.webSocket!);
      expect((await socket.next("snapshot")).run.id, path).toBe(run);
      // A runner's hello on it is read as a watcher's frame: ignored, never answered.
      socket.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, runner: { id: "trusty" }, want: 4 }));
      await new Promise((r) => setTimeout(r, 200));
      expect(
        socket.seen.map((f) => f.type).filter((t) => t !== "snapshot" && t !== "update"),
        path,
      ).toEqual([]);
      socket.ws.close();
    }
  });

  it("take a device whose id starts like a token as a device; answer /self on a socket upgrade's ?token=", async () => {
    const res = await SELF.fetch(`${base}/api/runners/enroll`, {
      method: "POST",
      headers: RUNNER,
      body: JSON.stringify({ name: "dat_box", device: "dat_box" }),
    });
    const { credential } = await res.json<{ credential: string }>();
    expect(credential).toMatch(/^dat_box\./);
    const fetched = await SELF.fetch(`${base}/api/modules/sha256:${ZERO}?run=${ZERO}`, { headers: bearer(credential) });
    // Past the credential check (to the run, which does not exist), not refused as a bad token.
    expect(fetched.status).toBe(404);
    expect((await fetched.json<{ error: string }>()).error).not.toMatch(/invalid token/);
    // An operator route refuses it, as any device credential.
    expect((await SELF.fetch(`${base}/api/dags`, { headers: bearer(credential) })).status).toBe(401);

    const made = await mint("read", { ttl: "1h" });
    const self = await SELF.fetch(`${base}/api/tokens/self?token=${made.token}`, { headers: { Upgrade: "websocket" } });
    expect(self.status).toBe(200);
    expect(await self.json<TokenSelf>()).toEqual({
      scope: "read",
      token: { id: made.id, name: "a read token", expires_at: made.expires_at },
    });
  });

  it("refuse a bad request to mint one with 400 naming the field", async () => {
    const bad: [unknown, RegExp][] = [
      [{ name: "x", scope: "root" }, /^bad token request: scope: /],
      [{ name: "", scope: "read" }, /^bad token request: name: a name is 1 to 64/],
      [{ name: "x", scope: "read", ttl: "forever" }, /^bad token request: ttl: expected a duration from 1s to 400d/],
      [{ name: "x", scope: "read", ttl: "401d" }, /^bad token request: ttl: /],
      [{ name: "x", scope: "read", extra: 1 }, /^bad token request: /],
    ];
    for (const [body, message] of bad) {
      const res = await SELF.fetch(`${base}/api/tokens`, { method: "POST", headers: API, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json<{ error: string }>()).error).toMatch(message);
    }
    const notJson = await SELF.fetch(`${base}/api/tokens`, { method: "POST", headers: API, body: "{" });
    expect(notJson.status).toBe(400);
    expect((await SELF.fetch(`${base}/api/tokens/nope`, { method: "DELETE", headers: API })).status).toBe(404);
  });
});
