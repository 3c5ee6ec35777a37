// matmul_checksum: combines the blocks of `matmul_tile` (inputs.tile) into the product's
// checksums {"n", "sum", "weighted"}; with `params.product` also "product": the n × n matrix,
// row by row.
import { envelope, BOOL } from "./lib/json";

const env = envelope();
const p = env.get("params");
const n = <i32>p.number("n", 256);
const withValues = p.get("product").kind == BOOL && p.get("product").bool;
const tiles = env.get("inputs").get("tile");
let sum = 0.0;
let weighted = 0.0;
const c = new Float64Array(withValues ? n * n : 0);
for (let t = 0; t < tiles.items.length; t++) {
  const tile = tiles.items[t];
  sum += tile.get("sum").num;
  weighted += tile.get("weighted").num;
  if (withValues) {
    const row = <i32>tile.get("row").num;
    const col = <i32>tile.get("col").num;
    const size = <i32>tile.get("size").num;
    const values = tile.get("values").items;
    for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) c[(row + i) * n + col + j] = values[i * size + j].num;
  }
}
let out = '{"n":' + n.toString() + ',"sum":' + sum.toString() + ',"weighted":' + weighted.toString();
if (withValues) {
  out += ',"product":[';
  for (let i = 0; i < n; i++) {
    out += i ? ",[" : "[";
    for (let j = 0; j < n; j++) out += (j ? "," : "") + c[i * n + j].toString();
    out += "]";
  }
  out += "]";
}
process.stdout.write(out + "}");
