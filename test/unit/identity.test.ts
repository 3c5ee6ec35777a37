// Runner processes starting at the same moment on one device (one config dir) each get their own
// runner id: real processes racing on the real lock files (the compiled dist/runner/identity.js).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const identity = new URL("../../dist/runner/identity.js", import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Starts `n` processes together; each claims a runner id in `dir`, prints it, holds it 1.5 s, exits. */
function race(dir: string, n: number): Promise<string[]> {
  const script = `import { claimRunnerId, deviceId } from ${JSON.stringify(identity)};
const dir = ${JSON.stringify(dir)};
const at = Number(process.argv[1]);
while (Date.now() < at) {}
console.log(claimRunnerId(dir, deviceId(dir, "box")).id);
setTimeout(() => {}, 1500);`;
  const start = Date.now() + 700;
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ["--input-type=module", "-e", script, String(start)]);
          let out = "";
          child.stdout.on("data", (d) => (out += d));
          child.stderr.on("data", (d) => process.stderr.write(d));
          child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}`))));
        }),
    ),
  );
}

describe("runner ids on one device", () => {
  it("processes starting together share the device id and never the same runner id", async () => {
    for (let round = 0; round < 3; round++) {
      const dir = mkdtempSync(join(tmpdir(), "distro-identity-"));
      dirs.push(dir);
      const ids = await race(dir, 6);
      expect(new Set(ids).size).toBe(6);
      const device = ids.find((id) => !id.includes("."))!;
      expect(device).toMatch(/^box-[0-9a-f]{8}$/);
      expect(ids.sort()).toEqual([device, ...[2, 3, 4, 5, 6].map((k) => `${device}.${k}`)].sort());
    }
  });
});
