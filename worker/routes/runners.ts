/**
 * `/api/runners`: devices joining (`POST /enroll`, an enrollment token or the development secret
 * for a credential), the list of connected runners and enrolled devices, revoking a device, and
 * the runners' WebSocket endpoint. Without `?run=` the socket goes to the RunnerPool (presence);
 * with `?run=<id>` to that run's DagRun. The device the credential proves travels with the socket
 * (DEVICE_HEADER), so the objects accept only that device's runner ids.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import type { EnrollAnswer, RevokeAnswer, RunnerListing, TrustAnswer } from "../../core/api.js";
import { deviceOfRunner } from "../../core/protocol/messages.js";
import { bears, requireDevice, requireScope, unauthorized, type CallerEnv } from "../auth.js";
import { liveRuns, purgeOutputsOf } from "../db.js";
import {
  DEVICE_ID,
  devices,
  enrollWithDevSecret,
  enrollWithToken,
  revokeDevice,
  setTrust,
  touchDevice,
} from "../devices.js";
import { pool, type Env } from "../env.js";
import { readText } from "../http.js";
import { DEVICE_HEADER } from "../rpc.js";
import { exactRunStub } from "./run-stub.js";
import { valueOf } from "../errors.js";

const enrollBody = z.strictObject({
  name: z.string().min(1).max(128),
  /** With the development secret only: the device id to claim when nobody holds it yet. */
  device: z.string().regex(DEVICE_ID, "a device id is 1 to 64 of letters, digits, _ and -").optional(),
});

export const runners = new Hono<CallerEnv>()
  .get("/", requireScope("read"), async (c) => {
    const stub = pool(c.env);
    const [list, connected, cooled] = await Promise.all([stub.list(), stub.connectedDevices(), stub.cooled()]);
    const all = await devices(c.env.DB, new Set(connected), cooled);
    return c.json({ runners: list, devices: all } satisfies RunnerListing);
  })
  .post("/enroll", async (c) => {
    const text = await readText(c.req.raw, 4096);
    let body;
    try {
      body = enrollBody.parse(JSON.parse(text));
    } catch (e) {
      const detail =
        e instanceof z.ZodError
          ? e.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
          : (e as Error).message;
      throw new HTTPException(400, { message: `expected {"name": "<runner name>"}: ${detail}` });
    }
    const auth = c.req.header("Authorization") ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
    if (!token) throw unauthorized("missing `Authorization: Bearer <enrollment token>` header");
    const dev = await bears(c.env, c.req.raw, "RUNNER_TOKEN");
    const answer = dev
      ? await enrollWithDevSecret(c.env.DB, body.name, body.device)
      : await enrollWithToken(c.env.DB, token, body.name);
    if ("refused" in answer) {
      if (answer.refused === 401) throw unauthorized(answer.message);
      throw new HTTPException(403, { message: answer.message });
    }
    return c.json(answer satisfies EnrollAnswer);
  })
  .delete("/:id", requireScope("admin"), async (c) => {
    const id = c.req.param("id");
    if (!DEVICE_ID.test(id) || !(await revokeDevice(c.env.DB, id))) throw noDevice(id);
    const fromPool = await pool(c.env).revoke(id);
    // The runs its runners said they were in, and every live run in case a status frame was behind.
    const runs = new Set([...fromPool.runs, ...(await liveRuns(c.env.DB))]);
    const closed = await Promise.all(
      [...runs].map((run) =>
        exactRunStub(c.env, run)
          .revoke(id)
          .catch(() => 0),
      ),
    );
    await purgeOutputsOf(c.env.DB, id);
    const [device] = await devices(c.env.DB, new Set(), new Map(), id);
    return c.json({
      device: device!,
      closed: fromPool.closed + closed.reduce((a, b) => a + b, 0),
    } satisfies RevokeAnswer);
  })
  // Trusting lets a device's outputs fill the result cache; untrusting purges what it filed.
  .put("/:id/trust", requireScope("admin"), (c) => trust(c.env, c.req.param("id"), true))
  .delete("/:id/trust", requireScope("admin"), (c) => trust(c.env, c.req.param("id"), false))
  // The envelope of a leased attempt too large for its tasks frame (`stdinBytes`).
  .get("/envelope", requireDevice({ orScope: null }), async (c) => {
    const caller = c.get("caller");
    const { run, task, attempt } = c.req.query();
    if (caller.kind !== "device" || !run || !task || !/^\d{1,9}$/.test(attempt ?? ""))
      throw new HTTPException(400, { message: "GET /api/runners/envelope takes ?run=<id>&task=<key>&attempt=<n>" });
    const envelope = valueOf(await exactRunStub(c.env, run).envelope(caller.device, task, Number(attempt)));
    return c.body(envelope, 200, { "Content-Type": "application/json" });
  })
  .get("/connect", requireDevice({ orScope: null }), async (c) => {
    if (c.req.header("Upgrade") !== "websocket")
      throw new HTTPException(426, { message: "this route takes a WebSocket upgrade" });
    const caller = c.get("caller");
    if (caller.kind !== "device") throw new HTTPException(403, { message: "runner sockets take a device credential" });
    const headers = new Headers(c.req.raw.headers);
    headers.set(DEVICE_HEADER, caller.device);
    const forwarded = new Request(c.req.raw, { headers });
    const run = c.req.query("run");
    if (run === undefined) {
      c.executionCtx.waitUntil(touchDevice(c.env.DB, caller.device));
      return pool(c.env).fetch(forwarded);
    }
    // A runner names its run by the full id its assignments carry: no prefix is looked up.
    return exactRunStub(c.env, run).fetch(forwarded);
  });

async function trust(env: Env, id: string, trusted: boolean): Promise<Response> {
  if (!DEVICE_ID.test(id) || !(await setTrust(env.DB, id, trusted))) throw noDevice(id);
  const purged = trusted ? 0 : await purgeOutputsOf(env.DB, id);
  const stub = pool(env);
  const [connected, cooled] = await Promise.all([stub.connectedDevices(), stub.cooled()]);
  const [device] = await devices(env.DB, new Set(connected), cooled, id);
  return Response.json({ device: device!, purged } satisfies TrustAnswer);
}

/** 404 for an id that names no device; a runner id (`<device>.<k>`) is pointed at its device. */
function noDevice(id: string): HTTPException {
  const device = deviceOfRunner(id);
  const hint = device !== id ? `: ${id} is a runner process of device ${device}; name the device` : "";
  return new HTTPException(404, { message: `no device ${id}${hint}` });
}
