// Idempotent submission (worker/idempotency.ts) in workerd: the same Idempotency-Key sent again
// answers with the run the first submission made and makes no other; the same key with another
// body is refused; keys are their token's own, held only by valid submissions, and name their run
// for a day; deleting the run lets its key go.
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { SubmitAnswer, TokenCreated } from "../../core/api";
import { ABANDONED_CLAIM_MS, IDEMPOTENCY_TTL_MS } from "../../worker/idempotency";
import { sha256Hex } from "../../worker/sha256";
import { sweep } from "../../worker/retention";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base } from "./socket";

const dag = (name: string) => `name: ${name}\ncache: false\ntasks:\n  - { id: a, module: step.wasm }\n`;

function submit(body: string, key?: string, headers: Record<string, string> = API): Promise<Response> {
  const keyed: Record<string, string> = key === undefined ? {} : { "Idempotency-Key": key };
  return SELF.fetch(`${base}/api/dags`, { method: "POST", headers: { ...headers, ...keyed }, body });
}

/** The runs the index lists under `name`. */
async function runsNamed(name: string): Promise<string[]> {
  const rows = await env.DB.prepare(`SELECT id FROM run_index WHERE name = ?`).bind(name).all<{ id: string }>();
  return rows.results.map((r) => r.id);
}

beforeAll(async () => {
  const res = await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  expect(res.status).toBe(200);
});

describe("POST /api/dags with an Idempotency-Key", () => {
  it("sent twice makes one run: the second answer is the first's run, marked replayed", async () => {
    const first = await submit(dag("twice"), "key-twice");
    expect(first.status).toBe(201);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();
    const run = await first.json<SubmitAnswer>();
    const again = await submit(dag("twice"), "key-twice");
    expect(again.status).toBe(200);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    const replayed = await again.json<SubmitAnswer>();
    expect(replayed.id).toBe(run.id);
    expect(replayed.url).toBe(run.url);
    expect(await runsNamed("twice")).toEqual([run.id]);
    // Without a key, the same body is a new run each time.
    expect((await submit(dag("twice"))).status).toBe(201);
    expect(await runsNamed("twice")).toHaveLength(2);
  });

  it("sent twice at once makes one run", async () => {
    const answers = await Promise.all([submit(dag("racing"), "key-race"), submit(dag("racing"), "key-race")]);
    const statuses = answers.map((a) => a.status).sort((a, b) => a - b);
    // One made the run; the other got it (200) or, while it was starting, a 409 saying so.
    expect(statuses).toContain(201);
    expect(statuses.filter((s) => s !== 201)).toHaveLength(1);
    expect([200, 409]).toContain(statuses.find((s) => s !== 201));
    expect(await runsNamed("racing")).toHaveLength(1);
    const late = await submit(dag("racing"), "key-race");
    expect(late.status).toBe(200);
    expect((await late.json<SubmitAnswer>()).id).toBe((await runsNamed("racing"))[0]);
  });

  it("refuses the key with another body (422), and a malformed key (400), making no run", async () => {
    expect((await submit(dag("one body"), "key-body")).status).toBe(201);
    const other = await submit(dag("another body"), "key-body");
    expect(other.status).toBe(422);
    expect((await other.json<{ error: string }>()).error).toMatch(
      /Idempotency-Key "key-body" came with another submission within the day \(run [0-9a-f]{12}\): a new submission takes a new key/,
    );
    expect(await runsNamed("another body")).toEqual([]);
    for (const bad of ["two words", "x".repeat(256), "tab\there"]) {
      const res = await submit(dag("malformed"), bad);
      expect(res.status).toBe(400);
      expect((await res.json<{ error: string }>()).error).toMatch(/Idempotency-Key takes 1 to 255 visible ASCII/);
    }
    expect(await runsNamed("malformed")).toEqual([]);
  });

  it("is held only by a valid submission: a refused one may be fixed and sent under the same key", async () => {
    const broken = await submit("name: fixed\ntasks:\n  - { id: a, module: missing.wasm }\n", "key-fix");
    expect(broken.status).toBe(400);
    const fixed = await submit(dag("fixed"), "key-fix");
    expect(fixed.status).toBe(201);
  });

  it("is the token's own: another token's same key makes its own run", async () => {
    const minted = await SELF.fetch(`${base}/api/tokens`, {
      method: "POST",
      headers: API,
      body: JSON.stringify({ name: "second", scope: "submit" }),
    });
    const { token } = await minted.json<TokenCreated>();
    const mine = await (await submit(dag("shared key"), "key-shared")).json<SubmitAnswer>();
    const theirs = await submit(dag("shared key"), "key-shared", { Authorization: `Bearer ${token}` });
    expect(theirs.status).toBe(201);
    expect((await theirs.json<SubmitAnswer>()).id).not.toBe(mine.id);
  });

  it("names its run for a day: an older key makes a new run, and the sweep deletes it", async () => {
    const first = await (await submit(dag("a day"), "key-day")).json<SubmitAnswer>();
    const aged = Date.now() - IDEMPOTENCY_TTL_MS - 1000;
    await env.DB.prepare(`UPDATE idempotency_keys SET created_at = ? WHERE key = 'key-day'`).bind(aged).run();
    const next = await submit(dag("a day"), "key-day");
    expect(next.status).toBe(201);
    const second = await next.json<SubmitAnswer>();
    expect(second.id).not.toBe(first.id);
    await env.DB.prepare(`UPDATE idempotency_keys SET created_at = ? WHERE key = 'key-day'`).bind(aged).run();
    await sweep(env);
    const left = await env.DB.prepare(`SELECT count(*) AS n FROM idempotency_keys WHERE key = 'key-day'`).first<{
      n: number;
    }>();
    expect(left?.n).toBe(0);
  });

  it("whose run never started (its request died after the claim): 409 while it may still start, then let go", async () => {
    const body = dag("abandoned");
    const ghost = env.DAG_RUN.newUniqueId().toString();
    const claim = async (at: number) =>
      env.DB.prepare(
        `INSERT OR REPLACE INTO idempotency_keys (token, key, body_sha256, run, created_at) VALUES ('API_TOKEN', 'key-ghost', ?, ?, ?)`,
      )
        .bind(await sha256Hex(body), ghost, at)
        .run();
    await claim(Date.now() - 5_000);
    const early = await submit(body, "key-ghost");
    expect(early.status).toBe(409);
    expect(early.headers.get("Retry-After")).toBe("1");
    expect((await early.json<{ error: string }>()).error).toMatch(/is still starting run [0-9a-f]{12}/);
    await claim(Date.now() - ABANDONED_CLAIM_MS - 1000);
    const late = await submit(body, "key-ghost");
    expect(late.status).toBe(201);
    const run = await late.json<SubmitAnswer>();
    expect(run.id).not.toBe(ghost);
    expect((await submit(body, "key-ghost")).status).toBe(200);
  });

  it("lets go of its key when the run is deleted", async () => {
    const run = await (await submit(dag("deleted"), "key-deleted")).json<SubmitAnswer>();
    const control = (path: string, method = "POST") =>
      SELF.fetch(`${base}/api/dags/${run.id}${path}`, { method, headers: API });
    expect((await control("/cancel")).status).toBe(200);
    expect((await control("", "DELETE")).status).toBe(200);
    const again = await submit(dag("deleted"), "key-deleted");
    expect(again.status).toBe(201);
    expect((await again.json<SubmitAnswer>()).id).not.toBe(run.id);
  });
});
