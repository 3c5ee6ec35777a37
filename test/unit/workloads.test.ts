// The compute workloads' WASM tasks against JavaScript references: Mandelbrot pixels and PNG,
// matrix product and checksums, and password hashes (node:crypto).
import { createHash, pbkdf2Sync } from "node:crypto";
import { taskThreads } from "../helpers/task-threads";
import { afterAll, describe, expect, it } from "vitest";
import { decodeIndexedPng, mandelbrot, mandelbrotPalette, matmul } from "../helpers/references";

const { pool, compile } = taskThreads(2);
afterAll(() => pool.close());

/** Runs a task with the envelope the coordinator would build; returns its stdout. */
async function run(name: string, envelope: Record<string, unknown>): Promise<Uint8Array> {
  const outcome = await pool.run({
    module: await compile(name),
    args: [String(envelope.task)],
    env: {},
    stdin: new TextEncoder().encode(JSON.stringify({ attempt: 1, inputs: {}, ...envelope })),
    maxOutputBytes: 64 << 20,
    timeoutMs: 60_000,
  });
  if (outcome.type !== "exit" || outcome.code !== 0)
    throw new Error(`${name} failed: ${JSON.stringify({ ...outcome, stdout: undefined })}`);
  return outcome.stdout;
}

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("mandelbrot", () => {
  const params = { width: 96, height: 64, tiles: 16, iterations: 60, x0: -2.1, x1: 0.7, y0: -1.2, y1: 1.2 };

  it("renders tiles and a PNG identical, pixel for pixel, to the JavaScript reference", async () => {
    const tiles = await Promise.all(
      range(16).map((index) => run("mandelbrot_tile", { task: `tile[${index}]`, params, index, item: index })),
    );
    expect(tiles.every((t) => t.length === (96 / 4) * (64 / 4))).toBe(true);
    const png = await run("mandelbrot_png", {
      task: "assemble",
      params,
      inputs: { tile: tiles.map((t) => ({ $bytes: Buffer.from(t).toString("base64") })) },
    });
    const image = decodeIndexedPng(png);
    expect([image.width, image.height]).toEqual([96, 64]);
    const reference = mandelbrot(params);
    expect(Buffer.from(image.pixels).equals(Buffer.from(reference))).toBe(true);
    // Smooth colouring: many indices in use, not only a few grey steps.
    expect(new Set(reference).size).toBeGreaterThan(100);
    expect(reference.includes(0)).toBe(true);
    expect(Buffer.from(image.palette).equals(Buffer.from(mandelbrotPalette()))).toBe(true);
    expect([...image.palette.subarray(0, 3)]).toEqual([0, 0, 0]);
    const colours = range(256).map((i) => [...image.palette.subarray(i * 3, i * 3 + 3)]);
    expect(colours.some(([r, g, b]) => r !== g && g !== b && r !== b)).toBe(true);
  });
});

describe("matmul", () => {
  it("gives the checksums and the product of the JavaScript reference for 32×32 in 16 tiles", async () => {
    const params = { n: 32, tiles: 16, seed: 5, product: true };
    const tiles = await Promise.all(
      range(16).map((index) => run("matmul_tile", { task: `tile[${index}]`, params, index })),
    );
    const result = json(await run("matmul_checksum", { task: "checksum", params, inputs: { tile: tiles.map(json) } }));
    const reference = matmul(32, 5);
    expect(result).toEqual({ n: 32, sum: reference.sum, weighted: reference.weighted, product: reference.product });
  });
});

describe("password audit", () => {
  const words = ["alpha", "dragon", "sunshine", "zebra"];
  for (const algorithm of ["pbkdf2-sha256", "sha256", "sha512"] as const) {
    it(`finds exactly the planted passwords with ${algorithm}`, async () => {
      const hash = (p: string) =>
        algorithm === "pbkdf2-sha256"
          ? pbkdf2Sync(p, "pepper", 25, 32, "sha256").toString("hex")
          : createHash(algorithm).update(p).digest("hex");
      const planted = ["dragon7", "zebra", "alpha19"];
      const params = {
        algorithm,
        salt: "pepper",
        iterations: 25,
        shards: 3,
        suffixes: 20,
        words,
        targets: [...planted.map(hash), hash("not-a-candidate")],
      };
      const shards = await Promise.all(
        range(3).map((index) => run("password_shard", { task: `shard[${index}]`, params, index })),
      );
      const report = json(
        await run("password_report", { task: "report", params, inputs: { shard: shards.map(json) } }),
      );
      expect(report.checked).toBe(words.length * 21);
      expect(report.found).toEqual([...planted].sort().map((password) => ({ password, hash: hash(password) })));
    });
  }
});
