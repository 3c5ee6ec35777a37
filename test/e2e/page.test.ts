// The status page in real headless Chromium (Debian's, driven by playwright-core) against the
// real local coordinator and two real runners: the token prompt, a run appearing in the list,
// its graph turning all-succeeded live, the controls (and what a read and a submit token see), the
// runners, the mandelbrot image, and a phone-sized screen. Screenshots go to test-artifacts/.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../../cli/client";
import { DEV_TOKENS, ROOT } from "../../dev/local";
import { cspViolations, launchChromium } from "./browser";
import { Cluster } from "./harness";

const ARTIFACTS = join(ROOT, "test-artifacts");
const cluster = new Cluster();
let browser: Browser;
let page: Page;
let violations: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await cluster.start();
  cluster.runner({ name: "page-runner-1" });
  cluster.runner({ name: "page-runner-2" });
  await cluster.upload("noop.wasm", "spin.wasm", "echo.wasm", "mandelbrot_tile.wasm", "mandelbrot_png.wasm");
  await cluster.connected("page-runner-1", "page-runner-2");
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  violations = cspViolations(context);
  page = await context.newPage();
  page.on("dialog", (d) => void d.accept());
});
afterAll(async () => {
  await browser?.close();
  await cluster.stop();
});

const url = (hash = "") => new URL(`/${hash}`, cluster.coordinator.url).toString();
const submit = (yaml: string) => cluster.client.submit(`cache: false\n${yaml}`);

describe("status page", () => {
  it("asks for the token once, shows a run, draws its graph live to all-succeeded, lists the runners", async () => {
    await page.goto(url());
    await page.fill("#token", "wrong-token");
    await page.click("#login button");
    await page.waitForSelector("text=the token was not accepted");
    await page.fill("#token", DEV_TOKENS.api);
    await page.click("#login button");
    await page.waitForSelector("#runs");

    const { id } = await submit(`name: live-graph
tasks:
  - { id: prep, module: noop.wasm }
  - { id: work, module: spin.wasm, depends_on: [prep], map: { range: [0, 8] }, params: { ms: 2500 } }
  - { id: report, module: echo.wasm, depends_on: [work] }
`);
    await page.waitForSelector(`tr[data-run="${id}"]`, { timeout: 15_000 });
    await page.click(`tr[data-run="${id}"] a`);
    await page.waitForSelector('g.node[data-node="work"]');
    // Record every state the `work` node is drawn in, and mark the document to prove no reload.
    await page.evaluate(() => {
      const w = window as unknown as { marker: boolean; states: string[] };
      w.marker = true;
      w.states = [];
      const note = () => {
        const s = document.querySelector('g.node[data-node="work"]')?.getAttribute("data-state");
        if (s && w.states.at(-1) !== s) w.states.push(s);
      };
      note();
      new MutationObserver(note).observe(document.getElementById("graph")!, {
        childList: true,
        subtree: true,
        attributes: true,
      });
    });
    await page.waitForFunction(
      () => {
        const nodes = [...document.querySelectorAll("g.node")];
        return nodes.length === 3 && nodes.every((n) => n.getAttribute("data-state") === "succeeded");
      },
      undefined,
      { timeout: 60_000 },
    );
    const seen = await page.evaluate(() => {
      const w = window as unknown as { marker: boolean; states: string[] };
      return { marker: w.marker, states: w.states };
    });
    expect(seen.marker).toBe(true);
    expect(seen.states.at(-1)).toBe("succeeded");
    expect(seen.states.length).toBeGreaterThan(1); // it was drawn in other states first
    expect(await page.textContent('g.node[data-node="work"] .sub')).toBe("8/8 · succeeded");
    await page.waitForSelector("#head .state.succeeded");
    await page.waitForSelector('tr[data-task="work[7]"]');
    await page.waitForSelector("#throughput svg.chart");
    await page.screenshot({ path: join(ARTIFACTS, "status-run.png"), fullPage: true });

    await page.click('nav a[href="#/runners"]');
    await page.waitForSelector('tr[data-runner="page-runner-1"]');
    await page.waitForSelector('tr[data-runner="page-runner-2"]');
    expect(await page.textContent('tr[data-runner="page-runner-1"]')).toMatch(/\d+\/2/);
    // Honest runners are not cooled down; their devices joined with the development secret, trusted.
    expect(await page.$$("#runners .state.cooled, #devices .state.cooled")).toEqual([]);
    await page.waitForSelector("#devices tr[data-device]");
    const trust = await page.$$eval("#devices tr[data-device]", (rows) =>
      rows.map((row) => row.querySelector(".trusted")?.textContent ?? "none"),
    );
    expect(new Set(trust)).toEqual(new Set(["trusted"]));
    // Load history is drawn once a few samples came in.
    await page.waitForSelector('tr[data-runner="page-runner-1"] svg.spark', { timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, "status-runners.png"), fullPage: true });
  });

  it("pauses, resumes and cancels a run with its buttons", async () => {
    const { id } = await submit(
      `name: controls\ntasks:\n  - { id: slow, module: spin.wasm, map: { range: [0, 20] }, params: { ms: 2000 } }\n`,
    );
    await page.goto(url(`#/runs/${id}`));
    await page.waitForSelector('#head button[data-action="pause"]:not([disabled])');
    await page.click('#head button[data-action="pause"]');
    await page.waitForSelector("#head .state.paused");
    await page.click('#head button[data-action="resume"]');
    await page.waitForSelector("#head .state.running");
    await page.click('#head button[data-action="cancel"]');
    await page.waitForSelector("#head .state.cancelled");
    expect((await cluster.client.summary(id)).status).toBe("cancelled");
  });

  it("with a read token shows runs and runners but no control; a submit token controls only its own runs", async () => {
    const slow = `tasks:\n  - { id: slow, module: spin.wasm, map: { range: [0, 20] }, params: { ms: 2000 } }\n`;
    const { id: theirs } = await submit(`name: theirs\n${slow}`);
    const read = await cluster.client.createToken({ name: "wall display", scope: "read" });
    const writer = await cluster.client.createToken({ name: "ci job", scope: "submit" });
    const mine = await new Client(cluster.coordinator.url, writer.token).submit(`name: mine\ncache: false\n${slow}`);
    // A context of its own: its localStorage holds these tokens, not the API token of the tests above.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    violations.push(...cspViolations(context));
    const other = await context.newPage();
    other.on("dialog", (d) => void d.accept()); // the confirm before a cancel
    const signIn = async (token: string) => {
      await other.goto(url());
      await other.evaluate(() => localStorage.clear());
      await other.goto(url());
      await other.fill("#token", token);
      await other.click("#login button");
      await other.waitForSelector("#runs");
    };
    try {
      await signIn(read.token);
      expect(await other.textContent("#who")).toBe("wall display (read)");
      await other.waitForSelector(`tr[data-run="${theirs}"]`);
      await other.goto(url(`#/runs/${theirs}`));
      // The view, not the one before it: its head names the run.
      await other.waitForSelector("#head h2:has-text('theirs')");
      expect(await other.textContent("#submitter")).toBe("API_TOKEN");
      expect(await other.$$("#head button[data-action]")).toHaveLength(0);
      await other.goto(url("#/runners"));
      await other.waitForSelector("#runners table");
      expect(await other.$("#add-device-open")).toBeNull();
      await signIn(writer.token);
      expect(await other.textContent("#who")).toBe("ci job (submit)");
      await other.goto(url(`#/runs/${mine.id}`));
      await other.waitForSelector('#head button[data-action="cancel"]:not([disabled])');
      expect(await other.textContent("#submitter")).toBe("ci job");
      await other.click('#head button[data-action="cancel"]');
      await other.waitForSelector("#head .state.cancelled");
      await other.goto(url(`#/runs/${theirs}`));
      // The view, not the one before it: its head names the run.
      await other.waitForSelector("#head h2:has-text('theirs')");
      expect(await other.$$("#head button[data-action]")).toHaveLength(0);
      await other.goto(url("#/runners"));
      await other.waitForSelector("#runners table");
      expect(await other.$("#add-device-open")).toBeNull();
    } finally {
      await context.close();
      // Cleanup: it may have ended by now.
      await cluster.client.control(theirs, "cancel").catch(() => undefined);
    }
  });

  it("shows the mandelbrot run's rendered image", async () => {
    const dag = readFileSync(join(ROOT, "dags/mandelbrot.yaml"), "utf8")
      .replace("width: { type: integer, default: 2048", "width: { type: integer, default: 192")
      .replace("height: { type: integer, default: 2048", "height: { type: integer, default: 128")
      .replace("default: 64, min: 1", "default: 16, min: 1")
      .replace("default: 2000, min: 1", "default: 80, min: 1");
    expect(dag.match(/default: \d+/g)).toEqual(["default: 192", "default: 128", "default: 16", "default: 80"]);
    const { id } = await submit(dag);
    await page.goto(url(`#/runs/${id}`));
    const image = await page.waitForSelector('img[data-output="assemble"]', { timeout: 60_000 });
    await page.waitForFunction(
      (img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0,
      image,
    );
    expect(
      await image.evaluate((img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight]),
    ).toEqual([192, 128]);
    // Chromium decodes the indexed PNG to the palette's colours: black inside the set, and
    // mostly colour (not grey) outside it.
    const [black, coloured] = await image.evaluate((img) => {
      const canvas = document.createElement("canvas");
      canvas.width = 192;
      canvas.height = 128;
      const ctx = canvas.getContext("2d")!;
      ctx.drawImage(img as HTMLImageElement, 0, 0);
      const rgba = ctx.getImageData(0, 0, 192, 128).data;
      let black = 0;
      let coloured = 0;
      for (let i = 0; i < rgba.length; i += 4) {
        if (rgba[i] === 0 && rgba[i + 1] === 0 && rgba[i + 2] === 0) black++;
        else if (rgba[i] !== rgba[i + 1] || rgba[i + 1] !== rgba[i + 2]) coloured++;
      }
      return [black, coloured];
    });
    expect(black).toBeGreaterThan(0);
    expect(coloured).toBeGreaterThan((192 * 128 - black) / 2);
    await page.screenshot({ path: join(ARTIFACTS, "status-mandelbrot.png"), fullPage: true });
  });

  it("fits a phone-sized screen", async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    const seen = cspViolations(phone);
    try {
      await phone.goto(url());
      await phone.evaluate((t) => localStorage.setItem("distro.token", t), DEV_TOKENS.api);
      await phone.goto(url("#/runners"));
      await phone.waitForSelector('tr[data-runner="page-runner-1"]');
      await phone.goto(url("#/"));
      await phone.waitForSelector("table.runs");
      // Nothing wider than the screen: the graph scrolls inside its own box.
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(ARTIFACTS, "status-phone.png"), fullPage: true });
    } finally {
      await phone.close();
      violations.push(...seen);
    }
  });

  it("reported no Content-Security-Policy violation on any page above", () => {
    expect(violations).toEqual([]);
  });
});
