/**
 * The DagRun of a run id taken from a URL (`/api/dags/:id/...`, `/api/runners/connect?run=`),
 * for the routes that reach a run: anything that names no run of this namespace is a 404, never
 * the 500 of an id the namespace refuses. The operator's routes take a unique prefix of at least
 * 8 hex digits too, as git takes a commit's (`distro runs` prints 12), resolved through the D1 run
 * index; runners always name a run by its full id.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { CallerEnv } from "../auth.js";
import { runsWithPrefix } from "../db.js";
import type { Env } from "../env.js";
import { httpStatus } from "../errors.js";
import type { Fetchable } from "../rpc.js";

const RUN_ID = /^[0-9a-f]{64}$/;
const PREFIX = /^[0-9a-f]{8,63}$/;
/** Most matches an ambiguous prefix's error lists. */
const LISTED = 5;

/** The run's object for its full id, or a 404 HTTPException naming `id`. */
export function exactRunStub(env: Env, id: string) {
  const status = httpStatus("not_found");
  if (!RUN_ID.test(id)) throw new HTTPException(status, { message: `no run ${id}: run ids are 64 hex digits` });
  try {
    return env.DAG_RUN.get(env.DAG_RUN.idFromString(id));
  } catch {
    throw new HTTPException(status, { message: `no run ${id}` });
  }
}

/**
 * The full id of the run `id` names: itself when it is one (no query), else the one run of the
 * index whose id starts with it. A 400 for anything but 8 to 64 lower-case hex digits, a 404 when
 * no run matches, a 409 listing the matches when several do.
 */
export async function runId(env: Env, id: string): Promise<string> {
  if (RUN_ID.test(id)) return id;
  if (!PREFIX.test(id))
    throw new HTTPException(400, {
      message: `"${id.slice(0, 80)}" is not a run id: give its 64 hex digits (lower-case), or a unique prefix of at least 8`,
    });
  const matches = await runsWithPrefix(env.DB, id, LISTED + 1);
  if (matches.length === 0) throw new HTTPException(httpStatus("not_found"), { message: `no run ${id}` });
  if (matches.length === 1) return matches[0]!;
  const listed = matches.slice(0, LISTED);
  // As many digits as tell the listed ids apart, 12 at least.
  let digits = 12;
  while (new Set(listed.map((m) => m.slice(0, digits))).size < listed.length) digits++;
  const more = matches.length > LISTED ? ", …" : "";
  throw new HTTPException(httpStatus("conflict"), {
    message: `run id prefix ${id} is ambiguous: it matches ${listed.map((m) => `${m.slice(0, digits)}…`).join(", ")}${more} (give more digits)`,
  });
}

/** The run's object for its full id or a unique prefix of it (`runId`'s errors otherwise). */
export async function runStub(env: Env, id: string) {
  return exactRunStub(env, await runId(env, id));
}

/**
 * For a device: a 403 unless a lease its runners hold in the run of `?run=` names `what` (a
 * device sees only its work, and stores only outputs of it). The operator (API token) may fetch
 * anything. `?run=` is a full id only: runners name runs by the ids their assignments carry.
 */
export async function leaseNames(c: Context<CallerEnv>, what: Fetchable): Promise<void> {
  const caller = c.get("caller");
  if (caller.kind !== "device") return;
  const run = c.req.query("run");
  const name = `${what.kind} sha256:${what.sha256}`;
  const verb = what.kind === "output" ? "uploads an output" : `fetches a ${what.kind}`;
  if (run === undefined) throw new HTTPException(403, { message: `a runner ${verb} for a run: add ?run=<run id>` });
  if (!(await exactRunStub(c.env, run).names(caller.device, what)))
    throw new HTTPException(403, {
      message:
        what.kind === "output"
          ? `device ${caller.device} holds no lease in run ${run}, so it has no output to upload there`
          : `no lease of device ${caller.device} in run ${run} names ${name}`,
    });
}
