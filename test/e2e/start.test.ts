// `npm start`, as a newcomer runs it: it must print the hello fan-out's aggregate and the status
// URL within 90 s, keep serving, and stop everything it started on Ctrl-C.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { freePort, Proc, ROOT } from "../../dev/local";

let start: Proc | undefined;
const dir = mkdtempSync(join(tmpdir(), "distro-start-"));
afterAll(async () => {
  await start?.stop("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

it("npm start prints the aggregate output and the status URL within 90 s, and Ctrl-C stops it cleanly", async () => {
  const port = await freePort();
  const t0 = Date.now();
  start = new Proc(
    spawn("npm", ["start"], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // Its runner keeps its credential here, not in the real ~/.config/distro.
      env: { ...process.env, PORT: String(port), DISTRO_CONFIG_DIR: join(dir, "config") },
    }),
  );
  await start.waitFor(/Serving until Ctrl-C/, 90_000);
  expect(Date.now() - t0).toBeLessThan(90_000);
  expect(start.lines).toContain(`aggregate: {"count":3,"messages":["Hello, Alice!","Hello, Bob!","Hello, Carol!"]}`);
  expect(start.lines).toContain(`Status page: http://127.0.0.1:${port}/  (API token: dev-api-token)`);
  expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);

  // Ctrl-C in a terminal signals the whole foreground process group: npm, the script, wrangler, the runner.
  start.signal("SIGINT");
  await start.exited;
  expect(start.lines).toContain("stopping runner and coordinator…");
  await new Promise((r) => setTimeout(r, 1000));
  await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
});
