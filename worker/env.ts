/**
 * The Worker's bindings, as declared in wrangler.toml, and the settings read from them. Secrets
 * are optional in the type because a deployment may lack them; `auth.ts` refuses requests when
 * they are missing. The Durable Object namespaces are typed by their RPC interfaces (rpc.ts), so
 * this module imports no Durable Object class.
 */
import type { DagRunRpc, RunnerPoolRpc } from "./rpc.js";
import { DEFAULT_LIMITS, type Limits, type Rate, type SocketKind } from "./durable/meter.js";
import { MAX_FRAME_BYTES } from "../core/protocol/messages.js";
import { DEFAULT_DEVICE_LIMITS, type DeviceLimits } from "./durable/device-limits.js";

export interface Env {
  DAG_RUN: DurableObjectNamespace<DagRunRpc>;
  RUNNER_POOL: DurableObjectNamespace<RunnerPoolRpc>;
  /** The bench's echo object (durable/bench-echo.ts): a socket, no RPC. */
  BENCH_ECHO_OBJECT: DurableObjectNamespace;
  DB: D1Database;
  /** Task modules under modules/<sha256>, large outputs and input files under outputs/<sha256>, long logs under logs/<run>/. */
  BLOBS: R2Bucket;
  ASSETS: Fetcher;
  API_TOKEN?: string;
  RUNNER_TOKEN?: string;
  /** A runner silent this long (ms) loses its leases; default 15000. */
  HEARTBEAT_TIMEOUT_MS?: string;
  /** "1": each run counts its incoming runner messages and SQL statements (`profile` of its summary; `npm run bench` sets it). */
  PROFILE_RUNS?: string;
  // Socket rate limits (docs/limits.md): frames a second and the burst a socket may send at once,
  // by socket kind, and bytes for every kind. A socket over a limit is closed with code 4429.
  /** Runner sockets of a run; default 2000 frames/s, burst 4000. */
  RUN_FRAMES_PER_SEC?: string;
  RUN_FRAME_BURST?: string;
  /** Runner sockets of the pool; default 50 frames/s, burst 200. */
  POOL_FRAMES_PER_SEC?: string;
  POOL_FRAME_BURST?: string;
  /** Watchers of a run; default 50 frames/s, burst 200. */
  WATCH_FRAMES_PER_SEC?: string;
  WATCH_FRAME_BURST?: string;
  /** Every socket; default 8388608 bytes/s (8 MiB), burst 33554432 (32 MiB, the largest frame; never less). */
  SOCKET_BYTES_PER_SEC?: string;
  SOCKET_BYTE_BURST?: string;
  // What one device is held to (docs/security.md).
  /** Slots a device counts for, all its runner processes together; default 256. */
  MAX_DEVICE_SLOTS?: string;
  /** Lost attempts within COOLDOWN_WINDOW_MS that cool a device down; default 3. */
  COOLDOWN_LOSSES?: string;
  /** default 300000 (5 minutes). */
  COOLDOWN_WINDOW_MS?: string;
  /** The first cool-down, doubled at each next one up to an hour; default 60000. */
  COOLDOWN_MS?: string;
  /** How long a runner with idle slots may sit beside a run with ready work before the pool re-points it; default 2000. */
  STALL_REPAIR_MS?: string;
  // Retention (worker/retention.ts, docs/reliability.md): durations ("30d", "12h") and a size ("1GiB").
  /** How long a finished run is kept; default "30d". */
  RUN_RETENTION?: string;
  /** How long an uploaded blob no run, cache entry or module holds is kept; default "1d". */
  BLOB_GRACE?: string;
  /** The result cache's age bound; default "30d". */
  CACHE_MAX_AGE?: string;
  /** The result cache's size bound (its entries' outputs together, the oldest go first); default "256MiB". */
  CACHE_MAX_BYTES?: string;
  /** "1": `GET /api/bench/echo` reaches the bench's echo object (docs/benchmarks.md); otherwise that route is a 404. */
  BENCH_ECHO?: string;
}

/** The device limits from the environment; a value that is not a positive whole number falls back to its default. */
export function deviceLimits(env: Env): DeviceLimits {
  const whole = (n: number) => Number.isInteger(n) && n > 0;
  const { maxSlots, cooldown } = DEFAULT_DEVICE_LIMITS;
  return {
    maxSlots: setting(env, "MAX_DEVICE_SLOTS", maxSlots, whole),
    cooldown: {
      losses: setting(env, "COOLDOWN_LOSSES", cooldown.losses, whole),
      windowMs: setting(env, "COOLDOWN_WINDOW_MS", cooldown.windowMs, whole),
      firstMs: setting(env, "COOLDOWN_MS", cooldown.firstMs, whole),
      maxMs: cooldown.maxMs,
    },
  };
}

/** The heartbeat limit from the environment, validated. */
/** How long an idle runner beside ready work counts as a stall (docs/reliability.md); at least 100 ms. */
export function stallRepairMs(env: Env): number {
  return setting(env, "STALL_REPAIR_MS", 2_000, (n) => n >= 100);
}

export function heartbeatMs(env: Env): number {
  const ms = Number(env.HEARTBEAT_TIMEOUT_MS ?? 15_000);
  return Number.isFinite(ms) && ms >= 500 ? ms : 15_000;
}

/**
 * The socket rate limits from the environment, validated: a value that is not a positive number
 * (a burst: a whole number; the byte burst: at least MAX_FRAME_BYTES, so that one legal frame
 * always passes) falls back to its default.
 */
export function socketLimits(env: Env): Record<SocketKind, Limits> {
  const positive = (n: number) => n > 0;
  const burst = (min: number) => (n: number) => Number.isInteger(n) && n >= min;
  const bytes: Rate = {
    perSec: setting(env, "SOCKET_BYTES_PER_SEC", DEFAULT_LIMITS.run.bytes.perSec, positive),
    burst: setting(env, "SOCKET_BYTE_BURST", DEFAULT_LIMITS.run.bytes.burst, burst(MAX_FRAME_BYTES)),
  };
  const frames = (kind: SocketKind, prefix: "RUN" | "POOL" | "WATCH"): Rate => ({
    perSec: setting(env, `${prefix}_FRAMES_PER_SEC`, DEFAULT_LIMITS[kind].frames.perSec, positive),
    burst: setting(env, `${prefix}_FRAME_BURST`, DEFAULT_LIMITS[kind].frames.burst, burst(1)),
  });
  return {
    run: { frames: frames("run", "RUN"), bytes },
    pool: { frames: frames("pool", "POOL"), bytes },
    watch: { frames: frames("watch", "WATCH"), bytes },
  };
}

type LimitVar = Extract<
  keyof Env,
  `${string}_PER_SEC` | `${string}_BURST` | "MAX_DEVICE_SLOTS" | `COOLDOWN_${string}` | "STALL_REPAIR_MS"
>;

/**
 * One numeric var, or its default (with a warning naming the var) when it is not valid. A var may
 * be a string (`--var`, the dashboard) or a number (a TOML number in `[vars]`).
 */
function setting(env: Env, name: LimitVar, fallback: number, valid: (n: number) => boolean): number {
  const value: unknown = env[name];
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (Number.isFinite(n) && valid(n)) return n;
  console.warn(`${name}=${JSON.stringify(value)} is not a valid limit; using the default ${fallback}`);
  return fallback;
}

/** The single RunnerPool object. */
export function pool(env: Env): DurableObjectStub<RunnerPoolRpc> {
  return env.RUNNER_POOL.get(env.RUNNER_POOL.idFromName("pool"));
}
