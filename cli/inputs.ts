/**
 * `distro submit --input NAME=PATH [--chunk SIZE]`: a file or a folder made into a run's input.
 * Each file is stored as content-addressed blobs (a file over the blob limit as parts); `--chunk`
 * cuts a text file that a `map: { files }` goes over on line boundaries into a folder of chunks. Only blobs the coordinator does not
 * have are uploaded (a `HEAD` first), each streamed with a progress display.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, extname, join, relative, sep } from "node:path";
import type { FileRef, RunInput } from "../core/dag/plan.js";
import { formatSize } from "../core/units.js";
import type { Client } from "./client.js";
import { UsageError } from "./command.js";
import { UploadProgress, type ProgressSink } from "./progress.js";

/** The largest blob the coordinator keeps; a larger file goes as parts of this size. */
const BLOB_BYTES = 16 * 1024 * 1024;
/** The largest file of an input (a task takes it whole); the largest file `--chunk` cuts. */
const FILE_BYTES = 64 * 1024 * 1024;
const CHUNKED_FILE_BYTES = 1024 * 1024 * 1024;

/** One blob to store: where its bytes are, and their hash. */
interface Blob {
  sha256: string;
  size: number;
  read(): Uint8Array;
}

/** `NAME=PATH` → [name, path]. */
export function parseInputs(list: string[]): [string, string][] {
  return list.map((entry) => {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)=(.+)$/s.exec(entry);
    if (!m) throw new UsageError(`--input: expected NAME=PATH, got "${entry}"`);
    return [m[1]!, m[2]!];
  });
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A file's parts of at most BLOB_BYTES, read when uploaded, and its ref. */
function fileParts(path: string, name: string): { ref: FileRef; blobs: Blob[] } {
  const size = statSync(path).size;
  const whole = createHash("sha256");
  const blobs: Blob[] = [];
  const fd = openSync(path, "r");
  try {
    for (let at = 0; at < size || (size === 0 && blobs.length === 0); at += BLOB_BYTES) {
      const length = Math.min(BLOB_BYTES, size - at);
      const read = () => {
        const buffer = new Uint8Array(length);
        const fd = openSync(path, "r");
        try {
          readSync(fd, buffer, 0, length, at);
        } finally {
          closeSync(fd);
        }
        return buffer;
      };
      const bytes = new Uint8Array(length);
      readSync(fd, bytes, 0, length, at);
      whole.update(bytes);
      blobs.push({ sha256: sha256(bytes), size: length, read });
    }
  } finally {
    closeSync(fd);
  }
  const ref: FileRef = { name, size, sha256: whole.digest("hex") };
  if (blobs.length > 1) ref.parts = blobs.map(({ sha256, size }) => ({ sha256, size }));
  return { ref, blobs };
}

/** Splits `bytes` after newlines into pieces of at most `limit` bytes (a longer line is a piece of its own). */
export function splitLines(bytes: Uint8Array, limit: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + limit, bytes.length);
    if (end < bytes.length) {
      const newline = bytes.lastIndexOf(0x0a, end - 1);
      if (newline >= start) end = newline + 1;
      else {
        const next = bytes.indexOf(0x0a, end);
        end = next < 0 ? bytes.length : next + 1;
      }
    }
    pieces.push(bytes.subarray(start, end));
    start = end;
  }
  return pieces;
}

/**
 * Every regular file under `dir`, by its path relative to it (with `/`), sorted. A link to a
 * folder is not followed (no loops); a broken link or anything but a file or folder is an error.
 */
function walk(name: string, dir: string): { path: string; name: string }[] {
  const out: { path: string; name: string }[] = [];
  const visit = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (!(entry.isSymbolicLink() && statOf(name, path).isDirectory())) {
        if (!statOf(name, path).isFile()) throw new UsageError(`--input ${name}: ${path} is not a regular file`);
        out.push({ path, name: relative(dir, path).split(sep).join("/") });
      }
    }
  };
  visit(dir);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function statOf(name: string, path: string) {
  try {
    return statSync(path);
  } catch (e) {
    throw new UsageError(`--input ${name}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The input `path` gives: a folder, a file, or with `chunk` a file cut into a folder of chunks. */
function readInput(name: string, path: string, chunk: number | undefined): { input: RunInput; blobs: Blob[] } {
  const stat = statOf(name, path);
  const big = (size: number, limit: number) =>
    new UsageError(`--input ${name}: ${path} is ${formatSize(size)}; a file input is at most ${formatSize(limit)}`);
  if (stat.isDirectory()) {
    const found = walk(name, path);
    if (found.length === 0) throw new UsageError(`--input ${name}: ${path} holds no files`);
    const files = found.map((f) => {
      const size = statOf(name, f.path).size;
      if (size > FILE_BYTES) throw big(size, FILE_BYTES);
      return fileParts(f.path, f.name);
    });
    return { input: { files: files.map((f) => f.ref) }, blobs: files.flatMap((f) => f.blobs) };
  }
  if (!stat.isFile()) throw new UsageError(`--input ${name}: ${path} is not a regular file`);
  if (chunk === undefined) {
    if (stat.size > FILE_BYTES)
      throw new UsageError(
        `--input ${name}: ${path} is ${formatSize(stat.size)}; a file input is at most ${formatSize(FILE_BYTES)} (a task takes it whole): cut it with --chunk, or give a folder`,
      );
    const file = fileParts(path, basename(path));
    return { input: { file: file.ref }, blobs: file.blobs };
  }
  if (stat.size > CHUNKED_FILE_BYTES) throw big(stat.size, CHUNKED_FILE_BYTES);
  const ext = extname(path);
  const stem = basename(path, ext);
  const pieces = splitLines(readFileSync(path), chunk);
  if (pieces.length === 0) pieces.push(new Uint8Array(0));
  const digits = Math.max(5, String(pieces.length - 1).length);
  const refs: FileRef[] = [];
  const blobs: Blob[] = [];
  pieces.forEach((bytes, i) => {
    if (bytes.length > BLOB_BYTES)
      throw new UsageError(
        `--input ${name}: a line of ${path} is over ${formatSize(BLOB_BYTES)}, more than one chunk may hold`,
      );
    const hash = sha256(bytes);
    refs.push({ name: `${stem}-${String(i).padStart(digits, "0")}${ext}`, size: bytes.length, sha256: hash });
    blobs.push({ sha256: hash, size: bytes.length, read: () => bytes });
  });
  return { input: { files: refs }, blobs };
}

/**
 * The inputs of `list` (`[name, path]`), their blobs in the coordinator: each checked with a
 * `HEAD` and uploaded when missing, with progress on `sink`.
 */
export async function uploadInputs(
  client: Client,
  list: [string, string][],
  chunk: { bytes: number; inputs: ReadonlySet<string> } | undefined,
  sink: ProgressSink & { quiet: boolean },
): Promise<Record<string, RunInput>> {
  const inputs: Record<string, RunInput> = {};
  const blobs = new Map<string, Blob>();
  for (const [name, path] of list) {
    if (Object.hasOwn(inputs, name)) throw new UsageError(`--input ${name} is given twice`);
    const read = readInput(name, path, chunk?.inputs.has(name) ? chunk.bytes : undefined);
    inputs[name] = read.input;
    for (const blob of read.blobs) blobs.set(blob.sha256, blob);
  }
  const missing: Blob[] = [];
  const all = [...blobs.values()];
  for (let i = 0; i < all.length; i += 16) {
    const batch = all.slice(i, i + 16);
    const has = await Promise.all(batch.map((b) => client.hasBlob(b.sha256)));
    batch.forEach((b, j) => {
      if (!has[j]) missing.push(b);
    });
  }
  const total = missing.reduce((n, b) => n + b.size, 0);
  const progress = new UploadProgress(sink, missing.length, total);
  for (const blob of missing) {
    await client.putBlob(blob.sha256, blob.read(), (sent) => progress.sent(sent));
    progress.done(blob.size);
  }
  progress.end(all.length - missing.length);
  return inputs;
}
