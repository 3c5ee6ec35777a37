// The runner's link (runner/link.ts) against a local `ws` server that plays the coordinator: a
// socket closed for its rate limit (4429) reconnects only after a floor, later each time, with one
// log line saying it was rate limited; an ordinary close reconnects at once as before. The device's
// credential on every upgrade: a revocation (close 4403, HTTP 403) is final, a 401 is renewed once.
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { DEFAULTS } from "../../runner/config";
import { Link, type LinkAuth, type LinkEnd, type LinkOptions } from "../../runner/link";
import { CLOSE, PROTOCOL_VERSION } from "../../core/protocol/messages";
import { fakeCoordinator } from "./fake-coordinator";

const REASON = "rate limit: 201 frames in 0.10 s (50/s, burst 200)";
let cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A coordinator on a free port of 127.0.0.1 that closes every socket it accepts with `code`. */
async function closingServer(code: number, reason = REASON): Promise<{ url: URL; opened: number[] }> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", resolve));
  const opened: number[] = [];
  server.on("connection", (ws) => {
    opened.push(performance.now());
    ws.close(code, reason);
  });
  cleanup.push(async () => {
    for (const ws of server.clients) ws.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/runners/connect`), opened };
}

function link(url: URL, options: Partial<LinkOptions> = {}): { link: Link; lines: string[] } {
  const lines: string[] = [];
  const l = new Link({
    url,
    auth: { credential: () => "t", renew: () => Promise.resolve("no renewal here") },
    label: "pool",
    log: { info: (line) => lines.push(line), debug: () => {} },
    onOpen: () => {},
    onMessage: () => {},
    onEnd: () => {},
    random: () => 0, // the least delay of each back-off step: the schedule is exact
    ...options,
  });
  cleanup.push(() => Promise.resolve(l.close()));
  l.start();
  return { link: l, lines };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("runner link", () => {
  it("after a rate-limit close waits at least the floor, longer after each limit, and says so", async () => {
    const { url, opened } = await closingServer(CLOSE.rateLimited);
    const { lines } = link(url, { backoff: { initialMs: 50, maxMs: 5000, factor: 2, limitedMs: 100 } });
    await until(() => opened.length >= 4);
    const limited = lines.filter((l) => l.includes("rate limited"));
    expect(limited.slice(0, 3)).toEqual(
      [0.2, 0.4, 0.8].map(
        (s) => `pool: rate limited by the coordinator ${url.origin} (${REASON}); reconnecting in ${s.toFixed(1)}s`,
      ),
    );
    // One line per close, and no "not reachable" line besides.
    expect(lines.filter((l) => !l.includes("rate limited"))).toEqual([]);
    const gaps = opened.slice(1).map((t, i) => t - opened[i]!);
    [200, 400, 800].forEach((ms, i) => expect(gaps[i]).toBeGreaterThanOrEqual(ms - 5));
  });

  it("with the default back-off waits at least a few seconds after a rate-limit close", async () => {
    const { url, opened } = await closingServer(CLOSE.rateLimited);
    const { lines } = link(url, { backoff: DEFAULTS.reconnect });
    await until(() => lines.length > 0);
    expect(DEFAULTS.reconnect.limitedMs).toBeGreaterThanOrEqual(3000);
    expect(lines).toEqual([`pool: rate limited by the coordinator ${url.origin} (${REASON}); reconnecting in 3.0s`]);
    await new Promise((r) => setTimeout(r, 500));
    expect(opened.length).toBe(1);
  });

  it("after an ordinary close starts its back-off over, as before", async () => {
    const { url, opened } = await closingServer(1011, "restarting");
    const { lines } = link(url, { backoff: { initialMs: 50, maxMs: 5000, factor: 2, limitedMs: 100 } });
    await until(() => opened.length >= 3);
    const line = `pool: coordinator ${url.origin} not reachable (connection closed (code 1011)); retry 1 in 0.0s`;
    expect(lines.filter((l) => l.includes("not reachable")).slice(0, 2)).toEqual([line, line]);
  });

  it("closed with 4403 (revoked) ends for good: no reconnect, the coordinator's reason kept", async () => {
    const { url, opened } = await closingServer(CLOSE.revoked, "device pc-1 was revoked");
    const ends: [string, LinkEnd][] = [];
    const { lines } = link(url, { backoff: FAST, onEnd: (reason, end) => ends.push([reason, end]) });
    await until(() => ends.length > 0);
    await new Promise((r) => setTimeout(r, 200)); // a reconnect would have come by now
    expect(ends).toEqual([["close 4403: device pc-1 was revoked", "revoked"]]);
    expect(opened).toHaveLength(1);
    expect(lines).toEqual([]);
  });

  it("an HTTP 403 at the upgrade ends it for good, with the coordinator's message", async () => {
    const error = "device pc-1 was revoked at 2026-12-01T10:00:00.000Z; enroll it again to rejoin";
    const fake = await fakeCoordinator({ upgrade: () => ({ status: 403, body: { error } }) });
    cleanup.push(() => fake.close());
    const ends: [string, LinkEnd][] = [];
    link(new URL("/api/runners/connect", fake.url), { backoff: FAST, onEnd: (r, end) => ends.push([r, end]) });
    await until(() => ends.length > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(ends).toEqual([[`the coordinator refused this device's credential (HTTP 403: ${error})`, "forbidden"]]);
    expect(fake.upgrades).toEqual(["Bearer t"]);
  });

  it("a 401 at the upgrade renews the credential once and opens again with the new one", async () => {
    const fake = await fakeCoordinator({
      upgrade: (req) =>
        req.headers.authorization === "Bearer new" ? undefined : { status: 401, body: { error: "unknown" } },
    });
    cleanup.push(() => fake.close());
    let credential = "old";
    const renewed: string[] = [];
    const auth: LinkAuth = {
      credential: () => credential,
      renew: (stale) => {
        renewed.push(stale);
        credential = "new";
        return Promise.resolve(undefined);
      },
    };
    let opens = 0;
    link(new URL("/api/runners/connect", fake.url), { auth, backoff: FAST, onOpen: () => opens++ });
    await until(() => opens === 1);
    expect(renewed).toEqual(["old"]);
    expect(fake.upgrades).toEqual(["Bearer old", "Bearer new"]);
  });

  it("a 401 with no renewal to be had, or again right after one, ends it as refused", async () => {
    const fake = await fakeCoordinator({ upgrade: () => ({ status: 401, body: { error: "unknown credential" } }) });
    cleanup.push(() => fake.close());
    const url = new URL("/api/runners/connect", fake.url);
    const ends: [string, LinkEnd][] = [];
    const onEnd = (reason: string, end: LinkEnd) => ends.push([reason, end]);
    link(url, { backoff: FAST, onEnd });
    let n = 0;
    const auth: LinkAuth = { credential: () => `c${++n}`, renew: () => Promise.resolve(undefined) };
    link(url, { auth, backoff: FAST, onEnd });
    await until(() => ends.length === 2);
    expect(ends.sort()).toEqual([
      ["no renewal here (HTTP 401: unknown credential)", "refused"],
      ["the coordinator refused the device's new credential too (HTTP 401: unknown credential)", "refused"],
    ]);
  });
});

const FAST = { initialMs: 50, maxMs: 5000, factor: 2, limitedMs: 100 };

describe("a half-open link", () => {
  it("that hears nothing for two heartbeats is dropped and opened again; one that hears pongs is kept", async () => {
    // A coordinator that welcomes with a heartbeat of 1 s; it answers pings only while `answering`.
    let answering = true;
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", resolve));
    const opened: number[] = [];
    server.on("connection", (ws) => {
      opened.push(Date.now());
      ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, heartbeatMs: 1000 }));
      ws.on("message", (data: Buffer) => {
        if (data.toString() === "ping" && answering) ws.send("pong");
      });
    });
    cleanup.push(async () => {
      for (const ws of server.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/runners/connect`);
    const { lines } = link(url);
    await until(() => opened.length === 1);
    // Answered: three heartbeats pass on the one socket.
    await new Promise((r) => setTimeout(r, 3000));
    expect(opened).toHaveLength(1);
    // Blackholed (the socket stays open, nothing comes back): dropped after two heartbeats, counted
    // from the last pong (a ping's interval, a third of a period, before at most).
    answering = false;
    const silentFrom = Date.now();
    await until(() => opened.length === 2);
    expect(opened[1]! - silentFrom).toBeGreaterThanOrEqual(1500);
    expect(lines.some((l) => /pool: heard nothing for \d+\.\d s \(two heartbeats\): reconnecting/.test(l))).toBe(true);
  });
});
