// digest: outputs {"input", "size", "sha256"} for the first of its inputs that is bytes
// ({"$bytes": base64}). Tests use it to check that a large output reaches its dependents whole.
import { envelope } from "./lib/json";
import { fromBase64, toHex } from "./lib/bytes";
import { sha256 } from "./lib/sha";

const inputs = envelope().get("inputs");
for (let i = 0; i < inputs.keys.length; i++) {
  const b64 = inputs.items[i].get("$bytes");
  if (b64.str.length == 0) continue;
  const bytes = fromBase64(b64.str);
  process.stdout.write(
    '{"input":"' + inputs.keys[i] + '","size":' + bytes.length.toString() + ',"sha256":"' + toHex(sha256(bytes)) + '"}',
  );
  process.exit(0);
}
process.stderr.write("digest: no input holds bytes\n");
process.exit(2);
