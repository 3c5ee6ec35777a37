/**
 * `/api/dags`: submit a DAG (YAML or JSON), list runs, read one run and its task outputs.
 * Submission validates everything (syntax, schema, graph, modules) before any run exists.
 */
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { parseDag } from "../../core/dag/parse.js";
import {
  IDEMPOTENCY_HEADER,
  REPLAYED_HEADER,
  type ControlAnswer,
  type DeleteAnswer,
  type ErrorBody,
  type RetryAnswer,
  type RunListing,
  type RunSummary,
  type Submitter,
  type SubmitAnswer,
  type TimelineView,
} from "../../core/api.js";
import { deleteRun } from "../retention.js";
import type { Problem, ResolvedNode, ResolvedPlan } from "../../core/dag/plan.js";
import { readOrSubmit, requireScope, type ApiCaller, type CallerEnv } from "../auth.js";
import { ABANDONED_CLAIM_MS, claimKey, keyed, priorRun, releaseKey, type Keyed } from "../idempotency.js";
import { indexed, inputBlobSizes, moduleByName, recentRuns } from "../db.js";
import type { Env } from "../env.js";
import { outputResponse, readText } from "../http.js";
import { moduleKey, outputKey } from "../blob-keys.js";
import { TASK_STATES, type TaskState } from "../../core/status.js";
import { valueOf } from "../errors.js";
import { exactRunStub, runId, runStub } from "./run-stub.js";
import { checkInputs, inputsSchema } from "../run-inputs.js";
import { z } from "zod";
import { DEVICE_HEADER, type ControlAction, type RunLink } from "../rpc.js";
import type { Answer } from "../errors.js";

/** Largest DAG document accepted. */
const MAX_DAG_BYTES = 8 * 1024 * 1024;
/** Largest submission (the DAG with its params and the list of its inputs' files). */
const MAX_SUBMISSION_BYTES = 24 * 1024 * 1024;

const submission = z.strictObject({
  dag: z.string(),
  params: z.record(z.string(), z.unknown()).default({}),
  inputs: inputsSchema.default({}),
});

/** The body as a submission: a JSON object with `dag`, or the DAG document itself. */
function readSubmission(text: string): z.output<typeof submission> {
  let body: unknown;
  try {
    body = text.trimStart().startsWith("{") ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (body === null || typeof body !== "object" || !("dag" in body)) {
    if (text.length > MAX_DAG_BYTES)
      throw new HTTPException(413, { message: `a DAG is at most ${MAX_DAG_BYTES} bytes` });
    return { dag: text, params: {}, inputs: {} };
  }
  const parsed = submission.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `\`${issue.path.join(".")}\`: ` : "";
    throw new HTTPException(400, { message: `invalid submission: ${where}${issue.message}` });
  }
  if (parsed.data.dag.length > MAX_DAG_BYTES)
    throw new HTTPException(413, { message: `a DAG is at most ${MAX_DAG_BYTES} bytes` });
  return parsed.data;
}

/** The token of the request, as a run records who submitted it. */
function submitter(caller: ApiCaller): Submitter {
  return { token: caller.token, name: caller.name };
}

/**
 * 403 unless the request's token may control run `stub`: an admin token any run, a submit token
 * only the runs it submitted.
 */
async function mayControl(caller: ApiCaller, stub: ReturnType<typeof exactRunStub>): Promise<void> {
  if (caller.scope !== "admin") mayControlRun(caller, valueOf(await stub.status()));
}

/** 403 unless `caller`, a token below admin, submitted `run`. */
function mayControlRun(caller: ApiCaller, run: RunSummary): void {
  if (caller.scope === "admin" || run.submitted_by?.token === caller.token) return;
  const by = run.submitted_by ? `token ${run.submitted_by.token} (${run.submitted_by.name})` : "an older coordinator";
  throw new HTTPException(403, {
    message: `token ${caller.token} (${caller.name}) has scope ${caller.scope}: it controls only the runs it submitted, and run ${run.id.slice(0, 12)} was submitted by ${by}`,
  });
}

const apiCaller = (c: Context<CallerEnv>) => c.get("caller") as ApiCaller;

/** A submission's answer: the run's summary and the page that follows it. */
function submitAnswer(c: Context<CallerEnv>, summary: RunSummary): SubmitAnswer {
  return { ...summary, url: `${new URL(c.req.url).origin}/#/runs/${summary.id}` };
}

/** The 409 of a key whose first submission is still starting its run: send it again soon. */
function stillStarting(c: Context<CallerEnv>, key: Keyed, run: string): Response {
  c.header("Retry-After", "1");
  const error = `the submission with ${IDEMPOTENCY_HEADER} "${key.key}" is still starting run ${run.slice(0, 12)}: send it again in a moment`;
  return c.json({ error } satisfies ErrorBody, 409);
}

/**
 * The answer to a submission sent again under its key, if an earlier one holds the key: the run
 * it made (200, marked replayed), or a 409 with `Retry-After` while it is still starting it. A
 * claim whose run never started (its request died between the two) is let go after
 * ABANDONED_CLAIM_MS: undefined, the submission goes on as a new one.
 */
async function replay(c: Context<CallerEnv>, key: Keyed): Promise<Response | undefined> {
  const prior = await priorRun(c.env.DB, key);
  if (!prior) return undefined;
  const status = await exactRunStub(c.env, prior.run).status();
  if (status.ok) {
    c.header(REPLAYED_HEADER, "true");
    return c.json(submitAnswer(c, status.value), 200);
  }
  if (status.code !== "not_found") valueOf(status);
  if (Date.now() - prior.createdAt < ABANDONED_CLAIM_MS) return stillStarting(c, key, prior.run);
  await releaseKey(c.env.DB, key, prior.run);
  return undefined;
}

/** Whether run `id` was made (its object has it), so that a failure after the start keeps its key. */
async function made(c: Context<CallerEnv>, id: string): Promise<boolean> {
  const status = await exactRunStub(c.env, id)
    .status()
    .catch(() => undefined);
  return status === undefined || status.ok || status.code !== "not_found";
}

export const dags = new Hono<CallerEnv>()
  .use(requireScope(readOrSubmit))
  .post("/", async (c) => {
    const text = await readText(c.req.raw, MAX_SUBMISSION_BYTES);
    const key = await keyed(c.req.header(IDEMPOTENCY_HEADER), apiCaller(c).token, text);
    const replayed = key && (await replay(c, key));
    if (replayed) return replayed;
    const body = readSubmission(text);
    const parsed = parseDag(body.dag, { params: body.params });
    if (!parsed.ok) return c.json({ error: "invalid DAG", problems: parsed.problems } satisfies ErrorBody, 400);
    const checked = await checkInputs(parsed, body.inputs, (shas) => inputBlobSizes(c.env.DB, shas));
    if (!checked.ok) return c.json({ error: "invalid DAG", problems: checked.problems } satisfies ErrorBody, 400);
    const { plan } = checked;
    const { locate } = parsed;
    const problems: Problem[] = [];
    const nodes: ResolvedNode[] = [];
    const resolved = new Map<string, string | null>();
    for (const node of plan.nodes) {
      if (!resolved.has(node.module)) resolved.set(node.module, await resolveModule(c.env, node.module));
      const sha256 = resolved.get(node.module);
      if (sha256) nodes.push({ ...node, sha256 });
      else {
        const name = node.module.startsWith("sha256:") ? "<name>" : node.module;
        const message = `unknown module "${node.module}": upload it with PUT /api/modules/${name} first`;
        problems.push({ ...locate(node.id, "module"), message });
      }
    }
    if (problems.length > 0) return c.json({ error: "invalid DAG", problems } satisfies ErrorBody, 400);
    const resolvedPlan: ResolvedPlan = { name: plan.name, nodes, inputs: body.inputs };
    const id = c.env.DAG_RUN.newUniqueId();
    if (key && !(await claimKey(c.env.DB, key, id.toString())))
      // Another submission under the key claimed it first: its run, or a 409 while it starts.
      return (await replay(c, key)) ?? stillStarting(c, key, id.toString());
    let summary: RunSummary;
    try {
      summary = valueOf(await c.env.DAG_RUN.get(id).start(id.toString(), resolvedPlan, submitter(apiCaller(c))));
    } catch (e) {
      // A run that exists keeps its key (a retry gets it); only one that was never made lets go.
      if (key && !(await made(c, id.toString()))) await releaseKey(c.env.DB, key, id.toString());
      throw e;
    }
    return c.json(submitAnswer(c, summary), 201);
  })
  .get("/", async (c) => {
    const limit = Math.min(Math.max(Number(c.req.query("limit") ?? 50) || 50, 1), 500);
    return c.json({ runs: await recentRuns(c.env.DB, limit) } satisfies { runs: RunListing[] });
  })
  .get("/:id", async (c) => {
    const stub = await runStub(c.env, c.req.param("id"));
    const page = (name: string, fallback: number) => {
      const value = c.req.query(name);
      if (value === undefined) return fallback;
      if (!/^\d{1,9}$/.test(value))
        throw new HTTPException(400, { message: `?${name} takes a whole number, not "${value}"` });
      return Number(value);
    };
    const state = c.req.query("state");
    if (state !== undefined && !(TASK_STATES as readonly string[]).includes(state)) {
      throw new HTTPException(400, { message: `?state takes one of ${TASK_STATES.join(", ")}, not "${state}"` });
    }
    const answer =
      c.req.query("summary") === undefined
        ? await stub.view(page("offset", 0), page("limit", -1), state as TaskState | undefined)
        : await stub.status();
    return c.json(valueOf(answer));
  })
  .get("/:id/timeline", async (c) =>
    c.json(valueOf(await (await runStub(c.env, c.req.param("id"))).timeline()) satisfies TimelineView),
  )
  .get("/:id/watch", async (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
      throw new HTTPException(426, { message: "GET /api/dags/:id/watch is a WebSocket: send `Upgrade: websocket`" });
    // The run's object takes a socket with DEVICE_HEADER for a runner's (only /api/runners/connect
    // sets it, for the device it proved): a watcher's request must not carry one a client chose.
    const headers = new Headers(c.req.raw.headers);
    headers.delete(DEVICE_HEADER);
    return (await runStub(c.env, c.req.param("id"))).fetch(new Request(c.req.raw, { headers }));
  })
  .post("/:id/:action{cancel|pause|resume}", async (c) => {
    const action = c.req.param("action") as ControlAction;
    // The answer names the run by its full id, whatever prefix the URL gave.
    const id = await runId(c.env, c.req.param("id"));
    const stub = exactRunStub(c.env, id);
    await mayControl(apiCaller(c), stub);
    const { status } = valueOf(await stub.control(action));
    return c.json({ id, status } satisfies ControlAnswer);
  })
  .delete("/:id", async (c) => {
    // Its storage, logs, index line and blob references now; blobs only it held at the next sweep.
    const id = await runId(c.env, c.req.param("id"));
    const stub = exactRunStub(c.env, id);
    const caller = apiCaller(c);
    const known = await stub.status();
    if (known.ok) mayControlRun(caller, known.value);
    // A delete cut short left the index line of a run whose object is empty: an admin finishes it.
    else if (caller.scope !== "admin" || !(await indexed(c.env.DB, id))) valueOf(known);
    await deleteRun(c.env, id);
    return c.json({ id, deleted: true } satisfies DeleteAnswer);
  })
  .post("/:id/retry", async (c) => {
    const body = await readRetry(c.req.raw);
    const stub = await runStub(c.env, c.req.param("id"));
    await mayControl(apiCaller(c), stub);
    if (body.from === undefined) return c.json(valueOf(await stub.retry(body.tasks)) satisfies RetryAnswer);
    // A new run, linked: it re-runs `from` and what is downstream, and reuses the rest.
    // The plan holds `unknown` values (params, items), which the RPC types cannot follow.
    const link = (await stub.retryFrom(body.from)) as Answer<{ plan: ResolvedPlan } & RunLink>;
    const { plan, from, seeds } = valueOf(link);
    const id = c.env.DAG_RUN.newUniqueId();
    const run = valueOf(
      await c.env.DAG_RUN.get(id).start(id.toString(), plan, submitter(apiCaller(c)), { from, seeds }),
    );
    const answer: RetryAnswer = {
      id: run.id,
      status: run.status,
      retried: run.tasks_total - run.counts.succeeded,
      retry_of: from,
    };
    return c.json(answer, 201);
  })
  .get("/:id/tasks/:task/output", async (c) => {
    const task = c.req.param("task");
    const output = valueOf(await (await runStub(c.env, c.req.param("id"))).output(task));
    if (output instanceof Uint8Array) return outputResponse(output, task);
    // A blob is read whole (at most MAX_OUTPUT_BYTES): its type comes from its bytes too.
    const object = await c.env.BLOBS.get(outputKey(output.sha256));
    if (!object)
      throw new HTTPException(500, {
        message: `the output of ${task} (sha256:${output.sha256}) is missing from blob storage`,
      });
    return outputResponse(new Uint8Array(await object.arrayBuffer()), task, { "X-Sha256": output.sha256 });
  });

/** A registry name or `sha256:<hex>` to the hash of bytes present in R2, or null. */
async function resolveModule(env: Env, ref: string): Promise<string | null> {
  if (ref.startsWith("sha256:")) {
    const hex = ref.slice(7).toLowerCase();
    return /^[0-9a-f]{64}$/.test(hex) && (await env.BLOBS.head(moduleKey(hex))) ? hex : null;
  }
  return (await moduleByName(env.DB, ref))?.sha256 ?? null;
}

const retryBody = z
  .strictObject({
    tasks: z.array(z.string().min(1).max(160)).min(1).max(1000).optional(),
    from: z.string().min(1).max(160).optional(),
  })
  .refine((b) => b.tasks === undefined || b.from === undefined, "give `tasks` or `from`, not both");

/** The body of `POST /api/dags/:id/retry`: none, or `{tasks: [...]}` (node ids or task keys). */
async function readRetry(request: Request): Promise<z.output<typeof retryBody>> {
  const text = await readText(request, 256 * 1024);
  if (text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HTTPException(400, {
      message: 'the body of a retry is JSON: {}, {"tasks": ["<task id>", …]} or {"from": "<task id>"}',
    });
  }
  const parsed = retryBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new HTTPException(400, {
      message: `invalid retry: ${issue.path.length > 0 ? `\`${issue.path.join(".")}\`: ` : ""}${issue.message}`,
    });
  }
  return parsed.data;
}
