// Byte-level helpers for the word-count tasks (wordcount_count, wordcount_top): stdin as raw
// bytes, a JSON scanner over those bytes that never builds a String for a large value, base64
// decoding in place, a hash table of byte strings with counts, and an output buffer. lib/json.ts
// turns stdin into a UTF-16 string and every value into an object, which costs three times the
// memory of a 16 MiB chunk and a linear `get` per member; these tasks work on the bytes instead.
// The large buffers are unmanaged (heap.alloc): a resize frees the old block at once, so a
// 16 MiB chunk leaves no garbage of tens of MiB for the collector.
import { fd_read, fd_write } from "bindings/wasi_snapshot_preview1";

/** Writes `message` to stderr and exits with code 2 (bad input). */
export function fail(message: string): void {
  process.stderr.write(message + "\n");
  process.exit(2);
  unreachable();
}

/** Bytes held outside the garbage collector: freed (and reusable) the moment they are resized. */
export class Bytes {
  constructor(
    public ptr: usize,
    public length: i32,
  ) {}
}

/** All of stdin, read into one growing buffer of unmanaged memory (no copy per chunk). */
export function readStdinBytes(): Bytes {
  let cap = 1 << 16;
  let buf = heap.alloc(<usize>cap);
  let n = 0;
  while (true) {
    if (n == cap) {
      cap *= 2;
      buf = heap.realloc(buf, <usize>cap);
    }
    store<usize>(IOV, buf + <usize>n);
    store<usize>(IOV, <usize>(cap - n), sizeof<usize>());
    if (fd_read(0, IOV, 1, IOV + 2 * sizeof<usize>()) != 0) fail("cannot read stdin");
    const got = <i32>load<usize>(IOV, 2 * sizeof<usize>());
    if (got <= 0) break;
    n += got;
  }
  return new Bytes(buf, n);
}

/** One iovec and a result word for fd_read and fd_write. */
const IOV = heap.alloc(4 * sizeof<usize>());

/** Writes `len` bytes at `ptr` to stdout. */
export function writeStdout(ptr: usize, len: i32): void {
  while (len > 0) {
    store<usize>(IOV, ptr);
    store<usize>(IOV, <usize>len, sizeof<usize>());
    if (fd_write(1, IOV, 1, IOV + 2 * sizeof<usize>()) != 0) fail("cannot write stdout");
    const done = <i32>load<usize>(IOV, 2 * sizeof<usize>());
    if (done <= 0) fail("cannot write stdout");
    ptr += <usize>done;
    len -= done;
  }
}

/** Decoding table: base64 character → 6-bit value, 255 for anything else. */
const B64 = new Uint8Array(256);
B64.fill(255);
for (let i = 0; i < 26; i++) {
  B64[65 + i] = <u8>i;
  B64[97 + i] = <u8>(26 + i);
}
for (let i = 0; i < 10; i++) B64[48 + i] = <u8>(52 + i);
B64[43] = 62;
B64[47] = 63;

/**
 * Decodes the standard base64 (padding optional) at `ptr` over itself: the output is never ahead
 * of the input. Returns the decoded length, or -1 when the text is not base64.
 */
export function base64InPlace(ptr: usize, len: i32): i32 {
  while (len > 0 && load<u8>(ptr + <usize>len - 1) == 61) len--;
  if ((len & 3) == 1) return -1;
  const t = B64.dataStart;
  let o = ptr;
  let i = ptr;
  const full = ptr + <usize>(len & ~3);
  while (i < full) {
    const a = <u32>load<u8>(t + <usize>load<u8>(i));
    const b = <u32>load<u8>(t + <usize>load<u8>(i + 1));
    const c = <u32>load<u8>(t + <usize>load<u8>(i + 2));
    const d = <u32>load<u8>(t + <usize>load<u8>(i + 3));
    if ((a | b | c | d) & 0x80) return -1;
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    store<u8>(o, <u8>(v >> 16));
    store<u8>(o + 1, <u8>(v >> 8));
    store<u8>(o + 2, <u8>v);
    o += 3;
    i += 4;
  }
  const rest = len & 3;
  if (rest > 0) {
    const a = <u32>load<u8>(t + <usize>load<u8>(i));
    const b = <u32>load<u8>(t + <usize>load<u8>(i + 1));
    const c = rest == 3 ? <u32>load<u8>(t + <usize>load<u8>(i + 2)) : 0;
    if ((a | b | c) & 0x80) return -1;
    const v = (a << 18) | (b << 12) | (c << 6);
    store<u8>(o++, <u8>(v >> 16));
    if (rest == 3) store<u8>(o++, <u8>(v >> 8));
  }
  return <i32>(o - ptr);
}

/** FNV-1a over bytes, the same steps the counting loop takes inline. */
export function hashBytes(ptr: usize, len: i32): u32 {
  let h: u32 = 2166136261;
  for (let i: usize = 0; i < <usize>len; i++) h = (h ^ load<u8>(ptr + i)) * 16777619;
  return h;
}

/** Spreads FNV's weak low bits before they pick a slot (murmur3's finaliser). */
function mix(h: u32): u32 {
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  return h ^ (h >> 16);
}

/** Bytes per entry: ptr u32, len u32, hash u32, (pad), count u64. */
const ENTRY: i32 = 24;

/**
 * Byte strings (kept where they already are in memory: the caller keeps them alive) with a count
 * each, in insertion order. Open addressing over an index of u32 (entry + 1, 0 for empty).
 */
export class WordTable {
  size: i32 = 0;
  /** `capacity` entries of ENTRY bytes (unmanaged). */
  entries: usize = heap.alloc(<usize>(ENTRY * 1024));
  capacity: i32 = 1024;
  /** mask + 1 slots of u32 (unmanaged). */
  index: usize = 0;
  mask: u32 = 4095;

  constructor() {
    this.index = heap.alloc(4096 * 4);
    memory.fill(this.index, 0, 4096 * 4);
  }

  /** Adds `count` to the string of `len` bytes at `ptr`, whose hashBytes is `hash`. */
  add(ptr: usize, len: i32, hash: u32, count: u64): void {
    const h = mix(hash);
    const index = this.index;
    const entries = this.entries;
    let s = h & this.mask;
    while (true) {
      const at = load<u32>(index + ((<usize>s) << 2));
      if (at == 0) break;
      const e = entries + <usize>(at - 1) * ENTRY;
      if (load<u32>(e, 8) == h && load<i32>(e, 4) == len && memory.compare(<usize>load<u32>(e), ptr, <usize>len) == 0) {
        store<u64>(e, load<u64>(e, 16) + count, 16);
        return;
      }
      s = (s + 1) & this.mask;
    }
    if (this.size == this.capacity) {
      this.capacity *= 2;
      this.entries = heap.realloc(this.entries, <usize>this.capacity * ENTRY);
    }
    const e = this.entries + <usize>this.size * ENTRY;
    store<u32>(e, <u32>ptr);
    store<i32>(e, len, 4);
    store<u32>(e, h, 8);
    store<u64>(e, count, 16);
    this.size++;
    store<u32>(index + ((<usize>s) << 2), <u32>this.size);
    if (<u32>this.size * 2 > this.mask) this.rehash();
  }

  private rehash(): void {
    const cap = (this.mask + 1) * 2;
    heap.free(this.index);
    const ip = heap.alloc(<usize>cap * 4);
    memory.fill(ip, 0, <usize>cap * 4);
    const mask = cap - 1;
    const entries = this.entries;
    for (let i = 0; i < this.size; i++) {
      let s = load<u32>(entries + <usize>i * ENTRY, 8) & mask;
      while (load<u32>(ip + ((<usize>s) << 2)) != 0) s = (s + 1) & mask;
      store<u32>(ip + ((<usize>s) << 2), <u32>(i + 1));
    }
    this.index = ip;
    this.mask = mask;
  }

  /** Where entry `i`'s bytes are. */
  ptr(i: i32): usize {
    return <usize>load<u32>(this.entries + <usize>i * ENTRY);
  }

  len(i: i32): i32 {
    return load<i32>(this.entries + <usize>i * ENTRY, 4);
  }

  count(i: i32): u64 {
    return load<u64>(this.entries + <usize>i * ENTRY, 16);
  }
}

/** Output to stdout through a 64 KiB buffer, written whenever it fills. */
export class Out {
  buf: usize = heap.alloc(OUT_SIZE);
  n: i32 = 0;

  /** Makes room for `k` (at most OUT_SIZE) more bytes; returns where they go. */
  room(k: i32): usize {
    if (this.n + k > <i32>OUT_SIZE) this.flush();
    return this.buf + <usize>this.n;
  }

  byte(c: u32): void {
    store<u8>(this.room(1), <u8>c);
    this.n++;
  }

  /** A short ASCII string. */
  ascii(s: string): void {
    const p = this.room(s.length);
    for (let i = 0; i < s.length; i++) store<u8>(p + <usize>i, <u8>s.charCodeAt(i));
    this.n += s.length;
  }

  bytes(ptr: usize, len: i32): void {
    if (len > <i32>OUT_SIZE) {
      this.flush();
      writeStdout(ptr, len);
      return;
    }
    memory.copy(this.room(len), ptr, <usize>len);
    this.n += len;
  }

  /** A JSON string literal of the UTF-8 bytes at `ptr`. */
  quoted(ptr: usize, len: i32): void {
    this.byte(34);
    for (let i: usize = 0; i < <usize>len; i++) {
      const c = <u32>load<u8>(ptr + i);
      if (c == 34 || c == 92) {
        this.byte(92);
        this.byte(c);
      } else if (c < 32) {
        this.ascii("\\u00");
        this.byte(HEX.charCodeAt(c >> 4));
        this.byte(HEX.charCodeAt(c & 15));
      } else this.byte(c);
    }
    this.byte(34);
  }

  u64(v: u64): void {
    const p = this.room(20);
    let digits = 1;
    for (let t = v; t >= 10; t /= 10) digits++;
    for (let i = digits - 1; i >= 0; i--) {
      store<u8>(p + <usize>i, <u8>(48 + (v % 10)));
      v /= 10;
    }
    this.n += digits;
  }

  /** Writes what is buffered. */
  flush(): void {
    writeStdout(this.buf, this.n);
    this.n = 0;
  }
}

const OUT_SIZE: usize = 1 << 16;
const HEX = "0123456789abcdef";

/**
 * A JSON scanner over bytes. Positions are byte offsets; every method that finds malformed JSON
 * fails the task (exit 2) naming the offset. It checks what it walks, not the whole grammar.
 */
export class Scanner {
  base: usize;
  end: i32;
  /** Whether the last string skipped held a backslash escape. */
  escaped: bool = false;
  /** Past the closing bracket after `next` or `first*` met it; past the number after `integer`. */
  pos: i32 = 0;

  constructor(buf: Bytes) {
    this.base = buf.ptr;
    this.end = buf.length;
  }

  /** The byte at `i`, or -1 past the end. */
  at(i: i32): i32 {
    return i < this.end ? <i32>load<u8>(this.base + <usize>i) : -1;
  }

  malformed(i: i32, what: string): void {
    fail("invalid JSON at byte " + i.toString() + ": " + what);
  }

  space(i: i32): i32 {
    while (i < this.end) {
      const c = load<u8>(this.base + <usize>i);
      if (c != 32 && c != 10 && c != 13 && c != 9) break;
      i++;
    }
    return i;
  }

  /** `i` at an opening quote: the offset just past the closing one. Sets `escaped`. */
  skipString(i: i32): i32 {
    if (this.at(i) != 34) this.malformed(i, "expected a string");
    this.escaped = false;
    const base = this.base;
    let p = i + 1;
    while (p < this.end) {
      const c = load<u8>(base + <usize>p);
      if (c == 34) return p + 1;
      if (c == 92) {
        this.escaped = true;
        p += 2;
      } else p++;
    }
    this.malformed(i, "unterminated string");
    return -1;
  }

  /** The offset just past the value at `i` (after spaces). */
  skipValue(i: i32): i32 {
    i = this.space(i);
    const c = this.at(i);
    if (c == 34) return this.skipString(i);
    if (c == 123 || c == 91) {
      let depth = 0;
      let p = i;
      while (p < this.end) {
        const d = load<u8>(this.base + <usize>p);
        if (d == 34) {
          p = this.skipString(p);
          continue;
        }
        if (d == 123 || d == 91) depth++;
        else if (d == 125 || d == 93) {
          if (--depth == 0) return p + 1;
        }
        p++;
      }
      this.malformed(i, "unterminated " + (c == 123 ? "object" : "array"));
    }
    let p = i;
    while (p < this.end) {
      const d = load<u8>(this.base + <usize>p);
      if (d == 44 || d == 125 || d == 93 || d == 32 || d == 10 || d == 13 || d == 9) break;
      p++;
    }
    if (p == i) this.malformed(i, "expected a value");
    return p;
  }

  /**
   * The first member of the object at `i`: the offset of its key's opening quote, or -1 when
   * the object is empty. Fails when `i` is not an object.
   */
  firstMember(i: i32): i32 {
    i = this.space(i);
    if (this.at(i) != 123) this.malformed(i, "expected an object");
    i = this.space(i + 1);
    if (this.at(i) != 125) return i;
    this.pos = i + 1;
    return -1;
  }

  /** After a member's key (the offset past its quote): the offset of its value. */
  valueAfterKey(i: i32): i32 {
    i = this.space(i);
    if (this.at(i) != 58) this.malformed(i, "expected ':'");
    return this.space(i + 1);
  }

  /** After a member's or item's value: the offset of the next key or item, or -1 at the end. */
  next(i: i32, close: i32): i32 {
    i = this.space(i);
    const c = this.at(i);
    if (c == close) {
      this.pos = i + 1;
      return -1;
    }
    if (c != 44) this.malformed(i, close == 125 ? "expected ',' or '}'" : "expected ',' or ']'");
    return this.space(i + 1);
  }

  /** The first item of the array at `i`, or -1 when it is empty. Fails when not an array. */
  firstItem(i: i32): i32 {
    i = this.space(i);
    if (this.at(i) != 91) this.malformed(i, "expected an array");
    i = this.space(i + 1);
    if (this.at(i) != 93) return i;
    this.pos = i + 1;
    return -1;
  }

  /** The value of member `key` (UTF-8) of the object at `i`, or -1 when it has none. */
  member(i: i32, key: Uint8Array): i32 {
    let k = this.firstMember(i);
    while (k >= 0) {
      const after = this.skipString(k);
      let same: bool;
      if (this.escaped) {
        const decoded = this.decode(k);
        same = decoded.length == key.length && memory.compare(decoded.dataStart, key.dataStart, key.length) == 0;
      } else {
        same =
          after - k - 2 == key.length &&
          memory.compare(this.base + <usize>(k + 1), key.dataStart, <usize>key.length) == 0;
      }
      const v = this.valueAfterKey(after);
      if (same) return v;
      k = this.next(this.skipValue(v), 125);
    }
    return -1;
  }

  /** The UTF-8 bytes of the string at `i`, escapes decoded. */
  decode(i: i32): Uint8Array {
    const end = this.skipString(i) - 1;
    const out = new Uint8Array(end - i);
    let o = 0;
    let p = i + 1;
    while (p < end) {
      const c = this.at(p++);
      if (c != 92) {
        out[o++] = <u8>c;
        continue;
      }
      const e = this.at(p++);
      let u: i32 = e;
      if (e == 110) u = 10;
      else if (e == 116) u = 9;
      else if (e == 114) u = 13;
      else if (e == 98) u = 8;
      else if (e == 102) u = 12;
      else if (e == 117) {
        u = this.hex4(p);
        p += 4;
        if (u >= 0xd800 && u < 0xdc00 && this.at(p) == 92 && this.at(p + 1) == 117) {
          const low = this.hex4(p + 2);
          if (low >= 0xdc00 && low < 0xe000) {
            u = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
            p += 6;
          }
        }
      }
      // UTF-8 of u (never longer than the escape it came from).
      if (u < 0x80) out[o++] = <u8>u;
      else if (u < 0x800) {
        out[o++] = <u8>(0xc0 | (u >> 6));
        out[o++] = <u8>(0x80 | (u & 63));
      } else if (u < 0x10000) {
        out[o++] = <u8>(0xe0 | (u >> 12));
        out[o++] = <u8>(0x80 | ((u >> 6) & 63));
        out[o++] = <u8>(0x80 | (u & 63));
      } else {
        out[o++] = <u8>(0xf0 | (u >> 18));
        out[o++] = <u8>(0x80 | ((u >> 12) & 63));
        out[o++] = <u8>(0x80 | ((u >> 6) & 63));
        out[o++] = <u8>(0x80 | (u & 63));
      }
    }
    return out.subarray(0, o);
  }

  private hex4(p: i32): i32 {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.at(p + k);
      const d = c >= 48 && c <= 57 ? c - 48 : (c | 32) >= 97 && (c | 32) <= 102 ? (c | 32) - 87 : -1;
      if (d < 0) this.malformed(p, "bad \\u escape");
      v = (v << 4) | d;
    }
    return v;
  }

  /** The non-negative integer at `i`, or -1 when the value there is something else. */
  integer(i: i32): i64 {
    let p = this.space(i);
    let v: i64 = 0;
    const start = p;
    while (p < this.end) {
      const d = <i32>load<u8>(this.base + <usize>p) - 48;
      if (<u32>d > 9) break;
      v = v * 10 + d;
      p++;
    }
    const c = this.at(p);
    const ends = c == -1 || c == 44 || c == 125 || c == 93 || c == 32 || c == 10 || c == 13 || c == 9;
    if (p == start || p - start > 15 || !ends) return -1;
    this.pos = p;
    return v;
  }
}

/** The UTF-8 bytes of an AssemblyScript string, e.g. a key to look up. */
export function utf8Key(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** The string member `key` of the `params` object at `params` (-1: none), or `fallback`. */
export function stringParam(s: Scanner, params: i32, key: string, fallback: string): string {
  if (params < 0) return fallback;
  const v = s.member(params, utf8Key(key));
  if (v < 0) return fallback;
  if (s.at(v) != 34) fail("params." + key + " must be a string");
  const bytes = s.decode(v);
  return String.UTF8.decodeUnsafe(bytes.dataStart, <usize>bytes.length);
}

/** The envelope's top-level member `key` (its value's offset), or -1. */
export function envelopeMember(s: Scanner, key: string): i32 {
  const top = s.space(0);
  if (s.at(top) != 123) fail("the envelope on stdin is not a JSON object");
  return s.member(top, utf8Key(key));
}

/** Whether the value at `i` is an object (for params that may be null or absent). */
export function isObject(s: Scanner, i: i32): bool {
  return i >= 0 && s.at(i) == 123;
}
