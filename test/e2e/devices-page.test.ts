// "Add a device" on the status page, in real headless Chromium (test/e2e/browser.ts) against the
// real local coordinator: the form's defaults, the enrollment's join command per platform with its
// Copy button, then the Linux command read off the page and run as a real process (an empty HOME,
// an empty folder, the npm registry out of reach: everything comes from the coordinator), and the
// page showing that device connected, in the panel and in the devices list; the coordinator's
// refusal shown in the form; a device's hostile name shown as text, and the development secret's
// devices marked trusted (an enrollment's, without --trusted, not). No Content-Security-Policy
// violation on the way. Screenshots go to test-artifacts/.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceView, EnrollAnswer, RunnerListing } from "../../core/api";
import { DEV_TOKENS, Proc, ROOT } from "../../dev/local";
import { cspViolations, launchChromium } from "./browser";
import { LyingRunner } from "../helpers/lying-runner";
import { Cluster } from "./harness";

const ARTIFACTS = join(ROOT, "test-artifacts");
const dir = mkdtempSync(join(tmpdir(), "distro-devices-page-"));
const cluster = new Cluster();
let browser: Browser;
let page: Page;
let violations: string[];
/** The runner started from the page's command (npx and its children, one process group). */
let joined: Proc | undefined;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await cluster.start();
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: cluster.coordinator.url.origin });
  violations = cspViolations(context);
  page = await context.newPage();
});
afterAll(async () => {
  await joined?.stop(); // by its pid's process group: only what this test started
  await browser?.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = (hash = "") => new URL(`/${hash}`, cluster.coordinator.url).toString();

/** `DISTRO_ENROLL=<token> npx --yes <origin>/runner-<build>.tgz --coordinator <origin>`, taken apart. */
function parseUnixCommand(command: string): { token: string; args: string[] } {
  const parts = /^DISTRO_ENROLL=(\S+) npx (--yes \S+\/runner-[0-9a-f]{12}\.tgz --coordinator \S+)$/.exec(
    command.trim(),
  );
  if (!parts) throw new Error(`not the Linux/macOS join command: ${command}`);
  return { token: parts[1]!, args: parts[2]!.split(" ") };
}

/** Runs `npx args` as a device would the first time: nothing installed, nothing configured, no registry. */
function runOnFreshDevice(token: string, args: string[]): Proc {
  const home = join(dir, "home");
  const cwd = join(dir, "empty");
  mkdirSync(home, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  // Only PATH from this process: npm run passes npm_config_* settings (its cache, the user's npmrc) down.
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    DISTRO_ENROLL: token,
    npm_config_registry: "http://127.0.0.1:9",
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
  };
  return new Proc(spawn("npx", args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] }));
}

async function listing(): Promise<RunnerListing> {
  return cluster.client.json<RunnerListing>("/api/runners");
}

describe("adding a device from the status page", () => {
  it("creates an enrollment, shows its commands, and shows the device its Linux command starts as connected", async () => {
    await page.goto(url());
    await page.evaluate((t) => localStorage.setItem("distro.token", t), DEV_TOKENS.api);
    await page.goto(url("#/runners"));
    await page.waitForSelector("text=No runner connected");

    await page.click("#add-device-open");
    expect(await page.inputValue('#enroll input[name="uses"]')).toBe("1");
    expect(await page.inputValue('#enroll select[name="ttl"]')).toBe("1h");
    await page.fill('#enroll input[name="labels"]', "e2e, browser");
    await page.click('#enroll button[type="submit"]');

    const unix = await page.waitForSelector('pre.command[data-platform="unix"]');
    const command = (await unix.textContent())!;
    const { token, args } = parseUnixCommand(command);
    expect(args).toEqual(["--yes", cluster.runnerUrl, "--coordinator", cluster.coordinator.url.origin]);
    const enrollment = await page.getAttribute(".enrolled", "data-enrollment");
    expect(enrollment).toBeTruthy();
    const about = await page.textContent(".enrolled");
    expect(about).toContain("shown only once");
    expect(about).toMatch(/expires at .+ \(in (59m\d\ds|1h00m)\)/);
    expect(about).toContain("e2e, browser");

    // Copy puts the command on the clipboard, as shown.
    await page.click('button[data-copy="unix"]');
    await page.waitForSelector('button[data-copy="unix"]:text("Copied")');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(command);

    // The other platforms, one tab each, carry the same token.
    expect(await page.isVisible('pre.command[data-platform="powershell"]')).toBe(false);
    await page.click('[role="tab"][data-platform="powershell"]');
    expect(await page.textContent('pre.command[data-platform="powershell"]')).toBe(
      `$env:DISTRO_ENROLL="${token}"; npx ${args.join(" ")}`,
    );
    expect(await page.isVisible('pre.command[data-platform="unix"]')).toBe(false);
    await page.click('[role="tab"][data-platform="termux"]');
    expect(await page.textContent('pre.command[data-platform="termux"]')).toBe(`pkg install -y nodejs && ${command}`);
    await page.waitForSelector("text=Waiting for the device");
    await page.screenshot({ path: join(ARTIFACTS, "status-add-device.png"), fullPage: true });

    joined = runOnFreshDevice(token, args);
    const line = await page.waitForSelector(".joined .device-line.connected", { timeout: 90_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\nthe runner said:\n${joined!.lines.slice(-20).join("\n")}`);
    });
    const device = (await listing()).devices.find((d) => d.enrollment === enrollment) as DeviceView;
    expect(device).toMatchObject({ connected: true, revoked_at: null });
    expect(await line.textContent()).toBe(`Connected: ${device.name} (${device.id})`);

    // The devices list shows it too, with its enrollment's labels; the runners list, its process.
    const row = await page.waitForSelector(`tr[data-device="${device.id}"]:has(.state.connected)`);
    expect(await row.textContent()).toContain("e2e, browser");
    // Its enrollment did not say --trusted: not trusted, and not cooled down.
    expect(device.trusted).toBe(false);
    expect(await row.$$(".trusted, .state.cooled")).toEqual([]);
    await page.waitForSelector(`tr[data-runner="${device.name}"]`);
    await page.screenshot({ path: join(ARTIFACTS, "status-device-connected.png"), fullPage: true });

    // On a phone-wide screen the commands wrap instead of widening the page.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 900 });

    // Done takes the token off the page.
    await page.click("#add-device-done");
    await page.waitForSelector("#add-device-open");
    expect(await page.content()).not.toContain(token);
  });

  it("shows the coordinator's refusal of a bad request in the form", async () => {
    await page.click("#add-device-open");
    await page.fill('#enroll input[name="labels"]', "not/a/label");
    await page.click('#enroll button[type="submit"]');
    await page.waitForSelector("#enroll .error:not(:empty)");
    expect(await page.textContent("#enroll .error")).toMatch(/^Error: .*label/);
    expect(await page.isEnabled('#enroll button[type="submit"]')).toBe(true);
  });

  it("lists a device under the name it chose, as text, with what would reorder it made visible", async () => {
    const name = `<img src=x onerror="document.title='owned'">\u202Eevil`;
    const res = await fetch(new URL("/api/runners/enroll", cluster.coordinator.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${DEV_TOKENS.runner}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
    });
    expect(res.status).toBe(200);
    const { device, credential } = (await res.json()) as EnrollAnswer;
    const row = await page.waitForSelector(`tr[data-device="${device}"]`);
    expect(await row.$$("img")).toEqual([]);
    const text = await row.textContent();
    expect(text).toContain(`<img src=x onerror="document.title='owned'">\\u202eevil`);
    expect(text).toContain("with the development secret");
    // The development secret's devices are trusted (their outputs go to the result cache).
    expect(await row.$eval(".trusted", (e) => e.textContent)).toBe("trusted");
    // Connected under that name, its runner's row shows it the same way.
    const liar = await LyingRunner.start({
      coordinator: cluster.coordinator.url,
      behaviour: { mode: "claimer", claim: 1 },
      credential,
      name,
    });
    try {
      const runnerRow = await page.waitForSelector(`tr[data-runner]:has-text("${device}")`);
      expect(await runnerRow.$$("img")).toEqual([]);
      expect(await runnerRow.textContent()).toContain(`\\u202eevil`);
    } finally {
      await liar.stop();
    }
    expect(await page.title()).toBe("Distro: runners");
  });

  it("reported no Content-Security-Policy violation", () => {
    expect(violations).toEqual([]);
  });
});
