/**
 * The DagRun's concerns (run-host/), each given its host over the object: its SQLite storage
 * (the store, its meta values and its read-only views), its sockets, its alarm, and the Worker's
 * bindings (D1, R2, the RunnerPool). dag-run.ts is the glue that runs events through the state
 * machine and hands what comes out to these; the wiring lives here so that it stays glue.
 */
import type { RunSummary, RunView } from "../../core/api.js";
import { isFinal, type TaskState } from "../../core/status.js";
import { outputKey } from "../blob-keys.js";
import { cachedOutputs, fileOutputs, indexRun } from "../db.js";
import { deviceLimits, heartbeatMs, pool, socketLimits, type Env } from "../env.js";
import { cacheMaterial, type MachineConfig, type RunEvent } from "../run/machine.js";
import { Alarm } from "../run-host/alarm.js";
import { Conduct } from "../run-host/conduct.js";
import type { EffectsHost } from "../run-host/effects.js";
import { ResultCache } from "../run-host/result-cache.js";
import { RunIndex } from "../run-host/run-index.js";
import { Histograms } from "../run-host/run-metrics.js";
import { Profile } from "../run-host/profile.js";
import { markWaiting, withWaiting, type WaitingHost } from "../run-host/waiting.js";
import { Watchers } from "../run-host/watchers.js";
import { sha256Hex } from "../sha256.js";
import { SocketMeters } from "./meter.js";
import { CLOSE } from "../../core/protocol/messages.js";
import { closeSocket, finishSocket, runnerSockets, send, socketsOf } from "./sockets.js";
import { RunLogs } from "./run-logs.js";
import { SqlStore } from "./sql-store.js";
import { RunViews } from "./sql-views.js";

/** Tag of watchers' sockets (`GET /api/dags/:id/watch`). */
export const WATCH_TAG = "watch";

/** What the concerns need of the DagRun itself: a way to run an event (the cache's answers). */
interface Glue {
  apply(event: RunEvent): Promise<void>;
}

/** Builds the concerns of the DagRun in `ctx`. */
export function concerns(ctx: DurableObjectState, env: Env, glue: Glue) {
  const profile = env.PROFILE_RUNS === "1" ? new Profile() : null;
  const sql = profile ? profile.counting(ctx.storage.sql) : ctx.storage.sql;
  const store = new SqlStore(sql);
  const views = new RunViews(sql, store);
  const limits = deviceLimits(env);
  const config: MachineConfig = { leaseGraceMs: heartbeatMs(env), maxHeld: limits.maxSlots };
  const clock = new Alarm(ctx.storage);
  /** Rate limits of runner and watcher sockets; the pool counts the closes for /metrics. */
  const meters = new SocketMeters<WebSocket>(socketLimits(env));
  const waiting: WaitingHost = {
    store,
    nodeIds: () => views.nodeIds(),
    whyWaiting: (classes) => pool(env).waiting(classes),
  };

  /** The run with its tasks (`limit` from `offset`, in `state`) as readers see it, or null before it has a plan. */
  const read = async (offset = 0, limit = -1, state?: TaskState): Promise<RunView | null> => {
    const raw = views.summary();
    if (!raw) return null;
    const { summary, waiting: why } = await withWaiting(waiting, profiled(raw));
    return { ...summary, nodes: views.nodes(), tasks: markWaiting(views.taskViews(offset, limit, state), why) };
  };
  const summary = async (): Promise<RunSummary | null> => {
    const raw = views.summary();
    return raw && (await withWaiting(waiting, profiled(raw))).summary;
  };
  const profiled = (raw: RunSummary): RunSummary => (profile ? { ...raw, profile: profile.current(store) } : raw);

  const watchers = new Watchers({
    meta: store,
    now: Date.now,
    sockets: () => ctx.getWebSockets(WATCH_TAG),
    summary: async () => (await summary())!,
    view: async () => (await read(0, 0))!,
    nodeCounts: (nodes) => views.nodeCounts(nodes),
  });
  store.changes = watchers;
  const histograms = new Histograms({ meta: store, nodeReadyAt: (node) => store.nodeReadyAt(node) });
  const index = new RunIndex({
    meta: store,
    now: Date.now,
    summary: () => views.summary(),
    metrics: () => histograms.current(),
    write: (line, metrics) => indexRun(env.DB, line, metrics),
  });
  const cache = new ResultCache({
    lookups: (limit) => store.lookups(limit),
    ended: () => isFinal(store.status()),
    cacheKeys: (rows) => {
      // One read of each dependency's outputs serves the whole batch.
      const inputs: Parameters<typeof cacheMaterial>[2] = new Map();
      return Promise.all(rows.map((row) => sha256Hex(cacheMaterial(store, row, inputs))));
    },
    find: (keys) => cachedOutputs(env.DB, keys),
    file: (entries) => fileOutputs(env.DB, entries),
    output: (task) => views.output(task)?.output ?? null,
    apply: (event) => glue.apply(event),
  });
  const conduct = new Conduct({
    runners: () => store.runners(),
    apply: (event) => glue.apply(event),
    lost: (device, attempts) => pool(env).lost(device, attempts, ctx.id.toString()),
    countStray: (frames) => pool(env).countStray(frames),
    close: (runner, reason) => {
      for (const ws of socketsOf(ctx, runner)) {
        send(ws, { type: "error", message: reason, fatal: true });
        closeSocket(ws, CLOSE.protocol, reason);
      }
    },
  });
  const effects: EffectsHost = {
    runId: ctx.id.toString(),
    meta: store,
    send: (runner, message) => socketsOf(ctx, runner).forEach((ws) => send(ws, message)),
    demand: (classes) => pool(env).demand(ctx.id.toString(), classes),
    retryAt: (at) => clock.arm(Date.now(), [at]),
    status: () => {
      watchers.statusChanged();
      return index.refresh();
    },
    lookup: () => cache.lookup(),
    file: (entries) => cache.file(entries),
    lost: (runner, attempts) => conduct.lost(runner, attempts),
    stray: (runner, frames) => conduct.strayFrames(runner, frames),
    finish: async (status) => {
      profile?.stop(store);
      await clock.clear();
      for (const ws of runnerSockets(ctx)) finishSocket(ws, status);
      await watchers.flush(true);
    },
  };
  /** The attempts' whole stderr (run-logs.ts): frames of attempts a runner does not hold are stray. */
  const logs = new RunLogs({
    sql,
    store,
    blobs: env.BLOBS,
    run: ctx.id.toString(),
    stray: (runner, frames) => conduct.strayFrames(runner, frames),
  });
  /** The size of an output blob in R2, or null when it is not there. */
  const blobSize = async (sha256: string) => (await env.BLOBS.head(outputKey(sha256)))?.size ?? null;
  return {
    store,
    views,
    config,
    clock,
    meters,
    watchers,
    histograms,
    index,
    cache,
    conduct,
    effects,
    logs,
    read,
    summary,
    blobSize,
    profile,
  };
}
