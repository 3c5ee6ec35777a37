// sequence: outputs a JSON array of `params.count` elements (default 10) for a map over it
// (`map: { over }`): the numbers 0, 1, 2, … or, with `params.pad` > 0, strings "item-<i>-" padded
// with that many "x" (tests use it for arrays larger than one SQLite value).
import { envelope } from "./lib/json";

const params = envelope().get("params");
const count = <i32>params.number("count", 10);
const pad = <i32>params.number("pad", 0);
const filler = "x".repeat(pad);
const parts = new Array<string>(count);
for (let i = 0; i < count; i++) parts[i] = pad > 0 ? '"item-' + i.toString() + "-" + filler + '"' : i.toString();
process.stdout.write("[" + parts.join(",") + "]");
