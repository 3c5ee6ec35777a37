/**
 * The Worker's bindings, as declared in wrangler.toml. Secrets are optional in the type
 * because a deployment may lack them; `auth.ts` refuses requests when they are missing.
 */
import type { DagRun } from "./durable/dag-run.js";
import type { RunnerPool } from "./durable/runner-pool.js";

export interface Env {
  DAG_RUN: DurableObjectNamespace<DagRun>;
  RUNNER_POOL: DurableObjectNamespace<RunnerPool>;
  DB: D1Database;
  /** Task modules under modules/<sha256>, large outputs under outputs/<sha256>. */
  BLOBS: R2Bucket;
  ASSETS: Fetcher;
  API_TOKEN?: string;
  RUNNER_TOKEN?: string;
  /** A runner silent this long (ms) loses its leases; default 15000. */
  HEARTBEAT_TIMEOUT_MS?: string;
}

/** The heartbeat limit from the environment, validated. */
export function heartbeatMs(env: Env): number {
  const ms = Number(env.HEARTBEAT_TIMEOUT_MS ?? 15_000);
  return Number.isFinite(ms) && ms >= 500 ? ms : 15_000;
}

/** The single RunnerPool object. */
export function pool(env: Env): DurableObjectStub<RunnerPool> {
  return env.RUNNER_POOL.get(env.RUNNER_POOL.idFromName("pool"));
}
