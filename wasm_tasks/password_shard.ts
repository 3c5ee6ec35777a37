// password_shard: hashes one shard of candidate passwords and reports those whose hash is one
// of `params.targets`. Candidates are `params.words`, each alone and with every suffix
// 0..params.suffixes-1 appended ("dragon", "dragon0", "dragon1", ...); shard `index` of
// `params.shards` takes every shards-th candidate. `params.algorithm`: "pbkdf2-sha256" (with
// `params.salt` and `params.iterations`), "sha256" or "sha512", whose targets are hex digests; or
// "bcrypt" (cost factor `params.cost`, 4..31, default 6; `params.salt` the 22-character
// bcrypt-base64 salt), whose targets are full `$2b$` hash strings, compared exactly.
// Output: {"shard", "checked", "found": [{"password", "hash"}]}. Bad bcrypt params: exit code 2.
import { envelope, quote, NULL, NUMBER } from "./lib/json";
import { toHex, utf8 } from "./lib/bytes";
import { pbkdf2Sha256, sha256, sha512 } from "./lib/sha";
import { bcrypt, decodeSalt } from "./lib/bcrypt";

/** Reports a bad parameter and exits with code 2. */
function fail(message: string): void {
  process.stderr.write("password_shard: " + message + "\n");
  process.exit(2);
  unreachable();
}

const env = envelope();
const p = env.get("params");
const shard = <i32>env.get("index").num;
const shards = <i32>p.number("shards", 1);
const suffixes = <i32>p.number("suffixes", 100);
const iterations = <i32>p.number("iterations", 1000);
const algorithm = p.get("algorithm").asString("pbkdf2-sha256");
const saltParam = p.get("salt").asString("distro");
const salt = utf8(saltParam);
const isBcrypt = algorithm == "bcrypt";
// bcrypt's cost factor and salt, checked before any hashing.
let cost = 6;
let bcryptSalt = new Uint8Array(0);
if (isBcrypt) {
  const c = p.get("cost");
  const whole = c.kind == NUMBER && c.num == Math.floor(c.num);
  if (c.kind != NULL && !(whole && c.num >= 4 && c.num <= 31))
    fail("bcrypt cost must be an integer from 4 to 31, got " + (c.kind == NUMBER ? c.num.toString() : "a non-number"));
  if (c.kind != NULL) cost = <i32>c.num;
  const decoded = decodeSalt(saltParam);
  if (decoded == null) fail('bcrypt salt must be 22 characters of ./A-Za-z0-9, got "' + saltParam + '"');
  else bcryptSalt = decoded;
}
const words = p.get("words").items;
const targetList = p.get("targets").items;
const targets = new Set<string>();
for (let i = 0; i < targetList.length; i++) targets.add(isBcrypt ? targetList[i].str : targetList[i].str.toLowerCase());

let checked = 0;
let found = "";
const perWord = suffixes + 1;
const total = words.length * perWord;
for (let c = shard; c < total; c += shards) {
  const word = words[c / perWord].str;
  const s = c % perWord;
  const candidate = s == 0 ? word : word + (s - 1).toString();
  const bytes = utf8(candidate);
  const hash = isBcrypt
    ? bcrypt(bytes, cost, bcryptSalt)
    : toHex(
        algorithm == "sha256"
          ? sha256(bytes)
          : algorithm == "sha512"
            ? sha512(bytes)
            : pbkdf2Sha256(bytes, salt, iterations),
      );
  checked++;
  if (targets.has(hash))
    found += (found.length ? "," : "") + '{"password":' + quote(candidate) + ',"hash":' + quote(hash) + "}";
}
process.stdout.write('{"shard":' + shard.toString() + ',"checked":' + checked.toString() + ',"found":[' + found + "]}");
