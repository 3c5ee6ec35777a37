// mandelbrot_tile: renders one tile of a Mandelbrot image. The image is `params.width` ×
// `params.height` pixels over the region [x0, x1] × [y0, y1], cut into `params.tiles` square
// tiles (a square number: 64 = 8 × 8); this instance renders tile `index` (row-major). Output:
// the tile's pixels, one byte each (0 inside the set, else 1 + 254·n/iterations), row by row.
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

for (let py = 0; py < th; py++) {
  const ci = y0 + <f64>(top + py) * dy;
  for (let px = 0; px < tw; px++) {
    const cr = x0 + <f64>(left + px) * dx;
    let zr = 0.0;
    let zi = 0.0;
    let n = 0;
    while (n < iterations) {
      const zr2 = zr * zr;
      const zi2 = zi * zi;
      if (zr2 + zi2 > 4.0) break;
      zi = 2.0 * zr * zi + ci;
      zr = zr2 - zi2 + cr;
      n++;
    }
    out[py * tw + px] = n >= iterations ? 0 : <u8>(1 + (254 * n) / iterations);
  }
}
process.stdout.write(out.buffer);
