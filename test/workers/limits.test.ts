// Socket rate limits and bounded device reports in workerd: a pool socket, a run socket and a
// watcher that send more than their burst are closed with 4429 and counted in /metrics; a
// runner's device reports sooner than a half heartbeat apart are dropped (and counted), not kept;
// a task definition that SQLite in the object could not keep is refused with the DAG's line.
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../worker/durable/meter";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, WatchSocket, runnerInfo } from "./socket";

const info = (id: string) => runnerInfo(id);
const status = (load: number) => ({
  type: "status" as const,
  free: 2,
  runs: [],
  device: { freeMemory: 2 ** 28, load },
});

/** A counter from /metrics (0 when absent). */
async function counter(name: string, labels = ""): Promise<number> {
  const text = await (await SELF.fetch(`${base}/metrics`, { headers: API })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function submit(): Promise<string> {
  await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
  const res = await SELF.fetch(`${base}/api/dags`, {
    method: "POST",
    headers: API,
    body: "cache: false\ntasks:\n  - { id: a, module: step.wasm }\n",
  });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

/** Asserts a rate-limit close whose reason names a count over the burst and the limit. */
function expectLimited(closed: { code: number; reason: string }, burst: number, sent: number): void {
  expect(closed.code).toBe(CLOSE.rateLimited);
  const [, count] = /^rate limit: (\d+) frames in [\d.]+ s \(\d+\/s, burst (?:\d+)\)$/.exec(closed.reason) ?? [];
  expect(Number(count), closed.reason).toBeGreaterThan(burst);
  expect(Number(count)).toBeLessThanOrEqual(sent);
}

describe("socket rate limits", () => {
  it("close a pool socket over its burst with 4429, drop its extra device reports, and count both", async () => {
    const [closesBefore, droppedBefore] = [
      await counter("distro_sockets_rate_limited_total", '{kind="pool"}'),
      await counter("distro_device_samples_dropped_total"),
    ];
    const flood = await RunnerSocket.open("/api/runners/connect", "flooder");
    flood.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("flooder"), want: 0 });
    await flood.next("welcome");
    const sent = DEFAULT_LIMITS.pool.frames.burst + 50;
    for (let i = 1; i < sent; i++) flood.send(status(i % 100));
    expectLimited(await flood.ended(), DEFAULT_LIMITS.pool.frames.burst, sent);
    expect(await counter("distro_sockets_rate_limited_total", '{kind="pool"}')).toBe(closesBefore + 1);
    // The first report was kept; the others came within the same half heartbeat.
    expect(await counter("distro_device_samples_dropped_total")).toBeGreaterThanOrEqual(
      droppedBefore + DEFAULT_LIMITS.pool.frames.burst - 2,
    );
    const { runners } = await (
      await SELF.fetch(`${base}/api/runners`, { headers: API })
    ).json<{
      runners: { id: string }[];
    }>();
    expect(runners.map((r) => r.id)).not.toContain("flooder");
  });

  it("keep one device report per half heartbeat in a runner's history, and it survives a reconnect", async () => {
    const list = async () =>
      (
        await (
          await SELF.fetch(`${base}/api/runners`, { headers: API })
        ).json<{
          runners: { id: string; load: number | null; history: { load: number }[] }[];
        }>()
      ).runners;
    const dropped = await counter("distro_device_samples_dropped_total");
    let socket = await RunnerSocket.open("/api/runners/connect", "reporter");
    socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("reporter"), want: 0 });
    await socket.next("welcome");
    for (const load of [11, 12, 13]) socket.send(status(load));
    // At least: other files' scripted runners report to the same pool (so the count alone does not
    // say our frames are in: the last one is, once a frame sent after it is answered).
    await eventually(async () => (await counter("distro_device_samples_dropped_total")) >= dropped + 2);
    socket.send({ type: "reject", tasks: [] });
    await socket.next("error");
    const [me] = (await list()).filter((r) => r.id === "reporter");
    expect(me).toMatchObject({ load: 11, history: [{ load: 11 }] });
    socket.ws.close();
    await eventually(async () => !(await list()).some((r) => r.id === "reporter"));
    socket = await RunnerSocket.open("/api/runners/connect", "reporter");
    socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("reporter"), want: 0 });
    await socket.next("welcome");
    socket.send(status(14)); // within the half heartbeat of the last kept report: dropped
    await eventually(async () => (await counter("distro_device_samples_dropped_total")) >= dropped + 3);
    expect((await list()).find((r) => r.id === "reporter")).toMatchObject({ load: 11, history: [{ load: 11 }] });
    socket.ws.close();
  });

  it("close a run socket over its byte burst with 4429, counted as kind run", async () => {
    const id = await submit();
    const before = await counter("distro_sockets_rate_limited_total", '{kind="run"}');
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "greedy");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("greedy"), want: 0 });
    await run.next("welcome");
    // Five frames of 8 MiB at once: the fifth is over the 32 MiB burst. (Junk, so each costs the
    // object no more than a decode error: a run socket's frame rate is hard to reach here.)
    const big = "x".repeat(8 * 1024 * 1024);
    for (let i = 0; i < 5; i++) run.send(big);
    const closed = await run.ended();
    expect(closed.code).toBe(CLOSE.rateLimited);
    expect(closed.reason).toMatch(/^rate limit: 40\.0 MiB in [\d.]+ s \(8 MiB\/s, burst 32 MiB\)$/);
    await eventually(async () => (await counter("distro_sockets_rate_limited_total", '{kind="run"}')) === before + 1);
  });

  it("close a socket whose frames name attempts it does not hold, and count them", async () => {
    const id = await submit();
    const before = await counter("distro_stray_frames_total");
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "lister");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("lister"), want: 0 });
    await run.next("welcome");
    // Each entry names an attempt that does not exist (each costs the run a lookup: the frame is
    // metered per entry too); past 64 of them the socket is closed.
    const bogus = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ task: `nope[${i}]`, attempt: 1, ok: false, durationMs: 0 }));
    run.send({ type: "results", results: bogus(60), want: 0, received: 0 });
    run.send({ type: "reject", tasks: bogus(4).map(({ task, attempt }) => ({ task, attempt })) });
    await eventually(async () => (await counter("distro_stray_frames_total")) === before + 64);
    expect(run.closed).toBeUndefined();
    run.send({ type: "results", results: bogus(1), want: 0, received: 0 });
    const closed = await run.ended();
    expect(closed).toEqual({ code: CLOSE.protocol, reason: "too many frames about attempts it does not hold" });
    await eventually(async () => (await counter("distro_stray_frames_total")) === before + 65);
  });

  it("refuse a second hello on one socket: one socket is one runner", async () => {
    const pool = await RunnerSocket.open("/api/runners/connect", "first");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("first"), want: 0 });
    await pool.next("welcome");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("second"), want: 0 });
    const error = await pool.next("error");
    expect(error).toMatchObject({ fatal: true, message: expect.stringMatching(/says hello once/) });
    expect((await pool.ended()).code).toBe(CLOSE.protocol);
  });

  it("close a watcher that talks over its burst with 4429, counted as kind watch", async () => {
    const id = await submit();
    const before = await counter("distro_sockets_rate_limited_total", '{kind="watch"}');
    const watcher = await WatchSocket.open(id);
    await watcher.next("snapshot");
    const sent = DEFAULT_LIMITS.watch.frames.burst + 50;
    for (let i = 0; i < sent; i++) watcher.ws.send("hello?");
    expectLimited(await watcher.ended(), DEFAULT_LIMITS.watch.frames.burst, sent);
    await eventually(async () => (await counter("distro_sockets_rate_limited_total", '{kind="watch"}')) === before + 1);
  });
});

describe("SQLite's limits in the object", () => {
  const dag = (items: number) =>
    `name: big\ncache: false\ntasks:\n  - { id: t, module: big.wasm, map: { items: ${JSON.stringify(
      Array.from({ length: items }, (_, i) => "x".repeat(90) + i),
    )} } }\n`;

  it("refuse a task whose map.items would pass 2 MB in one value, with its line; one under 1 MB runs", async () => {
    await SELF.fetch(`${base}/api/modules/big.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    // 30,000 items of ~95 bytes: 2.9 MB, which the object's SQLite refused (SQLITE_TOOBIG, HTTP 500) before.
    const refused = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: dag(30_000) });
    expect(refused.status).toBe(400);
    const { problems } = await refused.json<{ problems: { line: number; message: string }[] }>();
    expect(problems).toEqual([
      expect.objectContaining({
        line: 4,
        message: expect.stringMatching(
          /^task "t": its map.items make its definition 2,9\d\d,\d{3} bytes as JSON; at most 1,000,000/,
        ),
      }),
    ]);
    const fits = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: dag(9_000) });
    expect(fits.status).toBe(201);
    const { id } = await fits.json<{ id: string }>();
    const run = await (
      await SELF.fetch(`${base}/api/dags/${id}?limit=1`, { headers: API })
    ).json<{ counts: { ready: number; waiting: number } }>();
    // Ready, or waiting when no runner is in the pool at that moment (other tests' come and go).
    expect(run.counts.ready + run.counts.waiting).toBe(9_000);
  });
});
