/**
 * JavaScript references for the compute workloads, written from their definitions (not from
 * the task sources' code paths), so tests can check the WASM tasks' outputs exactly.
 */
import { inflateSync } from "node:zlib";

export interface MandelbrotParams {
  width: number;
  height: number;
  iterations: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The whole image, one byte per pixel: 0 inside the set, else 1 + floor(254·n / iterations). */
export function mandelbrot(p: MandelbrotParams): Uint8Array {
  const out = new Uint8Array(p.width * p.height);
  const dx = (p.x1 - p.x0) / p.width;
  const dy = (p.y1 - p.y0) / p.height;
  for (let y = 0; y < p.height; y++) {
    const ci = p.y0 + y * dy;
    for (let x = 0; x < p.width; x++) {
      const cr = p.x0 + x * dx;
      let zr = 0;
      let zi = 0;
      let n = 0;
      for (; n < p.iterations; n++) {
        const zr2 = zr * zr;
        const zi2 = zi * zi;
        if (zr2 + zi2 > 4) break;
        zi = 2 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
      }
      out[y * p.width + x] = n >= p.iterations ? 0 : 1 + Math.floor((254 * n) / p.iterations);
    }
  }
  return out;
}

/** Decodes an 8-bit grayscale PNG (filter 0 rows) to its pixels, checking its structure. */
export function decodeGrayPng(png: Uint8Array): { width: number; height: number; pixels: Uint8Array } {
  const buf = Buffer.from(png);
  if (buf.subarray(0, 8).toString("hex") !== "89504e470d0a1a0a") throw new Error("not a PNG");
  let pos = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.subarray(pos + 4, pos + 8).toString("ascii");
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 0) throw new Error("expected 8-bit grayscale");
    }
    if (type === "IDAT") idat.push(body);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    if (raw[y * (width + 1)] !== 0) throw new Error("expected filter type 0");
    pixels.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { width, height, pixels };
}

const a = (i: number, j: number, seed: number) => ((31 * i + 17 * j + seed) % 97) / 8 - 6;
const b = (i: number, j: number, seed: number) => ((13 * i + 29 * j + seed) % 89) / 8 - 5;

/** C = A × B for the matrices matmul_tile generates, with its checksums. */
export function matmul(n: number, seed: number): { product: number[][]; sum: number; weighted: number } {
  const product: number[][] = [];
  let sum = 0;
  let weighted = 0;
  for (let i = 0; i < n; i++) {
    const row: number[] = [];
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += a(i, k, seed) * b(k, j, seed);
      row.push(acc);
      sum += acc;
      weighted += acc * (((i * n + j) % 7) + 1);
    }
    product.push(row);
  }
  return { product, sum, weighted };
}
