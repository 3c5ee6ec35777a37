// spin: keeps a core busy for `params.ms` milliseconds (default 200), then outputs
// {"index": i, "square": i*i}. Reliability tests and benchmarks use it as a task that takes time.
import { envelope, NUMBER } from "./lib/json";

const env = envelope();
const ms = env.get("params").get("ms");
const duration: i64 = ms.kind == NUMBER ? <i64>ms.num : 200;
const index = env.get("index");
const i: i64 = index.kind == NUMBER ? <i64>index.num : 0;
const until = Date.now() + duration;
let spins: i64 = 0;
while (Date.now() < until) spins++;
process.stdout.write("{\"index\":" + i.toString() + ",\"square\":" + (i * i).toString() + "}");
