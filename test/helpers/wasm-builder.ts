/**
 * Assembles tiny, valid WebAssembly binaries in memory, for tests that run where no file
 * system is at hand (workerd): a `_start` that returns at once, chosen imports and exports.
 */

export interface ModuleShape {
  /** Function imports as [module, name]; each has type () -> (). */
  imports?: [string, string][];
  exportStart?: boolean;
  exportMemory?: boolean;
}

const enc = new TextEncoder();

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const name = (s: string) => [...leb(enc.encode(s).length), ...enc.encode(s)];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];

export function wasmModule({
  imports = [["wasi_snapshot_preview1", "fd_write"]],
  exportStart = true,
  exportMemory = true,
}: ModuleShape = {}): Uint8Array<ArrayBuffer> {
  const exports: number[][] = [];
  if (exportStart) exports.push([...name("_start"), 0x00, ...leb(imports.length)]);
  if (exportMemory) exports.push([...name("memory"), 0x02, 0x00]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([[0x60, 0x00, 0x00]])),
    ...section(2, vec(imports.map(([m, n]) => [...name(m), ...name(n), 0x00, 0x00]))),
    ...section(3, vec([[0x00]])),
    ...section(5, vec([[0x00, 0x01]])),
    ...section(7, vec(exports)),
    ...section(10, vec([[0x02, 0x00, 0x0b]])),
  ];
  return new Uint8Array(bytes);
}
