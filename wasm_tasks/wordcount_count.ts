// wordcount_count: the map of the word-count workload, one instance per chunk of a text file.
// Reads the chunk from inputs.<params.input> (default "text", {"$bytes": "<base64>"}) and
// outputs {"words": <total>, "counts": {"<word>": <count>, ...}}. A word is a maximal run of
// ASCII letters, lower-cased; every other byte separates words. Works on the bytes of stdin in
// place (lib/words.ts): a 16 MiB chunk fits in the default 256 MiB with room for its words.
import {
  base64InPlace,
  envelopeMember,
  fail,
  isObject,
  Out,
  readStdinBytes,
  Scanner,
  stringParam,
  utf8Key,
  WordTable,
} from "./lib/words";

const s = new Scanner(readStdinBytes());
const params = envelopeMember(s, "params");
const name = stringParam(s, isObject(s, params) ? params : -1, "input", "text");
const inputs = envelopeMember(s, "inputs");
const input = isObject(s, inputs) ? s.member(inputs, utf8Key(name)) : -1;
if (input < 0) fail("wordcount_count: inputs." + name + " is missing");
const b64 = isObject(s, input) ? s.member(input, utf8Key("$bytes")) : -1;
if (b64 < 0 || s.at(b64) != 34) fail("wordcount_count: inputs." + name + ' is not {"$bytes": "<base64>"}');

// The base64 text, decoded over itself (or over a copy, a global so it stays alive, when it held
// JSON escapes).
let ptr: usize;
let len: i32;
const after = s.skipString(b64);
let unescaped: Uint8Array | null = null;
if (s.escaped) {
  const copy = s.decode(b64);
  unescaped = copy;
  ptr = copy.dataStart;
  len = copy.length;
} else {
  ptr = s.base + <usize>(b64 + 1);
  len = after - b64 - 2;
}
const n = base64InPlace(ptr, len);
if (n < 0) fail("wordcount_count: inputs." + name + ".$bytes is not valid base64");

// One pass: lower-case each letter in place and hash it; a word's bytes stay where they are.
const table = new WordTable();
let words: u64 = 0;
const end = ptr + <usize>n;
let p = ptr;
while (p < end) {
  let lower = (<u32>load<u8>(p)) | 32;
  if (lower - 97 >= 26) {
    p++;
    continue;
  }
  const start = p;
  let h: u32 = 2166136261;
  do {
    store<u8>(p, <u8>lower);
    h = (h ^ lower) * 16777619;
    p++;
    if (p >= end) break;
    lower = (<u32>load<u8>(p)) | 32;
  } while (lower - 97 < 26);
  table.add(start, <i32>(p - start), h, 1);
  words++;
}

const out = new Out();
out.ascii('{"words":');
out.u64(words);
out.ascii(',"counts":{');
for (let i = 0; i < table.size; i++) {
  if (i > 0) out.byte(44);
  out.byte(34);
  out.bytes(table.ptr(i), table.len(i));
  out.ascii('":');
  out.u64(table.count(i));
}
out.ascii("}}");
out.flush();
