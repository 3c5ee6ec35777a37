/**
 * The DagRun of a run id taken from a URL (`/api/dags/:id/...`, `/api/runners/connect?run=`),
 * for the routes that reach a run: anything that names no run of this namespace is a 404, never
 * the 500 of an id the namespace refuses.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { CallerEnv } from "../auth.js";
import type { Env } from "../env.js";
import { httpStatus } from "../errors.js";
import type { Fetchable } from "../rpc.js";

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

/**
 * For a device: a 403 unless a lease its runners hold in the run of `?run=` names `what` (a
 * device sees only its work, and stores only outputs of it). The operator (API token) may fetch
 * anything.
 */
export async function leaseNames(c: Context<CallerEnv>, what: Fetchable): Promise<void> {
  const caller = c.get("caller");
  if (caller.kind !== "device") return;
  const run = c.req.query("run");
  const name = `${what.kind} sha256:${what.sha256}`;
  const verb = what.kind === "output" ? "uploads an output" : `fetches a ${what.kind}`;
  if (run === undefined) throw new HTTPException(403, { message: `a runner ${verb} for a run: add ?run=<run id>` });
  if (!(await runStub(c.env, run).names(caller.device, what)))
    throw new HTTPException(403, {
      message:
        what.kind === "output"
          ? `device ${caller.device} holds no lease in run ${run}, so it has no output to upload there`
          : `no lease of device ${caller.device} in run ${run} names ${name}`,
    });
}
