// One device cannot hurt the others (issue 14), against the real local coordinator with lying
// runners that speak the real protocol (test/helpers/lying-runner.ts) beside real runners:
// ghosts that take tasks and vanish burn no task's `retries` and are cooled down; a forged output
// from an untrusted device never reaches another run through the result cache, while a trusted
// device's output does until that device is untrusted; 300 devices claiming 4,096 slots each are
// shown with capped slots (per process and per device) while an honest runner's run completes; a
// device that keeps asking for its slots while holding them is given no more than the cap; and a
// device that keeps naming attempts it does not hold is disconnected.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EnrollAnswer, EnrollmentCreated, RunnerListing, RunView, TrustAnswer } from "../../core/api";
import { CLOSE } from "../../core/protocol/messages";
import { isFinal } from "../../core/status";
import { DEV_TOKENS, type Proc } from "../../dev/local";
import { LyingRunner, type LyingRunnerOptions } from "../helpers/lying-runner";
import { Cluster } from "./harness";

/** Worker vars: a cool-down long enough to be seen whatever the test's pace (default 1 min). */
const VARS = { COOLDOWN_MS: String(10 * 60_000) };
/** The Worker's default cap of one device's slots (MAX_DEVICE_SLOTS). */
const MAX_DEVICE_SLOTS = 256;

const cluster = new Cluster();
const liars: LyingRunner[] = [];

beforeAll(async () => {
  await cluster.start({ vars: VARS });
  await cluster.upload("spin.wasm", "init.wasm", "noop.wasm");
});
afterEach(async () => {
  // Each test starts with no run going: one a failed test left behind would take the next one's joins.
  const { runs } = await cluster.client.runs(100);
  await Promise.all(runs.filter((r) => !isFinal(r.status)).map((r) => cluster.client.control(r.id, "cancel")));
  await Promise.all(liars.splice(0).map((l) => l.stop()));
  await Promise.all(cluster.runners.splice(0).map((r) => r.stop("SIGKILL")));
});
afterAll(() => cluster.stop());

/** A lying runner against this coordinator, stopped after the test. */
async function liar(options: Omit<LyingRunnerOptions, "coordinator">): Promise<LyingRunner> {
  const runner = await LyingRunner.start({ coordinator: cluster.coordinator.url, ...options });
  liars.push(runner);
  return runner;
}

/** A real runner that is its own device (its own config dir, so its own credential). */
function honest(name: string, slots = 2): Proc {
  return cluster.runner({ name, slots, configDir: join(cluster.dir, `config-${name}`) });
}

const listing = () => cluster.client.json<RunnerListing>("/api/runners");
const metrics = async () => (await raw("/metrics")).text();
/** A request with the API token, answered whatever its status. */
function raw(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(path, cluster.coordinator.url), {
    ...init,
    headers: { Authorization: `Bearer ${DEV_TOKENS.api}`, ...init.headers },
  });
}
/** One sample of a Prometheus metric without labels. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, "m").exec(text);
  if (!m) throw new Error(`no ${name} in /metrics:\n${text}`);
  return Number(m[1]);
}

async function poll<T>(read: () => Promise<T>, check: (value: T) => boolean, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const attempts = (run: RunView) => run.tasks.flatMap((t) => t.attempts.map((a) => ({ ...a, task: t.id })));

describe("ghosts: runners that take tasks and never answer", () => {
  it("burn no task's retries: a 20-task run with retries 0 succeeds on one honest runner, the ghosts cooled down", async () => {
    const ghosts = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        liar({ device: `ghost-${i}`, name: `ghost-${i}`, slots: 2, behaviour: { mode: "ghost", dropAfterMs: 200 } }),
      ),
    );
    const { id } = await cluster.client.submit(
      "name: ghosts\ncache: false\n" +
        "tasks:\n  - { id: spin, module: spin.wasm, map: { range: [0, 20] }, params: { ms: 20 }, retries: 0 }\n",
    );
    // The ghosts take, vanish, come back and take again until the pool stops leasing to them.
    const cooledDown = (l: RunnerListing) => {
      const now = Date.now();
      return ghosts.every((g) => (l.devices.find((d) => d.id === g.device)?.cooled_until ?? 0) > now);
    };
    await poll(listing, cooledDown, "every ghost's device to be cooled down");
    expect((await cluster.client.summary(id)).status).toBe("running");

    honest("honest-ghosts");
    const done = await cluster.client.wait(id);
    expect(done.status).toBe("succeeded");

    const run = await cluster.client.run(id);
    expect(run.tasks).toHaveLength(20);
    const all = attempts(run);
    for (const t of run.tasks) {
      const ok = t.attempts.filter((a) => a.outcome === "succeeded");
      expect(
        ok.map((a) => a.runner_name),
        t.id,
      ).toEqual(["honest-ghosts"]);
      expect(JSON.parse(decode(await cluster.client.output(id, t.id)))).toEqual({
        index: t.index,
        square: t.index! * t.index!,
      });
    }
    // Every ghost attempt ended lost, none as a failure; each ghost lost at least the 3 that cool it down.
    const ghostIds = new Set(ghosts.map((g) => g.id));
    const ofGhosts = all.filter((a) => ghostIds.has(a.runner));
    expect(ofGhosts.length).toBeGreaterThanOrEqual(30);
    for (const a of ofGhosts)
      expect(a, `${a.task} attempt ${a.attempt}`).toMatchObject({ outcome: "lost", failure_kind: "lost" });
    expect(all.filter((a) => a.outcome === "failed")).toEqual([]);
    for (const g of ghosts) {
      expect(ofGhosts.filter((a) => a.runner === g.id).length, g.id).toBeGreaterThanOrEqual(3);
      expect(g.taken.length, g.id).toBeGreaterThanOrEqual(3);
    }

    // Shown cooled down: on the device and on its connected runner, and counted in /metrics.
    const after = await listing();
    const now = Date.now();
    for (const g of ghosts) {
      expect(after.devices.find((d) => d.id === g.device)?.cooled_until ?? 0, g.device).toBeGreaterThan(now);
      expect(after.runners.find((r) => r.id === g.id)?.cooled_until ?? 0, g.id).toBeGreaterThan(now);
    }
    const honestRunner = after.runners.find((r) => r.name === "honest-ghosts");
    expect(honestRunner?.cooled_until ?? null).toBeNull();
    const text = await metrics();
    expect(metric(text, "distro_devices_cooled")).toBeGreaterThanOrEqual(10);
    expect(metric(text, "distro_cooldowns_total")).toBeGreaterThanOrEqual(10);
  });
});

describe("a result cache with provenance", () => {
  const FORGED = '{"greeting":"PWNED by a runner"}';
  const GENUINE = '{"greeting":"Provenance"}';
  const DAG =
    "name: provenance\ncache: true\ntasks:\n  - { id: init, module: init.wasm, params: { greeting: Provenance } }\n";

  /** Submits the DAG with no runner connected and waits until it either ended or waits for a runner. */
  async function submitAlone(): Promise<RunView> {
    const { id } = await cluster.client.submit(DAG);
    return cluster.until(id, (r) => r.status === "succeeded" || ["ready", "waiting"].includes(r.tasks[0]?.state ?? ""));
  }

  it("serves a forged output to no other run; a trusted device's output is served until it is untrusted", async () => {
    // The forger joins with a real enrollment that does not make it trusted.
    const enrollment = await cluster.client.json<EnrollmentCreated>("/api/enrollments", {
      method: "POST",
      body: "{}",
      headers: { "Content-Type": "application/json" },
    });
    expect(enrollment.trusted).toBe(false);
    const res = await fetch(new URL("/api/runners/enroll", cluster.coordinator.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${enrollment.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "forger" }),
    });
    expect(res.status).toBe(200);
    const enrolled = (await res.json()) as EnrollAnswer;
    expect(enrolled.trusted).toBe(false);
    const forger = await liar({ credential: enrolled.credential, behaviour: { mode: "forger", output: FORGED } });

    // 1. The forger's output serves its own run…
    const { id: first } = await cluster.client.submit(DAG);
    expect((await cluster.client.wait(first)).status).toBe("succeeded");
    expect(decode(await cluster.client.output(first, "init"))).toBe(FORGED);
    expect(forger.answered).toBeGreaterThanOrEqual(1);
    await forger.stop();

    // 2. …and no other: the same DAG submitted again is not served from the cache; it waits for a runner.
    const second = await submitAlone();
    expect(second.status).not.toBe("succeeded");
    expect(second.tasks[0]!.cached).toBe(false);
    const trustedProc = honest("trusted-cache");
    await cluster.connected("trusted-cache");
    expect((await cluster.client.wait(second.id)).status).toBe("succeeded");
    expect(decode(await cluster.client.output(second.id, "init"))).toBe(GENUINE);
    const ran = await cluster.client.run(second.id);
    expect(ran.tasks[0]!.attempts.map((a) => [a.outcome, a.runner_name])).toEqual([["succeeded", "trusted-cache"]]);
    const trusted = (await listing()).runners.find((r) => r.name === "trusted-cache")!.id;
    expect((await listing()).devices.find((d) => d.id === trusted)?.trusted).toBe(true);
    await trustedProc.stop("SIGKILL");
    cluster.runners.splice(cluster.runners.indexOf(trustedProc), 1);

    // 3. The trusted device's output is served from the cache: no runner is connected, nothing runs.
    const third = await submitAlone();
    expect(third.status).toBe("succeeded");
    expect(third.tasks[0]!.cached).toBe(true);
    expect(third.tasks[0]!.attempts.map((a) => a.outcome)).toEqual(["cached"]);
    expect(decode(await cluster.client.output(third.id, "init"))).toBe(GENUINE);

    // 4. Untrusting that device purges its entries: the DAG runs again.
    const answer = await cluster.client.json<TrustAnswer>(`/api/runners/${encodeURIComponent(trusted)}/trust`, {
      method: "DELETE",
    });
    expect(answer.device).toMatchObject({ id: trusted, trusted: false });
    expect(answer.purged).toBeGreaterThanOrEqual(1);
    const fourth = await submitAlone();
    expect(fourth.status).not.toBe("succeeded");
    expect(fourth.tasks[0]!.cached).toBe(false);
    honest("runs-again");
    expect((await cluster.client.wait(fourth.id)).status).toBe("succeeded");
    const again = await cluster.client.run(fourth.id);
    expect(again.tasks[0]!.attempts.map((a) => [a.outcome, a.runner_name])).toEqual([["succeeded", "runs-again"]]);
    expect(decode(await cluster.client.output(fourth.id, "init"))).toBe(GENUINE);

    // An unknown device has no trust to change.
    const unknown = await raw("/api/runners/no-such-device/trust", { method: "DELETE" });
    expect(unknown.status).toBe(404);
  });
});

describe("300 devices claiming 4,096 slots each", () => {
  it("are shown with capped slots, per process and per device, and an honest runner's run completes", async () => {
    const CLAIMERS = 300;
    for (let i = 0; i < CLAIMERS; i += 30) {
      await Promise.all(
        Array.from({ length: Math.min(30, CLAIMERS - i) }, (_, k) =>
          liar({ device: `claimer-${i + k}`, behaviour: { mode: "claimer", claim: 4096 } }),
        ),
      );
    }
    // A device of two processes, each claiming as much: the cap is the device's, not each process's.
    const twin = await liar({ device: "twin", behaviour: { mode: "claimer", claim: 4096 } });
    await liar({ credential: twin.credential, runnerId: "twin.2", behaviour: { mode: "claimer", claim: 4096 } });
    honest("honest-claimed");
    await cluster.connected("honest-claimed");

    const seen = await poll(
      listing,
      (l) => liars.every((c) => l.runners.some((r) => r.id === c.id)),
      "every claimer connected",
    );
    expect(seen.runners).toHaveLength(CLAIMERS + 3);
    const byDevice = new Map<string, number>();
    for (const r of seen.runners) {
      expect(r.slots, r.id).toBeLessThanOrEqual(MAX_DEVICE_SLOTS);
      const device = r.id.replace(/\.\d+$/, "");
      byDevice.set(device, (byDevice.get(device) ?? 0) + r.slots);
    }
    expect(byDevice.size).toBe(CLAIMERS + 2);
    for (const [device, slots] of byDevice) expect(slots, device).toBeLessThanOrEqual(MAX_DEVICE_SLOTS);
    // /metrics counts the same capacity as the list shows.
    const text = await metrics();
    const slots = metric(text, "distro_slots");
    expect(slots).toBeLessThanOrEqual(MAX_DEVICE_SLOTS * byDevice.size);
    expect(slots).toBe(seen.runners.reduce((sum, r) => sum + r.slots, 0));
    expect(metric(text, "distro_slots_busy")).toBeLessThanOrEqual(slots);
    expect(metric(text, "distro_runners_connected")).toBe(CLAIMERS + 3);

    // The claimed capacity does not starve the honest runner: it runs the whole DAG.
    const { id } = await cluster.client.submit(
      "name: claimed\ncache: false\ntasks:\n  - { id: n, module: noop.wasm, map: { range: [0, 40] } }\n",
    );
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const run = await cluster.client.run(id);
    // (An attempt it handed back unstarted, when its prefetch shrank, is no attempt of a liar's.)
    const ran = attempts(run).filter((a) => a.outcome !== "returned");
    expect(ran.map((a) => [a.outcome, a.runner_name])).toEqual(
      Array.from({ length: 40 }, () => ["succeeded", "honest-claimed"]),
    );
    expect(attempts(run).every((a) => a.runner_name === "honest-claimed")).toBe(true);
    expect(liars.every((c) => c.taken.length === 0)).toBe(true);
  });

  it("a device that asks again for all its slots while it holds them is given at most the cap", async () => {
    // It takes what it is given, never answers, and answers each tasks frame with a want of 4,096.
    const greedy = await liar({ device: "greedy", slots: 4096, behaviour: { mode: "ghost", reask: true } });
    const { id } = await cluster.client.submit(
      "name: greedy\ncache: false\ntasks:\n  - { id: n, module: noop.wasm, map: { range: [0, 600] } }\n",
    );
    await greedy.until((g) => g.taken.length > 0, "the greedy device to take tasks");
    await new Promise((r) => setTimeout(r, 1000)); // its re-asks go back and forth within this
    expect(greedy.taken.length).toBeLessThanOrEqual(MAX_DEVICE_SLOTS);
    expect((await cluster.client.summary(id)).counts.leased ?? 0).toBeLessThanOrEqual(MAX_DEVICE_SLOTS);

    // It vanishes (its attempts lost, not failed); an honest runner finishes the run.
    await greedy.stop();
    honest("honest-greedy", 4);
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const all = attempts(await cluster.client.run(id));
    expect(all.filter((a) => a.outcome === "succeeded").every((a) => a.runner_name === "honest-greedy")).toBe(true);
    expect(all.filter((a) => a.runner === greedy.id).every((a) => a.outcome === "lost")).toBe(true);
    expect(all.filter((a) => a.outcome === "failed")).toEqual([]);
  });
});

describe("frames about attempts a device does not hold", () => {
  it("are ignored and counted, and a device that keeps sending them is disconnected", async () => {
    const stray = await liar({ device: "stray", behaviour: { mode: "stray", frames: 100 } });
    const { id } = await cluster.client.submit(
      "name: strays\ncache: false\ntasks:\n  - { id: n, module: noop.wasm, map: { range: [0, 4] } }\n",
    );
    await stray.until((s) => s.closes.some((c) => c.run === id), "its run socket to be closed");
    const close = stray.closes.find((c) => c.socket === "run" && c.run === id)!;
    expect(close).toMatchObject({ run: id, code: CLOSE.protocol });
    expect(close.reason).toMatch(/too many frames about attempts it does not hold/);
    const counted = metric(await metrics(), "distro_stray_frames_total");
    expect(counted).toBeGreaterThanOrEqual(64);
    expect(counted).toBeLessThanOrEqual(stray.straySent);
    // Nothing of the run was touched: an honest runner runs all of it.
    honest("honest-strays");
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const run = await cluster.client.run(id);
    expect(attempts(run).map((a) => [a.outcome, a.runner_name])).toEqual(
      Array.from({ length: 4 }, () => ["succeeded", "honest-strays"]),
    );
  });
});
