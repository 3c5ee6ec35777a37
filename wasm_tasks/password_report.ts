// password_report: merges the shards of `password_shard` (inputs.shard) into
// {"checked", "found": [{"password", "hash"}]}, the found passwords sorted.
import { envelope, quote } from "./lib/json";

const env = envelope();
const shards = env.get("inputs").get("shard").items;
let checked: i64 = 0;
const found: string[] = [];
const hashes = new Map<string, string>();
for (let s = 0; s < shards.length; s++) {
  checked += <i64>shards[s].get("checked").num;
  const list = shards[s].get("found").items;
  for (let i = 0; i < list.length; i++) {
    const password = list[i].get("password").str;
    found.push(password);
    hashes.set(password, list[i].get("hash").str);
  }
}
found.sort();
let out = "";
for (let i = 0; i < found.length; i++)
  out += (i ? "," : "") + '{"password":' + quote(found[i]) + ',"hash":"' + hashes.get(found[i]) + '"}';
process.stdout.write('{"checked":' + checked.toString() + ',"found":[' + out + "]}");
