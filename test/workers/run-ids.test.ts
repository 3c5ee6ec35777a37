// Short run ids: every operator route that takes a run id takes a unique prefix of at least 8
// hex digits, resolved through the D1 run index (a run is there from its submission); too short
// or not hex is a 400, no match a 404, several a 409 listing them. In workerd.
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, WatchSocket } from "./socket";

async function submit(yaml: string): Promise<string> {
  await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: `cache: false\n${yaml}` });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

const get = (path: string, init: RequestInit = {}) => SELF.fetch(`${base}${path}`, { headers: API, ...init });
const error = async (res: Response) => (await res.json<{ error: string }>()).error;

/** Lines in the run index for runs that do not exist, with these ids. */
async function fakeRuns(...ids: string[]): Promise<void> {
  const d1 = env.DB;
  await d1.batch(
    ids.map((id) =>
      d1
        .prepare(
          `INSERT OR REPLACE INTO run_index (id, name, status, tasks, counts, created_at, updated_at, finished_at)
           VALUES (?, 'fake', 'succeeded', 0, '{}', 0, 0, 0)`,
        )
        .bind(id),
    ),
  );
}

describe("run id prefixes", () => {
  it("a prefix of a just-submitted run reads it, controls it, watches it and reaches its outputs", async () => {
    const id = await submit("tasks:\n  - { id: a, module: step.wasm }\n");
    for (const prefix of [id.slice(0, 8), id.slice(0, 12), id.slice(0, 63)]) {
      const res = await get(`/api/dags/${prefix}?summary`);
      expect(res.status, prefix).toBe(200);
      expect(await res.json()).toMatchObject({ id, status: "queued" });
    }
    const view = await get(`/api/dags/${id.slice(0, 10)}`);
    expect(await view.json()).toMatchObject({ id, tasks: [expect.objectContaining({ id: "a" })] });
    // A control answer names the run by its full id.
    const paused = await get(`/api/dags/${id.slice(0, 12)}/pause`, { method: "POST" });
    expect(await paused.json()).toEqual({ id, status: "paused" });
    const resumed = await get(`/api/dags/${id.slice(0, 8)}/resume`, { method: "POST" });
    expect(await resumed.json()).toEqual({ id, status: "running" });
    // The task has no output yet: the run's own 409, not a 404 for the prefix.
    const output = await get(`/api/dags/${id.slice(0, 12)}/tasks/a/output`);
    expect(output.status).toBe(409);
    const watcher = await WatchSocket.open(id.slice(0, 12));
    expect((await watcher.next("snapshot")).run.id).toBe(id);
  });

  it("answers 400 for fewer than 8 digits, for what is not lower-case hex, and for more than 64", async () => {
    const id = await submit("tasks:\n  - { id: a, module: step.wasm }\n");
    for (const bad of [id.slice(0, 7), "not-an-id", id.slice(0, 12).toUpperCase(), `${id}0`]) {
      const res = await get(`/api/dags/${bad}?summary`);
      expect(res.status, bad).toBe(400);
      expect(await error(res)).toMatch(
        /is not a run id: give its 64 hex digits \(lower-case\), or a unique prefix of at least 8/,
      );
    }
    expect((await get(`/api/dags/${id.slice(0, 7)}/cancel`, { method: "POST" })).status).toBe(400);
  });

  it("answers 404 naming a prefix no run has", async () => {
    const res = await get(`/api/dags/0000000000fe?summary`);
    expect(res.status).toBe(404);
    expect(await error(res)).toBe("no run 0000000000fe");
    expect((await get(`/api/dags/0000000000fe/cancel`, { method: "POST" })).status).toBe(404);
  });

  it("answers 409 for an ambiguous prefix, listing the matches with the digits that tell them apart", async () => {
    const shared = "abcdefabcdef"; // 12 digits in common
    const one = `${shared}0${"1".repeat(51)}`;
    const two = `${shared}1${"2".repeat(51)}`;
    await fakeRuns(one, two);
    for (const prefix of ["abcdefab", shared]) {
      const res = await get(`/api/dags/${prefix}?summary`);
      expect(res.status, prefix).toBe(409);
      expect(await error(res)).toBe(
        `run id prefix ${prefix} is ambiguous: it matches ${shared}0…, ${shared}1… (give more digits)`,
      );
    }
    expect((await get(`/api/dags/${shared}/cancel`, { method: "POST" })).status).toBe(409);
    // One more digit tells them apart: this one's line names no run object, so the run's own 404.
    const res = await get(`/api/dags/${shared}1?summary`);
    expect(res.status).toBe(404);
    expect(await error(res)).not.toMatch(/ambiguous/);
  });

  it("lists at most five matches of a prefix many runs share", async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `${"dcba".repeat(3)}${i}${"0".repeat(51)}`);
    await fakeRuns(...ids);
    const res = await get(`/api/dags/dcbadcba?summary`);
    expect(res.status).toBe(409);
    const listed = ids.slice(0, 5).map((id) => `${id.slice(0, 13)}…`);
    expect(await error(res)).toBe(
      `run id prefix dcbadcba is ambiguous: it matches ${listed.join(", ")}, … (give more digits)`,
    );
  });
});
