/**
 * A WASI preview1 implementation in JavaScript for task modules, with stdin, stdout and stderr
 * kept in memory. It is the sandbox of the task ABI: no preopened directories (so no file
 * system), no sockets, args and env only from the assignment, clocks and random bytes. Used
 * inside a worker thread by thread.ts. `node:wasi` is not used: on Node 20 it crashes the
 * process after `memory.grow` (see docs/decisions.md).
 */
import { randomFillSync } from "node:crypto";
import { WASI_PREVIEW1 } from "../../core/wasm/inspect.js";

const ERRNO = { success: 0, badf: 8, inval: 28, nosys: 52, spipe: 70, notcapable: 76 } as const;
const FILETYPE_CHARACTER_DEVICE = 2;

/** Thrown by `proc_exit` to unwind out of the module. */
class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

/** Thrown when the task writes more stdout than it may. */
export class OutputLimit extends Error {}

export interface WasiOptions {
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  maxOutputBytes: number;
  /** How much stderr to keep (the tail). */
  stderrTailBytes?: number;
  /**
   * Given every byte of stderr as it is written, up to `stderrKeepBytes` (the rest is only
   * counted: `stderrDropped`). The bytes are a view of the module's memory: copy to keep them.
   */
  onStderr?: (bytes: Uint8Array) => void;
  /** Stderr handed to `onStderr` at most (default none). */
  stderrKeepBytes?: number;
  /** Called on every clock read: a task that computes between writes still reads the time now and then. */
  onClock?: () => void;
}

export class Wasi {
  private memory: WebAssembly.Memory | undefined;
  private stdinPos = 0;
  private readonly stdout: Uint8Array[] = [];
  private stdoutBytes = 0;
  private stderr: Uint8Array = new Uint8Array(0);
  private stderrBytes = 0;
  private readonly argBytes: Uint8Array[];
  private readonly envBytes: Uint8Array[];

  constructor(private readonly options: WasiOptions) {
    const enc = new TextEncoder();
    this.argBytes = options.args.map((a) => enc.encode(`${a}\0`));
    this.envBytes = Object.entries(options.env).map(([k, v]) => enc.encode(`${k}=${v}\0`));
  }

  /** Runs the command's `_start`; returns its exit code. Traps propagate as exceptions. */
  start(instance: WebAssembly.Instance): number {
    const { memory, _start } = instance.exports as { memory?: WebAssembly.Memory; _start?: () => void };
    if (!(memory instanceof WebAssembly.Memory) || typeof _start !== "function") {
      throw new TypeError("the module must export `memory` and `_start`");
    }
    this.memory = memory;
    try {
      _start();
      return 0;
    } catch (e) {
      if (e instanceof ProcExit) return e.code;
      throw e;
    }
  }

  /** All of stdout, in a buffer of its own (safe to transfer to another thread). */
  output(): Uint8Array {
    const out = new Uint8Array(this.stdoutBytes);
    let at = 0;
    for (const chunk of this.stdout) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  stderrTail(): string {
    return new TextDecoder().decode(this.stderr);
  }

  /** Bytes of stderr past `stderrKeepBytes`, never handed to `onStderr`. */
  get stderrDropped(): number {
    return Math.max(0, this.stderrBytes - (this.options.stderrKeepBytes ?? 0));
  }

  /** The import object: every preview1 function, the unsupported ones answering an errno. */
  imports(): WebAssembly.Imports {
    const implemented: Record<string, (...args: never[]) => number> = {
      args_sizes_get: (countPtr: number, sizePtr: number) => this.sizes(this.argBytes, countPtr, sizePtr),
      args_get: (ptrs: number, buf: number) => this.strings(this.argBytes, ptrs, buf),
      environ_sizes_get: (countPtr: number, sizePtr: number) => this.sizes(this.envBytes, countPtr, sizePtr),
      environ_get: (ptrs: number, buf: number) => this.strings(this.envBytes, ptrs, buf),
      clock_res_get: (_id: number, out: number) => {
        this.view().setBigUint64(out, 1000n, true);
        return ERRNO.success;
      },
      clock_time_get: (id: number, _precision: bigint, out: number) => {
        this.options.onClock?.();
        const ns = id === 0 ? BigInt(Date.now()) * 1_000_000n : process.hrtime.bigint();
        this.view().setBigUint64(out, ns, true);
        return ERRNO.success;
      },
      fd_write: (fd: number, iovs: number, count: number, written: number) => this.write(fd, iovs, count, written),
      fd_read: (fd: number, iovs: number, count: number, read: number) => this.read(fd, iovs, count, read),
      fd_close: (fd: number) => (fd <= 2 ? ERRNO.success : ERRNO.badf),
      fd_fdstat_get: (fd: number, out: number) => {
        if (fd > 2) return ERRNO.badf;
        const v = this.view();
        v.setUint8(out, FILETYPE_CHARACTER_DEVICE);
        v.setUint16(out + 2, 0, true);
        v.setBigUint64(out + 8, fd === 0 ? 0x2n : 0x40n, true); // fd_read, or fd_write
        v.setBigUint64(out + 16, 0n, true);
        return ERRNO.success;
      },
      fd_filestat_get: (fd: number, out: number) => {
        if (fd > 2) return ERRNO.badf;
        new Uint8Array(this.memory!.buffer, out, 64).fill(0);
        this.view().setUint8(out + 16, FILETYPE_CHARACTER_DEVICE);
        return ERRNO.success;
      },
      fd_seek: (fd: number) => (fd <= 2 ? ERRNO.spipe : ERRNO.badf),
      fd_tell: (fd: number) => (fd <= 2 ? ERRNO.spipe : ERRNO.badf),
      fd_prestat_get: () => ERRNO.badf,
      fd_prestat_dir_name: () => ERRNO.badf,
      path_open: () => ERRNO.notcapable,
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
      random_get: (buf: number, len: number) => {
        randomFillSync(new Uint8Array(this.memory!.buffer, buf, len));
        return ERRNO.success;
      },
      sched_yield: () => ERRNO.success,
    };
    const wasi: Record<string, (...args: never[]) => number> = {};
    for (const name of WASI_PREVIEW1) {
      wasi[name] =
        implemented[name] ??
        (name.startsWith("fd_")
          ? () => ERRNO.badf
          : name.startsWith("path_") || name.startsWith("sock_")
            ? () => ERRNO.notcapable
            : () => ERRNO.nosys);
    }
    return { wasi_snapshot_preview1: wasi };
  }

  private view(): DataView {
    return new DataView(this.memory!.buffer);
  }

  private sizes(list: Uint8Array[], countPtr: number, sizePtr: number): number {
    const v = this.view();
    v.setUint32(countPtr, list.length, true);
    v.setUint32(
      sizePtr,
      list.reduce((n, b) => n + b.length, 0),
      true,
    );
    return ERRNO.success;
  }

  private strings(list: Uint8Array[], ptrs: number, buf: number): number {
    const v = this.view();
    const mem = new Uint8Array(this.memory!.buffer);
    list.forEach((bytes, i) => {
      v.setUint32(ptrs + 4 * i, buf, true);
      mem.set(bytes, buf);
      buf += bytes.length;
    });
    return ERRNO.success;
  }

  private write(fd: number, iovs: number, count: number, writtenPtr: number): number {
    if (fd !== 1 && fd !== 2) return ERRNO.badf;
    const v = this.view();
    let written = 0;
    for (let i = 0; i < count; i++) {
      const ptr = v.getUint32(iovs + 8 * i, true);
      const len = v.getUint32(iovs + 8 * i + 4, true);
      const chunk = new Uint8Array(this.memory!.buffer, ptr, len);
      if (fd === 1) {
        if (this.stdoutBytes + len > this.options.maxOutputBytes) {
          throw new OutputLimit(`output exceeds the limit of ${this.options.maxOutputBytes} bytes`);
        }
        this.stdout.push(chunk.slice());
        this.stdoutBytes += len;
      } else {
        this.appendStderr(chunk);
      }
      written += len;
    }
    v.setUint32(writtenPtr, written, true);
    return ERRNO.success;
  }

  private appendStderr(chunk: Uint8Array): void {
    const room = (this.options.stderrKeepBytes ?? 0) - this.stderrBytes;
    this.stderrBytes += chunk.length;
    if (room > 0 && chunk.length > 0) this.options.onStderr?.(chunk.subarray(0, room));
    const keep = this.options.stderrTailBytes ?? 4096;
    const joined = new Uint8Array(this.stderr.length + chunk.length);
    joined.set(this.stderr);
    joined.set(chunk, this.stderr.length);
    this.stderr = joined.length > keep ? joined.slice(joined.length - keep) : joined;
  }

  private read(fd: number, iovs: number, count: number, readPtr: number): number {
    if (fd !== 0) return ERRNO.badf;
    const v = this.view();
    const mem = new Uint8Array(this.memory!.buffer);
    let read = 0;
    for (let i = 0; i < count && this.stdinPos < this.options.stdin.length; i++) {
      const ptr = v.getUint32(iovs + 8 * i, true);
      const len = v.getUint32(iovs + 8 * i + 4, true);
      const chunk = this.options.stdin.subarray(this.stdinPos, this.stdinPos + len);
      mem.set(chunk, ptr);
      this.stdinPos += chunk.length;
      read += chunk.length;
    }
    v.setUint32(readPtr, read, true);
    return ERRNO.success;
  }
}
