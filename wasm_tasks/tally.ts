// tally: outputs {"bytes": N, "sha256": "<hex>"} of its whole stdin (the envelope) without parsing
// it. Tests use it as a reducer whose envelope is too large for a tasks frame.
import { toHex } from "./lib/bytes";
import { sha256 } from "./lib/sha";
import { stdinBytes } from "./lib/json";

const all = stdinBytes();
process.stdout.write('{"bytes":' + all.length.toString() + ',"sha256":"' + toHex(sha256(all)) + '"}');
