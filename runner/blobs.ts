/**
 * The runner's side of blob storage: fetching the module and input blobs a task needs, and
 * uploading an output too large to travel inline. All by sha256, all verified, all with the
 * device's credential; a fetch names the run whose lease lists the blob (`?run=`), since the
 * coordinator serves a module or input only to a runner working on a run that uses it.
 */
import { createHash } from "node:crypto";
import type { Assignment, BlobRef, Failure } from "../core/protocol/messages.js";
import { fileBlobs, outputValue } from "../core/abi.js";
import type { FileRef } from "../core/dag/plan.js";

export const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** HTTP to the coordinator with the device's credential (auth.ts), as it is at each request. */
export class CoordinatorHttp {
  constructor(
    private readonly coordinator: URL,
    private readonly auth: { credential(): string },
  ) {}

  async get(path: string): Promise<Uint8Array> {
    const headers = { Authorization: `Bearer ${this.auth.credential()}` };
    const res = await fetch(new URL(path, this.coordinator), { headers });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  async put(path: string, body: Uint8Array): Promise<void> {
    const headers = { Authorization: `Bearer ${this.auth.credential()}`, "Content-Type": "application/octet-stream" };
    const res = await fetch(new URL(path, this.coordinator), {
      method: "PUT",
      body: new Blob([body as Uint8Array<ArrayBuffer>]),
      headers,
    });
    if (!res.ok) throw new Error(`PUT ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  }

  /** A blob by hash for a task of `run`, checked against the hash. */
  async blob(sha256: string, run: string): Promise<Uint8Array> {
    const bytes = await this.get(`/api/blobs/sha256:${sha256}?run=${encodeURIComponent(run)}`);
    if (sha256Hex(bytes) !== sha256) throw new Error(`blob sha256:${sha256} arrived with a different hash`);
    return bytes;
  }

  /** The envelope of a task attempt too large for its frame, checked against its announced size. */
  async envelope(task: Assignment, run: string): Promise<string> {
    const query = new URLSearchParams({ run, task: task.task, attempt: String(task.attempt) });
    const bytes = await this.get(`/api/runners/envelope?${query}`);
    if (bytes.length !== task.stdinBytes)
      throw new Error(`the envelope of ${task.task} arrived as ${bytes.length} bytes, not ${task.stdinBytes}`);
    return new TextDecoder().decode(bytes);
  }

  /** A module by hash for a task of `run` (the module cache checks the hash). */
  module(sha256: string, run: string): Promise<Uint8Array> {
    return this.get(`/api/modules/sha256:${sha256}?run=${encodeURIComponent(run)}`);
  }

  /**
   * Uploads an output of a task of `run` (the coordinator takes uploads only from a runner with a
   * lease there) and returns its reference (the coordinator decides its type from the bytes).
   */
  async upload(bytes: Uint8Array, run: string): Promise<BlobRef> {
    const sha256 = sha256Hex(bytes);
    await this.put(`/api/blobs/sha256:${sha256}?run=${encodeURIComponent(run)}`, bytes);
    return { sha256, size: bytes.length };
  }
}

/**
 * The task's stdin with every {"$ref": sha256} input replaced by that blob's value and every
 * {"$file": {name, size, sha256, parts?}} by the file, {name, size, sha256, "$bytes"} (task
 * ABI); `http` fetches for the task's run. A file is checked against its own hash, whole.
 */
export async function resolveInputs(
  task: Assignment,
  http: { blob(sha256: string): Promise<Uint8Array>; envelope(task: Assignment): Promise<string> },
): Promise<string> {
  const stdin = task.stdinBytes === undefined ? task.stdin : await http.envelope(task);
  if (task.refs.length === 0) return stdin;
  const blobs = new Map(await Promise.all(task.refs.map(async (sha) => [sha, await http.blob(sha)] as const)));
  const fetched = (sha: string) => {
    const bytes = blobs.get(sha);
    if (!bytes) throw new Error(`the assignment refers to blob sha256:${sha} without listing it`);
    return bytes;
  };
  const resolve = (v: unknown): unknown => {
    if (!v || typeof v !== "object" || Array.isArray(v) || Object.keys(v).length !== 1) return v;
    if ("$ref" in v && typeof v.$ref === "string" && blobs.has(v.$ref)) return outputValue(blobs.get(v.$ref)!);
    return v;
  };
  // A file marker only where the coordinator put one (`files`): a task's output that looks like
  // one is the output, as it is.
  const files = new Set(task.files ?? []);
  const envelope = JSON.parse(stdin) as { inputs: Record<string, unknown> };
  for (const [name, value] of Object.entries(envelope.inputs)) {
    if (files.has(name)) envelope.inputs[name] = file((value as { $file: FileRef }).$file, fetched);
    else envelope.inputs[name] = Array.isArray(value) ? value.map(resolve) : resolve(value);
  }
  return JSON.stringify(envelope);
}

/** The task's inputs cannot be made from what the run was given: the submission's fault, not retried. */
export class InputError extends Error {
  readonly failure: Failure;
  constructor(message: string) {
    super(message);
    this.failure = { kind: "input", message, retryable: false };
  }
}

/** A file of a run's input as a task sees it, from its blob or its parts, checked whole. */
function file(ref: FileRef, fetched: (sha: string) => Uint8Array): unknown {
  const parts = fileBlobs(ref).map(fetched);
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  // Each blob was checked against its own hash; the whole is as the submission declared it, or not.
  if (bytes.length !== ref.size || sha256Hex(bytes) !== ref.sha256)
    throw new InputError(
      `input file ${ref.name}: its parts make ${bytes.length} bytes that do not hash to the sha256:${ref.sha256} it was submitted with`,
    );
  return { name: ref.name, size: ref.size, sha256: ref.sha256, $bytes: Buffer.from(bytes).toString("base64") };
}
