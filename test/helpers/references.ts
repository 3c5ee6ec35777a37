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

/**
 * The whole image, one palette index per pixel: 0 inside the set; else, for a point escaping
 * |z|² > 256 after n iterations, nu = n + 1 − log2(log2 |z|) (the normalised iteration count,
 * at least 1) and 1 + floor(255 · frac(ln nu)).
 */
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
      let m = 0;
      let n = 0;
      for (; n < p.iterations; n++) {
        const zr2 = zr * zr;
        const zi2 = zi * zi;
        m = zr2 + zi2;
        if (m > 256) break;
        zi = 2 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
      }
      if (n >= p.iterations) continue;
      // log2 |z| as ½·log2 |z|², the order of operations mandelbrot_tile uses.
      const cycles = Math.log(Math.max(1, n + 1 - Math.log2(0.5 * Math.log2(m))));
      out[y * p.width + x] = 1 + Math.floor(255 * (cycles - Math.floor(cycles)));
    }
  }
  return out;
}

/**
 * The palette mandelbrot_png writes: 0 black, then 1..255 one cycle through dark blue, blue,
 * white, orange and near-black (at 0, 41, 107, 164 and 219 of 255, back to dark blue at 255),
 * linearly interpolated and rounded. 768 bytes, r g b per index.
 */
export function mandelbrotPalette(): Uint8Array {
  const stops: [number, [number, number, number]][] = [
    [0, [0, 7, 100]],
    [41, [32, 107, 203]],
    [107, [237, 255, 255]],
    [164, [255, 170, 0]],
    [219, [0, 2, 0]],
    [255, [0, 7, 100]],
  ];
  const palette = new Uint8Array(768);
  for (let i = 1; i < 256; i++) {
    const s = stops.findIndex(([at], k) => at <= i - 1 && i - 1 < stops[k + 1]![0]);
    const [p0, c0] = stops[s]!;
    const [p1, c1] = stops[s + 1]!;
    for (let ch = 0; ch < 3; ch++)
      palette[i * 3 + ch] = Math.round(c0[ch]! + ((c1[ch]! - c0[ch]!) * (i - 1 - p0)) / (p1 - p0));
  }
  return palette;
}

/**
 * Decodes an indexed-colour PNG (colour type 3, 8 bits, filter 0 rows) to its palette indices
 * and its 256-entry palette, checking the structure: signature, every chunk's CRC, IHDR first,
 * one PLTE of 256 colours before the IDAT chunks, IEND last (zlib checks the Adler-32).
 */
export function decodeIndexedPng(png: Uint8Array): {
  width: number;
  height: number;
  pixels: Uint8Array;
  palette: Uint8Array;
} {
  const buf = Buffer.from(png);
  if (buf.subarray(0, 8).toString("hex") !== "89504e470d0a1a0a") throw new Error("not a PNG");
  let pos = 8;
  let width = 0;
  let height = 0;
  let palette: Uint8Array | undefined;
  const types: string[] = [];
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.subarray(pos + 4, pos + 8).toString("ascii");
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(buf.subarray(pos + 4, pos + 8 + len)) !== buf.readUInt32BE(pos + 8 + len))
      throw new Error(`bad CRC in ${type}`);
    types.push(type);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 3) throw new Error("expected 8-bit indexed colour");
    }
    if (type === "PLTE") {
      if (len !== 768) throw new Error(`expected 256 palette entries, got ${len / 3}`);
      palette = new Uint8Array(body);
    }
    if (type === "IDAT") idat.push(body);
    pos += 12 + len;
  }
  const order = types.filter((t, i) => t !== types[i - 1]).join(" ");
  if (order !== "IHDR PLTE IDAT IEND") throw new Error(`unexpected chunks: ${types.join(" ")}`);
  const raw = inflateSync(Buffer.concat(idat));
  if (raw.length !== (width + 1) * height) throw new Error("wrong image data size");
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    if (raw[y * (width + 1)] !== 0) throw new Error("expected filter type 0");
    pixels.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { width, height, pixels, palette: palette! };
}

/** CRC-32 (ISO-HDLC, as PNG uses), bit by bit. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
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
