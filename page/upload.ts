/**
 * Uploads from the page with progress: a module (PUT /api/modules/:name) or the blobs of a run's
 * input files (PUT /api/blobs/sha256:<hex>, a file over 16 MiB as parts), with XMLHttpRequest,
 * which reports the bytes sent as fetch does not. Files are hashed with Web Crypto, which a
 * browser offers only in a secure context (https, or localhost).
 */
import type { ErrorBody } from "../core/api.js";
import type { FileRef } from "../core/dag/plan.js";
import { ApiError, token, Unauthorized } from "./lib.js";

/** The largest blob the coordinator keeps; a larger file goes as parts of this size. */
const BLOB_BYTES = 16 * 1024 * 1024;
/** The largest file of an input (a task takes it whole). */
const FILE_BYTES = 64 * 1024 * 1024;

/** `body` PUT to `path`, `sent(bytes)` told as it goes; the JSON answer, or an ApiError. */
export function put<T>(path: string, body: Blob, sent: (bytes: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.upload.onprogress = (e) => sent(e.loaded);
    xhr.onerror = () => reject(new Error(`the upload to ${path} failed (the connection dropped)`));
    xhr.onload = () => {
      let answer: unknown = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: the status says what happened
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(answer as T);
      if (xhr.status === 401) return reject(new Unauthorized("the token was not accepted"));
      const error = (answer ?? {}) as Partial<ErrorBody>;
      reject(new ApiError(error.error ?? `HTTP ${xhr.status}`, xhr.status, error.problems ?? []));
    };
    xhr.send(body);
  });
}

/** Whether the coordinator has the blob (a HEAD, as `distro submit` asks). */
async function has(sha256: string): Promise<boolean> {
  const res = await fetch(`/api/blobs/sha256:${sha256}`, {
    method: "HEAD",
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (res.status === 401) throw new Unauthorized("the token was not accepted");
  return res.ok;
}

async function sha256(bytes: ArrayBuffer): Promise<string> {
  if (!crypto.subtle)
    throw new Error("hashing a file needs a secure context: open the page over https, or on localhost");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file as a run's input: its blobs uploaded (`sent` told the bytes so far), and its ref. */
export async function uploadFile(file: File, name: string, sent: (bytes: number) => void): Promise<FileRef> {
  if (file.size > FILE_BYTES) throw new Error(`${name} is ${file.size} bytes: a file of an input holds at most 64 MiB`);
  const whole = await file.arrayBuffer();
  const ref: FileRef = { name, size: file.size, sha256: await sha256(whole) };
  const parts: { sha256: string; size: number }[] = [];
  let done = 0;
  for (let at = 0; at < file.size || (file.size === 0 && parts.length === 0); at += BLOB_BYTES) {
    const slice = whole.slice(at, Math.min(file.size, at + BLOB_BYTES));
    const hash = await sha256(slice);
    // A blob the coordinator has (the same file given before) is not sent again.
    if (!(await has(hash))) await put(`/api/blobs/sha256:${hash}`, new Blob([slice]), (bytes) => sent(done + bytes));
    done += slice.byteLength;
    sent(done);
    parts.push({ sha256: hash, size: slice.byteLength });
  }
  if (parts.length > 1) ref.parts = parts;
  return ref;
}
