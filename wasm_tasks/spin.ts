// spin: keeps a core busy for `params.ms` milliseconds (default 200), then outputs
// {"index": i, "square": i*i}. Reliability tests and benchmarks use it as a task that takes time.
import { envelope } from "./lib/json";

const env = envelope();
const duration = <i64>env.get("params").number("ms", 200);
const i = <i64>env.number("index", 0);
const until = Date.now() + duration;
let spins: i64 = 0;
while (Date.now() < until) spins++;
process.stdout.write('{"index":' + i.toString() + ',"square":' + (i * i).toString() + "}");
