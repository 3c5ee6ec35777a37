// aggregate: the last task of dags/hello_fanout.yaml. Reads every `greet` instance's output
// (an array, in index order) and outputs {"count", "messages"}.
import { envelope, quote, ARRAY } from "./lib/json";

const env = envelope();
const greet = env.get("inputs").get("greet");
if (greet.kind != ARRAY) {
  process.stderr.write("aggregate: expected inputs.greet to be an array of greet outputs\n");
  process.exit(2);
}
let messages = "";
for (let i = 0; i < greet.items.length; i++) {
  if (i > 0) messages += ",";
  messages += quote(greet.items[i].get("message").asString());
}
process.stdout.write('{"count":' + greet.items.length.toString() + ',"messages":[' + messages + "]}");
