// matmul_tile: one block of C = A × B for n × n matrices generated from `params.seed`
// (A[i][j] = ((31i + 17j + seed) mod 97) / 8 − 6, B[i][j] = ((13i + 29j + seed) mod 89) / 8 − 5:
// multiples of 1/8, so every product and sum is exact in f64 and the result does not depend on
// the order of additions). The grid is √tiles × √tiles blocks; this instance computes block
// `index`. Output: {"row", "col", "size", "sum", "weighted"} and, with `params.product`, "values".
import { envelope, BOOL } from "./lib/json";

const env = envelope();
const p = env.get("params");
const n = <i32>p.number("n", 256);
const seed = <i32>p.number("seed", 1);
const side = <i32>Math.round(Math.sqrt(p.number("tiles", 16)));
const withValues = p.get("product").kind == BOOL && p.get("product").bool;
const index = <i32>env.get("index").num;
const bs = n / side;
const row0 = (index / side) * bs;
const col0 = (index % side) * bs;

// The needed rows of A and columns of B (B stored column-major for a cache-friendly inner loop).
const a = new Float64Array(bs * n);
const bt = new Float64Array(bs * n);
for (let i = 0; i < bs; i++)
  for (let k = 0; k < n; k++) a[i * n + k] = <f64>((31 * (row0 + i) + 17 * k + seed) % 97) / 8.0 - 6.0;
for (let j = 0; j < bs; j++)
  for (let k = 0; k < n; k++) bt[j * n + k] = <f64>((13 * k + 29 * (col0 + j) + seed) % 89) / 8.0 - 5.0;

let sum = 0.0;
let weighted = 0.0;
let values = "";
for (let i = 0; i < bs; i++) {
  for (let j = 0; j < bs; j++) {
    let acc = 0.0;
    const ai = i * n;
    const bj = j * n;
    for (let k = 0; k < n; k++) acc += a[ai + k] * bt[bj + k];
    sum += acc;
    weighted += acc * <f64>((((row0 + i) * n + col0 + j) % 7) + 1);
    if (withValues) values += (values.length ? "," : "") + acc.toString();
  }
}
process.stdout.write(
  '{"row":' +
    row0.toString() +
    ',"col":' +
    col0.toString() +
    ',"size":' +
    bs.toString() +
    ',"sum":' +
    sum.toString() +
    ',"weighted":' +
    weighted.toString() +
    (withValues ? ',"values":[' + values + "]" : "") +
    "}",
);
