// One device cannot hurt the others, in workerd: claimed slots count up to the cap, a device that
// loses attempts is cooled down (no new leases, shown, counted), and only a trusted device's
// outputs reach the result cache (and leave it when it is untrusted). Scripted runners over real
// WebSockets.
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnrollAnswer, EnrollmentCreated, RunnerListing, RunView, TrustAnswer } from "../../core/api";
import { PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, runnerInfo } from "./socket";

async function submit(yaml: string): Promise<string> {
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: yaml });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

const view = async (id: string) => (await SELF.fetch(`${base}/api/dags/${id}`, { headers: API })).json<RunView>();
const listing = async () => (await SELF.fetch(`${base}/api/runners`, { headers: API })).json<RunnerListing>();

async function metric(name: string): Promise<number> {
  const text = await (await SELF.fetch(`${base}/metrics`, { headers: API })).text();
  return Number(
    text
      .split("\n")
      .find((l) => l.startsWith(`${name} `))
      ?.split(" ")[1] ?? 0,
  );
}

async function until<T>(read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(value).slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function hello(path: string, id: string, slots: number, want = 0, credential?: string): Promise<RunnerSocket> {
  const socket = credential
    ? new RunnerSocket(
        (
          await SELF.fetch(`${base}${path}`, {
            headers: { Authorization: `Bearer ${credential}`, Upgrade: "websocket" },
          })
        ).webSocket!,
      )
    : await RunnerSocket.open(path, id);
  socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo(id, slots), want });
  await socket.next("welcome");
  return socket;
}

const ok = (a: Assignment, text: string) => ({
  task: a.task,
  attempt: a.attempt,
  ok: true,
  output: btoa(text),
  stderr: "",
  durationMs: 1,
});

describe("claimed slots", () => {
  it("count up to 256 a device, all its processes together, in the list and in /metrics", async () => {
    const before = await metric("distro_slots");
    const liar = await hello("/api/runners/connect", "liar", 4096);
    const a = await hello("/api/runners/connect", "pair", 200);
    const b = await hello("/api/runners/connect", "pair.2", 200);
    const { runners } = await listing();
    expect(runners.find((r) => r.id === "liar")!.slots).toBe(256);
    expect(await metric("distro_slots")).toBe(before + 256 + 256);
    liar.send({ type: "status", free: 4096, runs: [], slots: 4096 });
    await until(listing, (l) => l.runners.find((r) => r.id === "liar")?.busy === 0);
    expect(await metric("distro_slots")).toBe(before + 512);
    for (const s of [liar, a, b]) s.ws.close(1000, "done");
  });
});

describe("cool-downs", () => {
  it("a device that loses three attempts gets nothing new, is shown cooled down, and is counted", async () => {
    await SELF.fetch(`${base}/api/modules/cool.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit(
      `name: cool\ncache: false\ntasks:\n  - { id: t, module: cool.wasm, map: { range: [0, 4] }, retries: 0 }\n`,
    );
    const cooldowns = await metric("distro_cooldowns_total");
    // Three attempts lost at once count once: an honest device whose process dies is not cooled for it.
    const vanish = async () => {
      const ghost = await hello(`/api/runners/connect?run=${id}`, "ghost", 3, 3);
      expect((await ghost.next("tasks")).tasks).toHaveLength(3);
      ghost.ws.close(1000, "vanishing");
      await until(
        () => view(id),
        (r) => r.counts.leased === 0,
      );
    };
    await vanish();
    await vanish();
    expect((await listing()).devices.find((d) => d.id === "ghost")?.cooled_until).toBeNull();
    await vanish(); // the third time within five minutes
    const cooled = await until(
      listing,
      (l) => (l.devices.find((d) => d.id === "ghost")?.cooled_until ?? 0) > Date.now(),
    );
    expect(cooled.devices.find((d) => d.id === "ghost")!.cooled_until).toBeGreaterThan(Date.now() + 50_000);
    expect(await metric("distro_cooldowns_total")).toBe(cooldowns + 1);
    expect(await metric("distro_devices_cooled")).toBeGreaterThanOrEqual(1);

    // Back with a new socket, it is leased nothing; an honest runner takes every task.
    const back = await hello(`/api/runners/connect?run=${id}`, "ghost", 3, 3);
    const honest = await hello(`/api/runners/connect?run=${id}`, "honest", 4, 4);
    const { tasks } = await honest.next("tasks");
    expect(tasks).toHaveLength(4);
    honest.send({ type: "results", results: tasks.map((t) => ok(t, "1")), want: 0, received: 4 });
    const done = await until(
      () => view(id),
      (r) => r.status !== "running",
    );
    expect(done.status).toBe("succeeded");
    expect(back.seen.filter((f) => f.type === "tasks" && f.tasks.length > 0)).toEqual([]);
    // Losses cost lost_retries, not retries (0 here): the nine lost attempts did not fail their tasks.
    const outcomes = done.tasks.flatMap((t) => t.attempts.map((a) => a.outcome));
    expect(outcomes.filter((o) => o === "lost")).toHaveLength(9);
    expect(outcomes.filter((o) => o === "succeeded")).toHaveLength(4);
    for (const s of [back, honest]) s.ws.close(1000, "done");
  });
});

describe("the result cache", () => {
  it("keeps only a trusted device's outputs, and forgets them when it is untrusted", async () => {
    await SELF.fetch(`${base}/api/modules/hello.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const yaml = `name: cached\ncache: true\ntasks:\n  - { id: greet, module: hello.wasm }\n`;
    const enrollment = await (
      await SELF.fetch(`${base}/api/enrollments`, { method: "POST", headers: API, body: "{}" })
    ).json<EnrollmentCreated>();
    const forger = await (
      await SELF.fetch(`${base}/api/runners/enroll`, {
        method: "POST",
        headers: { Authorization: `Bearer ${enrollment.token}` },
        body: JSON.stringify({ name: "forger" }),
      })
    ).json<EnrollAnswer>();
    expect(forger.trusted).toBe(false);

    /** Runs `yaml` once with runner `id` answering `text` (as `credential`'s device when given). */
    const runWith = async (id: string, text: string, credential?: string) => {
      const run = await submit(yaml);
      const socket = await hello(`/api/runners/connect?run=${run}`, id, 1, 1, credential);
      const { tasks } = await socket.next("tasks");
      socket.send({ type: "results", results: [ok(tasks[0]!, text)], want: 0, received: 1 });
      await until(
        () => view(run),
        (r) => r.status === "succeeded",
      );
      socket.ws.close(1000, "done");
    };
    const cachedRun = async () => {
      const run = await submit(yaml);
      return until(
        () => view(run),
        (r) => r.status === "succeeded" || r.tasks[0]!.state === "ready" || r.tasks[0]!.state === "waiting",
      );
    };

    await runWith(forger.device, `"PWNED"`, forger.credential);
    // Not served from the cache: it waits for a runner.
    expect(await cachedRun()).toMatchObject({ status: "queued", tasks: [{ attempts: [] }] });
    await runWith("trusted-box", `"hello"`);
    const served = await cachedRun();
    expect(served.tasks[0]!.attempts.map((a) => a.outcome)).toEqual(["cached"]);
    const rows = await env.DB.prepare(`SELECT device FROM cache`).all<{ device: string }>();
    expect(rows.results.map((r) => r.device)).toContain("trusted-box");
    expect(rows.results.map((r) => r.device)).not.toContain(forger.device);

    const res = await SELF.fetch(`${base}/api/runners/trusted-box/trust`, { method: "DELETE", headers: API });
    const answer = await res.json<TrustAnswer>();
    expect(answer).toMatchObject({ purged: 1, device: { id: "trusted-box", trusted: false } });
    expect(await cachedRun()).toMatchObject({ status: "queued", tasks: [{ attempts: [] }] });
    const trusted = await SELF.fetch(`${base}/api/runners/${forger.device}/trust`, { method: "PUT", headers: API });
    expect((await trusted.json<TrustAnswer>()).device.trusted).toBe(true);
    expect((await SELF.fetch(`${base}/api/runners/nobody/trust`, { method: "PUT", headers: API })).status).toBe(404);
  });
});
