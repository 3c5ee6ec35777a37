// Outputs are data, never documents: a hostile device (this test, speaking the real protocol
// over a real WebSocket to the real local coordinator) reports outputs that are SVG and HTML
// with scripts, inline and as blobs uploaded with a lying Content-Type, plus an HTML polyglot
// behind PNG magic. In real Chromium, every way the page offers to open them (inline view,
// "show output", open in a new tab, download) and their direct URLs must run no script.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DEV_TOKENS } from "../../dev/local";
import { PAGE_CSP } from "../../worker/headers";
import {
  PROTOCOL_VERSION,
  type Assignment,
  type CoordinatorMessage,
  type TaskResult,
} from "../../core/protocol/messages";
import { cspViolations, launchChromium } from "./browser";
import { Cluster, fakeRunner } from "./harness";

const cluster = new Cluster();
let browser: Browser;
let origin: string;

/** Payloads that would, if any ran as script in the coordinator's origin, leave a marker and call home. */
function payloads(): Record<string, string> {
  const mark = (name: string) => `fetch('${origin}/pwned/${name}');localStorage.setItem('pwned','${name}')`;
  const svg = (name: string) =>
    `<svg xmlns="http://www.w3.org/2000/svg" onload="${mark(`${name}-onload`)}">` +
    `<script>${mark(name)}</script><circle r="5"/></svg>`;
  const html = (name: string) =>
    `<!doctype html><html><body><script>${mark(name)}</script>` +
    `<img src="x" onerror="${mark(`${name}-img`)}"></body></html>`;
  const big = (text: string) => `${text}<!--${"x".repeat(300 * 1024)}-->`; // over the 256 KiB inline limit: a blob
  // The page shows the first four final outputs inline; all five through "show output".
  return {
    polyglot: `\x89PNG\r\n\x1a\n${html("polyglot")}`,
    svg: svg("svg"),
    svg_blob: big(svg("svg_blob")),
    html_blob: big(html("html_blob")),
    html: html("html"),
  };
}

const CLAIMED: Record<string, string> = { svg_blob: "image/svg+xml", html_blob: "text/html" };
/** The hostile device's own credential: it has one like any device, and uses it to attack the page. */
let credential: string | undefined;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * Takes every task of run `id` on its run socket, reports `outputs[task]` as its output, and
 * stays until the run has succeeded.
 */
async function hostileRunner(id: string, outputs: Record<string, string>): Promise<void> {
  const base = cluster.coordinator.url;
  credential ??= await cluster.credential("hostile-1");
  const ws = new WebSocket(new URL(`/api/runners/connect?run=${id}`, base.toString().replace(/^http/, "ws")), {
    headers: { Authorization: `Bearer ${credential}` },
  });
  await once(ws, "open");
  const runner = fakeRunner("hostile-1");
  ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, runner, want: 8 }));
  let received = 0;
  const done = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    ws.on("message", (data) => {
      const text = (data as Buffer).toString(); // text frames arrive as Buffers
      if (text === "pong") return;
      const msg = JSON.parse(text) as CoordinatorMessage;
      if (msg.type === "error") return reject(new Error(msg.message));
      if (msg.type !== "tasks") return;
      received += msg.tasks.length;
      void Promise.all(msg.tasks.map((a) => report(id, a, outputs[a.task]!))).then((results) => {
        ws.send(JSON.stringify({ type: "results", results, want: 0, received }));
        for (const r of results) done.add(r.task);
        if (done.size === Object.keys(outputs).length) resolve();
      }, reject);
    });
  });
  await cluster.until(id, (run) => run.status === "succeeded");
  ws.close();
}

async function report(run: string, a: Assignment, text: string): Promise<TaskResult> {
  const bytes = Buffer.from(text, "latin1");
  const result = { task: a.task, attempt: a.attempt, ok: true, stderr: "", durationMs: 1 };
  if (bytes.length <= a.inlineOutputBytes) return { ...result, output: bytes.toString("base64") };
  const hash = sha256(bytes);
  const res = await fetch(new URL(`/api/blobs/sha256:${hash}?run=${run}`, cluster.coordinator.url), {
    method: "PUT",
    body: bytes,
    headers: { Authorization: `Bearer ${credential}`, "Content-Type": CLAIMED[a.task] ?? "text/html" },
  });
  expect(res.status).toBe(200);
  return { ...result, outputRef: { sha256: hash, size: bytes.length } };
}

/** What a context saw of the payloads: calls home and console lines. */
function watch(context: BrowserContext): { calls: string[]; violations: string[] } {
  const calls: string[] = [];
  context.on("request", (r) => {
    if (r.url().includes("/pwned/")) calls.push(r.url());
  });
  return { calls, violations: cspViolations(context) };
}

const marker = (page: Page) => page.evaluate(() => localStorage.getItem("pwned"));

beforeAll(async () => {
  await cluster.start();
  origin = cluster.coordinator.url.origin;
  await cluster.upload("noop.wasm");
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await cluster.stop();
});

describe("outputs from a hostile device", () => {
  it("the payloads do run script when loaded as documents (so the checks below can fail)", async () => {
    const context = await browser.newContext();
    const seen = watch(context);
    const page = await context.newPage();
    for (const text of Object.values(payloads()).slice(0, 2)) await page.setContent(text);
    await expect.poll(() => seen.calls.length).toBeGreaterThan(0);
    await context.close();
  });

  it("run no script in the page, in a new tab, as a download or at their direct URLs", async () => {
    const outputs = payloads();
    const tasks = Object.keys(outputs)
      .map((id) => `  - { id: ${id}, module: noop.wasm }`)
      .join("\n");
    const { id } = await cluster.client.submit(`name: hostile-outputs\ncache: false\ntasks:\n${tasks}\n`);
    await hostileRunner(id, outputs);

    // Served as data: the type the bytes show, never the one claimed; attachments for the rest.
    for (const task of Object.keys(outputs)) {
      const res = await fetch(new URL(`/api/dags/${id}/tasks/${task}/output`, origin), {
        headers: { Authorization: `Bearer ${DEV_TOKENS.api}` },
      });
      expect(res.headers.get("Content-Type")).toBe(task === "polyglot" ? "image/png" : "application/octet-stream");
      expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
      expect(res.headers.get("Content-Security-Policy")).toMatch(/sandbox/);
      if (task !== "polyglot")
        expect(res.headers.get("Content-Disposition")).toMatch(/^attachment; filename="[A-Za-z0-9_.-]+\.bin"$/);
      expect(Buffer.from(await res.arrayBuffer()).toString("latin1")).toBe(outputs[task]);
    }

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const seen = watch(context);
    const page = await context.newPage();
    await page.goto(origin);
    await page.evaluate((t) => localStorage.setItem("distro.token", t), DEV_TOKENS.api);
    await page.goto(`${origin}/#/runs/${id}`);

    // Inline: the final outputs are shown; the polyglot as an image, the rest as escaped text.
    await page.waitForSelector('#outputs img[data-output="polyglot"]', { timeout: 30_000, state: "attached" });
    for (const task of ["svg", "svg_blob", "html_blob"]) {
      await page.waitForSelector(`#outputs pre[data-output="${task}"]`);
      expect(await page.locator(`img[data-output="${task}"]`).count()).toBe(0);
      expect(await page.locator(`a[data-open="${task}"]`).count()).toBe(0);
    }
    expect(await page.textContent('pre[data-output="svg"]')).toContain("<script>");

    // The task table's "show output" for every task.
    await page.waitForSelector('tr[data-task="html"]');
    for (const row of await page.locator("tr[data-task]").all()) {
      await row.locator("summary").click();
      await row.locator("button[data-show]").click();
      await row.locator(".out figure").waitFor();
    }
    expect(await page.textContent('tr[data-task="html"] pre[data-output="html"]')).toContain("<script>");

    // Open in a new tab (offered for images only) and every download link.
    const [tab] = await Promise.all([
      context.waitForEvent("page"),
      page.locator('#outputs a[data-open="polyglot"]').click(),
    ]);
    await tab.waitForLoadState();
    for (const link of await page.locator("#outputs a[data-download]").all()) {
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      expect(await download.failure()).toBeNull();
      const task = (await link.getAttribute("data-download"))!;
      // Named for the type the coordinator found in the bytes: an image of the four rasters as
      // such, anything else as opaque bytes.
      expect(download.suggestedFilename()).toMatch(task === "polyglot" ? /^polyglot\.png$/ : /\.bin$/);
      const path = await download.path();
      expect(readFileSync(path).toString("latin1")).toBe(outputs[task]);
    }
    // A download's object URL typed in a new tab.
    const href = (await page.locator('#outputs a[data-download="svg"]').getAttribute("href"))!;
    const typed = await context.newPage();
    await typed.goto(href).catch(() => undefined); // a download, not a page

    // Direct URLs of outputs and blobs, opened with the API token.
    const direct = await browser.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${DEV_TOKENS.api}` } });
    const directSeen = watch(direct);
    const other = await direct.newPage();
    await other.goto(origin);
    const view = await cluster.client.run(id);
    const blobs = (view.tasks ?? [])
      .filter((t) => t.id.endsWith("_blob"))
      .map((t) => sha256(Buffer.from(outputs[t.id]!, "latin1")));
    expect(blobs).toHaveLength(2);
    const urls = [
      ...Object.keys(outputs).map((task) => `/api/dags/${id}/tasks/${task}/output`),
      ...blobs.map((h) => `/api/blobs/sha256:${h}`),
    ];
    for (const path of urls) await other.goto(`${origin}${path}`).catch(() => undefined);
    await other.goto(origin);

    await page.waitForTimeout(500); // give any script that could have started its chance to run
    expect(seen.calls).toEqual([]);
    expect(directSeen.calls).toEqual([]);
    expect(await marker(page)).toBeNull();
    expect(await marker(other)).toBeNull();
    // The page keeps to its policy. (An image opened in a new tab is Chrome's own image viewer,
    // which inherits the policy and has its inline centring style refused: harmless.)
    expect(seen.violations.filter((v) => v.startsWith(origin))).toEqual([]);
    await direct.close();
    await context.close();
  });

  it("the page and its assets carry the page's policy and nosniff, served before the Worker runs", async () => {
    for (const path of ["/", "/app.js", "/style.css"]) {
      const res = await fetch(new URL(path, origin));
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Security-Policy")).toBe(PAGE_CSP);
      expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
      expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
    }
  });
});
