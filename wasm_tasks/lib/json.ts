// A small JSON reader and writer for AssemblyScript tasks: enough to read the task envelope
// (stdin) and write JSON output. Shared by the example tasks in wasm_tasks/.

export const NULL: i32 = 0;
export const BOOL: i32 = 1;
export const NUMBER: i32 = 2;
export const STRING: i32 = 3;
export const ARRAY: i32 = 4;
export const OBJECT: i32 = 5;

/** One JSON value; `kind` says which fields hold it. */
export class Json {
  kind: i32 = NULL;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Json[] = [];
  keys: string[] = [];

  /** The member `key` of an object, or a null value. */
  get(key: string): Json {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return new Json();
  }

  /** The number at member `key`, or `fallback` when there is none. */
  number(key: string, fallback: f64): f64 {
    const v = this.get(key);
    return v.kind == NUMBER ? v.num : fallback;
  }

  /** The string value, or `fallback` when this is not a string. */
  asString(fallback: string = ""): string {
    return this.kind == STRING ? this.str : fallback;
  }
}

class Parser {
  pos: i32 = 0;
  constructor(public text: string) {}

  fail(what: string): Json {
    throw new Error("invalid JSON at " + this.pos.toString() + ": " + what);
  }

  space(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 32 && c != 9 && c != 10 && c != 13) break;
      this.pos++;
    }
  }

  value(): Json {
    this.space();
    if (this.pos >= this.text.length) return this.fail("unexpected end");
    const c = this.text.charCodeAt(this.pos);
    const v = new Json();
    if (c == 123) {
      v.kind = OBJECT;
      this.pos++;
      this.space();
      if (this.text.charCodeAt(this.pos) == 125) {
        this.pos++;
        return v;
      }
      while (true) {
        this.space();
        v.keys.push(this.string());
        this.space();
        if (this.text.charCodeAt(this.pos) != 58) return this.fail("expected ':'");
        this.pos++;
        v.items.push(this.value());
        this.space();
        const d = this.text.charCodeAt(this.pos++);
        if (d == 125) return v;
        if (d != 44) return this.fail("expected ',' or '}'");
      }
    }
    if (c == 91) {
      v.kind = ARRAY;
      this.pos++;
      this.space();
      if (this.text.charCodeAt(this.pos) == 93) {
        this.pos++;
        return v;
      }
      while (true) {
        v.items.push(this.value());
        this.space();
        const d = this.text.charCodeAt(this.pos++);
        if (d == 93) return v;
        if (d != 44) return this.fail("expected ',' or ']'");
      }
    }
    if (c == 34) {
      v.kind = STRING;
      v.str = this.string();
      return v;
    }
    if (this.text.startsWith("true", this.pos)) {
      v.kind = BOOL;
      v.bool = true;
      this.pos += 4;
      return v;
    }
    if (this.text.startsWith("false", this.pos)) {
      v.kind = BOOL;
      this.pos += 5;
      return v;
    }
    if (this.text.startsWith("null", this.pos)) {
      this.pos += 4;
      return v;
    }
    const start = this.pos;
    while (this.pos < this.text.length) {
      const d = this.text.charCodeAt(this.pos);
      if (!((d >= 48 && d <= 57) || d == 45 || d == 43 || d == 46 || d == 101 || d == 69)) break;
      this.pos++;
    }
    if (start == this.pos) return this.fail("unexpected character");
    v.kind = NUMBER;
    v.num = parseFloat(this.text.substring(start, this.pos));
    return v;
  }

  string(): string {
    if (this.text.charCodeAt(this.pos) != 34) {
      this.fail("expected a string");
      return "";
    }
    this.pos++;
    let out = "";
    let start = this.pos;
    // Fast path over plain characters on raw memory: strings here can be megabytes of base64.
    const base = changetype<usize>(this.text);
    const length = this.text.length;
    while (this.pos < length) {
      const c = <i32>load<u16>(base + ((<usize>this.pos) << 1));
      if (c != 34 && c != 92) {
        this.pos++;
        continue;
      }
      if (c == 34) {
        out += this.text.substring(start, this.pos);
        this.pos++;
        return out;
      }
      // A backslash escape.
      {
        out += this.text.substring(start, this.pos);
        const e = this.text.charCodeAt(this.pos + 1);
        this.pos += 2;
        if (e == 110) out += "\n";
        else if (e == 116) out += "\t";
        else if (e == 114) out += "\r";
        else if (e == 98) out += "\b";
        else if (e == 102) out += "\f";
        else if (e == 117) {
          out += String.fromCharCode(<i32>parseInt(this.text.substring(this.pos, this.pos + 4), 16));
          this.pos += 4;
        } else out += String.fromCharCode(e);
        start = this.pos;
      }
    }
    this.fail("unterminated string");
    return "";
  }
}

/** Parses a JSON document; throws (an abort, exit code 255) on malformed input. */
export function parse(text: string): Json {
  return new Parser(text).value();
}

/** A JSON string literal for `s`. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += '\\"';
    else if (c == 92) out += "\\\\";
    else if (c == 10) out += "\\n";
    else if (c == 13) out += "\\r";
    else if (c == 9) out += "\\t";
    else if (c < 32) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** All of stdin as bytes. */
export function stdinBytes(): Uint8Array {
  const chunks: ArrayBuffer[] = [];
  let total = 0;
  while (true) {
    const buf = new ArrayBuffer(65536);
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
  return all;
}

/** All of stdin as a UTF-8 string. */
export function readStdin(): string {
  return String.UTF8.decode(stdinBytes().buffer);
}

/** The task envelope from stdin (task ABI v1). */
export function envelope(): Json {
  return parse(readStdin());
}
