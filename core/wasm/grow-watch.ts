/**
 * Makes a module say when a `memory.grow` was refused, so the runner knows a task failed at its
 * memory cap rather than guessing it from how close to the cap the memory ended. Beside the
 * memory-section rewrite that sets the cap (inspect.ts `limitMemory`), every `memory.grow` of
 * memory 0 becomes a call to one added function that grows and sets an added exported global,
 * `GROW_REFUSED`, to whether that grow was refused (-1): 1 while the module's last grow is one
 * that failed. The added function, type and global go at the end of their index spaces, so no
 * index the module uses moves; the module is validated first, so it cannot reach them itself. A
 * module this cannot read through (an instruction it does not know, 64-bit memory, imports other
 * than functions) or that is not valid is left as it is: `watchGrows` answers null. Used by the
 * runner (modules.ts) before compiling.
 */
import { BadModule, leb as uleb, Reader } from "./inspect.js";

/** The exported global that is 1 once a `memory.grow` was refused. */
export const GROW_REFUSED = "distro_grow_refused";

/** Section ids in the order a module must have them (tag and data count sit between others). */
const ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const rank = (id: number) => ORDER.indexOf(id);

interface Section {
  id: number;
  body: Uint8Array;
}

/** The module with its grows watched, or null when it cannot be (it then runs as it is). */
export function watchGrows(bytes: Uint8Array): Uint8Array | null {
  try {
    return rewrite(bytes);
  } catch (e) {
    if (e instanceof Unsupported || e instanceof BadModule) return null;
    throw e;
  }
}

class Unsupported extends Error {}

function rewrite(bytes: Uint8Array): Uint8Array | null {
  // An index past the module's own is invalid before the rewrite and would not be after it.
  if (!WebAssembly.validate(new Uint8Array(bytes))) return null;
  const sections = readSections(bytes);
  const find = (id: number) => sections.find((s) => s.id === id);
  const code = find(10);
  if (!code) return null;
  const memory = find(5);
  if (memory) {
    const r = new Cursor(memory.body);
    for (let n = r.u32(); n > 0; n--) {
      const flags = r.byte();
      if (flags & 4) throw new Unsupported("64-bit memory");
      r.u32();
      if (flags & 1) r.u32();
    }
  }
  let imported = 0;
  const imports = find(2);
  if (imports) {
    const r = new Cursor(imports.body);
    for (let n = r.u32(); n > 0; n--) {
      r.skip(r.u32());
      r.skip(r.u32());
      if (r.byte() !== 0) throw new Unsupported("an import other than a function");
      r.u32();
      imported++;
    }
  }
  const types = find(1);
  const typeCount = types ? countTypes(types.body) : 0;
  const funcs = find(3);
  const defined = funcs ? new Cursor(funcs.body).u32() : 0;
  const globals = find(6);
  const globalCount = globals ? new Cursor(globals.body).u32() : 0;

  if (exportsName(find(7)?.body, GROW_REFUSED)) throw new Unsupported(`the module exports ${GROW_REFUSED} itself`);
  const hook = imported + defined;
  const { body: newCode, grows } = rewriteCode(code.body, hook);
  if (grows === 0) return null;
  code.body = appendEntry(newCode, hookBody(globalCount));
  put(sections, 1, appendEntry(types?.body, [0x60, 1, 0x7f, 1, 0x7f]));
  put(sections, 3, appendEntry(funcs?.body, uleb(typeCount)));
  put(sections, 6, appendEntry(globals?.body, [0x7f, 0x01, 0x41, 0x00, 0x0b]));
  const name = new TextEncoder().encode(GROW_REFUSED);
  put(sections, 7, appendEntry(find(7)?.body, [...uleb(name.length), ...name, 0x03, ...uleb(globalCount)]));
  return writeModule(sections);
}

/**
 * (param i32) (result i32) (local i32): grow memory 0, set the global to whether that was
 * refused (-1), and return what grow gave.
 */
function hookBody(global: number): number[] {
  const code = [0x01, 0x01, 0x7f, 0x20, 0, 0x40, 0, 0x22, 1, 0x41, 0x7f, 0x46, 0x24, ...uleb(global), 0x20, 1, 0x0b];
  return [...uleb(code.length), ...code];
}

/** The bytes of `parts` in one array (no spreading: a module's sections run to megabytes). */
function concat(parts: readonly (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function countTypes(body: Uint8Array): number {
  const r = new Cursor(body);
  const n = r.u32();
  // Only plain function types: with GC's recursive groups the count is not the index space.
  for (let i = 0; i < n; i++) {
    if (r.byte() !== 0x60) throw new Unsupported("a type other than a function type");
    r.skipValTypes();
    r.skipValTypes();
  }
  return n;
}

/** The code section with each `memory.grow 0` a `call hook`, and how many it changed. */
function rewriteCode(body: Uint8Array, hook: number): { body: Uint8Array; grows: number } {
  const r = new Cursor(body);
  const count = r.u32();
  const out: (Uint8Array | number[])[] = [uleb(count)];
  const call = [0x10, ...uleb(hook)];
  let grows = 0;
  for (let f = 0; f < count; f++) {
    const size = r.u32();
    const end = r.pos + size;
    const fn: (Uint8Array | number[])[] = [];
    let copied = r.pos;
    for (let n = r.u32(); n > 0; n--) {
      r.u32();
      r.skipValType();
    }
    while (r.pos < end) {
      const at = r.pos;
      if (body[at] === 0x40 && body[at + 1] === 0x00) {
        fn.push(body.subarray(copied, at), call);
        r.pos = copied = at + 2;
        grows++;
      } else r.skipInstruction();
    }
    if (r.pos !== end) throw new Unsupported("a function body that does not end where it says");
    fn.push(body.subarray(copied, end));
    out.push(uleb(fn.reduce((n, p) => n + p.length, 0)));
    for (const part of fn) out.push(part);
  }
  return { body: concat(out), grows };
}

function exportsName(body: Uint8Array | undefined, name: string): boolean {
  if (!body) return false;
  const r = new Cursor(body);
  for (let n = r.u32(); n > 0; n--) {
    const len = r.u32();
    const at = r.pos;
    r.skip(len);
    if (new TextDecoder().decode(body.subarray(at, at + len)) === name) return true;
    r.byte();
    r.u32();
  }
  return false;
}

/** A vector section's body with one more entry (a new section's when there was none). */
function appendEntry(body: Uint8Array | undefined, entry: number[]): Uint8Array {
  if (!body) return Uint8Array.from([1, ...entry]);
  const r = new Cursor(body);
  const n = r.u32();
  return concat([uleb(n + 1), r.rest(), entry]);
}

/** Sets section `id`'s body, adding the section where the order puts it. */
function put(sections: Section[], id: number, body: Uint8Array): void {
  const known = sections.find((s) => s.id === id);
  if (known) {
    known.body = body;
    return;
  }
  const at = sections.findIndex((s) => s.id !== 0 && rank(s.id) > rank(id));
  sections.splice(at < 0 ? sections.length : at, 0, { id, body });
}

function readSections(bytes: Uint8Array): Section[] {
  const r = new Cursor(bytes);
  r.pos = 8;
  const out: Section[] = [];
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    if (r.pos + size > bytes.length) throw new BadModule(`section ${id} runs past the end of the module`);
    out.push({ id, body: bytes.subarray(r.pos, r.pos + size) });
    r.pos += size;
  }
  return out;
}

function writeModule(sections: Section[]): Uint8Array {
  const parts: (Uint8Array | number[])[] = [[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]];
  for (const { id, body } of sections) parts.push([id, ...uleb(body.length)], body);
  return concat(parts);
}

/** Reads instructions only as far as skipping them takes: opcodes and the immediates they carry. */
class Cursor extends Reader {
  skip(n: number): void {
    if (this.pos + n > this.bytes.length) throw new BadModule("unexpected end of module");
    this.pos += n;
  }

  rest(): Uint8Array {
    return this.bytes.subarray(this.pos);
  }

  u32(): number {
    return this.leb();
  }

  /** Skips a LEB128 number of any width, signed or not. */
  anyLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new BadModule("malformed LEB128 number");
  }

  skipValType(): void {
    const t = this.byte();
    if (t === 0x63 || t === 0x64) this.anyLeb(); // (ref null? heaptype)
  }

  skipValTypes(): void {
    for (let n = this.u32(); n > 0; n--) this.skipValType();
  }

  private blockType(): void {
    const b = this.bytes[this.pos];
    if (b === 0x40 || (b !== undefined && b >= 0x6f && b <= 0x7f)) this.pos++;
    else if (b === 0x63 || b === 0x64) this.skipValType();
    else this.anyLeb(); // a type index, as a signed 33-bit number
  }

  private memarg(): void {
    const align = this.u32();
    if (align & 0x40) this.u32(); // a memory index (multi-memory)
    this.anyLeb();
  }

  skipInstruction(): void {
    const op = this.byte();
    if (op === 0x02 || op === 0x03 || op === 0x04 || op === 0x06) return this.blockType();
    if ([0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x14, 0x15, 0x18, 0xd2, 0xd4, 0xd6].includes(op))
      return this.anyLeb();
    if (op >= 0x20 && op <= 0x26) return this.anyLeb();
    if (op === 0x11 || op === 0x13) return (this.anyLeb(), this.anyLeb());
    if (op === 0x0e) {
      for (let n = this.u32(); n > 0; n--) this.anyLeb();
      return this.anyLeb();
    }
    if (op === 0x1c) return this.skipValTypes();
    if (op >= 0x28 && op <= 0x3e) return this.memarg();
    if (op === 0x3f || op === 0x40 || op === 0x41 || op === 0x42 || op === 0xd0) return this.anyLeb();
    if (op === 0x43) return this.skip(4);
    if (op === 0x44) return this.skip(8);
    if (op <= 0x01 || op === 0x05 || op === 0x0b || op === 0x0f || op === 0x19 || op === 0x1a || op === 0x1b) return;
    if ((op >= 0x45 && op <= 0xc4) || op === 0xd1 || op === 0xd3 || op === 0xd5) return;
    if (op === 0xfc) return this.misc();
    if (op === 0xfd) return this.simd();
    if (op === 0xfe) return this.atomic();
    throw new Unsupported(`opcode 0x${op.toString(16)}`);
  }

  private misc(): void {
    const sub = this.u32();
    if (sub <= 7) return;
    const immediates: Record<number, number> = { 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1 };
    const n = immediates[sub];
    if (n === undefined) throw new Unsupported(`opcode 0xfc ${sub}`);
    for (let i = 0; i < n; i++) this.anyLeb();
  }

  private simd(): void {
    const sub = this.u32();
    if (sub <= 11 || sub === 92 || sub === 93) return this.memarg();
    if (sub === 12 || sub === 13) return this.skip(16);
    if (sub >= 21 && sub <= 34) return this.skip(1);
    if (sub >= 84 && sub <= 91) return (this.memarg(), this.skip(1));
  }

  private atomic(): void {
    const sub = this.u32();
    if (sub === 0x03) return this.skip(1);
    if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) return this.memarg();
    throw new Unsupported(`opcode 0xfe ${sub}`);
  }
}
