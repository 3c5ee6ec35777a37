/**
 * The API client against a real HTTP server on 127.0.0.1 that leaves chosen requests
 * unanswered, as `wrangler dev` now and then does: a GET is sent again, a POST is not.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, Client } from "../../cli/client";

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
