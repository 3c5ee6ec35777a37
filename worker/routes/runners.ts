/**
 * `/api/runners`: the list of connected runners, and the runners' WebSocket endpoint. Without
 * `?run=` the socket goes to the RunnerPool (presence); with `?run=<id>` to that run's DagRun.
 */
import { Hono } from "hono";
import type { RunnerView } from "../../core/api.js";
import { HTTPException } from "hono/http-exception";
import { requireToken } from "../auth.js";
import { pool, type Env } from "../env.js";
import { runStub } from "./run-stub.js";

export const runners = new Hono<{ Bindings: Env }>()
  .get("/", requireToken("API_TOKEN"), async (c) =>
    c.json({ runners: await pool(c.env).list() } satisfies { runners: RunnerView[] }),
  )
  .get("/connect", requireToken("RUNNER_TOKEN"), async (c) => {
    if (c.req.header("Upgrade") !== "websocket")
      throw new HTTPException(426, { message: "this route takes a WebSocket upgrade" });
    const run = c.req.query("run");
    if (run === undefined) return pool(c.env).fetch(c.req.raw);
    return runStub(c.env, run).fetch(c.req.raw);
  });
