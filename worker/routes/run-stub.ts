/**
 * The DagRun of a run id taken from a URL (`/api/dags/:id/...`, `/api/runners/connect?run=`),
 * for the routes that reach a run: anything that names no run of this namespace is a 404, never
 * the 500 of an id the namespace refuses.
 */
import { HTTPException } from "hono/http-exception";
import type { Env } from "../env.js";
import { httpStatus } from "../errors.js";

const RUN_ID = /^[0-9a-f]{64}$/;

/** The run's object, or a 404 HTTPException naming `id`. */
export function runStub(env: Env, id: string) {
  const status = httpStatus("not_found");
  if (!RUN_ID.test(id)) throw new HTTPException(status, { message: `no run ${id}: run ids are 64 hex digits` });
  try {
    return env.DAG_RUN.get(env.DAG_RUN.idFromString(id));
  } catch {
    throw new HTTPException(status, { message: `no run ${id}` });
  }
}
