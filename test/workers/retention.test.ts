// Retention (worker/retention.ts), in workerd with scripted runners: `DELETE /api/dags/:id` takes a
// finished run's storage, index line, logs and blob references, and refuses an open run; the
// scheduled sweep then takes the blobs no run, cache entry or module holds once past their grace,
// and keeps those another run, the cache or a module holds, and one uploaded moments ago. Runs
// past RUN_RETENTION go by the sweep alone; the result cache keeps to its age and size bounds.
import {
  createExecutionContext,
  createScheduledController,
  env,
  runInDurableObject,
  SELF,
  waitOnExecutionContext,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { DeleteAnswer, RunSummary } from "../../core/api";
import { PROTOCOL_VERSION } from "../../core/protocol/messages";
import worker from "../../worker/index";
import type { Env } from "../../worker/env";
import { wasmModule } from "../helpers/wasm-builder";
import { API, asDevice, base, RunnerSocket, runnerInfo } from "./socket";

const json = { "Content-Type": "application/json" };
const hex = async (bytes: Uint8Array) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
const bytesOf = (text: string) => new TextEncoder().encode(text);

async function submit(body: string | object): Promise<string> {
  const res = await SELF.fetch(`${base}/api/dags`, {
    method: "POST",
    headers: typeof body === "string" ? API : { ...API, ...json },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return (await res.json<RunSummary>()).id;
}

/** Runs the scheduled handler as the Cron Trigger would, at `at`, with these vars. */
async function scheduledSweep(vars: Partial<Env> = {}, at = Date.now()): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ scheduledTime: at, cron: "17 * * * *" }),
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

const inR2 = async (key: string) => (await env.BLOBS.head(key)) !== null;
const status = async (id: string) => (await SELF.fetch(`${base}/api/dags/${id}?summary`, { headers: API })).status;

describe("retention", () => {
  it("deletes a finished run at DELETE, and the sweep its blobs alone: shared, cached, module and fresh blobs stay", async () => {
    const module = wasmModule();
    const put = await SELF.fetch(`${base}/api/modules/keep.wasm`, { method: "PUT", headers: API, body: module });
    const moduleSha = (await put.json<{ sha256: string }>()).sha256;
    // Run A: two tasks whose outputs go to R2: `only` (held by A alone) and `shared` (B's input too).
    const run = await submit(
      "name: a\ncache: false\ntasks:\n  - { id: only, module: keep.wasm }\n  - { id: shared, module: keep.wasm }\n",
    );
    const runner = await RunnerSocket.open(`/api/runners/connect?run=${run}`, "keeper");
    runner.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("keeper"), want: 2 });
    await runner.next("welcome");
    const tasks = (await runner.next("tasks")).tasks;
    const outputs = { only: bytesOf(`"only ${run}"`), shared: bytesOf(`"shared ${run}"`) };
    const shas: Record<string, string> = {};
    for (const [task, bytes] of Object.entries(outputs)) {
      shas[task] = await hex(bytes);
      const up = await SELF.fetch(`${base}/api/blobs/sha256:${shas[task]}?run=${run}`, {
        method: "PUT",
        headers: await asDevice("keeper"),
        body: bytes,
      });
      expect(up.status).toBe(200);
    }
    runner.send({
      type: "results",
      results: tasks.map((t) => ({
        task: t.task,
        attempt: t.attempt,
        ok: true,
        outputRef: { sha256: shas[t.task]!, size: outputs[t.task as keyof typeof outputs].length },
        stderr: "",
        durationMs: 1,
      })),
      want: 0,
      received: 2,
    });
    await runner.ended(); // the run finished: its sockets close
    expect(
      (await (await SELF.fetch(`${base}/api/dags/${run}?summary`, { headers: API })).json<RunSummary>()).status,
    ).toBe("succeeded");
    await env.BLOBS.put(`logs/${run}/only/1`, "a log moved to R2");

    // Run B holds `shared` as the file of its input; nothing runs it, so it stays open.
    await SELF.fetch(`${base}/api/blobs/sha256:${shas.shared}`, { method: "PUT", headers: API, body: outputs.shared });
    const open = await submit({
      dag: "name: b\ncache: false\ninputs: [doc]\ntasks:\n  - { id: read, module: keep.wasm, depends_on: [doc] }\n",
      inputs: { doc: { file: { name: "doc", size: outputs.shared.length, sha256: shas.shared } } },
    });
    // A cache entry holds a blob of its own.
    const cached = bytesOf(`"cached ${run}"`);
    const cachedSha = await hex(cached);
    await SELF.fetch(`${base}/api/blobs/sha256:${cachedSha}`, { method: "PUT", headers: API, body: cached });
    await env.DB.prepare(`INSERT INTO cache (key, output_sha, size, created_at, device) VALUES (?, ?, ?, ?, 'keeper')`)
      .bind(`key-${run}`, cachedSha, cached.length, Date.now())
      .run();

    // An open run is not deleted; a finished one is, at once.
    const refused = await SELF.fetch(`${base}/api/dags/${open}`, { method: "DELETE", headers: API });
    expect(refused.status).toBe(409);
    expect((await refused.json<{ error: string }>()).error).toMatch(/is queued: cancel it first, or wait for its end/);
    const deleted = await SELF.fetch(`${base}/api/dags/${run.slice(0, 12)}`, { method: "DELETE", headers: API });
    expect(await deleted.json<DeleteAnswer>()).toEqual({ id: run, deleted: true });
    expect(await status(run)).toBe(404);
    expect(await status(run.slice(0, 12))).toBe(404);
    await runInDurableObject(env.DAG_RUN.get(env.DAG_RUN.idFromString(run)), (_object, state) => {
      for (const table of ["meta", "tasks", "attempts", "nodes"])
        expect(state.storage.sql.exec(`SELECT count(*) AS n FROM ${table}`).one().n, table).toBe(0);
    });
    expect(await env.DB.prepare(`SELECT count(*) AS n FROM run_index WHERE id = ?`).bind(run).first("n")).toBe(0);
    expect((await env.BLOBS.list({ prefix: `logs/${run}/` })).objects).toEqual([]);
    expect(await env.DB.prepare(`SELECT count(*) AS n FROM blob_refs WHERE run = ?`).bind(run).first("n")).toBe(0);
    // Its blobs wait for the sweep.
    expect(await inR2(`outputs/${shas.only}`)).toBe(true);
    // Deleting it again: no such run.
    expect((await SELF.fetch(`${base}/api/dags/${run}`, { method: "DELETE", headers: API })).status).toBe(404);

    // Past a grace of 1 s, a blob uploaded moments ago is still inside its grace.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = bytesOf(`"fresh ${run}"`);
    const freshSha = await hex(fresh);
    await SELF.fetch(`${base}/api/blobs/sha256:${freshSha}`, { method: "PUT", headers: API, body: fresh });
    // A blob in R2 from before retention (no row): an upload of it now leaves it unnoted, never swept.
    const legacy = bytesOf(`"legacy ${run}"`);
    const legacySha = await hex(legacy);
    await env.BLOBS.put(`outputs/${legacySha}`, legacy);
    await SELF.fetch(`${base}/api/blobs/sha256:${legacySha}`, { method: "PUT", headers: API, body: legacy });
    // The first sweep marks what nothing holds; it deletes nothing yet.
    const t0 = Date.now();
    await scheduledSweep({ BLOB_GRACE: "1s" }, t0);
    expect(await inR2(`outputs/${shas.only}`), "marked, not yet deleted").toBe(true);
    const marked = async (sha: string) =>
      env.DB.prepare(`SELECT doomed_at FROM blobs WHERE sha256 = ?`).bind(sha).first<number | null>("doomed_at");
    expect(await marked(shas.only!)).toBe(t0);
    expect(await marked(shas.shared!), "held by B").toBeNull();
    // The sweep an hour later deletes it, and only it.
    await scheduledSweep({ BLOB_GRACE: "1s" }, t0 + 3_600_000);
    expect(await inR2(`outputs/${shas.only}`), "held by A alone").toBe(false);
    expect(await inR2(`outputs/${shas.shared}`), "held by B").toBe(true);
    expect(await inR2(`outputs/${cachedSha}`), "held by the cache").toBe(true);
    expect(await inR2(`modules/${moduleSha}`), "a module").toBe(true);
    expect(await inR2(`outputs/${freshSha}`), "inside its grace at the first sweep").toBe(true);
    expect(await inR2(`outputs/${legacySha}`), "from before retention").toBe(true);
    expect(await env.DB.prepare(`SELECT count(*) AS n FROM blobs WHERE sha256 = ?`).bind(shas.only).first("n")).toBe(0);
    // The fresh one was marked by that sweep; uploaded again, it is not deleted by the next.
    expect(await marked(freshSha)).toBe(t0 + 3_600_000);
    await SELF.fetch(`${base}/api/blobs/sha256:${freshSha}`, { method: "PUT", headers: API, body: fresh });
    expect(await marked(freshSha)).toBeNull();
    await scheduledSweep({ BLOB_GRACE: "1s" }, Date.now() + 2 * 3_600_000);
    expect(await inR2(`outputs/${freshSha}`), "uploaded again").toBe(true);
    await SELF.fetch(`${base}/api/dags/${open}/cancel`, { method: "POST", headers: API });
  });

  it("finishes a delete that was cut short after the run's storage went", async () => {
    const put = await SELF.fetch(`${base}/api/modules/keep.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    expect(put.status).toBe(200);
    const id = await submit("name: cut\ncache: false\ntasks:\n  - { id: t, module: keep.wasm }\n");
    await SELF.fetch(`${base}/api/dags/${id}/cancel`, { method: "POST", headers: API });
    // The object's storage goes, then the delete stops (say R2 failed): the index line stays.
    expect((await env.DAG_RUN.get(env.DAG_RUN.idFromString(id)).purge()).ok).toBe(true);
    expect(await env.DB.prepare(`SELECT count(*) AS n FROM run_index WHERE id = ?`).bind(id).first("n")).toBe(1);
    const again = await SELF.fetch(`${base}/api/dags/${id}`, { method: "DELETE", headers: API });
    expect(await again.json<DeleteAnswer>()).toEqual({ id, deleted: true });
    expect(await env.DB.prepare(`SELECT count(*) AS n FROM run_index WHERE id = ?`).bind(id).first("n")).toBe(0);
    // A run there never was is a 404.
    expect((await SELF.fetch(`${base}/api/dags/${"a".repeat(64)}`, { method: "DELETE", headers: API })).status).toBe(
      404,
    );
  });

  it("deletes runs past RUN_RETENTION at the sweep, and keeps the result cache to its age and size bounds", async () => {
    const put = await SELF.fetch(`${base}/api/modules/keep.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    expect(put.status).toBe(200);
    const old = await submit("name: old\ncache: false\ntasks:\n  - { id: t, module: keep.wasm }\n");
    await SELF.fetch(`${base}/api/dags/${old}/cancel`, { method: "POST", headers: API }); // finished
    const live = await submit("name: live\ncache: false\ntasks:\n  - { id: t, module: keep.wasm }\n");
    const now = Date.now();
    const entry = (key: string, size: number, age: number) =>
      env.DB.prepare(`INSERT INTO cache (key, output, size, created_at, device) VALUES (?, ?, ?, ?, 'keeper')`)
        .bind(key, new Uint8Array(size), size, now - age)
        .run();
    await env.DB.prepare(`DELETE FROM cache`).run();
    await entry("ancient", 10, 40 * 86_400_000);
    await entry("older", 600, 3000);
    await entry("newer", 600, 2000);
    await entry("newest", 300, 1000);
    // An hour later, with runs kept 30 minutes: the cancelled run goes, the open one stays.
    await scheduledSweep({ RUN_RETENTION: "30m", CACHE_MAX_BYTES: "1000" }, now + 3_600_000);
    expect(await status(old)).toBe(404);
    expect(await status(live)).toBe(200);
    const keys = (await env.DB.prepare(`SELECT key FROM cache ORDER BY key`).all<{ key: string }>()).results;
    // 40 days is past the 30-day bound; of the rest, the newest that fit in 1000 bytes stay.
    expect(keys.map((k) => k.key)).toEqual(["newer", "newest"]);
    await SELF.fetch(`${base}/api/dags/${live}/cancel`, { method: "POST", headers: API });
  });
});
