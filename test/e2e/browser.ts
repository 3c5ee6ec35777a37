/**
 * Debian's headless Chromium for the browser tests, driven by playwright-core, with the flags that
 * keep it off a network this machine does not have (see the env notes), and a collector of the
 * Content-Security-Policy violations a page reports in its console.
 */
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Console lines (prefixed with the page's URL) of every page in `target` that report a CSP
 * violation, filled as they come.
 */
export function cspViolations(target: Page | BrowserContext): string[] {
  const seen: string[] = [];
  target.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text()))
      seen.push(`${message.page()?.url() ?? "?"}: ${message.text()}`);
  });
  return seen;
}
