// The D1 schema comes only from migrations/ (applied by test/workers/migrate.ts here, by
// `npm start`, the end-to-end harness and the bench locally, by `wrangler d1 migrations apply`
// on a deployment). The Worker given a database without it answers 503 naming the fix, and no
// request creates a table. In workerd.
import { applyD1Migrations, createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RUNNER } from "./socket";

const tables = async (d1: D1Database) =>
  (
    await d1
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name`,
      )
      .all<{ name: string }>()
  ).results.map((r) => r.name);

describe("the D1 schema", () => {
  it("is what the migrations make, recorded as applied, and applying them again changes nothing", async () => {
    const made = [
      "api_tokens",
      "blob_refs",
      "blobs",
      "cache",
      "d1_migrations",
      "devices",
      "enrollments",
      "idempotency_keys",
      "input_blobs",
      "modules",
      "run_index",
    ];
    expect(await tables(env.DB)).toEqual(made);
    const applied = async () =>
      (await env.DB.prepare(`SELECT name FROM d1_migrations ORDER BY id`).all<{ name: string }>()).results.map(
        (r) => r.name,
      );
    expect(await applied()).toEqual(env.TEST_MIGRATIONS.map((m) => m.name));
    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
    expect(await applied()).toEqual(env.TEST_MIGRATIONS.map((m) => m.name));
    expect(await tables(env.DB)).toEqual(made);
  });

  it("is never created by a request: without it the routes answer 503 with the fix", async () => {
    const empty = { ...env, DB: env.EMPTY_DB };
    expect(await tables(env.EMPTY_DB)).toEqual([]);
    const requests: [string, RequestInit][] = [
      ["/api/dags", { headers: API }],
      ["/api/runners", { headers: API }],
      ["/api/enrollments", { method: "POST", headers: API, body: "{}" }],
      ["/api/runners/enroll", { method: "POST", headers: RUNNER, body: JSON.stringify({ name: "early" }) }],
      ["/api/modules/m.wasm", { method: "PUT", headers: API, body: wasmModule() }],
      ["/metrics", { headers: API }],
    ];
    for (const [path, init] of requests) {
      const ctx = createExecutionContext();
      const res = await worker.fetch(new Request(`${base}${path}`, init), empty, ctx);
      await waitOnExecutionContext(ctx);
      expect(res.status, path).toBe(503);
      expect((await res.json<{ error: string }>()).error, path).toMatch(
        /has no schema \(.*no such table.*\); apply the migrations: `npx wrangler d1 migrations apply distro --remote`/,
      );
    }
    expect(await tables(env.EMPTY_DB)).toEqual([]);
  });
});
