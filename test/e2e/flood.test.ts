// No single socket can stall the coordinator: against the real local coordinator (wrangler dev),
// one hostile client speaks the runner protocol on the pool socket (a valid hello) and then sends
// 20,000 status frames as fast as it can. It is closed with 4429 within its rate limit, and the
// runner list, /metrics and a DAG submission made while it floods all answer; a real runner beside
// it runs the submitted DAG.
import { setImmediate as yieldToIo } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DEV_TOKENS } from "../../dev/local";
import { DEFAULT_LIMITS } from "../../worker/durable/meter";
import { encode } from "../../core/protocol/codec";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { Cluster, fakeRunner } from "./harness";

const FRAMES = 20_000;
const cluster = new Cluster();

beforeAll(async () => {
  await cluster.start();
  await cluster.upload("noop.wasm");
  cluster.runner({ name: "bystander" });
  await cluster.connected("bystander");
});
afterAll(() => cluster.stop());

const hostile = fakeRunner("hostile-flood");

describe("a flood of status frames on one socket", () => {
  it("is closed with 4429 within burst + rate × elapsed, and the API answers while it lasts", async () => {
    const url = new URL("/api/runners/connect", cluster.coordinator.url);
    url.protocol = "ws:";
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${await cluster.credential(hostile.id)}` },
      perMessageDeflate: false,
    });
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => {
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() }));
    });
    const welcome = new Promise<void>((resolve) =>
      ws.on("message", (data) => (data as Buffer).toString().includes('"welcome"') && resolve()),
    );
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const opened = performance.now();
    ws.send(encode({ type: "hello", protocol: PROTOCOL_VERSION, runner: hostile, want: 0, holding: [] }));
    await welcome;

    const status = encode({ type: "status", free: 8, runs: [], device: { freeMemory: 2 ** 32, load: 50 } });
    const flood = async () => {
      let sent = 0;
      while (sent < FRAMES && ws.readyState === WebSocket.OPEN) {
        for (let i = 0; i < 1000; i++) ws.send(status);
        sent += 1000;
        await yieldToIo(); // lets the requests below go out while the flood lasts
      }
      return sent;
    };
    const api = (path: string, init: RequestInit = {}) =>
      fetch(new URL(path, cluster.coordinator.url), {
        ...init,
        headers: { Authorization: `Bearer ${DEV_TOKENS.api}`, ...init.headers },
      });
    const requests = async () => {
      await yieldToIo(); // after the first thousand frames
      const dag =
        "name: during-flood\ncache: false\ntasks:\n  - { id: n, module: noop.wasm, map: { range: [0, 4] } }\n";
      return Promise.all([
        api("/api/runners"),
        api("/metrics"),
        api("/api/dags", { method: "POST", body: dag, headers: { "Content-Type": "application/yaml" } }),
      ]);
    };
    const [sent, responses] = await Promise.all([flood(), requests()]);
    // Not a timing assertion: only so that a socket never closed fails here, saying so.
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the flooding socket is still open 30 s after ${sent} frames`)),
        30_000,
      );
    });
    const close = await Promise.race([closed, stuck]).finally(() => clearTimeout(timer));

    expect(sent).toBeGreaterThan(0);
    expect(close.code).toBe(CLOSE.rateLimited);
    const { perSec, burst } = DEFAULT_LIMITS.pool.frames;
    const match = /^rate limit: (\d+) frames in ([\d.]+) s \((\d+)\/s, burst (\d+)\)$/.exec(close.reason);
    expect(match, close.reason).not.toBeNull();
    const count = Number(match![1]);
    const elapsed = (close.at - opened) / 1000;
    expect(count, `${close.reason}; ${elapsed.toFixed(2)} s from open to close here`).toBeLessThanOrEqual(
      burst + perSec * elapsed + 1,
    );
    expect(count).toBeGreaterThan(burst);
    expect([Number(match![3]), Number(match![4])]).toEqual([perSec, burst]);

    for (const res of responses) expect(res.status, `${res.url}: ${res.status}`).toBeGreaterThanOrEqual(200);
    for (const res of responses) expect(res.status, `${res.url}: ${res.status}`).toBeLessThan(300);
    const { runners } = (await responses[0].json()) as { runners: { name: string }[] };
    expect(runners.map((r) => r.name)).toContain("bystander");
    expect(await responses[1].text()).toMatch(/^distro_runners_connected \d+$/m);
    const { id } = (await responses[2].json()) as { id: string };
    expect((await cluster.client.wait(id)).status).toBe("succeeded");

    // The pool counted the close and the device reports it did not keep, and forgot the runner.
    const metrics = await (await api("/metrics")).text();
    expect(Number(/^distro_sockets_rate_limited_total\{kind="pool"\} (\d+)$/m.exec(metrics)?.[1])).toBe(1);
    expect(Number(/^distro_device_samples_dropped_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    const after = (await (await api("/api/runners")).json()) as { runners: { name: string }[] };
    expect(after.runners.map((r) => r.name)).toEqual(["bystander"]);
  });
});
