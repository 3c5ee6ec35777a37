// mandelbrot_tile: renders one tile of a Mandelbrot image. The image is `params.width` ×
// `params.height` pixels over the region [x0, x1] × [y0, y1], cut into `params.tiles` square
// tiles (a square number: 64 = 8 × 8); this instance renders tile `index` (row-major). Output:
// the tile's pixels, one byte each, row by row: a palette index for mandelbrot_png.
//
// Index 0 is inside the set (no escape within `iterations`). A point that escapes (|z|² > 256,
// a large radius so the estimate below is smooth) after n iterations gets the normalised
// iteration count nu = n + 1 − log2(log2 |z|), continuous where n steps, and the index
// 1 + floor(255 · frac(ln nu)): one trip round the cyclic palette each time nu grows by a factor
// e, so bands show far out (nu ≈ 3) as well as next to the set (nu in the thousands) at any
// iteration count. Everything is f64 basic arithmetic, floor and logarithms, which the
// JavaScript reference (test/helpers/references.ts) repeats; AssemblyScript's and V8's logs can
// differ in the last bit, which could move a pixel only if it fell within ~1e-13 of an index
// boundary, and the tests compare every pixel.
import { envelope } from "./lib/json";

const env = envelope();
const p = env.get("params");
const width = <i32>p.number("width", 2048);
const height = <i32>p.number("height", 2048);
const side = <i32>Math.round(Math.sqrt(p.number("tiles", 64)));
const iterations = <i32>p.number("iterations", 256);
const x0 = p.number("x0", -2.0);
const x1 = p.number("x1", 0.6);
const y0 = p.number("y0", -1.3);
const y1 = p.number("y1", 1.3);
const index = <i32>env.get("index").num;

const tw = width / side;
const th = height / side;
const left = (index % side) * tw;
const top = (index / side) * th;
const out = new Uint8Array(tw * th);
const dx = (x1 - x0) / <f64>width;
const dy = (y1 - y0) / <f64>height;

/** The palette index of a point that escaped with |z|² = `m` after `n` iterations. */
function colour(n: i32, m: f64): u8 {
  const nu = <f64>n + 1.0 - Math.log2(0.5 * Math.log2(m));
  // nu < 1 only for points escaping at once, far outside the usual region: keep ln nu ≥ 0.
  const cycles = Math.log(nu > 1.0 ? nu : 1.0);
  return <u8>(1 + <i32>Math.floor(255.0 * (cycles - Math.floor(cycles))));
}

for (let py = 0; py < th; py++) {
  const ci = y0 + <f64>(top + py) * dy;
  for (let px = 0; px < tw; px++) {
    const cr = x0 + <f64>(left + px) * dx;
    let zr = 0.0;
    let zi = 0.0;
    let m = 0.0;
    let n = 0;
    while (n < iterations) {
      const zr2 = zr * zr;
      const zi2 = zi * zi;
      m = zr2 + zi2;
      if (m > 256.0) break;
      zi = 2.0 * zr * zi + ci;
      zr = zr2 - zi2 + cr;
      n++;
    }
    out[py * tw + px] = n >= iterations ? 0 : colour(n, m);
  }
}
process.stdout.write(out.buffer);
