/**
 * Reads a WebAssembly binary's header, imports and exports without compiling it (workerd
 * forbids compiling modules at run time), and checks it against the task ABI: a WASI preview1
 * command that imports nothing outside the preview1 allow-list. Used by `PUT /api/modules` and
 * by the runner before it runs a module.
 */

/** Every function of `wasi_snapshot_preview1`. The runner's shim gives the file and socket calls no capabilities. */
export const WASI_PREVIEW1 = new Set([
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_advise",
  "fd_allocate",
  "fd_close",
  "fd_datasync",
  "fd_fdstat_get",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_read",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "fd_write",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_exit",
  "proc_raise",
  "sched_yield",
  "random_get",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
]);

const KINDS = ["function", "table", "memory", "global", "tag"] as const;
type ExternKind = (typeof KINDS)[number];

export interface ModuleInfo {
  imports: { module: string; name: string; kind: ExternKind }[];
  exports: { name: string; kind: ExternKind }[];
}

export class BadModule extends Error {}

/** Parses the import and export sections; throws BadModule on bytes that are not a wasm binary. */
export function inspectModule(bytes: Uint8Array): ModuleInfo {
  const r = new Reader(bytes);
  if (bytes.length < 8 || r.u32le() !== 0x6d736100) throw new BadModule("not a WebAssembly module (bad magic number)");
  const version = r.u32le();
  if (version !== 1) throw new BadModule(`unsupported WebAssembly binary version ${version}`);
  const info: ModuleInfo = { imports: [], exports: [] };
  while (!r.done()) {
    const id = r.byte();
    const size = r.leb();
    const end = r.pos + size;
    if (end > bytes.length) throw new BadModule(`section ${id} runs past the end of the module`);
    if (id === 2) {
      for (let n = r.leb(); n > 0; n--) {
        const module = r.name();
        const name = r.name();
        const kind = r.kind();
        r.skipImportDesc(kind);
        info.imports.push({ module, name, kind });
      }
    } else if (id === 7) {
      for (let n = r.leb(); n > 0; n--) {
        const name = r.name();
        const kind = r.kind();
        r.leb();
        info.exports.push({ name, kind });
      }
    }
    r.pos = end;
  }
  return info;
}

/** Problems that make a module unfit to run as a task (empty when it is fit). */
export function checkTaskModule(bytes: Uint8Array): string[] {
  let info: ModuleInfo;
  try {
    info = inspectModule(bytes);
  } catch (e) {
    return [e instanceof BadModule ? e.message : `unreadable module: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  for (const imp of info.imports) {
    if (imp.module !== "wasi_snapshot_preview1") {
      problems.push(
        `import "${imp.module}"."${imp.name}" is outside WASI preview1; tasks may import only wasi_snapshot_preview1`,
      );
    } else if (imp.kind !== "function" || !WASI_PREVIEW1.has(imp.name)) {
      problems.push(`import "${imp.module}"."${imp.name}" is not a WASI preview1 function`);
    }
  }
  if (!info.exports.some((e) => e.name === "_start" && e.kind === "function"))
    problems.push("the module does not export a `_start` function (a WASI command)");
  if (!info.exports.some((e) => e.name === "memory" && e.kind === "memory"))
    problems.push("the module does not export its `memory`");
  return problems;
}

const PAGE = 65536;

/** `n` as an unsigned LEB128 number. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/**
 * The module with its memory capped at `maxBytes`: the memory section's maximum becomes the
 * smaller of the module's own and the cap, so `memory.grow` past it fails inside the module
 * (the only cap that holds for WebAssembly memory in Node). Throws BadModule when the module
 * needs more than the cap just to start.
 */
export function limitMemory(bytes: Uint8Array, maxBytes: number): Uint8Array {
  const cap = Math.floor(maxBytes / PAGE);
  const r = new Reader(bytes);
  r.pos = 8;
  while (!r.done()) {
    const start = r.pos;
    const id = r.byte();
    const size = r.leb();
    const bodyStart = r.pos;
    const end = bodyStart + size;
    if (id !== 5) {
      r.pos = end;
      continue;
    }
    const count = r.leb();
    const memories: number[] = [...leb(count)];
    for (let i = 0; i < count; i++) {
      const flags = r.byte();
      if (flags & 2) throw new BadModule("shared memories are not supported");
      const min = r.leb();
      const max = flags & 1 ? r.leb() : Infinity;
      if (min > cap)
        throw new BadModule(`the module needs ${min * PAGE} bytes of memory to start; its limit is ${cap * PAGE}`);
      memories.push(0x01, ...leb(min), ...leb(Math.min(max, cap)));
    }
    const section = [5, ...leb(memories.length), ...memories];
    const out = new Uint8Array(start + section.length + (bytes.length - end));
    out.set(bytes.subarray(0, start));
    out.set(section, start);
    out.set(bytes.subarray(end), start + section.length);
    return out;
  }
  return bytes;
}

/** Reads a module's bytes: bytes, LEB128 numbers, names (grow-watch.ts reads code with it too). */
export class Reader {
  pos = 0;
  constructor(protected readonly bytes: Uint8Array) {}
  done(): boolean {
    return this.pos >= this.bytes.length;
  }
  byte(): number {
    if (this.pos >= this.bytes.length) throw new BadModule("unexpected end of module");
    return this.bytes[this.pos++]!;
  }
  u32le(): number {
    let v = 0;
    for (let i = 0; i < 4; i++) v |= this.byte() << (8 * i);
    return v >>> 0;
  }
  leb(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new BadModule("malformed LEB128 number");
  }
  name(): string {
    const len = this.leb();
    if (this.pos + len > this.bytes.length) throw new BadModule("a name runs past the end of the module");
    const s = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
  kind(): ExternKind {
    const k = KINDS[this.byte()];
    if (!k) throw new BadModule("unknown import or export kind");
    return k;
  }
  limits(): void {
    const flags = this.byte();
    this.leb();
    if (flags & 1) this.leb();
  }
  skipImportDesc(kind: ExternKind): void {
    if (kind === "function") this.leb();
    else if (kind === "table") {
      this.byte();
      this.limits();
    } else if (kind === "memory") this.limits();
    else if (kind === "global") {
      this.byte();
      this.byte();
    } else {
      this.byte();
      this.leb();
    }
  }
}
