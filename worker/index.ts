/**
 * The coordinator Worker: a Hono app for the HTTP API, and the two Durable Object classes it
 * fronts (and the bench's echo object, routed to only when BENCH_ECHO is "1"). The status page is
 * served from `public/` as static assets.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Env } from "./env.js";
import { API_CSP, PAGE_CSP, secured } from "./headers.js";
import { blobs } from "./routes/blobs.js";
import { dags } from "./routes/dags.js";
import { enrollments } from "./routes/enrollments.js";
import { logs } from "./routes/logs.js";
import { metrics } from "./routes/metrics.js";
import { modules } from "./routes/modules.js";
import { runnerPackage } from "./routes/runner-package.js";
import { runners } from "./routes/runners.js";
import { requireScope } from "./auth.js";
import { sweep } from "./retention.js";
import { tokens } from "./routes/tokens.js";

export { DagRun } from "./durable/dag-run.js";
export { RunnerPool } from "./durable/runner-pool.js";
export { BenchEcho } from "./durable/bench-echo.js";

export const app = new Hono<{ Bindings: Env }>();

// Every answer, errors included, carries nosniff and a policy (the page's for assets, which set
// their own, a sandbox for everything else).
app.use(async (c, next) => {
  await next();
  c.res = secured(c.res, API_CSP);
});

app.route("/api/dags", dags);
app.route("/api/dags", logs);
app.route("/api/enrollments", enrollments);
app.route("/api/modules", modules);
app.route("/api/runners", runners);
app.route("/api/blobs", blobs);
app.route("/api/tokens", tokens);
app.route("/metrics", metrics);
app.route("/", runnerPackage);
// The bench's echo round trip (docs/benchmarks.md): no route at all unless BENCH_ECHO is "1".
app.get(
  "/api/bench/echo",
  async (c, next) => (c.env.BENCH_ECHO === "1" ? next() : c.notFound()),
  requireScope("admin"),
  (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
      throw new HTTPException(426, { message: "GET /api/bench/echo is a WebSocket: send `Upgrade: websocket`" });
    const echo = c.env.BENCH_ECHO_OBJECT;
    return echo.get(echo.idFromName("echo")).fetch(c.req.raw);
  },
);

// Static assets are matched before the Worker in production; this serves them wherever a request
// reaches the app first (tests, `run_worker_first` routes).
app.notFound(async (c) => {
  const path = new URL(c.req.url).pathname;
  if (!path.startsWith("/api/") && c.req.method === "GET")
    return secured(await c.env.ASSETS.fetch(c.req.raw), PAGE_CSP);
  return c.json({ error: `no route ${c.req.method} ${path}` }, 404);
});

app.onError((err, c) => {
  if (err instanceof HTTPException) {
    if (err.res) return err.res;
    return c.json({ error: err.message }, err.status);
  }
  // D1 without its tables: the deploy skipped the migrations (docs/deploy.md).
  if (/no such table/i.test(err.message)) {
    const fix = "apply the migrations: `npx wrangler d1 migrations apply distro --remote` (docs/deploy.md)";
    return c.json({ error: `the coordinator's D1 database has no schema (${err.message}); ${fix}` }, 503);
  }
  console.error("unhandled", err);
  return c.json({ error: `internal error: ${err.message}` }, 500);
});

/** The scheduled sweep (wrangler.toml `[triggers]`): retention.ts. */
async function scheduled(controller: ScheduledController, env: Env, _ctx: ExecutionContext): Promise<void> {
  const swept = await sweep(env, controller.scheduledTime);
  if (swept.runs + swept.blobs + swept.cacheEntries > 0)
    console.log(
      `retention: deleted ${swept.runs} run(s), ${swept.blobs} blob(s), ${swept.cacheEntries} cache entr(ies)`,
    );
}

export default { fetch: app.fetch, scheduled } satisfies ExportedHandler<Env>;
