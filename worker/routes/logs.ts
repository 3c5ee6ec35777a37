/**
 * `GET /api/dags/:id/tasks/:task/logs?attempt=N&offset=K` (API token): an attempt's stderr from
 * byte K as it is now, whole up to 1 MiB (durable/run-logs.ts), for `distro logs` and its
 * `--follow`. Headers say whether the attempt still runs, where to ask next and what was cut.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requireScope } from "../auth.js";
import type { Env } from "../env.js";
import { valueOf } from "../errors.js";
import { runStub } from "./run-stub.js";

/** `?name` as a whole number (undefined when absent); a 400 for anything else. */
function whole(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value))
    throw new HTTPException(400, { message: `?${name} takes a whole number, not "${value}"` });
  return Number(value);
}

export const logs = new Hono<{ Bindings: Env }>().use(requireScope("read")).get("/:id/tasks/:task/logs", async (c) => {
  const attempt = whole(c.req.query("attempt"), "attempt");
  const offset = whole(c.req.query("offset"), "offset") ?? 0;
  const task = c.req.param("task");
  const stub = await runStub(c.env, c.req.param("id"));
  const log = valueOf(await stub.logs(task, attempt, offset));
  let body: Uint8Array | ReadableStream | null;
  let next: number;
  if ("bytes" in log) {
    body = log.bytes;
    next = offset + log.bytes.length;
  } else if (offset >= log.total) {
    body = null;
    next = offset;
  } else {
    const object = await c.env.BLOBS.get(log.blob, { range: { offset } });
    if (!object)
      throw new HTTPException(500, { message: `the log of ${task} attempt ${log.attempt} is missing from R2` });
    body = object.body;
    next = log.total;
  }
  const headers: Record<string, string> = {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Log-Attempt": String(log.attempt),
    "X-Log-Running": String(log.running),
    "X-Log-Next": String(next),
  };
  if (log.cut !== null) headers["X-Log-Cut"] = String(log.cut);
  return new Response(body, { headers });
});
