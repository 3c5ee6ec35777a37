// Whole logs, in workerd: `log` frames are kept only for the attempt leased to the runner that
// sends them (any other is stray), contiguous, at most 1 MiB an attempt; a large log goes to R2
// whole once its attempt ends and leaves the run's SQLite; `GET /api/dags/:id/tasks/:task/logs`
// reads any of them from an offset.
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LOG_LIMITS, PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, runnerInfo } from "./socket";

async function submit(yaml = "cache: false\ntasks:\n  - id: only\n    module: logs.wasm\n"): Promise<string> {
  await SELF.fetch(`${base}/api/modules/logs.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: yaml });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

async function runner(id: string, name: string, want = 1): Promise<RunnerSocket> {
  const socket = await RunnerSocket.open(`/api/runners/connect?run=${id}`, name);
  socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo(name, 1), want });
  await socket.next("welcome");
  return socket;
}

const logs = (id: string, query = "", task = "only") =>
  SELF.fetch(`${base}/api/dags/${id}/tasks/${encodeURIComponent(task)}/logs${query}`, { headers: API });

async function read(id: string, query = "") {
  const res = await logs(id, query);
  expect(res.status).toBe(200);
  const h = (name: string) => res.headers.get(name);
  return {
    text: await res.text(),
    type: h("Content-Type"),
    running: h("X-Log-Running"),
    next: h("X-Log-Next"),
    cut: h("X-Log-Cut"),
    attempt: h("X-Log-Attempt"),
  };
}

async function stray(): Promise<number> {
  const text = await (await SELF.fetch(`${base}/metrics`, { headers: API })).text();
  const line = text.split("\n").find((l) => l.startsWith("distro_stray_frames_total "));
  return Number(line?.split(" ")[1] ?? 0);
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const done = (a: Assignment, stderr = "") => ({
  type: "results" as const,
  results: [{ task: a.task, attempt: a.attempt, ok: true, output: btoa("1"), stderr, durationMs: 1 }],
  want: 0,
  received: 1,
});

describe("log frames", () => {
  it("are kept for the lessee's attempt only, and read from an offset while it runs and after", async () => {
    const id = await submit();
    const lessee = await runner(id, "lessee");
    const [task] = (await lessee.next("tasks")).tasks;
    const other = await runner(id, "bystander", 0);
    const before = await stray();
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 0, chunk: "héllo " });
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 7, chunk: "world\n" });
    other.send({ type: "log", task: "only", attempt: 1, offset: 13, chunk: "not mine\n" });
    lessee.send({ type: "log", task: "only", attempt: 2, offset: 0, chunk: "no such lease\n" });
    await eventually(async () => (await stray()) === before + 2);
    expect(await read(id)).toEqual({
      text: "héllo world\n",
      type: "text/plain; charset=utf-8",
      running: "true",
      next: "13",
      cut: null,
      attempt: "1",
    });
    expect(await read(id, "?offset=7")).toMatchObject({ text: "world\n", next: "13" });
    expect(await read(id, "?offset=13&attempt=1")).toMatchObject({ text: "", next: "13", running: "true" });

    lessee.send(done(task!, "world\n"));
    expect((await lessee.next("finished")).status).toBe("succeeded");
    // A small log stays in the run's rows.
    expect(await read(id)).toMatchObject({ text: "héllo world\n", running: "false", next: "13", cut: null });
    for (const s of [lessee, other]) s.ws.close(1000, "done");
  });

  it("keep 1 MiB of an attempt, count the rest as cut, and move a large log to R2 when it ends", async () => {
    const id = await submit();
    const lessee = await runner(id, "chatty");
    const [task] = (await lessee.next("tasks")).tasks;
    const piece = "a".repeat(LOG_LIMITS.chunkBytes);
    const pieces = LOG_LIMITS.attemptBytes / LOG_LIMITS.chunkBytes + 1;
    for (let i = 0; i < pieces; i++)
      lessee.send({ type: "log", task: "only", attempt: 1, offset: i * piece.length, chunk: piece });
    // What the runner did not send: the last piece (cut at 1 MiB here) and 10 bytes more.
    const last = { type: "log", task: "only", attempt: 1, chunk: "", dropped: piece.length + 10 } as const;
    lessee.send({ ...last, offset: LOG_LIMITS.attemptBytes });
    // Frames may arrive out of order: the log is their contiguous start.
    await eventually(async () => (await read(id, "?offset=0")).next === String(LOG_LIMITS.attemptBytes));
    expect(await read(id, `?offset=${LOG_LIMITS.attemptBytes - 3}`)).toMatchObject({
      text: "aaa",
      running: "true",
      next: String(LOG_LIMITS.attemptBytes),
      cut: String(piece.length + 10),
    });
    lessee.send(done(task!));
    expect((await lessee.next("finished")).status).toBe("succeeded");
    // Saved once the run has applied the result (after it told the runner the run is over).
    await eventually(async () => (await env.BLOBS.head(`logs/${id}/only/1`)) !== null);
    const object = await env.BLOBS.get(`logs/${id}/only/1`);
    expect((await object!.text()).length).toBe(LOG_LIMITS.attemptBytes);
    const rows = await runInDurableObject(
      env.DAG_RUN.get(env.DAG_RUN.idFromString(id)),
      (_run, state) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM logs`).one().n,
    );
    expect(rows).toBe(0);
    const whole = await read(id);
    expect(whole).toMatchObject({ running: "false", next: String(LOG_LIMITS.attemptBytes), cut: String(65_546) });
    expect(whole.text).toBe("a".repeat(LOG_LIMITS.attemptBytes));
    expect(await read(id, `?offset=${LOG_LIMITS.attemptBytes - 5}`)).toMatchObject({ text: "aaaaa" });
    expect(await read(id, `?offset=${LOG_LIMITS.attemptBytes}`)).toMatchObject({ text: "" });
    lessee.ws.close(1000, "done");
  });

  it("keep a log contiguous: a chunk past a gap waits, counted as cut, until the gap fills", async () => {
    const id = await submit();
    const lessee = await runner(id, "gappy");
    await lessee.next("tasks");
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 0, chunk: "one\n" });
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 8, chunk: "three\n" });
    await eventually(async () => (await read(id)).cut !== null);
    expect(await read(id)).toMatchObject({ text: "one\n", next: "4", cut: "10" });
    // The missing chunk, late: the log joins up.
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 4, chunk: "two\n" });
    await eventually(async () => (await read(id)).cut === null);
    expect(await read(id)).toMatchObject({ text: "one\ntwo\nthree\n", next: "14" });
    lessee.ws.close(1000, "done");
  });
});

describe("hostile log frames", () => {
  it("a chunk over one kept is refused; rows past a gap that never closed go when the attempt ends", async () => {
    const id = await submit();
    const lessee = await runner(id, "gaps");
    const [task] = (await lessee.next("tasks")).tasks;
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 0, chunk: "abcd" });
    // The object may handle one socket's frames out of order (run-logs.ts): the overlapping chunk
    // goes once the first is kept, so that it is the one refused.
    await eventually(async () => (await read(id)).text === "abcd");
    lessee.send({ type: "log", task: "only", attempt: 1, offset: 2, chunk: "zzzz" });
    for (let i = 0; i < 4; i++)
      lessee.send({ type: "log", task: "only", attempt: 1, offset: 100 + i * 1000, chunk: "x".repeat(900) });
    await eventually(async () => (await read(id)).cut !== null);
    expect(await read(id)).toMatchObject({ text: "abcd", next: "4" });
    lessee.send(done(task!));
    expect((await lessee.next("finished")).status).toBe("succeeded");
    const rows = () =>
      runInDurableObject(env.DAG_RUN.get(env.DAG_RUN.idFromString(id)), (_run, state) =>
        state.storage.sql
          .exec<{ n: number; bytes: number }>(`SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM logs`)
          .one(),
      );
    await eventually(async () => (await rows()).n === 1);
    expect(await rows()).toEqual({ n: 1, bytes: 4 });
    lessee.ws.close(1000, "done");
  });
});

describe("GET /api/dags/:id/tasks/:task/logs", () => {
  it("serves the result's stderr for an attempt that sent no log, and 404s an unknown task or attempt", async () => {
    const id = await submit(
      "cache: false\ntasks:\n  - id: only\n    module: logs.wasm\n  - { id: later, module: logs.wasm, depends_on: [only] }\n",
    );
    expect((await logs(id, "", "later")).status).toBe(404);
    const lessee = await runner(id, "quiet");
    const [task] = (await lessee.next("tasks")).tasks;
    lessee.send(done(task!, "a short stderr\n"));
    await eventually(async () => (await read(id)).running === "false");
    expect(await read(id)).toMatchObject({ text: "a short stderr\n", running: "false", next: "15", cut: null });
    const missing = await logs(id, "?attempt=2");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "task only has no attempt 2" });
    expect((await logs(id, "", "nope")).status).toBe(404);
    expect((await logs(id, "?offset=-1")).status).toBe(400);
    expect((await logs("f".repeat(64))).status).toBe(404);
    expect((await SELF.fetch(`${base}/api/dags/${id}/tasks/only/logs`)).status).toBe(401);
    lessee.ws.close(1000, "done");
  });
});
