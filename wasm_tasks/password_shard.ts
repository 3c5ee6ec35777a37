// password_shard: hashes one shard of candidate passwords and reports those whose hash is one
// of `params.targets` (hex). Candidates are `params.words`, each alone and with every suffix
// 0..params.suffixes-1 appended ("dragon", "dragon0", "dragon1", ...); shard `index` of
// `params.shards` takes every shards-th candidate. `params.algorithm`: "pbkdf2-sha256" (with
// `params.salt` and `params.iterations`), "sha256" or "sha512".
// Output: {"shard", "checked", "found": [{"password", "hash"}]}.
import { envelope, quote } from "./lib/json";
import { toHex, utf8 } from "./lib/bytes";
import { pbkdf2Sha256, sha256, sha512 } from "./lib/sha";

const env = envelope();
const p = env.get("params");
const shard = <i32>env.get("index").num;
const shards = <i32>p.number("shards", 1);
const suffixes = <i32>p.number("suffixes", 100);
const iterations = <i32>p.number("iterations", 1000);
const algorithm = p.get("algorithm").asString("pbkdf2-sha256");
const salt = utf8(p.get("salt").asString("distro"));
const words = p.get("words").items;
const targetList = p.get("targets").items;
const targets = new Set<string>();
for (let i = 0; i < targetList.length; i++) targets.add(targetList[i].str.toLowerCase());

let checked = 0;
let found = "";
const perWord = suffixes + 1;
const total = words.length * perWord;
for (let c = shard; c < total; c += shards) {
  const word = words[c / perWord].str;
  const s = c % perWord;
  const candidate = s == 0 ? word : word + (s - 1).toString();
  const bytes = utf8(candidate);
  const digest =
    algorithm == "sha256"
      ? sha256(bytes)
      : algorithm == "sha512"
        ? sha512(bytes)
        : pbkdf2Sha256(bytes, salt, iterations);
  const hex = toHex(digest);
  checked++;
  if (targets.has(hex))
    found += (found.length ? "," : "") + '{"password":' + quote(candidate) + ',"hash":"' + hex + '"}';
}
process.stdout.write('{"shard":' + shard.toString() + ',"checked":' + checked.toString() + ',"found":[' + found + "]}");
