// The device's saved credential (runner/credential.ts): one file per coordinator, 0600 in folders
// of 0700, placed whole and first-wins, read back only when it is one; and the enroll exchange
// (runner/enroll.ts, runner/auth.ts) against a fake coordinator: retried while the coordinator is
// not up, final with the coordinator's words when it refuses.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DeviceAuth } from "../../runner/auth";
import {
  coordinatorOrigin,
  credentialFile,
  decodeEnrollAnswer,
  loadCredential,
  saveCredential,
  type SavedCredential,
} from "../../runner/credential";
import { enroll, EnrollError } from "../../runner/enroll";
import { answerFor, fakeCoordinator } from "./fake-coordinator";

const dirs: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), "distro-credential-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const ORIGIN = "http://127.0.0.1:8787";
const record = (k: number): SavedCredential => ({ coordinator: ORIGIN, ...answerFor("pc", k), enrolled_at: 1 });
const lines = () => {
  const out: string[] = [];
  return { out, log: { info: (l: string) => out.push(l), debug: () => {} } };
};
const FAST = { initialMs: 40, maxMs: 400, factor: 2, limitedMs: 100 };

describe("the saved credential", () => {
  it("is one file per coordinator, ws and http of one server sharing it", () => {
    const at = (url: string) => credentialFile("/c", new URL(url));
    expect(at("http://127.0.0.1:8787/")).toBe("/c/credentials/http_127.0.0.1_8787.json");
    expect(at("ws://127.0.0.1:8787/api")).toBe(at("http://127.0.0.1:8787"));
    expect(at("wss://distro.example")).toBe("/c/credentials/https_distro.example_443.json");
    expect(at("http://[::1]:80")).toBe("/c/credentials/http_%5B%3A%3A1%5D_80.json");
    expect(at("http://a_b:1")).not.toBe(at("http://a-b:1"));
    expect(coordinatorOrigin(new URL("wss://distro.example:443/x"))).toBe("https://distro.example");
  });

  it("is written 0600 in a config dir made 0700, the first one placed winning", () => {
    const dir = join(tmp(), "new-config");
    const file = credentialFile(dir, new URL(ORIGIN));
    expect(saveCredential(file, record(1), "first")).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "credentials")).mode & 0o777).toBe(0o700);
    // A second process enrolling at the same time keeps the first one's credential.
    expect(saveCredential(file, record(2), "first")).toBe(false);
    expect(loadCredential(file, ORIGIN)).toEqual(record(1));
    // Replaced (the coordinator forgot it), at once and still 0600; nothing left written aside.
    saveCredential(file, record(3), "replace");
    expect(loadCredential(file, ORIGIN)).toEqual(record(3));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, "credentials"))).toEqual(["http_127.0.0.1_8787.json"]);
  });

  it("is read back only when it is one, for this coordinator; otherwise the error names the file", () => {
    const file = join(tmp(), "c.json");
    expect(loadCredential(file, ORIGIN)).toBeUndefined();
    const bad: [string, string][] = [
      ["{not json", "it is not a saved credential"],
      [JSON.stringify({ ...record(1), credential: "other-1.secretsecretsecret" }), "its credential is malformed"],
      [JSON.stringify({ ...record(1), coordinator: "http://elsewhere" }), "it belongs to http://elsewhere"],
    ];
    for (const [text, problem] of bad) {
      writeFileSync(file, text);
      expect(() => loadCredential(file, ORIGIN)).toThrow(
        `${file} cannot be used for ${ORIGIN}: ${problem}; delete it to enroll this device again`,
      );
    }
  });

  it("an enroll answer is checked before it is kept", () => {
    expect(decodeEnrollAnswer(answerFor("pc", 1))).toEqual(answerFor("pc", 1));
    expect(() => decodeEnrollAnswer({ ...answerFor("pc", 1), device: "../etc" })).toThrow(/malformed/);
    expect(() => decodeEnrollAnswer({ ...answerFor("pc", 1), credential: "pc-2.x" })).toThrow(/malformed credential/);
  });
});

describe("enrolling", () => {
  it("posts the runner's name with the token as Bearer, and answers the device", async () => {
    const bodies: unknown[] = [];
    const fake = await fakeCoordinator({
      enroll: (_auth, body) => (bodies.push(body), { status: 200, body: answerFor("laptop", 1, ["gpu"]) }),
    });
    try {
      const { log } = lines();
      const answer = await enroll(fake.url, { token: "tok", source: "DISTRO_ENROLL" }, { name: "laptop" }, { log });
      expect(answer).toEqual(answerFor("laptop", 1, ["gpu"]));
      expect(fake.enrolls).toEqual(["Bearer tok"]);
      expect(bodies).toEqual([{ name: "laptop" }]);
    } finally {
      await fake.close();
    }
  });

  it("a refusal is final, in the coordinator's words", async () => {
    const answers = [
      { status: 401, body: { error: "unknown enrollment token" } },
      { status: 403, body: { error: "enrollment e1 expired at 2026-12-01T10:00:00.000Z" } },
      { status: 400, body: { error: "name: expected 1 to 128 characters" } },
    ];
    const fake = await fakeCoordinator({ enroll: (_a, _b, n) => answers[n - 1]! });
    try {
      const { log, out } = lines();
      const attempt = () =>
        enroll(fake.url, { token: "t", source: "DISTRO_ENROLL" }, { name: "pc" }, { log, backoff: FAST });
      await expect(attempt()).rejects.toThrow(
        new EnrollError(
          `the coordinator ${fake.url.origin} does not accept DISTRO_ENROLL (HTTP 401: unknown enrollment token); ` +
            "get an enrollment token with `distro runners add` on the coordinator's side (it prints the whole " +
            "command) and start the runner with DISTRO_ENROLL=<token> in its environment; a development " +
            "coordinator (npm start) also takes its RUNNER_TOKEN with --token (or DISTRO_RUNNER_TOKEN)",
          401,
        ),
      );
      await expect(attempt()).rejects.toThrow(
        `the coordinator ${fake.url.origin} refused to enroll this device with DISTRO_ENROLL ` +
          "(HTTP 403: enrollment e1 expired at 2026-12-01T10:00:00.000Z)",
      );
      await expect(attempt()).rejects.toThrow(
        "would not enroll this device (HTTP 400: name: expected 1 to 128 characters)",
      );
      expect(fake.enrolls).toHaveLength(3);
      expect(out).toEqual([]); // no retries
    } finally {
      await fake.close();
    }
  });

  it("a coordinator not up yet (or answering 503) is tried again with back-off, one line per attempt", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const url = new URL(`http://127.0.0.1:${port}`);
    const { log, out } = lines();
    const pending = enroll(
      url,
      { token: "t", source: "DISTRO_ENROLL" },
      { name: "pc" },
      { log, backoff: FAST, random: () => 1 },
    );
    while (out.length < 3) await new Promise((r) => setTimeout(r, 10));
    let busy = true;
    const fake = await fakeCoordinator({
      port,
      enroll: () => (busy ? ((busy = false), { status: 503, body: { error: "starting" } }) : undefined),
    });
    try {
      expect(await pending).toEqual(answerFor("pc", 2));
      const retries = out.filter((l) => l.startsWith("enroll: coordinator"));
      expect(retries.slice(0, 3)).toEqual(
        [1, 2, 3].map((n) =>
          expect.stringMatching(
            new RegExp(`^enroll: coordinator ${url.origin} not reachable \\(.*ECONNREFUSED.*\\); retry ${n} in `),
          ),
        ),
      );
      expect(retries.map((l) => /in ([\d.]+)s$/.exec(l)![1])).toEqual(
        retries.map((_, i) => (Math.min(400, 40 * 2 ** i) / 1000).toFixed(1)),
      );
      expect(retries.at(-1)).toContain("(HTTP 503: starting)");
      expect(out.at(-1)).toBe(`enroll: reached ${url.origin} after ${retries.length} failed attempt(s)`);
    } finally {
      await fake.close();
    }
  });
});

describe("the device's credential at start-up", () => {
  it("is the saved one when there is one, even with DISTRO_ENROLL given; else enrolled and saved", async () => {
    const fake = await fakeCoordinator();
    try {
      const dir = tmp();
      const options = { coordinator: fake.url, configDir: dir, name: "pc", devToken: undefined };
      const first = lines();
      const a = new DeviceAuth({ ...options, enrollToken: "e", log: first.log });
      const saved = await a.obtain();
      expect(saved).toMatchObject({ ...answerFor("pc", 1), coordinator: fake.url.origin });
      expect(a.credential()).toBe(answerFor("pc", 1).credential);
      const again = lines();
      const b = new DeviceAuth({ ...options, enrollToken: "e", log: again.log });
      expect(await b.obtain()).toEqual(saved);
      expect(fake.enrolls).toHaveLength(1);
      expect(again.out).toEqual([
        `device pc-00000001: credential for ${fake.url.origin} from ${b.file} ` +
          "(DISTRO_ENROLL is not used: the device is enrolled already)",
      ]);
    } finally {
      await fake.close();
    }
  });

  it("renewed once for every link asking with the stale one; without a token it says what to do", async () => {
    const fake = await fakeCoordinator();
    try {
      const { log } = lines();
      const auth = new DeviceAuth({
        coordinator: fake.url,
        configDir: tmp(),
        name: "pc",
        enrollToken: undefined,
        devToken: "dev",
        log,
      });
      const stale = (await auth.obtain()).credential;
      expect(await Promise.all([auth.renew(stale), auth.renew(stale), auth.renew(stale)])).toEqual([
        undefined,
        undefined,
        undefined,
      ]);
      expect(fake.enrolls).toEqual(["Bearer dev", "Bearer dev"]);
      // The same device id, asked for with the development token; a new credential.
      expect(auth.device).toBe("pc-00000001");
      expect(auth.credential()).toBe(answerFor("pc", 2, [], "pc-00000001").credential);
      expect(loadCredential(auth.file, fake.url.origin)?.credential).toBe(auth.credential());
      expect(await auth.renew(stale)).toBeUndefined(); // replaced already: nothing to do

      const alone = new DeviceAuth({
        coordinator: fake.url,
        configDir: join(auth.file, "..", ".."),
        name: "pc",
        enrollToken: undefined,
        devToken: undefined,
        log,
      });
      await alone.obtain();
      expect(await alone.renew(alone.credential())).toBe(
        `this device's credential is unknown to the coordinator ${fake.url.origin}; ` +
          "enroll it again with DISTRO_ENROLL (a token from `distro runners add`)",
      );
    } finally {
      await fake.close();
    }
  });

  it("enrolled again under a new id when the one it asks for is held by another credential", async () => {
    const fake = await fakeCoordinator({
      enroll: (_a, body) =>
        body.device ? { status: 403, body: { error: `device id ${body.device} is held by another` } } : undefined,
    });
    try {
      const { log, out } = lines();
      const options = { coordinator: fake.url, configDir: tmp(), name: "pc", enrollToken: undefined, log };
      const auth = new DeviceAuth({ ...options, devToken: "dev" });
      expect(await auth.renew((await auth.obtain()).credential)).toBeUndefined();
      expect(auth.device).toBe("pc-00000003");
      expect(out).toContain(
        "enroll: device id pc-00000001 is not to be had (the coordinator " +
          `${fake.url.origin} refused to enroll this device with the development token (--token) ` +
          "(HTTP 403: device id pc-00000001 is held by another)); enrolling under a new one",
      );
    } finally {
      await fake.close();
    }
  });
});
