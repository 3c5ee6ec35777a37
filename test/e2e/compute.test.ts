// Real compute through the real coordinator and runners: the Mandelbrot PNG pixel for pixel,
// the matrix product's checksums, the password audit, and a 5 MiB output through R2.
import { createHash, pbkdf2Sync } from "node:crypto";
import bcrypt from "bcryptjs";
import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_TOKENS, ROOT } from "../../dev/local";
import { decodeIndexedPng, mandelbrot, mandelbrotPalette, matmul } from "../helpers/references";
import { Cluster } from "./harness";

const cluster = new Cluster();

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "m1" });
  cluster.runner({ name: "m2" });
  await cluster.upload(
    "matmul_tile.wasm",
    "matmul_checksum.wasm",
    "password_shard.wasm",
    "password_report.wasm",
    "blob.wasm",
    "digest.wasm",
  );
  await cluster.connected("m1", "m2");
});
afterAll(() => cluster.stop());

const distro = (...args: string[]) => cluster.distro(...args);

/** xorshift32, as blob.wasm computes it. */
function xorshiftBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

describe("mandelbrot", () => {
  it("distro submit --wait -o writes a PNG equal to the JS reference, and the API serves the same PNG", async () => {
    const dir = mkdtempSync(join(cluster.dir, "mandel-"));
    // The example DAG as it is, made small by its typed params: its map's width follows `tiles`.
    const file = join(ROOT, "dags/mandelbrot.yaml");
    const { code, out, err } = await distro(
      "submit",
      file,
      "--wait",
      "-o",
      dir,
      "--modules",
      "wasm_tasks/build",
      "--param",
      "width=192",
      "--param",
      "height=128",
      "--param",
      "tiles=16",
      "--param",
      "iterations=80",
    );
    expect(err).toBe("");
    expect(code).toBe(0);
    const written = /assemble: wrote (\d+) bytes \(image\/png\) to (.+\.png)/.exec(out)!;
    const png = readFileSync(written[2]!);
    const image = decodeIndexedPng(png);
    expect([image.width, image.height]).toEqual([192, 128]);
    const reference = mandelbrot({ width: 192, height: 128, iterations: 80, x0: -2.0, x1: 0.6, y0: -1.3, y1: 1.3 });
    expect(Buffer.from(image.pixels).equals(Buffer.from(reference))).toBe(true);
    expect(new Set(reference).size).toBeGreaterThan(100);
    expect(Buffer.from(image.palette).equals(Buffer.from(mandelbrotPalette()))).toBe(true);
    expect([...image.palette.subarray(0, 3)]).toEqual([0, 0, 0]);
    const colours = Array.from({ length: 256 }, (_, i) => [...image.palette.subarray(i * 3, i * 3 + 3)]);
    expect(colours.some(([r, g, b]) => r !== g && g !== b && r !== b)).toBe(true);

    const id = /submitted run ([0-9a-f]{64})/.exec(out)![1]!;
    expect((await cluster.client.run(id)).nodes.find((n) => n.id === "tile")!.instances).toBe(16);
    const res = await fetch(new URL(`/api/dags/${id}/tasks/assemble/output`, cluster.coordinator.url), {
      headers: { Authorization: `Bearer ${DEV_TOKENS.api}` },
    });
    expect(res.headers.get("Content-Type")).toBe("image/png");
    expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);
    const downloaded = await distro("output", id, "assemble", "-o", join(dir, "again.png"));
    expect(downloaded.code).toBe(0);
    expect(readFileSync(join(dir, "again.png")).equals(png)).toBe(true);
  });

  it("a param of the wrong type or out of its bounds is refused, naming it, before anything runs", async () => {
    const wrong = await distro("submit", "dags/mandelbrot.yaml", "--param", "tiles=many");
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain('params.tiles`: param tiles is of type integer, got string "many"');
    const low = await distro("submit", "dags/mandelbrot.yaml", "--param", "tiles=0");
    expect(low.code).toBe(2);
    expect(low.err).toContain("param tiles is at least 1, got 0");
    const unknown = await distro("submit", "dags/mandelbrot.yaml", "--param", "tils=16");
    expect(unknown.err).toContain("unknown param tils");
  });
});

describe("matmul", () => {
  it("the 256×256 product in 16 tiles has the JavaScript reference's checksums", async () => {
    const { id } = await cluster.client.submit(readFileSync(join(ROOT, "dags/matmul.yaml"), "utf8"));
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const result = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "checksum")));
    const reference = matmul(256, 1);
    expect(result).toEqual({ n: 256, sum: reference.sum, weighted: reference.weighted });
  });
});

describe("result cache", () => {
  it("an unchanged DAG resubmitted is served from the cache: no task reaches a runner", async () => {
    const yaml = readFileSync(join(ROOT, "dags/matmul.yaml"), "utf8").replace("seed: 1", "seed: 3");
    const first = await cluster.client.submit(yaml);
    expect((await cluster.client.wait(first.id)).status).toBe("succeeded");
    const linesBefore = cluster.runners.map((r) => r.lines.length);
    const again = await cluster.client.submit(yaml);
    expect((await cluster.client.wait(again.id)).status).toBe("succeeded");
    const view = await cluster.client.run(again.id);
    expect(view.tasks.every((t) => t.attempts.length === 1 && t.attempts[0]!.outcome === "cached")).toBe(true);
    expect(await cluster.client.output(again.id, "checksum")).toEqual(
      await cluster.client.output(first.id, "checksum"),
    );
    cluster.runners.forEach((r, i) =>
      expect(r.lines.slice(linesBefore[i]).filter((l) => /^\S+ task /.test(l))).toEqual([]),
    );
  });
});

describe("password audit", () => {
  it("finds exactly the planted passwords", async () => {
    const { id } = await cluster.client.submit(readFileSync(join(ROOT, "dags/password_audit.yaml"), "utf8"));
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const report = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "report")));
    const hash = (p: string) => pbkdf2Sync(p, "distro", 1000, 32, "sha256").toString("hex");
    expect(report.checked).toBe(10 * 101);
    expect(report.found).toEqual(["dragon42", "sunshine7"].map((password) => ({ password, hash: hash(password) })));
  });

  it("finds them under bcrypt too, with the command the DAG's comment gives, in 4 shards", async () => {
    const salt = "distroDistroDistroDise";
    const targets = ["dragon42", "sunshine7"].map((p) => bcrypt.hashSync(p, `$2b$05$${salt}`));
    const { code, out, err } = await distro(
      ...["submit", "dags/password_audit.yaml", "--wait", "--json", "--param", "algorithm=bcrypt", "--param", "cost=5"],
      ...["--param", `salt=${salt}`, "--param", `targets=${JSON.stringify(targets)}`, "--param", "shards=4"],
    );
    expect([code, err]).toEqual([0, ""]);
    const id = (JSON.parse(out) as { id: string }).id;
    expect((await cluster.client.run(id)).nodes.find((n) => n.id === "shard")!.instances).toBe(4);
    const report = JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "report")));
    expect(report.checked).toBe(10 * 101);
    expect(report.found).toEqual([
      { password: "dragon42", hash: targets[0] },
      { password: "sunshine7", hash: targets[1] },
    ]);
  });
});

describe("large outputs", () => {
  it("a 5 MiB output goes through R2 byte for byte, to the API and to its dependent", async () => {
    const size = 5 * 1024 * 1024;
    const { id } = await cluster.client.submit(
      `name: big\ntasks:\n  - { id: big, module: blob.wasm, params: { size: ${size}, seed: 99 } }\n` +
        `  - { id: check, module: digest.wasm, depends_on: [big] }\n`,
    );
    expect((await cluster.client.wait(id)).status).toBe("succeeded");
    const expected = xorshiftBytes(size, 99);
    const sha = createHash("sha256").update(expected).digest("hex");
    const { bytes, type } = await cluster.client.outputWithType(id, "big");
    expect(type).toBe("application/octet-stream");
    expect(Buffer.from(bytes).equals(expected)).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(await cluster.client.output(id, "check")))).toEqual({
      input: "big",
      size,
      sha256: sha,
    });
    const view = await cluster.client.run(id);
    expect(view.tasks.find((t) => t.id === "big")).toMatchObject({ output_bytes: size });
    expect(
      cluster.runners.some((r) => r.lines.some((l) => /task big attempt 1: ok .*5242880 bytes out, uploaded/.test(l))),
    ).toBe(true);
  });

  it("an output over the 16 MiB limit fails the task with kind output and a clear message", async () => {
    const { id } = await cluster.client.submit(
      `name: too-big\ntasks:\n  - { id: huge, module: blob.wasm, params: { size: ${17 * 1024 * 1024} }, retries: 3 }\n`,
    );
    expect((await cluster.client.wait(id)).status).toBe("failed");
    const [task] = (await cluster.client.run(id)).tasks;
    expect(task!.attempts).toHaveLength(1);
    expect(task!.attempts[0]).toMatchObject({
      failure_kind: "output",
      error: "output exceeds the limit of 16777216 bytes",
    });
  });
});
