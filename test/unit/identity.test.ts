// Runner processes starting at the same moment on one device (one config dir, no credential yet)
// each get their own runner id: real processes racing on the real files (the compiled
// dist/runner/). They enroll once between them, since they take turns on the enroll lock, so a
// single-use enrollment serves them all, and share the device the coordinator gave.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { answerFor, fakeCoordinator } from "./fake-coordinator";

const dist = (file: string) => JSON.stringify(new URL(`../../dist/runner/${file}`, import.meta.url).href);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * Starts `n` processes together; each gets the device's credential from `dir` (enrolling with
 * `url` if there is none), claims a runner id, prints it, holds it 1.5 s, exits.
 */
function race(dir: string, url: URL, n: number): Promise<string[]> {
  const script = `import { DeviceAuth } from ${dist("auth.js")};
import { claimRunnerId } from ${dist("identity.js")};
const dir = ${JSON.stringify(dir)};
const at = Number(process.argv[1]);
const log = { info: () => {}, debug: () => {} };
const auth = new DeviceAuth({ coordinator: new URL(${JSON.stringify(url.href)}), configDir: dir, name: "box",
  enrollToken: "single-use", devToken: undefined, log, pollMs: 20 });
while (Date.now() < at) {}
const { device } = await auth.obtain();
console.log(claimRunnerId(dir, device).id);
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
  it("processes starting together enroll once, share the device id and never the same runner id", async () => {
    for (let round = 0; round < 3; round++) {
      let k = 0;
      const fake = await fakeCoordinator({
        // A slow answer, so the others are sure to find the enrollment under way.
        enroll: async (_auth, body) => {
          await new Promise((r) => setTimeout(r, 100));
          return ++k === 1
            ? { status: 200, body: answerFor(body.name ?? "?", 0xbeef) }
            : { status: 403, body: { error: "enrollment e1 has been used 1 of 1 times" } };
        },
      });
      const dir = mkdtempSync(join(tmpdir(), "distro-identity-"));
      dirs.push(dir);
      try {
        const ids = await race(dir, fake.url, 6);
        expect(fake.enrolls).toEqual(["Bearer single-use"]);
        const device = "box-0000beef";
        expect(ids.sort()).toEqual([device, ...[2, 3, 4, 5, 6].map((n) => `${device}.${n}`)].sort());
        // Nothing left behind but the credential: no lock, no file written aside.
        expect(readdirSync(join(dir, "credentials"))).toEqual([`http_127.0.0.1_${fake.url.port}.json`]);
      } finally {
        await fake.close();
      }
    }
  });
});
