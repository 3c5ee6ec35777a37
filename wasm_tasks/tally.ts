// tally: outputs {"bytes": N, "sha256": "<hex>"} of its whole stdin (the envelope) without parsing
// it. Tests use it as a reducer whose envelope is too large for a tasks frame.
import { toHex } from "./lib/bytes";
import { sha256 } from "./lib/sha";

let total = 0;
const chunks: ArrayBuffer[] = [];
while (true) {
  const buf = new ArrayBuffer(1 << 20);
  const n = process.stdin.read(buf);
  if (n <= 0) break;
  chunks.push(buf.slice(0, n));
  total += n;
}
const all = new Uint8Array(total);
let at = 0;
for (let i = 0; i < chunks.length; i++) {
  all.set(Uint8Array.wrap(chunks[i]), at);
  at += chunks[i].byteLength;
}
process.stdout.write('{"bytes":' + total.toString() + ',"sha256":"' + toHex(sha256(all)) + '"}');
