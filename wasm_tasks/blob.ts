// blob: outputs `params.size` bytes (default 1 MiB) of the xorshift32 stream seeded with
// `params.seed` (x ^= x << 13; x ^= x >> 17; x ^= x << 5; each step gives its low byte).
// Tests use it for large outputs.
import { envelope } from "./lib/json";

const p = envelope().get("params");
const size = <i32>p.number("size", 1048576);
let x = <u32>p.number("seed", 1);
const out = new Uint8Array(size);
for (let i = 0; i < size; i++) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  out[i] = <u8>x;
}
process.stdout.write(out.buffer);
