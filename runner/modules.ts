/**
 * The runner's module cache: task modules by sha256, on disk (shared by restarts) and compiled
 * in memory. A module is fetched from the coordinator once, its hash verified, its imports
 * checked against the WASI preview1 allow-list, and only then compiled. The fetch names the run
 * that asked for the module: the coordinator serves it only for a run whose lease names it.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { watchGrows } from "../core/wasm/grow-watch.js";
import { BadModule, checkTaskModule, limitMemory } from "../core/wasm/inspect.js";
import type { Failure } from "../core/protocol/messages.js";
import { sha256Hex as hash } from "./blobs.js";

/** A module that cannot be run; carries the failure to report. */
export class ModuleError extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/** Fetches a module's bytes for a task of `run`. */
export type FetchModule = (sha256: string, run: string) => Promise<Uint8Array>;

export class ModuleCache {
  private readonly compiled = new Map<string, Promise<WebAssembly.Module>>();

  constructor(
    private readonly dir: string,
    private readonly fetchModule: FetchModule,
    private readonly maxCompiled = 64,
  ) {}

  /**
   * The module for `sha256`, compiled with its memory capped at `memoryBytes`; rejects with
   * ModuleError when it cannot be had or run. `run` is the run whose task needs it, for the
   * fetch (a coordinator refuses a fetch naming no run that leases it). A module on disk or
   * compiled already serves every run.
   */
  get(sha256: string, memoryBytes: number, run: string): Promise<WebAssembly.Module> {
    const key = `${sha256}/${memoryBytes}`;
    let entry = this.compiled.get(key);
    if (entry) {
      this.compiled.delete(key);
      this.compiled.set(key, entry); // most recently used last
      return entry;
    }
    entry = this.load(sha256, memoryBytes, run);
    entry.catch(() => this.compiled.delete(key));
    this.compiled.set(key, entry);
    while (this.compiled.size > this.maxCompiled) this.compiled.delete(this.compiled.keys().next().value!);
    return entry;
  }

  private async load(sha256: string, memoryBytes: number, run: string): Promise<WebAssembly.Module> {
    const file = join(this.dir, `${sha256}.wasm`);
    let bytes = await readFile(file).catch(() => undefined);
    if (!bytes || hash(bytes) !== sha256) {
      let fetched: Uint8Array;
      try {
        fetched = await this.fetchModule(sha256, run);
      } catch (e) {
        throw new ModuleError({
          kind: "lost",
          message: `could not fetch module ${sha256}: ${(e as Error).message}`,
          retryable: true,
        });
      }
      if (hash(fetched) !== sha256) {
        throw new ModuleError({
          kind: "bad_module",
          message: `module ${sha256} arrived with a different sha256`,
          retryable: true,
        });
      }
      bytes = Buffer.from(fetched);
      await mkdir(this.dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    }
    const problems = checkTaskModule(bytes);
    if (problems.length > 0)
      throw new ModuleError({ kind: "bad_module", message: problems.join("; "), retryable: false });
    try {
      const limited = limitMemory(bytes, memoryBytes);
      return await WebAssembly.compile((watchGrows(limited) ?? limited) as Uint8Array<ArrayBuffer>);
    } catch (e) {
      if (e instanceof BadModule) throw new ModuleError({ kind: "memory", message: e.message, retryable: false });
      throw new ModuleError({
        kind: "bad_module",
        message: `module does not compile: ${(e as Error).message}`,
        retryable: false,
      });
    }
  }
}
