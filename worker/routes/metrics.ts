/**
 * `GET /metrics`: the coordinator in the Prometheus text format, for a scraper with the API
 * token (`authorization: { credentials: ... }` in its scrape config). Runs and tasks come from
 * the D1 run index (each run refreshes its line within a second), runners and the counters of
 * dropped device reports and rate-limited sockets from the RunnerPool (in memory there: they
 * start again from zero when the pool object restarts, as a process's counters do).
 */
import { Hono } from "hono";
import { requireScope, type CallerEnv } from "../auth.js";
import { runTotals } from "../db.js";
import { pool } from "../env.js";
import { SOCKET_KINDS } from "../durable/meter.js";
import { Exposition } from "../metrics.js";
import { RUN_STATUSES, TASK_STATES } from "../../core/status.js";

export const metrics = new Hono<CallerEnv>().get("/", requireScope("read"), async (c) => {
  // The pool's totals are a few counts: a scrape never reads runners' histories.
  const [totals, runners] = await Promise.all([runTotals(c.env.DB), pool(c.env).totals()]);
  const text = new Exposition()
    .metric(
      "distro_runs",
      "gauge",
      "Runs in the index by status.",
      RUN_STATUSES.map((status) => [{ status }, totals.runs[status] ?? 0]),
    )
    .metric(
      "distro_tasks",
      "gauge",
      "Task instances of indexed runs by state.",
      TASK_STATES.map((state) => [{ state }, totals.tasks[state] ?? 0]),
    )
    .metric("distro_runners_connected", "gauge", "Runners connected to the pool.", [[{}, runners.runners]])
    .metric("distro_slots", "gauge", "Task slots of connected runners (each device's up to its cap).", [
      [{}, runners.slots],
    ])
    .metric("distro_slots_busy", "gauge", "Task slots running a task now.", [[{}, runners.busy]])
    .metric("distro_cache_hits_total", "counter", "Tasks served from the result cache.", [
      [{}, totals.metrics.cacheHits],
    ])
    .metric(
      "distro_device_samples_dropped_total",
      "counter",
      "Device reports dropped for coming within half a heartbeat of the last one kept.",
      [[{}, runners.samplesDropped]],
    )
    .metric(
      "distro_sockets_rate_limited_total",
      "counter",
      "Sockets closed for going over their rate limit (code 4429), by kind: pool, run, watch.",
      SOCKET_KINDS.map((kind) => [{ kind }, runners.rateLimited[kind]]),
    )
    .metric("distro_cooldowns_total", "counter", "Cool-downs of devices for lost attempts.", [[{}, runners.cooldowns]])
    .metric("distro_devices_cooled", "gauge", "Devices cooled down now (no new leases).", [[{}, runners.devicesCooled]])
    .metric(
      "distro_stray_frames_total",
      "counter",
      "Entries of runner frames naming attempts their runner did not hold (ignored).",
      [[{}, runners.strayFrames]],
    )
    .metric(
      "distro_stall_repairs_total",
      "counter",
      "Runners found idle beside a run with ready work for STALL_REPAIR_MS and pointed at it again.",
      [[{}, runners.stallRepairs]],
    )
    .histogram("distro_task_duration_seconds", "How long attempts ran on their runners.", totals.metrics.duration)
    .histogram(
      "distro_dispatch_latency_seconds",
      "From a task becoming ready to its dispatch to a runner.",
      totals.metrics.latency,
    )
    .toString();
  return c.body(text, 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
});
