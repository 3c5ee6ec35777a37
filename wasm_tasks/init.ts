// init: the first task of dags/hello_fanout.yaml. Outputs the greeting its dependents use,
// taken from `params.greeting` (default "Hello").
import { envelope, quote } from "./lib/json";

const env = envelope();
const greeting = env.get("params").get("greeting").asString("Hello");
process.stdout.write('{"greeting":' + quote(greeting) + "}");
