// greet: mapped over names. The name comes as the first argument (`args: ["{{item}}"]`), the
// greeting from the `init` task's output; outputs {"name", "message"}.
import { envelope, quote } from "./lib/json";

const env = envelope();
const name = process.argv.length > 1 ? process.argv[1] : env.get("item").asString("world");
const greeting = env.get("inputs").get("init").get("greeting").asString("Hello");
process.stdout.write('{"name":' + quote(name) + ',"message":' + quote(greeting + ", " + name + "!") + "}");
