// wordcount_top: the reduce of the word-count workload. Merges the outputs of wordcount_count
// (inputs.<params.from>, default "count": an array of {"words", "counts"}) and outputs
// {"words": <sum>, "distinct": <distinct words>, "top": [{"word", "count"}, ...]}, the
// params.top (default 10) most frequent words by count descending, then word in byte order.
// It scans stdin's bytes (lib/words.ts): thousands of objects of tens of thousands of keys each
// cost one pass and one hash table, with no String or object per key.
import {
  envelopeMember,
  fail,
  hashBytes,
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
const p = isObject(s, params) ? params : -1;
const from = stringParam(s, p, "from", "count");
let top: i64 = 10;
const topAt = p >= 0 ? s.member(p, utf8Key("top")) : -1;
if (topAt >= 0) {
  top = s.integer(topAt);
  if (top < 1) fail("wordcount_top: params.top must be an integer ≥ 1");
}

const inputs = envelopeMember(s, "inputs");
const list = isObject(s, inputs) ? s.member(inputs, utf8Key(from)) : -1;
if (list < 0 || s.at(list) != 91) fail("wordcount_top: inputs." + from + " is not an array of wordcount_count outputs");

const table = new WordTable();
/** Keys that held JSON escapes, decoded: the table points into them. */
const decodedKeys: Uint8Array[] = [];
let words: u64 = 0;

function bad(index: i32): void {
  fail("wordcount_top: inputs." + from + "[" + index.toString() + '] is not {"words": n, "counts": {...}}');
}

/** Adds the object of counts at `v` to the table; returns the offset past it. */
function addCounts(v: i32, index: i32): i32 {
  let k = s.firstMember(v);
  while (k >= 0) {
    const after = s.skipString(k);
    const escaped = s.escaped;
    const count = s.integer(s.valueAfterKey(after));
    if (count < 0) bad(index);
    if (escaped) {
      const key = s.decode(k);
      decodedKeys.push(key);
      table.add(key.dataStart, key.length, hashBytes(key.dataStart, key.length), <u64>count);
    } else {
      const ptr = s.base + <usize>(k + 1);
      const len = after - k - 2;
      table.add(ptr, len, hashBytes(ptr, len), <u64>count);
    }
    k = s.next(s.pos, 125);
  }
  return s.pos;
}

const WORDS = utf8Key("words");
const COUNTS = utf8Key("counts");

/** Whether the unescaped key of `len` bytes at `k + 1` is `name`. */
function keyIs(k: i32, len: i32, name: Uint8Array): bool {
  return len == name.length && memory.compare(s.base + <usize>(k + 1), name.dataStart, <usize>len) == 0;
}

let item = s.firstItem(list);
let index = 0;
while (item >= 0) {
  if (s.at(item) != 123) bad(index);
  let sawWords = false;
  let sawCounts = false;
  let k = s.firstMember(item);
  let end = s.pos;
  while (k >= 0) {
    const after = s.skipString(k);
    const len = after - k - 2;
    const v = s.valueAfterKey(after);
    if (!s.escaped && keyIs(k, len, WORDS)) {
      const n = s.integer(v);
      if (n < 0) bad(index);
      words += <u64>n;
      sawWords = true;
      end = s.pos;
    } else if (!s.escaped && keyIs(k, len, COUNTS)) {
      if (s.at(v) != 123) bad(index);
      end = addCounts(v, index);
      sawCounts = true;
    } else end = s.skipValue(v);
    k = s.next(end, 125);
    end = s.pos;
  }
  if (!sawWords || !sawCounts) bad(index);
  item = s.next(end, 93);
  index++;
}

/** Whether entry `a` ranks before entry `b`: a higher count, then the smaller word. */
function before(a: i32, b: i32): bool {
  const ca = table.count(a);
  const cb = table.count(b);
  if (ca != cb) return ca > cb;
  const la = table.len(a);
  const lb = table.len(b);
  const c = memory.compare(table.ptr(a), table.ptr(b), <usize>min(la, lb));
  return c != 0 ? c < 0 : la < lb;
}

// A heap of the best `k` so far, the worst at its root.
const k = <i32>min(top, <i64>table.size);
const heap = new Int32Array(k);
const h = heap.dataStart;

function siftDown(at: i32, n: i32): void {
  const e = load<i32>(h + ((<usize>at) << 2));
  while (true) {
    let child = 2 * at + 1;
    if (child >= n) break;
    if (child + 1 < n && before(load<i32>(h + ((<usize>child) << 2)), load<i32>(h + ((<usize>(child + 1)) << 2))))
      child++;
    const c = load<i32>(h + ((<usize>child) << 2));
    if (!before(e, c)) break;
    store<i32>(h + ((<usize>at) << 2), c);
    at = child;
  }
  store<i32>(h + ((<usize>at) << 2), e);
}

let size = 0;
for (let i = 0; i < table.size; i++) {
  if (size < k) {
    // Sift up: a parent must rank after its children.
    let at = size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const pe = load<i32>(h + ((<usize>parent) << 2));
      if (!before(pe, i)) break;
      store<i32>(h + ((<usize>at) << 2), pe);
      at = parent;
    }
    store<i32>(h + ((<usize>at) << 2), i);
  } else if (k > 0 && before(i, load<i32>(h))) {
    store<i32>(h, i);
    siftDown(0, size);
  }
}
// Heap sort: the worst goes last each time, leaving the best first.
for (let m = size - 1; m > 0; m--) {
  const worst = load<i32>(h);
  store<i32>(h, load<i32>(h + ((<usize>m) << 2)));
  store<i32>(h + ((<usize>m) << 2), worst);
  siftDown(0, m);
}

const out = new Out();
out.ascii('{"words":');
out.u64(words);
out.ascii(',"distinct":');
out.u64(<u64>table.size);
out.ascii(',"top":[');
for (let i = 0; i < size; i++) {
  const e = load<i32>(h + ((<usize>i) << 2));
  if (i > 0) out.byte(44);
  out.ascii('{"word":');
  out.quoted(table.ptr(e), table.len(e));
  out.ascii(',"count":');
  out.u64(table.count(e));
  out.byte(125);
}
out.ascii("]}");
out.flush();
