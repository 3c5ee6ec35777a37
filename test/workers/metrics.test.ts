// GET /metrics in workerd: Prometheus text that a real parser accepts, whose task gauges match
// the runs' counts and whose histograms count the attempts of a finished DAG.
import { SELF } from "cloudflare:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type Assignment } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, base, RunnerSocket, runnerInfo } from "./socket";

interface Family {
  name: string;
  type: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

async function scrape(): Promise<Map<string, Family>> {
  const res = await SELF.fetch(`${base}/metrics`, { headers: API });
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await res.text()) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

const value = (f: Family | undefined, labels: Record<string, string> = {}) =>
  Number(f!.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))!.value);

const info = (id: string) => runnerInfo(id);

describe("GET /metrics", () => {
  it("needs the API token", async () => {
    expect((await SELF.fetch(`${base}/metrics`)).status).toBe(401);
  });

  it("parses as Prometheus text, and its task counters match the runs' counts after a DAG", async () => {
    const before = await scrape();
    await SELF.fetch(`${base}/api/modules/step.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const res = await SELF.fetch(`${base}/api/dags`, {
      method: "POST",
      headers: API,
      body:
        "cache: false\ntasks:\n  - { id: a, module: step.wasm }\n" +
        "  - { id: b, module: step.wasm, depends_on: [a], map: { range: [0, 3] } }\n",
    });
    const { id } = await res.json<{ id: string }>();
    const pool = await RunnerSocket.open("/api/runners/connect", "metered");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("metered"), want: 0 });
    await pool.next("welcome");
    const run = await RunnerSocket.open(`/api/runners/connect?run=${id}`, "metered");
    run.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: info("metered"), want: 4 });
    let received = 0;
    for (;;) {
      const frame = await run.next("tasks", "finished");
      if (frame.type === "finished") break;
      received += frame.tasks.length;
      const results = frame.tasks.map((a: Assignment) => ({
        task: a.task,
        attempt: a.attempt,
        ok: true,
        output: btoa("1"),
        stderr: "",
        durationMs: 40,
      }));
      run.send({ type: "results", results, want: 4, received });
    }

    const after = await scrape();
    for (const name of [
      "distro_runs",
      "distro_tasks",
      "distro_runners_connected",
      "distro_slots",
      "distro_slots_busy",
      "distro_cache_hits_total",
      "distro_task_duration_seconds",
      "distro_dispatch_latency_seconds",
    ]) {
      expect(after.has(name), name).toBe(true);
    }
    // Counters of sockets closed for their rate (by kind) and of dropped device reports (limits.test.ts moves them):
    // a well-behaved runner moves neither.
    const closes = after.get("distro_sockets_rate_limited_total")!;
    const limited = (m: Map<string, Family>, kind: string) => value(m.get(closes.name), { kind });
    expect(closes.type).toBe("COUNTER");
    expect(closes.metrics.map((m) => m.labels?.kind)).toEqual(["pool", "run", "watch"]);
    for (const kind of ["pool", "run", "watch"]) expect(limited(after, kind) - limited(before, kind), kind).toBe(0);
    expect(after.get("distro_device_samples_dropped_total")!.type).toBe("COUNTER");
    expect(after.get("distro_task_duration_seconds")!.type).toBe("HISTOGRAM");
    // The task gauges are the sums of every indexed run's counts.
    const { runs } = await (
      await SELF.fetch(`${base}/api/dags`, { headers: API })
    ).json<{
      runs: { status: string; counts: Record<string, number> }[];
    }>();
    for (const state of ["succeeded", "failed", "ready", "leased", "blocked"]) {
      expect(value(after.get("distro_tasks"), { state }), state).toBe(
        runs.reduce((n, r) => n + (r.counts[state] ?? 0), 0),
      );
    }
    expect(
      value(after.get("distro_tasks"), { state: "succeeded" }) -
        value(before.get("distro_tasks"), { state: "succeeded" }),
    ).toBe(4);
    expect(
      value(after.get("distro_runs"), { status: "succeeded" }) -
        value(before.get("distro_runs"), { status: "succeeded" }),
    ).toBe(1);
    expect(value(after.get("distro_runners_connected"))).toBe(1);
    expect(value(after.get("distro_slots"))).toBe(2);
    // Four attempts of 40 ms each, in the 0.05 s bucket; four dispatches.
    const duration = (m: Map<string, Family>) => m.get("distro_task_duration_seconds")!.metrics[0]!;
    expect(Number(duration(after).count) - Number(duration(before).count)).toBe(4);
    expect(Number(duration(after).buckets!["0.05"]) - Number(duration(before).buckets!["0.05"])).toBe(4);
    expect(Number(duration(after).buckets!["0.025"]) - Number(duration(before).buckets!["0.025"])).toBe(0);
    expect(Number(duration(after).sum) - Number(duration(before).sum)).toBeCloseTo(0.16, 6);
    const latency = (m: Map<string, Family>) => Number(m.get("distro_dispatch_latency_seconds")!.metrics[0]!.count);
    expect(latency(after) - latency(before)).toBe(4);
    pool.ws.close();
  });
});
