/**
 * The API client against a real HTTP server on 127.0.0.1 that leaves chosen requests
 * unanswered, as `wrangler dev` now and then does: a GET is sent again, a POST is not, unless it
 * is a submission under an Idempotency-Key (as `distro submit` sends one).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, Client } from "../../cli/client";
import { main } from "../../cli/distro";

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** A server whose first `lose` requests get no answer at all; the rest get `{ ok: n }`. */
async function losing(lose: number): Promise<{ url: URL; seen: () => number }> {
  let n = 0;
  const hung: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    n++;
    if (n <= lose) return void hung.push(res);
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ ok: n }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  close = async () => {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), seen: () => n };
}

describe("the API client, when a request gets no answer", () => {
  it("sends a GET again after its wait, and takes the answer to the second", async () => {
    const { url, seen } = await losing(1);
    const client = new Client(url, "t", 2000);
    expect(await client.json("/api/runners")).toEqual({ ok: 2 });
    expect(seen()).toBe(2);
  });

  it("gives up on a GET after three unanswered sends, saying so", async () => {
    const { url, seen } = await losing(3);
    const client = new Client(url, "t", 100);
    const failed = await client.json("/api/runners").catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ApiError);
    expect((failed as ApiError).message).toMatch(/no answer to GET \/api\/runners in 0\.1 s, 3 times/);
    expect(seen()).toBe(3);
  });

  it("sends a POST once: it waits for its answer however long it takes", async () => {
    const { url, seen } = await losing(1);
    const client = new Client(url, "t", 100);
    const pending = client.submit("tasks: []\n");
    let settled = false;
    void pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(settled).toBe(false);
    expect(seen()).toBe(1);
    await close?.(); // the server drops it: now it fails
    close = undefined;
    await expect(pending).rejects.toThrow(/cannot reach the coordinator/);
  });
});

/**
 * A server for submissions: each POST's Idempotency-Key is kept; the first `drop` POSTs have
 * their connection cut, the next `busy` get 409 with Retry-After: 0, the rest a run.
 */
async function submissions(drop: number, busy = 0): Promise<{ url: URL; keys: (string | undefined)[] }> {
  const keys: (string | undefined)[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.method !== "POST") return void res.writeHead(404).end();
    keys.push(req.headers["idempotency-key"] as string | undefined);
    if (keys.length <= drop) return void req.socket.destroy();
    res.setHeader("Content-Type", "application/json");
    if (keys.length <= drop + busy) {
      res.writeHead(409, { "Retry-After": "0" });
      return void res.end(JSON.stringify({ error: "still starting" }));
    }
    res.writeHead(201);
    res.end(JSON.stringify({ id: "a".repeat(64), tasks_total: 1, url: "http://x/#/runs/a" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), keys };
}

describe("a submission under an Idempotency-Key", () => {
  it("is sent again, under the same key, when its connection failed or the run is still starting", async () => {
    const { url, keys } = await submissions(1, 1);
    const run = await new Client(url, "t", 2000).submit("tasks: []\n", {}, "k-1");
    expect(run.id).toBe("a".repeat(64));
    expect(keys).toEqual(["k-1", "k-1", "k-1"]);
  });

  it("gives up after three sends, saying why; without a key a cut connection is not sent again", async () => {
    const cut = await submissions(3);
    const failed = await new Client(cut.url, "t", 2000).submit("tasks: []\n", {}, "k-2").catch((e: unknown) => e);
    expect((failed as ApiError).message).toMatch(/cannot reach the coordinator/);
    expect(cut.keys).toEqual(["k-2", "k-2", "k-2"]);
    await close?.();
    const once = await submissions(1);
    await expect(new Client(once.url, "t", 2000).submit("tasks: []\n")).rejects.toThrow(/cannot reach/);
    expect(once.keys).toEqual([undefined]);
  });

  it("is how `distro submit` sends: a new UUID per invocation, kept across its sends, or --idempotency-key's", async () => {
    const { url, keys } = await submissions(1);
    const dir = mkdtempSync(join(tmpdir(), "distro-key-"));
    const file = join(dir, "dag.yaml");
    writeFileSync(file, "name: keyed\ntasks:\n  - { id: a, module: registered.wasm }\n");
    const run = (...flags: string[]) =>
      main(["submit", file, ...flags], {
        out: () => {},
        write: () => {},
        err: () => {},
        env: { DISTRO_TOKEN: "t", DISTRO_COORDINATOR: url.toString() },
        cwd: dir,
      });
    expect(await run()).toBe(0);
    expect(await run()).toBe(0);
    expect(await run("--idempotency-key", "nightly-2026-12-03")).toBe(0);
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    // The first invocation's send was cut and sent again under its key; the second has its own.
    expect(keys).toHaveLength(4);
    expect(keys[0]).toMatch(uuid);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).toMatch(uuid);
    expect(keys[2]).not.toBe(keys[0]);
    expect(keys[3]).toBe("nightly-2026-12-03");
    expect(await run("--idempotency-key", "two words")).toBe(2);
    expect(keys).toHaveLength(4);
    rmSync(dir, { recursive: true, force: true });
  });
});
