// Devices as identities, in workerd: enrollments and their limits, credentials stored only as
// hashes, runner ids bound to the device that proved its credential, fetches scoped to leases,
// revocation. Driven over real WebSockets by scripted runners.
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnrollAnswer, EnrollmentCreated, EnrollmentView, RevokeAnswer, RunnerListing } from "../../core/api";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { wasmModule } from "../helpers/wasm-builder";
import { API, asDevice, base, RUNNER, RunnerSocket, runnerInfo } from "./socket";

const json = { "Content-Type": "application/json" };

async function enrollment(body: object = {}): Promise<EnrollmentCreated> {
  const res = await SELF.fetch(`${base}/api/enrollments`, {
    method: "POST",
    headers: { ...API, ...json },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return res.json<EnrollmentCreated>();
}

function enroll(token: string, name = "box", extra: object = {}): Promise<Response> {
  return SELF.fetch(`${base}/api/runners/enroll`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, ...json },
    body: JSON.stringify({ name, ...extra }),
  });
}

const hex = async (bytes: Uint8Array | string) =>
  [
    ...new Uint8Array(
      await crypto.subtle.digest("SHA-256", typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes),
    ),
  ]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");

async function submit(yaml: string): Promise<string> {
  const res = await SELF.fetch(`${base}/api/dags`, { method: "POST", headers: API, body: `cache: false\n${yaml}` });
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

/** A scripted runner `id` of its device, in run `run`, wanting `want` tasks. */
async function runSocket(run: string, id: string, want = 1): Promise<RunnerSocket> {
  const socket = await RunnerSocket.open(`/api/runners/connect?run=${run}`, id);
  socket.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo(id), want });
  await socket.next("welcome");
  return socket;
}

const fetchAs = async (device: string, path: string) =>
  SELF.fetch(`${base}${path}`, { headers: await asDevice(device) });

describe("enrollments", () => {
  it("default to one use for an hour; the answer has the commands, the list never the token", async () => {
    const before = Date.now();
    const made = await enrollment({ labels: ["gpu"] });
    expect(made).toMatchObject({ uses: 1, used: 0, labels: ["gpu"], trusted: false, revoked_at: null, devices: [] });
    expect(made.expires_at - made.created_at).toBe(3_600_000);
    expect(made.created_at).toBeGreaterThanOrEqual(before);
    // The commands install the runner of this very build, under a name npx cannot confuse with another.
    const build = (await (await SELF.fetch(`${base}/runner.tgz.sha256`)).text()).slice(0, 12);
    expect(build).toMatch(/^[0-9a-f]{12}$/);
    const npx = `npx --yes ${base}/runner-${build}.tgz --coordinator ${base}`;
    expect(made.command).toBe(`DISTRO_ENROLL=${made.token} ${npx}`);
    expect(made.commands.powershell).toBe(`$env:DISTRO_ENROLL="${made.token}"; ${npx}`);
    expect(made.commands.termux).toMatch(/^pkg install -y nodejs && DISTRO_ENROLL=/);
    const listed = await (await SELF.fetch(`${base}/api/enrollments`, { headers: API })).text();
    expect(listed).toContain(made.id);
    expect(listed).not.toContain(made.token);
  });

  it("serve the runner of this build under its build's name, the same bytes as /runner.tgz", async () => {
    const build = (await (await SELF.fetch(`${base}/runner.tgz.sha256`)).text()).slice(0, 12);
    const named = await SELF.fetch(`${base}/runner-${build}.tgz`);
    expect(named.status).toBe(200);
    expect(named.headers.get("Content-Type")).toBe("application/gzip");
    const current = await SELF.fetch(`${base}/runner.tgz`);
    expect(new Uint8Array(await named.arrayBuffer())).toEqual(new Uint8Array(await current.arrayBuffer()));
    const other = await SELF.fetch(`${base}/runner-000000000000.tgz`);
    expect(other.status).toBe(404);
    expect((await other.json<{ error: string }>()).error).toMatch(/serves runner [0-9a-f]{12}, not 000000000000/);
  });

  it("refuse bad requests, naming the field", async () => {
    for (const [body, message] of [
      [{ uses: 0 }, /uses/],
      [{ uses: 1001 }, /uses/],
      [{ ttl: "forever" }, /ttl/],
      [{ ttl: "31d" }, /ttl/],
      [{ labels: ["no spaces"] }, /labels/],
      [{ colour: "red" }, /colour|unrecognized/i],
    ] as const) {
      const res = await SELF.fetch(`${base}/api/enrollments`, {
        method: "POST",
        headers: API,
        body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json<{ error: string }>()).error).toMatch(message);
    }
    const notJson = await SELF.fetch(`${base}/api/enrollments`, { method: "POST", headers: API, body: "{" });
    expect(notJson.status).toBe(400);
    const runner = await SELF.fetch(`${base}/api/enrollments`, { method: "POST", headers: RUNNER, body: "{}" });
    expect(runner.status).toBe(401);
  });

  it("admit as many devices as their uses, then refuse, saying so; expired and revoked ones too", async () => {
    const two = await enrollment({ uses: 2, labels: ["phone"], trusted: true });
    const first = await enroll(two.token, "Pixel 7");
    expect(first.status).toBe(200);
    const answer = await first.json<EnrollAnswer>();
    expect(answer).toMatchObject({ labels: ["phone"], trusted: true, enrollment: two.id });
    expect(answer.device).toMatch(/^Pixel-7-[0-9a-f]{8}$/);
    expect(answer.credential).toMatch(new RegExp(`^${answer.device}\\.[A-Za-z0-9_-]{43}$`));
    expect((await enroll(two.token)).status).toBe(200);
    const third = await enroll(two.token);
    expect(third.status).toBe(403);
    expect((await third.json<{ error: string }>()).error).toMatch(
      new RegExp(`enrollment ${two.id} has been used 2 of 2 times`),
    );

    const brief = await enrollment({ ttl: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const late = await enroll(brief.token);
    expect(late.status).toBe(403);
    expect((await late.json<{ error: string }>()).error).toMatch(new RegExp(`enrollment ${brief.id} expired at 20`));

    const withdrawn = await enrollment();
    const del = await SELF.fetch(`${base}/api/enrollments/${withdrawn.id}`, { method: "DELETE", headers: API });
    expect((await del.json<EnrollmentView>()).revoked_at).toBeGreaterThan(0);
    const refused = await enroll(withdrawn.token);
    expect(refused.status).toBe(403);
    expect((await refused.json<{ error: string }>()).error).toMatch(/was revoked/);
    expect((await enroll("dse_not-a-token")).status).toBe(401);
    expect((await SELF.fetch(`${base}/api/enrollments/nope`, { method: "DELETE", headers: API })).status).toBe(404);
  });

  it("keep only hashes: no token or credential is in D1, and the device's row holds its credential's sha256", async () => {
    const made = await enrollment();
    const { device, credential } = await (await enroll(made.token, "hashed")).json<EnrollAnswer>();
    const rows = [
      ...(await env.DB.prepare(`SELECT * FROM enrollments`).all()).results,
      ...(await env.DB.prepare(`SELECT * FROM devices`).all()).results,
    ];
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(made.token);
    expect(stored).not.toContain(credential);
    expect(stored).not.toContain(credential.split(".")[1]);
    const row = await env.DB.prepare(`SELECT secret_hash FROM devices WHERE id = ?`).bind(device).first();
    expect(row).toEqual({ secret_hash: await hex(credential) });
  });
});

describe("a device is itself", () => {
  it("a hello may name only the socket's device or <device>.<k>; another device's id is refused", async () => {
    const victim = await RunnerSocket.open("/api/runners/connect", "victim");
    victim.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("victim"), want: 0 });
    await victim.next("welcome");
    // A device that holds the development secret enrolls as itself, then claims the victim's id.
    const attacker = await RunnerSocket.open("/api/runners/connect", "attacker");
    attacker.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("victim"), want: 0 });
    expect((await attacker.next("error")).message).toMatch(/runner id victim is not one of device attacker/);
    expect((await attacker.ended()).code).toBe(CLOSE.protocol);
    const taken = await enroll("test-runner-token", "x", { device: "victim" });
    expect(taken.status).toBe(403);
    expect((await taken.json<{ error: string }>()).error).toMatch(/held by another device/);
    // The victim's socket is untouched and still answered.
    expect(victim.closed).toBeUndefined();
    const { runners } = await (await SELF.fetch(`${base}/api/runners`, { headers: API })).json<RunnerListing>();
    expect(runners.filter((r) => r.id === "victim")).toHaveLength(1);

    const second = await RunnerSocket.open("/api/runners/connect", "victim");
    second.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("victim.2"), want: 0 });
    await second.next("welcome");
    const stray = await RunnerSocket.open("/api/runners/connect", "victim");
    stray.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("victim.99"), want: 0 });
    expect((await stray.next("error")).fatal).toBe(true);
    for (const s of [victim, second]) s.ws.close(1000, "done");
  });

  it("a socket needs a credential; the development secret alone opens none", async () => {
    const upgrade = { Upgrade: "websocket" };
    for (const headers of [RUNNER, API, { Authorization: "Bearer victim.AAAA" }]) {
      const res = await SELF.fetch(`${base}/api/runners/connect`, { headers: { ...headers, ...upgrade } });
      expect(res.status).toBe(401);
    }
  });

  it("one device holds at most 16 sockets in one object", async () => {
    const sockets = await Promise.all(
      Array.from({ length: 16 }, () => RunnerSocket.open("/api/runners/connect", "many")),
    );
    const res = await SELF.fetch(`${base}/api/runners/connect`, {
      headers: { ...(await asDevice("many")), Upgrade: "websocket" },
    });
    expect(res.status).toBe(429);
    expect((await res.json<{ error: string }>()).error).toMatch(/16 sockets/);
    for (const s of sockets) s.ws.close(1000, "done");
  });
});

describe("a device sees only its work", () => {
  it("a module or input blob is 403 to a device unless one of its leases in that run names it", async () => {
    const wasm = wasmModule();
    const sha = await hex(wasm);
    await SELF.fetch(`${base}/api/modules/scoped.wasm`, { method: "PUT", headers: API, body: wasm });
    const id = await submit(`name: scoped
tasks:
  - { id: a, module: scoped.wasm }
  - { id: b, module: scoped.wasm, depends_on: [a] }
`);
    const worker = await runSocket(id, "holder");
    const [a] = (await worker.next("tasks")).tasks;
    const module = `/api/modules/sha256:${sha}?run=${id}`;
    expect((await fetchAs("holder", module)).status).toBe(200);
    const other = await fetchAs("bystander", module);
    expect(other.status).toBe(403);
    expect((await other.json<{ error: string }>()).error).toMatch(/no lease of device bystander/);
    expect((await fetchAs("holder", `/api/modules/sha256:${sha}`)).status).toBe(403);
    expect((await fetchAs("holder", `/api/modules/scoped.wasm?run=${id}`)).status).toBe(403);
    expect((await SELF.fetch(`${base}${module}`, { headers: API })).status).toBe(200);

    // a's output goes to R2; b takes it as an input, so b's runner may fetch it, nobody else.
    const output = new TextEncoder().encode(`"${"x".repeat(100)}"`);
    const blobSha = await hex(output);
    const upload = (path: string, device: string, body: Uint8Array) =>
      asDevice(device).then((headers) => SELF.fetch(`${base}${path}`, { method: "PUT", headers, body }));
    const put = await upload(`/api/blobs/sha256:${blobSha}?run=${id}`, "holder", output);
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ sha256: blobSha, size: output.length });
    // R2 checks the hash: bytes under another name are refused.
    const wrong = await upload(`/api/blobs/sha256:${"0".repeat(64)}?run=${id}`, "holder", output);
    expect(wrong.status).toBe(400);
    expect((await wrong.json<{ error: string }>()).error).toMatch(/does not match sha256:0000/);
    // A device with no lease in the run stores nothing there.
    expect((await upload(`/api/blobs/sha256:${blobSha}?run=${id}`, "bystander", output)).status).toBe(403);
    const blob = `/api/blobs/sha256:${blobSha}?run=${id}`;
    expect((await fetchAs("holder", blob)).status).toBe(403); // no lease takes it yet
    const result = {
      task: a!.task,
      attempt: a!.attempt,
      ok: true,
      outputRef: { sha256: blobSha, size: output.length },
    };
    worker.send({ type: "results", results: [{ ...result, stderr: "", durationMs: 1 }], want: 1, received: 1 });
    const [b] = (await worker.next("tasks")).tasks;
    expect(b!.refs).toEqual([blobSha]);
    expect((await fetchAs("holder", blob)).status).toBe(200);
    expect((await fetchAs("bystander", blob)).status).toBe(403);
    worker.ws.close(1000, "done");
  });
});

describe("a device sees only its work: inputs and envelopes", () => {
  it("an input's file and an attempt's envelope are 403 to a device unless it holds that lease", async () => {
    const wasm = wasmModule();
    await SELF.fetch(`${base}/api/modules/inputs.wasm`, { method: "PUT", headers: API, body: wasm });
    const files = ["one", "two"].map((text) => new TextEncoder().encode(text));
    const refs: { name: string; size: number; sha256: string }[] = [];
    for (const [i, bytes] of files.entries()) {
      const sha256 = await hex(bytes);
      const put = await SELF.fetch(`${base}/api/blobs/sha256:${sha256}`, { method: "PUT", headers: API, body: bytes });
      expect(put.status).toBe(200);
      refs.push({ name: `f${i}`, size: bytes.length, sha256 });
    }
    const dag =
      "name: ins\ncache: false\ninputs: [photos]\ntasks:\n  - { id: each, module: inputs.wasm, map: { files: photos } }\n";
    const res = await SELF.fetch(`${base}/api/dags`, {
      method: "POST",
      headers: { ...API, ...json },
      body: JSON.stringify({ dag, inputs: { photos: { files: refs } } }),
    });
    expect(res.status).toBe(201);
    const { id, tasks_total } = await res.json<{ id: string; tasks_total: number }>();
    expect(tasks_total).toBe(2);
    const worker = await runSocket(id, "reader");
    const [first] = (await worker.next("tasks")).tasks;
    expect([first!.task, first!.refs]).toEqual(["each[0]", [refs[0]!.sha256]]);
    expect(JSON.parse(first!.stdin)).toMatchObject({ item: "f0", inputs: { photos: { $file: refs[0] } } });
    const blob = (i: number) => `/api/blobs/sha256:${refs[i]!.sha256}?run=${id}`;
    expect((await fetchAs("reader", blob(0))).status).toBe(200);
    expect((await fetchAs("bystander", blob(0))).status).toBe(403);
    // An instance of a map over files reads its own file, not its neighbours'.
    expect((await fetchAs("reader", blob(1))).status).toBe(403);
    // The envelope of its own attempt, as the run builds it; no other attempt's, nobody else's.
    const envelope = (attempt: number, task = "each[0]") =>
      `/api/runners/envelope?run=${id}&task=${encodeURIComponent(task)}&attempt=${attempt}`;
    const mine = await fetchAs("reader", envelope(1));
    expect([mine.status, await mine.text()]).toEqual([200, first!.stdin]);
    expect((await fetchAs("reader", envelope(2))).status).toBe(403);
    expect((await fetchAs("reader", envelope(1, "each[1]"))).status).toBe(403);
    expect((await fetchAs("bystander", envelope(1))).status).toBe(403);
    expect((await fetchAs("reader", `/api/runners/envelope?run=${id}`)).status).toBe(400);
    expect((await SELF.fetch(`${base}${envelope(1)}`, { headers: API })).status).toBe(401);
    worker.ws.close(1000, "done");
  });
});

describe("revocation", () => {
  it("closes the device's sockets with 4403, hands its leases back uncharged, and refuses its credential", async () => {
    await SELF.fetch(`${base}/api/modules/revoked.wasm`, { method: "PUT", headers: API, body: wasmModule() });
    const id = await submit(`name: revoked\ntasks:\n  - { id: only, module: revoked.wasm, retries: 0 }\n`);
    const pool = await RunnerSocket.open("/api/runners/connect", "doomed");
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("doomed"), want: 0 });
    await pool.next("welcome");
    const run = await runSocket(id, "doomed");
    await run.next("tasks");
    const res = await SELF.fetch(`${base}/api/runners/doomed`, { method: "DELETE", headers: API });
    expect(res.status).toBe(200);
    const answer = await res.json<RevokeAnswer>();
    expect(answer.closed).toBe(2);
    expect(answer.device.revoked_at).toBeGreaterThan(0);
    for (const s of [pool, run])
      expect(await s.ended()).toEqual({ code: CLOSE.revoked, reason: "device doomed was revoked" });

    // Nothing said on a closed socket counts: a hello on it, in answer to the close, attaches nobody.
    pool.ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("doomed"), want: 0 }));
    run.ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, runner: runnerInfo("doomed"), want: 1 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(pool.seen.filter((f) => f.type === "welcome")).toHaveLength(1);
    expect(run.seen.filter((f) => f.type === "welcome")).toHaveLength(1);
    // The task is ready again, its attempt returned (not charged: it has no retries to spare).
    const view = await (
      await SELF.fetch(`${base}/api/dags/${id}`, { headers: API })
    ).json<{
      tasks: { state: string; attempts: { outcome: string }[] }[];
    }>();
    expect(view.tasks[0]!.state).toMatch(/ready|waiting/);
    expect(view.tasks[0]!.attempts.map((x) => x.outcome)).toEqual(["returned"]);
    const taker = await runSocket(id, "heir");
    expect((await taker.next("tasks")).tasks[0]).toMatchObject({ task: "only", attempt: 2 });
    taker.ws.close(1000, "done");

    const again = await SELF.fetch(`${base}/api/runners/connect`, {
      headers: { ...(await asDevice("doomed")), Upgrade: "websocket" },
    });
    expect(again.status).toBe(403);
    expect((await again.json<{ error: string }>()).error).toMatch(/device doomed was revoked at/);
    const { devices } = await (await SELF.fetch(`${base}/api/runners`, { headers: API })).json<RunnerListing>();
    expect(devices.find((d) => d.id === "doomed")).toMatchObject({ connected: false });
    expect(devices.find((d) => d.id === "doomed")!.revoked_at).toBeGreaterThan(0);
    expect((await SELF.fetch(`${base}/api/runners/nobody`, { method: "DELETE", headers: API })).status).toBe(404);
  });
});
