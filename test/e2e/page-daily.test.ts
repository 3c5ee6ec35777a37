// The status page for daily use, in real headless Chromium against the real local coordinator and
// two real runners: a DAG typed into the editor shows its problem at its line before anything is
// sent, then runs once fixed and submitted with a module dragged in; Retry on a failed run does
// what `distro retry` does; a finished run shows its id, its timeline per device and a chart over
// the whole run; a phone reaches a failed task's error, its outputs and Retry; a folder input goes up
// from the page; a running task's log is followed; every control is named. Screenshots go to
// test-artifacts/.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../core/api";
import { DEV_TOKENS, ROOT } from "../../dev/local";
import { countWords, topWords, wordText } from "../helpers/wordcount";
import { cspViolations, launchChromium } from "./browser";
import { Cluster } from "./harness";

const ARTIFACTS = join(ROOT, "test-artifacts");
const cluster = new Cluster();
let browser: Browser;
let page: Page;
let violations: string[];
/** Every request the page made, as `METHOD path`. */
const requests: string[] = [];

const FIXABLE = readFileSync(join(ROOT, "test/e2e/fixtures/fixable.yaml"), "utf8");

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await cluster.start();
  cluster.runner({ name: "daily-a" });
  cluster.runner({ name: "daily-b" });
  // Not noop.wasm: the editor's test drags it in.
  await cluster.upload(
    "echo.wasm",
    "flaky.wasm",
    "spin.wasm",
    "chatty.wasm",
    "wordcount_count.wasm",
    "wordcount_top.wasm",
  );
  await cluster.connected("daily-a", "daily-b");
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  violations = cspViolations(context);
  page = await context.newPage();
  page.on("dialog", (d) => void d.accept());
  page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  await page.goto(url());
  await page.evaluate((t) => localStorage.setItem("distro.token", t), DEV_TOKENS.api);
});
afterAll(async () => {
  await browser?.close();
  await cluster.stop();
});

const url = (hash = "") => new URL(`/${hash}`, cluster.coordinator.url).toString();
const attempts = (run: RunView, task: string) =>
  run.tasks.find((t) => t.id === task)!.attempts.map((a) => [a.attempt, a.outcome]);

describe("status page, daily use", () => {
  it("shows a typo at its line before anything is sent; fixed, with a module dragged in, it runs live to succeeded", async () => {
    await page.goto(url("#/new"));
    await page.waitForSelector("#examples button[data-example]");
    const typo = `name: typed-in
cache: false
tasks:
  - { id: first, module: noop.wasm, dependz_on: [] }
  - { id: second, module: echo.wasm, depends_on: [first] }
`;
    requests.length = 0;
    await page.fill("#dag", typo);
    const problem = await page.waitForSelector('#problems li[data-line="4"]');
    expect(await problem.textContent()).toMatch(/^line 4, column \d+: .*dependz_on/);
    expect(await page.getAttribute('#gutter [data-line="4"]', "class")).toBe("bad");
    expect(await page.isDisabled("#submit")).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, "status-new-run-typo.png"), fullPage: true });
    // Parsed in the page: nothing about the DAG went to the coordinator.
    expect(requests.filter((r) => r.includes("/api/dags"))).toEqual([]);

    await page.fill("#dag", typo.replace("dependz_on", "depends_on"));
    // Now the only problem is the module that is not uploaded yet, at its line.
    await page.waitForSelector('#problems li[data-line="4"]:has-text("noop.wasm is not uploaded")');
    const bytes = [...readFileSync(join(ROOT, "wasm_tasks", "build", "noop.wasm"))];
    const dropped = await page.evaluateHandle((b) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(b)], "noop.wasm", { type: "application/wasm" }));
      return dt;
    }, bytes);
    await page.dispatchEvent("#drop", "dragover", { dataTransfer: dropped });
    await page.dispatchEvent("#drop", "drop", { dataTransfer: dropped });
    await page.waitForSelector('#module-list li[data-module="noop.wasm"]');
    await page.waitForSelector("#check.good");
    expect(await page.$$("#problems li")).toHaveLength(0);
    expect(requests).toContain("PUT /api/modules/noop.wasm");
    expect(requests.filter((r) => r.includes("/api/dags"))).toEqual([]);

    await page.click("#submit");
    await page.waitForURL(/#\/runs\/[0-9a-f]{64}$/);
    const id = /#\/runs\/([0-9a-f]{64})$/.exec(page.url())![1]!;
    await page.waitForSelector("#head h2 .state.succeeded", { timeout: 60_000 });
    await page.waitForFunction(() => {
      const nodes = [...document.querySelectorAll("g.node")];
      return nodes.length === 2 && nodes.every((n) => n.getAttribute("data-state") === "succeeded");
    });
    expect(requests.filter((r) => r === "POST /api/dags")).toHaveLength(1);
    const run = await cluster.client.run(id);
    expect([run.name, run.status, run.tasks.map((t) => t.state)]).toEqual([
      "typed-in",
      "succeeded",
      ["succeeded", "succeeded"],
    ]);
    expect(await page.title()).toBe("typed-in · succeeded — Distro");
  });

  it("starts from an example DAG in one click, its params in a form typed as it declares them", async () => {
    await page.goto(url("#/new"));
    await page.click('#examples button[data-example="mandelbrot"]');
    expect(await page.inputValue("#dag")).toBe(readFileSync(join(ROOT, "dags/mandelbrot.yaml"), "utf8"));
    const width = await page.waitForSelector('#params input[data-param="width"]');
    expect(await width.getAttribute("type")).toBe("number");
    // A value past the declared bound is the parser's problem, shown before anything is sent.
    await width.fill("0");
    await page.waitForSelector('#problems li:has-text("width")');
    expect(await page.isDisabled("#submit")).toBe(true);
    await width.fill("");
    await page.waitForSelector('#problems li:has-text("not uploaded")');
  });

  it("keeps what was set in the params form while the DAG is edited", async () => {
    await page.goto(url("#/new"));
    await page.waitForSelector("#examples button[data-example]");
    const dag = (n: number) => `name: knobs
params:
  mode: { type: string, enum: [fast, slow], default: fast }
  flag: { type: boolean, default: false }
  n: { type: integer, default: ${n} }
tasks:
  - { id: a, module: echo.wasm }
`;
    await page.fill("#dag", dag(1));
    await page.waitForSelector('#params [data-param="mode"]');
    await page.selectOption('#params [data-param="mode"]', { label: '"slow"' });
    await page.selectOption('#params [data-param="flag"]', "true");
    await page.fill('#params [data-param="n"]', "7");
    // Another default for n: its field is built again, and every value set stays.
    await page.fill("#dag", dag(2));
    await page.waitForSelector('#params [data-param="n"][placeholder="2"]');
    expect(
      await page.$eval('#params [data-param="mode"]', (s) => (s as HTMLSelectElement).selectedOptions[0]!.text),
    ).toBe('"slow"');
    expect(await page.inputValue('#params [data-param="flag"]')).toBe("true");
    expect(await page.inputValue('#params [data-param="n"]')).toBe("7");
  });

  it("draws the run the address names, whatever answer comes late", async () => {
    const { id: slow } = await cluster.client.submit(
      `name: slow-answer\ncache: false\ntasks:\n  - { id: a, module: echo.wasm }\n`,
    );
    const { id: fast } = await cluster.client.submit(
      `name: fast-answer\ncache: false\ntasks:\n  - { id: a, module: echo.wasm }\n`,
    );
    await cluster.client.wait(slow);
    await cluster.client.wait(fast);
    // The first run's summary takes a second; the user goes to the second run meanwhile.
    await page.route(`**/api/dags/${slow}?summary`, async (route) => {
      await new Promise((r) => setTimeout(r, 1000));
      await route.continue();
    });
    try {
      await page.goto(url(`#/runs/${slow}`));
      await page.goto(url(`#/runs/${fast}`));
      await page.waitForSelector(`#run-id:text-is("${fast}")`);
      await page.waitForTimeout(1500); // the late answer has come and gone
      expect(await page.textContent("#run-id")).toBe(fast);
      expect(await page.title()).toBe("fast-answer · succeeded — Distro");
    } finally {
      await page.unroute(`**/api/dags/${slow}?summary`);
    }
  });

  it("retries a failed run from its page as `distro retry` does", async () => {
    const { id } = await cluster.client.submit(FIXABLE);
    expect((await cluster.client.wait(id)).status).toBe("failed");
    await page.goto(url(`#/runs/${id}`));
    await page.waitForSelector(`#run-id:text-is("${id}")`);
    await page.waitForSelector('[data-error="flaky"]');
    await page.click('#head button[data-action="retry"]:not([disabled])');
    // The CLI's own words: "run <id> is running: 2 task(s) run again".
    await page.waitForSelector(`#notice:has-text("run ${id} is running: 2 task(s) run again")`);
    await page.waitForSelector("#head h2 .state.succeeded", { timeout: 60_000 });
    const run = await cluster.client.run(id);
    expect(run.status).toBe("succeeded");
    expect(attempts(run, "good")).toEqual([[1, "succeeded"]]);
    expect(attempts(run, "flaky")).toEqual([
      [1, "failed"],
      [2, "succeeded"],
    ]);
    // It ran once: an attempt of it sent ahead of flaky's first (failed) one came back unrun.
    const ran = attempts(run, "after").filter(([, outcome]) => outcome !== "returned");
    expect(ran.map(([, outcome]) => outcome)).toEqual(["succeeded"]);
    // Retried again, a run that succeeded is refused, as the CLI is: the button is off.
    expect(await page.isDisabled('#head button[data-action="retry"]')).toBe(true);
  });

  it("shows a finished run's id, its attempts per device, and throughput over the whole run", async () => {
    const { id } = await cluster.client.submit(
      `name: spread\ncache: false\ntasks:\n  - { id: w, module: spin.wasm, map: { range: [0, 8] }, params: { ms: 700 } }\n`,
    );
    const done = await cluster.client.wait(id);
    expect(done.status).toBe("succeeded");
    const span = done.finished_at! - done.created_at;
    // Opened after the run ended: what it shows comes from the run, not from watching it.
    await page.goto(url(`#/runs/${id}`));
    // This run's view, not the one before it (a hash change keeps the document).
    await page.waitForSelector(`#run-id:text-is("${id}")`);
    await page.waitForSelector("svg.timeline rect.attempt");
    const lanes = await page.$$eval("svg.timeline g.lane", (gs) => gs.map((g) => g.getAttribute("data-device")));
    expect(lanes.sort()).toEqual(["daily-a", "daily-b"]);
    // A bar per attempt: each task's one success, and any attempt a steal handed back.
    const bars = await page.$$eval("svg.timeline rect.attempt", (rs) =>
      rs.map((r) => [r.getAttribute("data-task"), r.getAttribute("data-outcome")]),
    );
    const succeeded = bars.filter(([, outcome]) => outcome === "succeeded").map(([task]) => task);
    expect(succeeded.sort()).toEqual(Array.from({ length: 8 }, (_, i) => `w[${i}]`));
    expect(bars.filter(([, outcome]) => outcome !== "succeeded" && outcome !== "returned")).toEqual([]);
    const chartSpan = Number(await page.getAttribute("svg.chart", "data-span-ms"));
    expect(chartSpan).toBeGreaterThanOrEqual(span);
    expect(chartSpan).toBeLessThanOrEqual(span + 1000);
    expect(await page.title()).toBe("spread · succeeded — Distro");
    await page.screenshot({ path: join(ARTIFACTS, "status-timeline.png"), fullPage: true });

    await page.goto(url(`#/runs/${"0".repeat(64)}`));
    expect(await (await page.waitForSelector("#no-run")).textContent()).toMatch(/has no run 0{64}/);
    expect(await page.title()).toBe("Distro: no such run");
  });

  it("finds runs by name and status, failed first", async () => {
    await page.goto(url("#/"));
    await page.waitForSelector('tr[data-status="failed"], tr[data-status="succeeded"]');
    await page.fill("#run-search", "spread");
    await page.waitForFunction(() => [...document.querySelectorAll("tr[data-run]")].length === 1);
    expect(await page.textContent("tr[data-run] a")).toBe("spread");
    await page.fill("#run-search", "");
    await page.selectOption("#run-status", "succeeded");
    const statuses = await page.$$eval("tr[data-run]", (rows) => rows.map((r) => r.getAttribute("data-status")));
    expect(new Set(statuses)).toEqual(new Set(["succeeded"]));
  });

  it("on a phone, reaches a failed task's error, the outputs and Retry", async () => {
    const { id } = await cluster.client.submit(FIXABLE);
    expect((await cluster.client.wait(id)).status).toBe("failed");
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    const seen = cspViolations(phone);
    try {
      await phone.goto(url());
      await phone.evaluate((t) => localStorage.setItem("distro.token", t), DEV_TOKENS.api);
      await phone.goto(url(`#/runs/${id}`));
      // Located afresh at each use: the view redraws its tables as the run's state comes in.
      const inView = async (selector: string) => {
        const node = phone.locator(selector).first();
        await node.scrollIntoViewIfNeeded();
        const box = (await node.boundingBox())!;
        expect(box.x, selector).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width, selector).toBeLessThanOrEqual(390);
        return node;
      };
      const error = await inView('[data-error="flaky"]');
      expect(await error.textContent()).toMatch(/exit/);
      await (await inView('button[data-show="good"]')).click();
      await inView('[data-output="good"]');
      await inView('[data-download="good"]');
      await inView('#head button[data-action="retry"]:not([disabled])');
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(ARTIFACTS, "status-phone-failed.png"), fullPage: true });
    } finally {
      await phone.close();
      violations.push(...seen);
    }
  });

  it("submits a DAG with a folder input uploaded from the page, and shows its output", async () => {
    const folder = join(cluster.dir, "pages");
    mkdirSync(folder, { recursive: true });
    const texts = [wordText(40_000, 3), wordText(30_000, 4)];
    texts.forEach((text, i) => writeFileSync(join(folder, `part-${i}.txt`), text));
    await page.goto(url("#/new"));
    await page.click('#examples button[data-example="wordcount"]');
    await page.waitForSelector('#inputs fieldset[data-input="text"]');
    // Nothing to submit until the input is given.
    await page.waitForSelector('#check:has-text("Give the input(s) text")');
    expect(await page.isDisabled("#submit")).toBe(true);
    await page.setInputFiles('input[data-input-folder="text"]', folder);
    await page.fill('#params input[data-param="top"]', "5");
    await page.waitForSelector("#check.good");
    requests.length = 0;
    await page.click("#submit");
    await page.waitForURL(/#\/runs\/[0-9a-f]{64}$/);
    expect(requests.filter((r) => r.startsWith("PUT /api/blobs/sha256:"))).toHaveLength(2);
    const id = /#\/runs\/([0-9a-f]{64})$/.exec(page.url())![1]!;
    await page.waitForSelector("#head h2 .state.succeeded", { timeout: 60_000 });
    const shown = await page.waitForSelector('pre[data-output="top"]');
    const expected = topWords(countWords(texts.join("\n")), 5);
    expect(JSON.parse((await shown.textContent())!)).toEqual(expected);
    const run = await cluster.client.run(id);
    expect(run.nodes.find((n) => n.id === "count")!.instances).toBe(2);
  });

  it("shows a running task's whole log and follows it as it grows", async () => {
    const { id } = await cluster.client.submit(
      `name: talker\ncache: false\ntasks:\n  - { id: talk, module: chatty.wasm, params: { lines: 25, pause_ms: 120 } }\n`,
    );
    await page.goto(url(`#/runs/${id}`));
    await page.waitForSelector(`#run-id:text-is("${id}")`);
    await page.waitForSelector('tr[data-task="talk"] .state.leased');
    await page.click('tr[data-task="talk"] summary');
    await page.click('button[data-log="talk"]');
    // Followed while it runs: an early line first, then the last, then it says the attempt ended.
    await page.waitForSelector('pre[data-log="talk"]:has-text("chatty: line 2")');
    await page.waitForSelector('pre[data-log="talk"]:has-text("chatty: line 24")', { timeout: 30_000 });
    await page.waitForSelector('#log small:has-text("ended")', { timeout: 30_000 });
    const text = await page.textContent('pre[data-log="talk"]');
    expect(text!.split("\n").filter(Boolean)).toEqual(Array.from({ length: 25 }, (_, i) => `chatty: line ${i}`));
  });

  it("names every control and field, and lets the keyboard in and out of the editor", async () => {
    await page.goto(url("#/new"));
    await page.waitForSelector("#examples button[data-example]");
    await page.click('#examples button[data-example="wordcount"]');
    await page.waitForSelector('#params input[data-param="top"]');
    const unnamed = await page.$$eval("button, input, select, textarea, [role=button]", (nodes) =>
      nodes
        .filter((n) => {
          const labels = (n as HTMLInputElement).labels?.length ?? 0;
          return !(labels > 0 || n.getAttribute("aria-label") || (n.textContent ?? "").trim());
        })
        .map((n) => n.outerHTML.slice(0, 80)),
    );
    expect(unnamed).toEqual([]);
    // Tab indents inside the editor; Escape, then Tab, moves on.
    await page.fill("#dag", "");
    await page.focus("#dag");
    await page.keyboard.press("Tab");
    expect(await page.inputValue("#dag")).toBe("  ");
    await page.keyboard.press("Escape");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).not.toBe("dag");
  });

  it("reported no Content-Security-Policy violation on any page above", () => {
    expect(violations).toEqual([]);
  });
});
